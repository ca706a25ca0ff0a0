// upsample: nearest or bilinear resize of an NHWC value to size (H', W'), as
// nn.Upsample / F.interpolate compute it on the CPU (reference.py _op_upsample).
// scale_h / scale_w are the source pixels per output pixel in float32, as torch
// derives them: 1 / scale_factor when the model gave one, else in / out, and
// (in - 1) / (out - 1) for bilinear with align_corners. Per output index d:
//   nearest:  s = min(floor(d * scale), in - 1)       (d itself if out == in,
//                                                      d / 2 if out == 2 in)
//   nearest_exact ('nearest-exact'): s = min(floor(float((d + 0.5) * scale)), in - 1)
//             ((d + 0.5) * scale in double, rounded to float, as torch's floorf call)
//   bilinear: r = d * scale (align_corners), else max((d + 0.5) * scale - 0.5, 0);
//             i0 = min(floor(r), in - 1), i1 = min(i0 + 1, in - 1),
//             l1 = clamp(r - i0, 0, 1), l0 = 1 - l1 (i0 = i1 = d, l1 = 0 if out == in);
//             y = lh0 (lw0 x[i0][j0] + lw1 x[i0][j1]) + lh1 (lw0 x[i1][j0] + lw1 x[i1][j1]).
// The index and weight tables are built at load; the kernels copy (nearest) or
// blend (bilinear) whole pixels of C channels, a loop that vectorizes.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "engine/ops/common.h"
#include "runtime/threadpool.h"

namespace onebit::ops {
namespace {

struct Axis {
  std::vector<int32_t> i0, i1;
  std::vector<float> l0, l1;
};

Axis nearest_axis(int64_t in, int64_t out, float scale) {
  Axis a;
  a.i0.resize(static_cast<size_t>(out));
  for (int64_t d = 0; d < out; ++d) {
    int64_t s;
    if (out == in) s = d;
    else if (out == 2 * in) s = d >> 1;
    else s = std::min(static_cast<int64_t>(std::floor(static_cast<float>(d) * scale)), in - 1);
    a.i0[static_cast<size_t>(d)] = static_cast<int32_t>(s);
  }
  return a;
}

Axis nearest_exact_axis(int64_t in, int64_t out, float scale) {
  Axis a;
  a.i0.resize(static_cast<size_t>(out));
  for (int64_t d = 0; d < out; ++d) {
    const float r = static_cast<float>((static_cast<double>(d) + 0.5) * static_cast<double>(scale));
    a.i0[static_cast<size_t>(d)] = static_cast<int32_t>(std::min(static_cast<int64_t>(std::floor(r)), in - 1));
  }
  return a;
}

Axis linear_axis(int64_t in, int64_t out, float scale, bool align_corners) {
  Axis a;
  const size_t n = static_cast<size_t>(out);
  a.i0.resize(n), a.i1.resize(n), a.l0.resize(n), a.l1.resize(n);
  for (int64_t d = 0; d < out; ++d) {
    const size_t k = static_cast<size_t>(d);
    if (out == in) {
      a.i0[k] = a.i1[k] = static_cast<int32_t>(d), a.l0[k] = 1.0f, a.l1[k] = 0.0f;
      continue;
    }
    float r = align_corners ? scale * static_cast<float>(d) : scale * (static_cast<float>(d) + 0.5f) - 0.5f;
    if (!align_corners && r < 0.0f) r = 0.0f;
    const int64_t i0 = std::min(static_cast<int64_t>(std::floor(r)), in - 1);
    const float l1 = std::min(std::max(r - static_cast<float>(i0), 0.0f), 1.0f);
    a.i0[k] = static_cast<int32_t>(i0);
    a.i1[k] = static_cast<int32_t>(i0 < in - 1 ? i0 + 1 : i0);
    a.l1[k] = l1, a.l0[k] = 1.0f - l1;
  }
  return a;
}

class UpsampleKernel final : public OpKernel {
 public:
  UpsampleKernel(ValueInfo in, ValueInfo out, bool bilinear, Axis h, Axis w)
      : in_(in), out_(out), bilinear_(bilinear), h_(std::move(h)), w_(std::move(w)) {}

  void run(const RunArgs& a) const override {
    const auto* x = static_cast<const float*>(a.in[0]);
    auto* y = static_cast<float*>(a.out);
    const int64_t rows = a.n * out_.h, row_elems = out_.w * out_.c;
    // about 16K output floats per task, and never more than 2^20 tasks
    int64_t per_task = std::max<int64_t>(1, (int64_t{1} << 14) / row_elems);
    per_task = std::max(per_task, (rows + (int64_t{1} << 20) - 1) >> 20);
    const int tasks = static_cast<int>((rows + per_task - 1) / per_task);
    auto work = [&](int t) {
      const int64_t end = std::min(rows, (t + 1) * per_task);
      for (int64_t r = t * per_task; r < end; ++r) row(x, y, r);
    };
    if (tasks == 1) work(0);
    else parallel_for(tasks, a.nthreads, work);
  }

 private:
  void row(const float* x, float* y, int64_t r) const {
    const int64_t n = r / out_.h, oy = r % out_.h, c = in_.c;
    const size_t cs = static_cast<size_t>(c);
    const float* src = x + static_cast<size_t>(n * in_.h * in_.w * c);
    float* dst = y + static_cast<size_t>(r * out_.w * c);
    if (!bilinear_) {
      const float* line = src + static_cast<size_t>(h_.i0[oy] * in_.w * c);
      for (int64_t ox = 0; ox < out_.w; ++ox)
        std::memcpy(dst + ox * c, line + static_cast<size_t>(w_.i0[ox]) * cs, cs * sizeof(float));
      return;
    }
    const float* top = src + static_cast<size_t>(h_.i0[oy] * in_.w * c);
    const float* bot = src + static_cast<size_t>(h_.i1[oy] * in_.w * c);
    const float lh0 = h_.l0[oy], lh1 = h_.l1[oy];
    for (int64_t ox = 0; ox < out_.w; ++ox) {
      const float lw0 = w_.l0[ox], lw1 = w_.l1[ox];
      const float* a0 = top + static_cast<size_t>(w_.i0[ox]) * cs;
      const float* a1 = top + static_cast<size_t>(w_.i1[ox]) * cs;
      const float* b0 = bot + static_cast<size_t>(w_.i0[ox]) * cs;
      const float* b1 = bot + static_cast<size_t>(w_.i1[ox]) * cs;
      float* o = dst + ox * c;
      for (size_t i = 0; i < cs; ++i) {
        const float t = lw0 * a0[i] + lw1 * a1[i];
        const float b = lw0 * b0[i] + lw1 * b1[i];
        o[i] = lh0 * t + lh1 * b;
      }
    }
  }

  ValueInfo in_, out_;
  bool bilinear_;
  Axis h_, w_;
};

float scale_attr(const BuildCtx& ctx, const char* name) {
  const double v = ctx.attr_real(name);
  const float f = static_cast<float>(v);
  if (!(f > 0.0f) || !(f <= static_cast<float>(kMaxSpatial)))
    ctx.fail("attribute '" + std::string(name) + "' must be in (0, " + std::to_string(kMaxSpatial) +
             "] as a float32, is " + std::to_string(v));
  return f;
}

std::unique_ptr<OpKernel> build(BuildCtx& ctx) {
  ctx.require_input(0, DType::kF32, 4);
  const ValueInfo& in = ctx.input();
  const std::vector<int64_t> size = ctx.attr_ints("size");
  const std::string mode = ctx.attr_enum("mode");
  const bool bilinear = mode == "bilinear", align = ctx.attr_bool("align_corners");
  if (align && !bilinear) ctx.fail("attribute 'align_corners' applies to mode 'bilinear' only");
  const float sh = scale_attr(ctx, "scale_h"), sw = scale_attr(ctx, "scale_w");
  ctx.out = ValueInfo{DType::kF32, 4, size.at(0), size.at(1), in.c};
  ctx.check_output();  // before the tables are sized by the output
  auto axis = [&](int64_t n_in, int64_t n_out, float scale) {
    if (bilinear) return linear_axis(n_in, n_out, scale, align);
    return mode == "nearest_exact" ? nearest_exact_axis(n_in, n_out, scale) : nearest_axis(n_in, n_out, scale);
  };
  Axis h = axis(in.h, size[0], sh), w = axis(in.w, size[1], sw);
  return std::make_unique<UpsampleKernel>(in, ctx.out, bilinear, std::move(h), std::move(w));
}

}  // namespace

extern const OpDef kOpUpsample = {
    "upsample",
    "Nearest (torch's 'nearest' or 'nearest-exact') or bilinear resize to size (H', W') with torch's "
    "source-index rule.",
    1,
    1,
    {Enum("mode", "nearest|nearest_exact|bilinear", nullptr, "interpolation"),
     Ints("size", 2, 1, kMaxSpatial, "output height and width"),
     Real("scale_h", "source rows per output row (float32, as torch computes it)"),
     Real("scale_w", "source columns per output column"),
     Bool("align_corners", false, "bilinear: corners of input and output align")},
    {},
    false,
    build};

}  // namespace onebit::ops
