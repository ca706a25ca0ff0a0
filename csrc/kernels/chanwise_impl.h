// Per-channel element-wise float ops (kernels/chanwise.h): the loops, included by one
// translation unit per instruction set (kernels/<isa>/chanwise_<isa>.cc), each compiled
// with its own flags, so GCC vectorizes them 4 (SSE2, NEON), 8 (AVX2) or 16 (AVX-512)
// lanes wide. The same operations in the same order on every ISA, one rounding each
// (-ffp-contract=off; -fno-trapping-math only lets GCC if-convert the selects): the bits
// do not depend on the ISA. Everything here has internal linkage.
#pragma once
#include "kernels/chanwise.h"

namespace onebit {
namespace {

template <class F>
inline void rows_of(const float* x, size_t ldx, float* y, size_t ldy, size_t rows, int c0, int c1, F f) {
  for (size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    float* yr = y + r * ldy;
    for (int i = c0; i < c1; ++i) yr[i] = f(xr[i], i);
  }
}

// kPost, one loop per combination so each vectorizes.
template <bool RELU, bool AFFINE, bool RES>
void post_rows(const ChanParams& p, const float* x, size_t ldx, float* y, size_t ldy, size_t rows, int c0,
               int c1) {
  const float* a = p.a;
  const float* b = p.b;
  for (size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    const float* rr = RES ? p.res + r * p.ldr : nullptr;
    float* yr = y + r * ldy;
    for (int i = c0; i < c1; ++i) {
      float v = xr[i];
      if (RES && !AFFINE) v = v + rr[i];
      if (RELU) v = (v > 0.0f || v != v) ? v : 0.0f;  // as the relu op: NaN stays, -0 becomes +0
      if (AFFINE) {
        const float t = v * a[i];
        v = t + b[i];
        if (RES) v = v + rr[i];
      }
      yr[i] = v;
    }
  }
}

template <bool RELU, bool AFFINE>
void post_rows_res(const ChanParams& p, const float* x, size_t ldx, float* y, size_t ldy, size_t rows, int c0,
                   int c1) {
  if (p.res)
    post_rows<RELU, AFFINE, true>(p, x, ldx, y, ldy, rows, c0, c1);
  else
    post_rows<RELU, AFFINE, false>(p, x, ldx, y, ldy, rows, c0, c1);
}

void chanwise_impl(const ChanParams& p, const float* x, size_t ldx, float* y, size_t ldy, size_t rows, int c0,
                   int c1) {
  const float* a = p.a;
  const float* b = p.b;
  const float lo = p.lo, hi = p.hi;
  switch (p.op) {
    case ChanOp::kAffine:
      rows_of(x, ldx, y, ldy, rows, c0, c1, [a, b](float v, int i) {
        const float t = v * a[i];
        return t + b[i];
      });
      break;
    case ChanOp::kPrelu:
      rows_of(x, ldx, y, ldy, rows, c0, c1, [a](float v, int i) {
        const float neg = v * a[i];
        return v < 0.0f ? neg : v;
      });
      break;
    case ChanOp::kRelu:
      rows_of(x, ldx, y, ldy, rows, c0, c1, [](float v, int) { return (v > 0.0f || v != v) ? v : 0.0f; });
      break;
    case ChanOp::kClip:
      rows_of(x, ldx, y, ldy, rows, c0, c1, [lo, hi](float v, int) { return v < lo ? lo : (v > hi ? hi : v); });
      break;
    case ChanOp::kScale:
      rows_of(x, ldx, y, ldy, rows, c0, c1, [lo](float v, int) { return v * lo; });
      break;
    case ChanOp::kBias:
      rows_of(x, ldx, y, ldy, rows, c0, c1, [b](float v, int i) { return v + b[i]; });
      break;
    case ChanOp::kBiasRelu:
      rows_of(x, ldx, y, ldy, rows, c0, c1, [b](float v, int i) {
        const float t = v + b[i];
        return t < 0.0f ? 0.0f : t;
      });
      break;
    case ChanOp::kBiasPrelu:
      rows_of(x, ldx, y, ldy, rows, c0, c1, [a, b](float v, int i) {
        const float t = v + b[i];
        const float neg = t * a[i];
        return t < 0.0f ? neg : t;
      });
      break;
    case ChanOp::kPost:
      if (p.relu)
        p.a ? post_rows_res<true, true>(p, x, ldx, y, ldy, rows, c0, c1)
            : post_rows_res<true, false>(p, x, ldx, y, ldy, rows, c0, c1);
      else
        p.a ? post_rows_res<false, true>(p, x, ldx, y, ldy, rows, c0, c1)
            : post_rows_res<false, false>(p, x, ldx, y, ldy, rows, c0, c1);
      break;
  }
}

}  // namespace
}  // namespace onebit
