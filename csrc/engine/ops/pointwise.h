// Per-element float ops: y[pixel][c] = f(x[pixel][c], c). Each op file gives f;
// the kernels are alias-safe (out may be the input: OpDef::inplace).
#pragma once
#include <memory>
#include <utility>

#include "engine/ops/common.h"

namespace onebit::ops {

template <class F>
class PointwiseKernel final : public OpKernel {
 public:
  PointwiseKernel(ValueInfo v, F f) : v_(v), f_(std::move(f)) {}
  void run(const RunArgs& a) const override {
    const size_t rows = rows_of(a.n, v_), c = static_cast<size_t>(v_.c);
    const auto* x = static_cast<const float*>(a.in[0]);
    auto* y = static_cast<float*>(a.out);
    for_row_chunks(rows, c, a.nthreads, [&](size_t r0, size_t r1) {
      for (size_t r = r0; r < r1; ++r)
        for (size_t i = 0; i < c; ++i) y[r * c + i] = f_(x[r * c + i], i);
    });
  }

 private:
  ValueInfo v_;
  F f_;
};

// Float input of any rank; the output has its shape.
template <class F>
std::unique_ptr<OpKernel> pointwise(BuildCtx& ctx, F f) {
  ctx.require_input(0, DType::kF32, 0);
  ctx.out = ctx.input();
  return std::make_unique<PointwiseKernel<F>>(ctx.input(), std::move(f));
}

}  // namespace onebit::ops
