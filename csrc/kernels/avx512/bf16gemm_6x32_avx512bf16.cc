// AVX512-BF16 GEMM micro-kernel, 6 x 32: 12 zmm fp32 accumulators, per pair of
// k one broadcast of a row's two bf16 values and two VDPBF16PS (32 products
// each) against the packed panel; masked stores for the column tail. The
// summation order is the one kernels/bf16gemm.h defines (the instruction's).
// Compiled with -mavx512bf16 (csrc/CMakeLists.txt), selected only where
// cpu_features().avx512bf16.
#include <immintrin.h>

#include "kernels/bf16gemm.h"

namespace onebit {
namespace {

template <int MR>
void kernel(int nr, int kp, const uint32_t* a, long lda, const uint32_t* bp, float* c, long ldc,
            bool accumulate, const float* scale, const float* bias) {
  __m512 acc[MR][2];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (int p = 0; p < kp; ++p) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(bp + p * 32);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(bp + p * 32 + 16);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512bh av = (__m512bh)_mm512_set1_epi32(static_cast<int>(a[i * lda + p]));
      acc[i][0] = _mm512_dpbf16_ps(acc[i][0], av, b0);
      acc[i][1] = _mm512_dpbf16_ps(acc[i][1], av, b1);
    }
  }
  const __mmask16 m0 = nr >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << nr) - 1);
  const __mmask16 m1 = nr >= 32 ? 0xFFFF : nr <= 16 ? 0 : static_cast<__mmask16>((1u << (nr - 16)) - 1);
  const __m512 scale0 = scale ? _mm512_maskz_loadu_ps(m0, scale) : _mm512_setzero_ps();
  const __m512 scale1 = scale ? _mm512_maskz_loadu_ps(m1, scale + 16) : _mm512_setzero_ps();
  const __m512 bias0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
  const __m512 bias1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
    __m512 r0 = acc[i][0], r1 = acc[i][1];
    if (accumulate) {
      r0 = _mm512_add_ps(r0, _mm512_maskz_loadu_ps(m0, ci));
      r1 = _mm512_add_ps(r1, _mm512_maskz_loadu_ps(m1, ci + 16));
    }
    if (scale) {
      r0 = _mm512_mul_ps(r0, scale0);
      r1 = _mm512_mul_ps(r1, scale1);
    }
    if (bias) {
      r0 = _mm512_add_ps(r0, bias0);
      r1 = _mm512_add_ps(r1, bias1);
    }
    _mm512_mask_storeu_ps(ci, m0, r0);
    _mm512_mask_storeu_ps(ci + 16, m1, r1);
  }
}

void bf16gemm_6x32_avx512bf16(int mr, int nr, int kp, const uint32_t* a, long lda,
                              const uint32_t* bp, float* c, long ldc, bool accumulate,
                              const float* scale, const float* bias) {
  switch (mr) {
    case 6: kernel<6>(nr, kp, a, lda, bp, c, ldc, accumulate, scale, bias); break;
    case 5: kernel<5>(nr, kp, a, lda, bp, c, ldc, accumulate, scale, bias); break;
    case 4: kernel<4>(nr, kp, a, lda, bp, c, ldc, accumulate, scale, bias); break;
    case 3: kernel<3>(nr, kp, a, lda, bp, c, ldc, accumulate, scale, bias); break;
    case 2: kernel<2>(nr, kp, a, lda, bp, c, ldc, accumulate, scale, bias); break;
    default: kernel<1>(nr, kp, a, lda, bp, c, ldc, accumulate, scale, bias); break;
  }
}

// VCVTNEPS2BF16, 16 values at a time (masked tail).
void convert_avx512bf16(const float* src, uint16_t* dst, long n) {
  long i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i),
                        (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(src + i)));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm256_mask_storeu_epi16(dst + i, m, (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, src + i)));
  }
}

// 32 values per masked load / store: a 7x7 stem's run of 21 values is one of each.
void gather_avx512bf16(const uint16_t* const* src, int runs, int run, uint16_t* dst) {
  for (int i = 0; i < runs; ++i, dst += run)
    for (int q = 0; q < run; q += 32) {
      const __mmask32 m = run - q >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((1u << (run - q)) - 1);
      const __m512i v = src[i] ? _mm512_maskz_loadu_epi16(m, src[i] + q) : _mm512_setzero_si512();
      _mm512_mask_storeu_epi16(dst + q, m, v);
    }
}

}  // namespace

const Bf16GemmConfig& bf16gemm_config_avx512bf16() {
  static const Bf16GemmConfig cfg{"bf16gemm_6x32_avx512bf16", 6, bf16gemm_6x32_avx512bf16,
                                  convert_avx512bf16, gather_avx512bf16};
  return cfg;
}

}  // namespace onebit
