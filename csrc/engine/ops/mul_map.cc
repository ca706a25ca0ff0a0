// mul_map: x * k with k one value per pixel ([N, H, W, 1] or [N, 1]), broadcast
// over channels: XNOR-Net's K (reference.py _op_mul_map).
#include "engine/ops/common.h"

namespace onebit::ops {
namespace {

class MulMapKernel final : public OpKernel {
 public:
  explicit MulMapKernel(ValueInfo v) : v_(v) {}
  void run(const RunArgs& a) const override {
    const size_t rows = rows_of(a.n, v_), c = static_cast<size_t>(v_.c);
    const auto* x = static_cast<const float*>(a.in[0]);
    const auto* k = static_cast<const float*>(a.in[1]);
    auto* y = static_cast<float*>(a.out);
    for (size_t r = 0; r < rows; ++r)
      for (size_t i = 0; i < c; ++i) y[r * c + i] = x[r * c + i] * k[r];
  }

 private:
  ValueInfo v_;
};

std::unique_ptr<OpKernel> build(BuildCtx& ctx) {
  ctx.require_input(0, DType::kF32, 0);
  ctx.require_input(1, DType::kF32, 0);
  const ValueInfo &x = ctx.input(0), &k = ctx.input(1);
  if (k.rank != x.rank || k.h != x.h || k.w != x.w || k.c != 1)
    ctx.fail("the map must have the input's pixels and one channel");
  ctx.out = x;
  return std::make_unique<MulMapKernel>(x);
}

}  // namespace

extern const OpDef kOpMulMap = {"mul_map", "y = x * k, k one value per pixel broadcast over channels.",
                                2, 2, {}, {}, true, build};

}  // namespace onebit::ops
