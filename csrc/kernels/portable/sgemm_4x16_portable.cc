// Portable fp32 GEMM micro-kernel, 4 x 16 (plain loops; SSE2 at baseline).
#include "kernels/sgemm.h"

namespace onebit {
namespace {

void sgemm_4x16_portable(int mr, int nr, const SgemmA& A, const float* bp, float* c, long ldc,
                         bool accumulate) {
  float acc[4][16] = {};
  for (int s = 0; s < A.nseg; ++s, bp += A.seg_len * 16) {
    const float* a = A.p + s * A.seg_stride;
    for (int k = 0; k < A.seg_len; ++k) {
      const float* b = bp + k * 16;
      for (int i = 0; i < mr; ++i) {
        const float av = a[i * A.ld + k];
        for (int j = 0; j < 16; ++j) acc[i][j] += av * b[j];
      }
    }
  }
  for (int i = 0; i < mr; ++i)
    for (int j = 0; j < nr; ++j) c[i * ldc + j] = accumulate ? c[i * ldc + j] + acc[i][j] : acc[i][j];
}

void sgemv_portable(int M, int N, int K, const float* a, long lda, const float* w, long ldw,
                    float* c, long ldc) {
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      float acc[8] = {};
      int k = 0;
      for (; k + 8 <= K; k += 8)
        for (int q = 0; q < 8; ++q) acc[q] += a[m * lda + k + q] * w[n * ldw + k + q];
      float sum = 0.0f;
      for (; k < K; ++k) sum += a[m * lda + k] * w[n * ldw + k];
      for (int q = 0; q < 8; ++q) sum += acc[q];
      c[m * ldc + n] = sum;
    }
}

}  // namespace

const SgemmConfig& sgemm_config_portable() {
  static const SgemmConfig cfg{"sgemm_4x16_portable", 4, 16, sgemm_4x16_portable,
                               sgemv_portable};
  return cfg;
}

}  // namespace onebit
