// global_avgpool: mean over H and W per channel -> (N, 1, 1, C). Sums in float32
// pixel by pixel and divides once, as numpy's mean over axes (1, 2) did
// (reference.py _op_global_avgpool computes the same in float64).
#include <vector>

#include "engine/ops/common.h"

namespace onebit::ops {
namespace {

class GapKernel final : public OpKernel {
 public:
  explicit GapKernel(ValueInfo in) : in_(in) {}
  void run(const RunArgs& a) const override {
    const size_t pix = static_cast<size_t>(in_.h * in_.w), c = static_cast<size_t>(in_.c);
    const float cnt = static_cast<float>(pix);
    const auto* x = static_cast<const float*>(a.in[0]);
    auto* y = static_cast<float*>(a.out);
    for (int64_t s = 0; s < a.n; ++s) {
      float* acc = y + s * c;
      for (size_t i = 0; i < c; ++i) acc[i] = 0.0f;
      for (size_t p = 0; p < pix; ++p) {
        const float* row = x + (s * pix + p) * c;
        for (size_t i = 0; i < c; ++i) acc[i] += row[i];
      }
      for (size_t i = 0; i < c; ++i) acc[i] = acc[i] / cnt;
    }
  }

 private:
  ValueInfo in_;
};

std::unique_ptr<OpKernel> build(BuildCtx& ctx) {
  ctx.require_input(0, DType::kF32, 4);
  ctx.out = ValueInfo{DType::kF32, 4, 1, 1, ctx.input().c};
  return std::make_unique<GapKernel>(ctx.input());
}

}  // namespace

extern const OpDef kOpGlobalAvgpool = {"global_avgpool", "Mean over height and width per channel.", 1, 1,
                                       {}, {}, false, build};

}  // namespace onebit::ops
