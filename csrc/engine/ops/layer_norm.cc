// layer_norm: each pixel's (or each row's, for N, C values) channels normalized
// to mean 0 and variance 1, then a per-channel affine (reference.py
// _op_layer_norm):  y = (x - mean) / sqrt(var + eps) * scale[c] + shift[c],
// mean and (biased) var over the C channels of that pixel. It is nn.LayerNorm(C)
// over the last dim of an (N, C) value, and the channel LayerNorm of conv nets
// (ConvNeXt's permute -> LayerNorm(C) -> permute back, timm's LayerNorm2d).
// Moments in double; the output as torch computes it in float:
// (x * rstd + (-rstd * mean)) * scale + shift. In place (each row's moments are
// taken before the row is written).
#include <algorithm>
#include <cmath>

#include "engine/ops/common.h"
#include "runtime/threadpool.h"

namespace onebit::ops {
namespace {

class LayerNormKernel final : public OpKernel {
 public:
  LayerNormKernel(ValueInfo v, double eps, std::vector<float> scale, std::vector<float> shift)
      : v_(v), eps_(eps), scale_(std::move(scale)), shift_(std::move(shift)) {}

  void run(const RunArgs& a) const override {
    const size_t rows = rows_of(a.n, v_), c = static_cast<size_t>(v_.c);
    const auto* xs = static_cast<const float*>(a.in[0]);
    auto* ys = static_cast<float*>(a.out);
    // about 16K floats per task, and never more than 2^20 tasks
    size_t per_task = std::max<size_t>(1, (size_t{1} << 14) / c);
    per_task = std::max(per_task, (rows + (size_t{1} << 20) - 1) >> 20);
    const int tasks = static_cast<int>((rows + per_task - 1) / per_task);
    auto work = [&](int t) {
      const size_t end = std::min(rows, (static_cast<size_t>(t) + 1) * per_task);
      for (size_t r = static_cast<size_t>(t) * per_task; r < end; ++r) row(xs + r * c, ys + r * c, c);
    };
    if (tasks == 1) work(0);
    else parallel_for(tasks, a.nthreads, work);
  }

 private:
  void row(const float* x, float* y, size_t c) const {
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};  // 8 partial sums: a fixed order that vectorizes
    size_t i = 0;
    for (; i + 8 <= c; i += 8)
      for (int k = 0; k < 8; ++k) s[k] += x[i + k];
    for (; i < c; ++i) s[0] += x[i];
    const double mean = ((s[0] + s[1]) + (s[2] + s[3]) + ((s[4] + s[5]) + (s[6] + s[7]))) / c;
    double q[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (i = 0; i + 8 <= c; i += 8)
      for (int k = 0; k < 8; ++k) {
        const double d = x[i + k] - mean;
        q[k] += d * d;
      }
    for (; i < c; ++i) q[0] += (x[i] - mean) * (x[i] - mean);
    const double var = ((q[0] + q[1]) + (q[2] + q[3]) + ((q[4] + q[5]) + (q[6] + q[7]))) / c;
    const double rstd = 1.0 / std::sqrt(var + eps_);
    const float a = static_cast<float>(rstd), b = static_cast<float>(-rstd * mean);
    const float* g = scale_.data();
    const float* h = shift_.data();
    for (i = 0; i < c; ++i) {
      const float t = x[i] * a + b;
      y[i] = t * g[i] + h[i];
    }
  }

  ValueInfo v_;
  double eps_;
  std::vector<float> scale_, shift_;
};

std::unique_ptr<OpKernel> build(BuildCtx& ctx) {
  ctx.require_input(0, DType::kF32, 0);
  const double eps = ctx.attr_real("eps");
  if (!(static_cast<float>(eps) > 0.0f) || !std::isfinite(static_cast<float>(eps)))
    ctx.fail("attribute 'eps' must be a positive float32, is " + std::to_string(eps));
  const int64_t c = ctx.input().c;
  ctx.out = ctx.input();
  return std::make_unique<LayerNormKernel>(ctx.input(), eps, ctx.param_f32("scale", c), ctx.param_f32("shift", c));
}

}  // namespace

extern const OpDef kOpLayerNorm = {
    "layer_norm",
    "Per pixel (per row of an N, C value): (x - mean) / sqrt(var + eps) over the channels, then x * scale + shift.",
    1,
    1,
    {Real("eps", 1e-5, "added to the variance; a positive float32")},
    {{"scale", true, "float [C]"}, {"shift", true, "float [C]"}},
    true,
    build};

}  // namespace onebit::ops
