// AVX2+FMA fp32 GEMM micro-kernel, 6 x 16 (12 ymm accumulators).
#include <immintrin.h>

#include "kernels/sgemm.h"

namespace onebit {
namespace {

template <int MR>
void kernel(int nr, int kc, const float* a, long lda, const float* bp, float* c, long ldc,
            bool accumulate) {
  __m256 acc[MR][2];
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_loadu_ps(bp + k * 16), b1 = _mm256_loadu_ps(bp + k * 16 + 8);
    for (int i = 0; i < MR; ++i) {
      const __m256 av = _mm256_broadcast_ss(a + i * lda + k);
      acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
    }
  }
  for (int i = 0; i < MR; ++i) {
    alignas(32) float tmp[16];
    _mm256_store_ps(tmp, acc[i][0]);
    _mm256_store_ps(tmp + 8, acc[i][1]);
    float* ci = c + i * ldc;
    if (nr == 16 && !accumulate) {
      _mm256_storeu_ps(ci, acc[i][0]);
      _mm256_storeu_ps(ci + 8, acc[i][1]);
    } else {
      for (int j = 0; j < nr; ++j) ci[j] = accumulate ? ci[j] + tmp[j] : tmp[j];
    }
  }
}

void sgemm_6x16_avx2(int mr, int nr, int kc, const float* a, long lda, const float* bp, float* c,
                     long ldc, bool accumulate) {
  switch (mr) {
    case 6: kernel<6>(nr, kc, a, lda, bp, c, ldc, accumulate); break;
    case 5: kernel<5>(nr, kc, a, lda, bp, c, ldc, accumulate); break;
    case 4: kernel<4>(nr, kc, a, lda, bp, c, ldc, accumulate); break;
    case 3: kernel<3>(nr, kc, a, lda, bp, c, ldc, accumulate); break;
    case 2: kernel<2>(nr, kc, a, lda, bp, c, ldc, accumulate); break;
    default: kernel<1>(nr, kc, a, lda, bp, c, ldc, accumulate); break;
  }
}

}  // namespace

const SgemmConfig& sgemm_config_avx2() {
  static const SgemmConfig cfg{"sgemm_6x16_avx2", 6, 16, sgemm_6x16_avx2};
  return cfg;
}

}  // namespace onebit
