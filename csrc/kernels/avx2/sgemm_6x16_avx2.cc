// AVX2+FMA fp32 GEMM micro-kernel, 6 x 16 (12 ymm accumulators).
#include <immintrin.h>

#include "kernels/sgemm.h"

namespace onebit {
namespace {

// The accumulators must stay in registers: an earlier version copied them to a
// stack array for a scalar column-tail loop, and GCC then kept all 12 in memory,
// storing them at every k (the 7x7 stem ran at a third of torch's speed). Tails
// use vmaskmovps instead, as the AVX-512 kernel uses masked stores.
template <int MR>
void kernel(int nr, const SgemmA& A, const float* bp, float* c, long ldc, bool accumulate) {
  __m256 acc[MR][2];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  const long lda = A.ld;
  for (int s = 0; s < A.nseg; ++s, bp += A.seg_len * 16) {
    const float* a = A.p + s * A.seg_stride;
    for (int k = 0; k < A.seg_len; ++k) {
      const __m256 b0 = _mm256_loadu_ps(bp + k * 16), b1 = _mm256_loadu_ps(bp + k * 16 + 8);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const __m256 av = _mm256_broadcast_ss(a + i * lda + k);
        acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
        acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
      }
    }
  }
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr), lane);
  const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr - 8), lane);
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
    __m256 r0 = acc[i][0], r1 = acc[i][1];
    if (nr == 16) {
      if (accumulate) {
        r0 = _mm256_add_ps(_mm256_loadu_ps(ci), r0);
        r1 = _mm256_add_ps(_mm256_loadu_ps(ci + 8), r1);
      }
      _mm256_storeu_ps(ci, r0);
      _mm256_storeu_ps(ci + 8, r1);
    } else {
      if (accumulate) {
        r0 = _mm256_add_ps(_mm256_maskload_ps(ci, m0), r0);
        r1 = _mm256_add_ps(_mm256_maskload_ps(ci + 8, m1), r1);
      }
      _mm256_maskstore_ps(ci, m0, r0);
      _mm256_maskstore_ps(ci + 8, m1, r1);
    }
  }
}

void sgemm_6x16_avx2(int mr, int nr, const SgemmA& a, const float* bp, float* c, long ldc,
                     bool accumulate) {
  switch (mr) {
    case 6: kernel<6>(nr, a, bp, c, ldc, accumulate); break;
    case 5: kernel<5>(nr, a, bp, c, ldc, accumulate); break;
    case 4: kernel<4>(nr, a, bp, c, ldc, accumulate); break;
    case 3: kernel<3>(nr, a, bp, c, ldc, accumulate); break;
    case 2: kernel<2>(nr, a, bp, c, ldc, accumulate); break;
    default: kernel<1>(nr, a, bp, c, ldc, accumulate); break;
  }
}

inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

// 4 weight rows at a time share each load of a; 16 (8) lanes per FMA.
void sgemv_avx2(int M, int N, int K, const float* a, long lda, const float* w, long ldw,
                float* c, long ldc) {
  for (int m = 0; m < M; ++m) {
    const float* am = a + m * lda;
    int n = 0;
    for (; n + 4 <= N; n += 4) {
      __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
      const float* w0 = w + n * ldw;
      int k = 0;
      for (; k + 8 <= K; k += 8) {
        const __m256 x = _mm256_loadu_ps(am + k);
        s0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(w0 + k), s0);
        s1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(w0 + ldw + k), s1);
        s2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(w0 + 2 * ldw + k), s2);
        s3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(w0 + 3 * ldw + k), s3);
      }
      float r[4] = {hsum256(s0), hsum256(s1), hsum256(s2), hsum256(s3)};
      for (; k < K; ++k)
        for (int q = 0; q < 4; ++q) r[q] += am[k] * w0[q * ldw + k];
      for (int q = 0; q < 4; ++q) c[m * ldc + n + q] = r[q];
    }
    for (; n < N; ++n) {
      __m256 s0 = _mm256_setzero_ps();
      const float* wn = w + n * ldw;
      int k = 0;
      for (; k + 8 <= K; k += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(am + k), _mm256_loadu_ps(wn + k), s0);
      float r = hsum256(s0);
      for (; k < K; ++k) r += am[k] * wn[k];
      c[m * ldc + n] = r;
    }
  }
}

}  // namespace

const SgemmConfig& sgemm_config_avx2() {
  static const SgemmConfig cfg{"sgemm_6x16_avx2", 6, 16, sgemm_6x16_avx2, sgemv_avx2};
  return cfg;
}

}  // namespace onebit
