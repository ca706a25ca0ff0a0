// Portable binary GEMM micro-kernel: MR <= 4 pixels x 32 channels, XOR +
// popcount with no ISA extension assumed. Baseline x86-64 has no POPCNT
// instruction (__builtin_popcountll becomes a libgcc call there), so the
// count is the SWAR bit-slicing sequence, which the compiler vectorizes over
// the 32 channels with SSE2.
#include "kernels/bgemm.h"

namespace onebit {
namespace {

inline uint64_t popcount_swar(uint64_t x) {
  x = x - ((x >> 1) & 0x5555555555555555ULL);
  x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
  x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
  x += x >> 8;  // shifts, not a 64-bit multiply: SSE2 has no vector one
  x += x >> 16;
  x += x >> 32;
  return x & 0x7F;
}

template <int MR>
void bgemm_mrx32_portable(int kw, const uint64_t* const* rows, const ptrdiff_t* koff,
                          const uint64_t* w0,
                          size_t block_words, int b0, int b1, const int32_t* const* corr,
                          const BgemmStage& st, void* const* out) {
 for (int b = b0; b < b1; ++b) {
  const uint64_t* w = w0 + b * block_words;
  const BgemmEpilogue ep = stage_block(st, b);
  uint64_t pop[MR][kNR] = {};
  for (int k = 0; k < kw; ++k) {
    const uint64_t* wk = w + static_cast<size_t>(k) * kNR;
    for (int i = 0; i < MR; ++i) {
      const uint64_t av = rows[i][koff[k]];
      for (int j = 0; j < kNR; ++j) pop[i][j] += popcount_swar(av ^ wk[j]);
    }
  }
  for (int i = 0; i < MR; ++i) {
    int32_t dot[kNR];
    for (int j = 0; j < kNR; ++j)
      dot[j] = ep.k_bits - 2 * static_cast<int32_t>(pop[i][j]) -
               (corr[i] ? corr[i][b * kNR + j] : 0);
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
