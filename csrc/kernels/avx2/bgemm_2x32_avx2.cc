// AVX2 binary GEMM micro-kernel: MR <= 2 pixels x 32 channels, run as two
// 16-channel halves so the accumulators fit the 16 ymm registers.
//
// AVX2 has no vector popcount: bytes are counted by nibble lookup (vpshufb on
// a 16-entry table, low and high nibble; Mula's method). Byte counts of up to
// 31 words of K are summed in 8-bit lanes (31 x 8 bits = 248 < 256) in
// registers, then folded into 64-bit counts with vpsadbw. Harley-Seal carry-
// save adders pay off only for long runs of K per output (>= 16 words), which
// most layers here do not have. The output stage is vectorized (8 lanes) with
// the same two-rounding float math as the scalar stage.
#include <immintrin.h>

#include "kernels/bgemm.h"

namespace onebit {
namespace {

template <int MR>
void bgemm_mrx32_avx2(int kw, const uint64_t* const* rows, const ptrdiff_t* koff,
                      const uint64_t* w0, size_t block_words, int b0, int b1,
                      const int32_t* const* corr, const BgemmStage& st, void* const* out) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1,
                                       2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const __m256i zero = _mm256_setzero_si256();
  for (int b = b0; b < b1; ++b) {
    const uint64_t* w = w0 + b * block_words;
    alignas(32) int64_t pop[MR][kNR];
    for (int half = 0; half < 2; ++half) {
      __m256i acc[MR][4];
      for (int i = 0; i < MR; ++i)
        for (int j = 0; j < 4; ++j) acc[i][j] = zero;
      for (int k0 = 0; k0 < kw; k0 += 31) {
        const int k1 = kw - k0 < 31 ? kw : k0 + 31;
        __m256i bytes[MR][4];
        for (int i = 0; i < MR; ++i)
          for (int j = 0; j < 4; ++j) bytes[i][j] = zero;
        for (int k = k0; k < k1; ++k) {
          const uint64_t* wk = w + static_cast<size_t>(k) * kNR + half * 16;
          const ptrdiff_t off = koff[k];
          for (int i = 0; i < MR; ++i) {
            const __m256i av = _mm256_set1_epi64x(static_cast<long long>(rows[i][off]));
            for (int j = 0; j < 4; ++j) {
              const __m256i x = _mm256_xor_si256(
                  av, _mm256_load_si256(reinterpret_cast<const __m256i*>(wk + 4 * j)));
              const __m256i lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(x, low4));
              const __m256i hi =
                  _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(x, 4), low4));
              bytes[i][j] = _mm256_add_epi8(bytes[i][j], _mm256_add_epi8(lo, hi));
            }
          }
        }
        for (int i = 0; i < MR; ++i)
          for (int j = 0; j < 4; ++j)
            acc[i][j] = _mm256_add_epi64(acc[i][j], _mm256_sad_epu8(bytes[i][j], zero));
      }
      for (int i = 0; i < MR; ++i)
        for (int j = 0; j < 4; ++j)
          _mm256_store_si256(reinterpret_cast<__m256i*>(&pop[i][half * 16 + 4 * j]), acc[i][j]);
    }
    const BgemmEpilogue ep = stage_block(st, b);
    const __m256i kb = _mm256_set1_epi32(ep.k_bits);
    const __m256i lo_dwords = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    for (int i = 0; i < MR; ++i) {
      alignas(32) int32_t dot[kNR];
      for (int q = 0; q < 4; ++q) {  // 8 channels: two 4 x int64 -> 8 x int32
        const __m256i p0 = _mm256_permutevar8x32_epi32(
            _mm256_load_si256(reinterpret_cast<const __m256i*>(&pop[i][8 * q])), lo_dwords);
        const __m256i p1 = _mm256_permutevar8x32_epi32(
            _mm256_load_si256(reinterpret_cast<const __m256i*>(&pop[i][8 * q + 4])), lo_dwords);
        __m256i p = _mm256_blend_epi32(p0, p1, 0xF0);
        __m256i d = _mm256_sub_epi32(kb, _mm256_add_epi32(p, p));
        if (corr[i])
          d = _mm256_sub_epi32(
              d, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(corr[i] + b * kNR + 8 * q)));
        _mm256_store_si256(reinterpret_cast<__m256i*>(dot + 8 * q), d);
      }
      if (ep.kind == OutKind::kFloat && ep.nvalid == kNR) {
        float* o = static_cast<float*>(block_out(out[i], ep.kind, b));
        const __m256 fz = _mm256_setzero_ps();
        for (int q = 0; q < 4; ++q) {
          __m256 y = _mm256_mul_ps(
              _mm256_cvtepi32_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(dot + 8 * q))),
              _mm256_loadu_ps(ep.mult + 8 * q));
          y = _mm256_add_ps(y, _mm256_loadu_ps(ep.bias + 8 * q));
          const __m256 neg = _mm256_cmp_ps(y, fz, _CMP_LT_OQ);
          if (ep.act == Act::kRelu) {
            y = _mm256_blendv_ps(y, fz, neg);
          } else if (ep.act == Act::kPrelu) {
            y = _mm256_blendv_ps(y, _mm256_mul_ps(y, _mm256_loadu_ps(ep.slope + 8 * q)), neg);
          }
          _mm256_storeu_ps(o + 8 * q, y);
        }
      } else {
        bgemm_epilogue_scalar(dot, ep, block_out(out[i], ep.kind, b));
      }
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
