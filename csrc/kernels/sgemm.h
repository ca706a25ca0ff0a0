// fp32 GEMM micro-kernels (first float conv, dense layers).
//
// C[mr x nr] (+)= A[mr x kc] * Bp[kc x NR], A rows at stride lda, Bp a packed
// panel (NR floats per k, zero-padded). Only the first nr columns are stored.
#pragma once

namespace onebit {

using SgemmUkernelFn = void (*)(int mr, int nr, int kc, const float* a, long lda,
                                const float* bp, float* c, long ldc, bool accumulate);

// Few rows times row-major weights (dense layers at small batch): for
// m < M, n < N: c[m*ldc + n] = sum_k a[m*lda + k] * w[n*ldw + k]. No packing,
// the weights stream once (a GEMV is memory-bound; packing them per call
// would cost more than the product).
using SgemvFn = void (*)(int M, int N, int K, const float* a, long lda, const float* w,
                         long ldw, float* c, long ldc);

struct SgemmConfig {
  const char* name;
  int mr, nr;
  SgemmUkernelFn fn;
  SgemvFn gemv;
};

const SgemmConfig& sgemm_config_portable();
const SgemmConfig& sgemm_config_avx2();
const SgemmConfig& sgemm_config_avx512();
const SgemmConfig& sgemm_config_neon();

}  // namespace onebit
