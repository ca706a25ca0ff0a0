// mean_abs: mean of |x| over channels -> one value per pixel (XNOR-Net's K for
// dense layers; reference.py _op_mean_abs). float32 pairwise sum as numpy.
#include <cmath>
#include <vector>

#include "engine/ops/common.h"

namespace onebit::ops {
namespace {

class MeanAbsKernel final : public OpKernel {
 public:
  explicit MeanAbsKernel(ValueInfo in) : in_(in) {}
  void run(const RunArgs& a) const override {
    const size_t rows = rows_of(a.n, in_), c = static_cast<size_t>(in_.c);
    const auto* x = static_cast<const float*>(a.in[0]);
    auto* y = static_cast<float*>(a.out);
    std::vector<float> ab(c);
    for (size_t r = 0; r < rows; ++r) {
      for (size_t i = 0; i < c; ++i) ab[i] = std::fabs(x[r * c + i]);
      y[r] = pairwise_sum_f32(ab.data(), static_cast<int64_t>(c)) / static_cast<float>(c);
    }
  }

 private:
  ValueInfo in_;
};

std::unique_ptr<OpKernel> build(BuildCtx& ctx) {
  ctx.require_input(0, DType::kF32, 0);
  ctx.out = ctx.input();
  ctx.out.c = 1;
  return std::make_unique<MeanAbsKernel>(ctx.input());
}

}  // namespace

extern const OpDef kOpMeanAbs = {"mean_abs", "Mean of |x| over channels, one value per pixel.", 1, 1, {},
                                 {}, false, build};

}  // namespace onebit::ops
