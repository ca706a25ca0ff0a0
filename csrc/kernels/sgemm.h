// fp32 GEMM micro-kernels (first float conv, dense layers).
//
// C[mr x nr] (+)= A[mr x kc] * Bp[kc x NR], Bp a packed panel (NR floats per k,
// zero-padded); only the first nr columns are stored.
//
// A row i is `nseg` segments of `seg_len` contiguous values (kc = nseg * seg_len),
// segment s at p + i * ld + s * seg_stride. A plain GEMM passes one segment (the
// row); a convolution passes its kernel rows (kw * C values each, one input row
// apart), read in place from its input instead of from an im2col copy. Each
// output is summed in one accumulator, k ascending from zero, however A is
// segmented: the same bits as the im2col copy gives.
#pragma once

#include "kernels/bgemm.h"  // Act

namespace onebit {

struct SgemmA {
  const float* p;
  long ld;
  int nseg, seg_len;
  long seg_stride;
};

using SgemmUkernelFn = void (*)(int mr, int nr, const SgemmA& a, const float* bp, float* c, long ldc,
                                bool accumulate);

// Few rows times row-major weights (dense layers at small batch): for
// m < M, n < N: c[m*ldc + n] = sum_k a[m*lda + k] * w[n*ldw + k]. No packing,
// the weights stream once (a GEMV is memory-bound; packing them per call
// would cost more than the product).
using SgemvFn = void (*)(int M, int N, int K, const float* a, long lda, const float* w,
                         long ldw, float* c, long ldc);

// The output stage a kernel may fuse into its store: y = c + bias
// (bias null: + 0), then relu (y < 0: 0) or prelu (y < 0: y * slope), the
// operations of ChanOp::kBias / kBiasRelu / kBiasPrelu in their order, so the bits
// equal the separate pass (finish_rows in ops/float_ops.cc), then post_relu. bias and slope are
// indexed from the tile's first column.
struct SgemmOut {
  const float* bias;
  Act act;
  const float* slope;
  // then the fused relu of a conv without a residual (ChanOp::kPost's: NaN stays, -0
  // becomes +0)
  bool post_relu = false;
};
using SgemmUkernelOutFn = void (*)(int mr, int nr, const SgemmA& a, const float* bp, float* c, long ldc,
                                   const SgemmOut& o);

// Up to two panels at once (nr <= 2 * NR; the second panel panel_floats floats after the
// first, not read when nr <= NR): C (+)= A x Bp as SgemmUkernelFn, then o's output
// stage where o is non-null (o's arrays indexed from the first panel's first column).
// With two panels, 6 broadcasts of A feed 24 FMAs instead of 12: the one-panel
// kernel's loads per FMA held the 7x7 stem at ~62% of the FMA peak and e18's 1x1
// shortcuts at about half of it.
using SgemmUkernel2Fn = void (*)(int mr, int nr, const SgemmA& a, const float* bp, long panel_floats, float* c,
                                 long ldc, bool accumulate, const SgemmOut* o);

struct SgemmConfig {
  const char* name;
  int mr, nr;
  SgemmUkernelFn fn;
  SgemvFn gemv;
  SgemmUkernelOutFn fn_out = nullptr;  // null: the caller applies the output stage
  SgemmUkernel2Fn fn2 = nullptr;  // null: one panel at a time (fn, fn_out)
};

const SgemmConfig& sgemm_config_portable();
const SgemmConfig& sgemm_config_avx2();
const SgemmConfig& sgemm_config_avx512();
const SgemmConfig& sgemm_config_neon();

}  // namespace onebit
