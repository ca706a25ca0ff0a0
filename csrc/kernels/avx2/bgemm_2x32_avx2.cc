// AVX2 binary GEMM micro-kernel: MR <= 2 pixels x 32 channels, run as two
// 16-channel halves (4 ymm accumulators per pixel each, to fit 16 registers).
//
// AVX2 has no vector popcount: bytes are counted by nibble lookup (vpshufb on
// a 16-entry table, low and high nibble), the byte counts of up to 15 words
// of K are summed in 8-bit lanes, then folded into 64-bit lanes with vpsadbw
// (Mula's method; Harley-Seal pays off only with long runs of K per output).
#include <immintrin.h>

#include "kernels/bgemm.h"

namespace onebit {
namespace {

template <int MR>
void bgemm_mrx32_avx2(int kw, const uint64_t* const* rows, const ptrdiff_t* koff,
                      const uint64_t* w0,
                      size_t block_words, int b0, int b1, const int32_t* const* corr,
                      const BgemmStage& st, void* const* out) {
 for (int b = b0; b < b1; ++b) {
  const uint64_t* w = w0 + b * block_words;
  const BgemmEpilogue ep = stage_block(st, b);
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1,
                                       2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const __m256i zero = _mm256_setzero_si256();
  alignas(32) int64_t pop[MR][kNR];
  for (int half = 0; half < 2; ++half) {
    __m256i acc[MR][4], bytes[MR][4];
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < 4; ++j) acc[i][j] = bytes[i][j] = zero;
    int pending = 0;
    const uint64_t* wk = w + half * 16;
    {
      for (int k = 0; k < kw; ++k, wk += kNR) {
        __m256i wv[4];
        for (int j = 0; j < 4; ++j)
          wv[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wk + 4 * j));
        for (int i = 0; i < MR; ++i) {
          const __m256i av = _mm256_set1_epi64x(static_cast<long long>(rows[i][koff[k]]));
          for (int j = 0; j < 4; ++j) {
            const __m256i x = _mm256_xor_si256(av, wv[j]);
            const __m256i lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(x, low4));
            const __m256i hi =
                _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(x, 4), low4));
            bytes[i][j] = _mm256_add_epi8(bytes[i][j], _mm256_add_epi8(lo, hi));
          }
        }
        if (++pending == 15) {  // 15 words x 8 bits < 256: flush byte counts
          for (int i = 0; i < MR; ++i)
            for (int j = 0; j < 4; ++j) {
              acc[i][j] = _mm256_add_epi64(acc[i][j], _mm256_sad_epu8(bytes[i][j], zero));
              bytes[i][j] = zero;
            }
          pending = 0;
        }
      }
    }
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < 4; ++j) {
        acc[i][j] = _mm256_add_epi64(acc[i][j], _mm256_sad_epu8(bytes[i][j], zero));
        _mm256_store_si256(reinterpret_cast<__m256i*>(&pop[i][half * 16 + 4 * j]), acc[i][j]);
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

const BgemmConfig& bgemm_config_avx2() {
  static const BgemmConfig cfg{"bgemm_2x32_avx2", 2,
                               {bgemm_mrx32_avx2<1>, bgemm_mrx32_avx2<2>}};
  return cfg;
}

}  // namespace onebit
