// Per-element float ops y[pixel][c] = f(x[pixel][c]) with per-channel parameters (affine,
// prelu, relu, clip, scale): one kernel over kernels/chanwise.h, which runs at the active
// instruction set's width. Alias-safe (out may be the input: OpDef::inplace).
#pragma once
#include <memory>
#include <utility>
#include <vector>

#include "engine/ops/common.h"
#include "kernels/chanwise.h"

namespace onebit::ops {

class ChanKernel final : public OpKernel {
 public:
  // a, b: the per-channel parameters p.a and p.b point into (may be empty).
  ChanKernel(ValueInfo v, ChanParams p, std::vector<float> a = {}, std::vector<float> b = {})
      : v_(v), a_(std::move(a)), b_(std::move(b)), p_(p) {
    p_.a = a_.empty() ? nullptr : a_.data();
    p_.b = b_.empty() ? nullptr : b_.data();
  }
  void run(const RunArgs& r) const override {
    const size_t rows = rows_of(r.n, v_), c = static_cast<size_t>(v_.c);
    const auto* x = static_cast<const float*>(r.in[0]);
    auto* y = static_cast<float*>(r.out);
    for_row_chunks(rows, c, r.nthreads, [&](size_t r0, size_t r1) {
      chanwise(p_, x + r0 * c, c, y + r0 * c, c, r1 - r0, 0, static_cast<int>(c));
    });
  }

 private:
  ValueInfo v_;
  std::vector<float> a_, b_;
  ChanParams p_;
};

// Float input of any rank; the output has its shape.
inline std::unique_ptr<OpKernel> chan_op(BuildCtx& ctx, ChanParams p, std::vector<float> a = {},
                                         std::vector<float> b = {}) {
  ctx.require_input(0, DType::kF32, 0);
  ctx.out = ctx.input();
  return std::make_unique<ChanKernel>(ctx.input(), p, std::move(a), std::move(b));
}

}  // namespace onebit::ops
