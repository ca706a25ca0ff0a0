// Float operators around the binary layers, and binary max-pool.
#pragma once

#include <cstdint>

#include "kernels/bgemm.h"

namespace onebit {

// C[M x N] = A[M x K] * B[K x N] (+ bias[n]) then activation (relu / prelu
// with per-column slope). B(k, n) = b[k * b_rs + n * b_cs], so a (N, K) weight
// matrix is used as-is with b_rs = 1, b_cs = K.
// residual / post_act: then y = post_act(y + residual[m * ldc + n]) (ops/post_ops.h), on
// each chunk of rows as it is finished.
void sgemm(int M, int N, int K, const float* a, long lda, const float* b, long b_rs, long b_cs,
           float* c, long ldc, const float* bias, Act act, const float* slope, int nthreads,
           const float* residual = nullptr, Act post_act = Act::kNone);

const char* sgemm_kernel_name();

struct PoolParams {
  int n, h, w, c;
  int kh, kw, sh, sw, pt, pl, pb, pr;
  int oh, ow;
};

// Float conv, NHWC input, OHWI weights (groups = 1), zero padding.
// residual / post_act as for sgemm (residual [n][oh][ow][oc]).
void conv2d_f32(const float* x, const float* w, const float* bias, const PoolParams& p, int oc,
                int dh, int dw, Act act, const float* slope, float* out, int nthreads,
                const float* residual = nullptr, Act post_act = Act::kNone);

// Depthwise float conv (groups = channels, one filter per channel), NHWC,
// weights [kh][kw][c], zero padding.
void depthwise_conv2d_f32(const float* x, const float* w, const float* bias, const PoolParams& p,
                          int dh, int dw, Act act, const float* slope, float* out, int nthreads);

// Max of +-1 values on packed bits: AND of the sign bits (bit set = -1);
// padded positions are ignored.
void maxpool_packed(const uint64_t* x, const PoolParams& p, uint64_t* out, int nthreads);
void maxpool_f32(const float* x, const PoolParams& p, float* out, int nthreads);
void avgpool_f32(const float* x, const PoolParams& p, bool count_include_pad, float* out,
                 int nthreads);

}  // namespace onebit
