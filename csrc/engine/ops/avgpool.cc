// avgpool: float average pooling (reference.py _op_avgpool). torch's ceil_mode
// with count_include_pad counts the padding but not the overhang past it; that
// case runs a direct loop in float64 (as the reference), the rest the kernel.
#include <algorithm>

#include "engine/ops/common.h"

namespace onebit::ops {
namespace {

class AvgpoolKernel final : public OpKernel {
 public:
  AvgpoolKernel(PoolParams p, Window g, bool cip, bool direct) : p_(p), g_(g), cip_(cip), direct_(direct) {}
  void run(const RunArgs& a) const override {
    PoolParams p = p_;
    p.n = static_cast<int>(a.n);
    const auto* x = static_cast<const float*>(a.in[0]);
    auto* y = static_cast<float*>(a.out);
    if (!direct_) {
      avgpool_f32(x, p, cip_, y, a.nthreads);
      return;
    }
    const int64_t h = p.h, w = p.w, c = p.c;
    for (int64_t s = 0; s < a.n; ++s)
      for (int64_t i = 0; i < g_.oh; ++i)
        for (int64_t j = 0; j < g_.ow; ++j) {
          const int64_t y0 = i * g_.sh - g_.pt, x0 = j * g_.sw - g_.pl, y1 = y0 + g_.kh, x1 = x0 + g_.kw;
          const int64_t cnt = (std::min(y1, h + g_.pb) - y0) * (std::min(x1, w + g_.pr) - x0);
          float* out = y + ((s * g_.oh + i) * g_.ow + j) * c;
          for (int64_t ch = 0; ch < c; ++ch) {
            double acc = 0;
            for (int64_t yy = std::max<int64_t>(y0, 0); yy < std::min(y1, h); ++yy)
              for (int64_t xx = std::max<int64_t>(x0, 0); xx < std::min(x1, w); ++xx)
                acc += x[((s * h + yy) * w + xx) * c + ch];
            out[ch] = static_cast<float>(acc / static_cast<double>(cnt));
          }
        }
  }

 private:
  PoolParams p_;
  Window g_;
  bool cip_, direct_;
};

std::unique_ptr<OpKernel> build(BuildCtx& ctx) {
  ctx.require_input(0, DType::kF32, 4);
  const bool ceil = ctx.attr_bool("ceil_mode"), cip = ctx.attr_bool("count_include_pad");
  Window g;
  const PoolParams p = pool_params(ctx, ctx.input(), ceil, &g);
  const bool padded = g.pt || g.pb || g.pl || g.pr;
  ctx.out = ValueInfo{DType::kF32, 4, p.oh, p.ow, ctx.input().c};
  // with ceil_mode the overhang is padding and must not count: only count_include_pad
  // without ceil_mode (or without padding) maps onto the kernel's rule
  return std::make_unique<AvgpoolKernel>(p, g, cip && !ceil, ceil && padded && cip);
}

}  // namespace

extern const OpDef kOpAvgpool = {"avgpool", "Float average pooling.", 1, 1, pool_attrs(true), {}, false,
                                 build};

}  // namespace onebit::ops
