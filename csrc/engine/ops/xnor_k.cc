// xnor_k: XNOR-Net's K: the mean of |x| over channels (float32, as numpy), then
// its average over each conv window with zero padding: the window's float32
// values summed in float64 (exact for any realistic window) and divided once, so
// the result is the correctly rounded mean
// -> (N, OH, OW, 1) (reference.py _op_xnor_k).
#include <cmath>
#include <vector>

#include "engine/ops/common.h"

namespace onebit::ops {
namespace {

class XnorKKernel final : public OpKernel {
 public:
  XnorKKernel(ValueInfo in, Window g) : in_(in), g_(g) {}
  void run(const RunArgs& a) const override {
    const int64_t h = in_.h, w = in_.w, c = in_.c;
    const auto* x = static_cast<const float*>(a.in[0]);
    auto* y = static_cast<float*>(a.out);
    std::vector<float> abs_row(static_cast<size_t>(c)), amap(static_cast<size_t>(h * w));
    const double taps = static_cast<double>(g_.kh * g_.kw);
    for (int64_t s = 0; s < a.n; ++s) {
      for (int64_t p = 0; p < h * w; ++p) {
        const float* px = x + (s * h * w + p) * c;
        for (int64_t i = 0; i < c; ++i) abs_row[i] = std::fabs(px[i]);
        amap[p] = pairwise_sum_f32(abs_row.data(), c) / static_cast<float>(c);
      }
      for (int64_t oy = 0; oy < g_.oh; ++oy)
        for (int64_t ox = 0; ox < g_.ow; ++ox) {
          double acc = 0;
          for (int64_t i = 0; i < g_.kh; ++i)
            for (int64_t j = 0; j < g_.kw; ++j) {
              const int64_t iy = oy * g_.sh - g_.pt + i * g_.dh, ix = ox * g_.sw - g_.pl + j * g_.dw;
              if (iy >= 0 && iy < h && ix >= 0 && ix < w) acc += static_cast<double>(amap[iy * w + ix]);
            }
          y[(s * g_.oh + oy) * g_.ow + ox] = static_cast<float>(acc / taps);
        }
    }
  }
  int64_t transient_bytes(int64_t, int) const override { return (in_.h * in_.w + in_.c) * 4; }

 private:
  ValueInfo in_;
  Window g_;
};

std::unique_ptr<OpKernel> build(BuildCtx& ctx) {
  ctx.require_input(0, DType::kF32, 4);
  const Window g = read_window(ctx, ctx.input(), PadRule::kConv);
  ctx.out = ValueInfo{DType::kF32, 4, g.oh, g.ow, 1};
  return std::make_unique<XnorKKernel>(ctx.input(), g);
}

}  // namespace

extern const OpDef kOpXnorK = {"xnor_k", "XNOR-Net's K: window average of the channel mean of |x|.", 1, 1,
                               window_attrs(true), {}, false, build};

}  // namespace onebit::ops
