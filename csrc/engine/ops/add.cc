// add: element-wise sum of two float values of one shape (reference.py _op_add).
#include "engine/ops/common.h"

namespace onebit::ops {
namespace {

class AddKernel final : public OpKernel {
 public:
  explicit AddKernel(ValueInfo v) : v_(v) {}
  void run(const RunArgs& a) const override {
    const auto* x = static_cast<const float*>(a.in[0]);
    const auto* z = static_cast<const float*>(a.in[1]);
    auto* y = static_cast<float*>(a.out);
    const size_t c = static_cast<size_t>(v_.c);
    for_row_chunks(rows_of(a.n, v_), c, a.nthreads, [&](size_t r0, size_t r1) {
      for (size_t i = r0 * c; i < r1 * c; ++i) y[i] = x[i] + z[i];
    });
  }

 private:
  ValueInfo v_;
};

std::unique_ptr<OpKernel> build(BuildCtx& ctx) {
  ctx.require_input(0, DType::kF32, 0);
  ctx.require_input(1, DType::kF32, 0);
  const ValueInfo &a = ctx.input(0), &b = ctx.input(1);
  if (a.rank != b.rank || a.h != b.h || a.w != b.w || a.c != b.c) ctx.fail("inputs differ in shape");
  ctx.out = a;
  return std::make_unique<AddKernel>(a);
}

}  // namespace

extern const OpDef kOpAdd = {"add", "y = a + b (same shapes).", 2, 2, {}, {}, true, build};

}  // namespace onebit::ops
