// softmax over channels (the last axis; reference.py _op_softmax). exp in double,
// rounded to float32, sums as numpy's pairwise float32 reduction.
#include <cmath>
#include <vector>

#include "engine/ops/common.h"

namespace onebit::ops {
namespace {

class SoftmaxKernel final : public OpKernel {
 public:
  explicit SoftmaxKernel(ValueInfo v) : v_(v) {}
  void run(const RunArgs& a) const override {
    const size_t rows = rows_of(a.n, v_), c = static_cast<size_t>(v_.c);
    const auto* xs = static_cast<const float*>(a.in[0]);
    auto* ys = static_cast<float*>(a.out);
    std::vector<float> e(c);
    for (size_t r = 0; r < rows; ++r) {
      const float* x = xs + r * c;
      float m = x[0];
      for (size_t i = 1; i < c; ++i) m = x[i] > m ? x[i] : m;
      for (size_t i = 0; i < c; ++i) e[i] = static_cast<float>(std::exp(static_cast<double>(x[i] - m)));
      const float s = pairwise_sum_f32(e.data(), static_cast<int64_t>(c));
      for (size_t i = 0; i < c; ++i) ys[r * c + i] = e[i] / s;
    }
  }

 private:
  ValueInfo v_;
};

std::unique_ptr<OpKernel> build(BuildCtx& ctx) {
  ctx.require_input(0, DType::kF32, 0);
  ctx.out = ctx.input();
  return std::make_unique<SoftmaxKernel>(ctx.input());
}

}  // namespace

extern const OpDef kOpSoftmax = {"softmax", "Softmax over channels.", 1, 1, {}, {}, true, build};

}  // namespace onebit::ops
