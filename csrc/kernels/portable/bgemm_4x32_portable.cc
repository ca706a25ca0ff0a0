// Portable binary GEMM micro-kernel: MR <= 4 pixels x 32 channels, scalar
// XOR + __builtin_popcountll (no ISA extension assumed).
#include "kernels/bgemm.h"

namespace onebit {
namespace {

template <int MR>
void bgemm_mrx32_portable(int T, int cw, const uint64_t* const* ind, const uint64_t* w0,
                          size_t block_words, int b0, int b1, const int32_t* const* corr,
                          const BgemmStage& st, void* const* out) {
 for (int b = b0; b < b1; ++b) {
  const uint64_t* w = w0 + b * block_words;
  const BgemmEpilogue ep = stage_block(st, b);
  int32_t pop[MR][kNR] = {};
  for (int t = 0; t < T; ++t) {
    const uint64_t* a[MR];
    for (int i = 0; i < MR; ++i) a[i] = ind[i * T + t];
    for (int c = 0; c < cw; ++c) {
      const uint64_t* wk = w + (static_cast<size_t>(t) * cw + c) * kNR;
      for (int i = 0; i < MR; ++i) {
        const uint64_t av = a[i][c];
        for (int j = 0; j < kNR; ++j) pop[i][j] += __builtin_popcountll(av ^ wk[j]);
      }
    }
  }
  for (int i = 0; i < MR; ++i) {
    int32_t dot[kNR];
    for (int j = 0; j < kNR; ++j)
      dot[j] = ep.k_bits - 2 * pop[i][j] - (corr[i] ? corr[i][b * kNR + j] : 0);
    bgemm_epilogue_scalar(dot, ep, block_out(out[i], ep.kind, b));
  }
 }
}

}  // namespace

const BgemmConfig& bgemm_config_portable() {
  static const BgemmConfig cfg{"bgemm_4x32_portable", 4,
                               {bgemm_mrx32_portable<1>, bgemm_mrx32_portable<2>,
                                bgemm_mrx32_portable<3>, bgemm_mrx32_portable<4>}};
  return cfg;
}

}  // namespace onebit
