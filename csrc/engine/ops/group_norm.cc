// group_norm: nn.GroupNorm (reference.py _op_group_norm). The C channels are
// split into `groups` runs of C / groups; each sample's group is normalized over
// its channels and all pixels, then a per-channel affine:
//   y = (x - mean_g) / sqrt(var_g + eps) * scale[c] + shift[c].
// GroupNorm(1, C) normalizes a whole sample; GroupNorm(C, C) is instance norm.
// Moments in double (per-channel sums over the pixels, which vectorize over the
// channels, then summed per group); the output as torch computes it in float:
// x * a[c] + b[c] with a = rstd * scale, b = shift - a * mean. In place (a
// sample's moments are taken before it is written).
#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/ops/common.h"
#include "runtime/threadpool.h"

namespace onebit::ops {
namespace {

class GroupNormKernel final : public OpKernel {
 public:
  GroupNormKernel(ValueInfo v, int64_t groups, double eps, std::vector<float> scale, std::vector<float> shift)
      : v_(v), groups_(groups), eps_(eps), scale_(std::move(scale)), shift_(std::move(shift)) {}

  void run(const RunArgs& a) const override {
    const auto* xs = static_cast<const float*>(a.in[0]);
    auto* ys = static_cast<float*>(a.out);
    const size_t per_sample = static_cast<size_t>(v_.h * v_.w * v_.c);
    const int64_t per_task = (a.n + 4095) / 4096;  // at most 4096 tasks of whole samples
    const int tasks = static_cast<int>((a.n + per_task - 1) / per_task);
    auto work = [&](int t) {
      for (int64_t s = t * per_task; s < std::min(a.n, (t + 1) * per_task); ++s)
        sample(xs + s * per_sample, ys + s * per_sample);
    };
    if (tasks == 1) work(0);
    else parallel_for(tasks, a.nthreads, work);
  }

  int64_t transient_bytes(int64_t n, int nthreads) const override {
    // per thread: acc, mean_c (double), mul, add (float) per channel, gmean per group
    return std::min<int64_t>(n, std::max(nthreads, 1)) * (v_.c * 24 + groups_ * 8);
  }

 private:
  void sample(const float* x, float* y) const {
    const size_t pix = static_cast<size_t>(v_.h * v_.w), c = static_cast<size_t>(v_.c);
    const size_t cg = c / static_cast<size_t>(groups_);
    const double count = static_cast<double>(pix) * static_cast<double>(cg);
    std::vector<double> acc(c), gmean(groups_), mean_c(c);
    // pass 1: per-channel sums -> group means
    std::fill(acc.begin(), acc.end(), 0.0);
    for (size_t p = 0; p < pix; ++p)
      for (size_t i = 0; i < c; ++i) acc[i] += x[p * c + i];
    for (int64_t g = 0; g < groups_; ++g) {
      double s = 0;
      for (size_t i = 0; i < cg; ++i) s += acc[g * cg + i];
      gmean[g] = s / count;
    }
    // pass 2: per-channel sums of squared deviations from the group mean
    for (size_t i = 0; i < c; ++i) mean_c[i] = gmean[i / cg];
    std::fill(acc.begin(), acc.end(), 0.0);
    for (size_t p = 0; p < pix; ++p)
      for (size_t i = 0; i < c; ++i) {
        const double d = x[p * c + i] - mean_c[i];
        acc[i] += d * d;
      }
    std::vector<float> mul(c), add(c);
    for (int64_t g = 0; g < groups_; ++g) {
      double q = 0;
      for (size_t i = 0; i < cg; ++i) q += acc[g * cg + i];
      const double rstd = 1.0 / std::sqrt(q / count + eps_);
      for (size_t i = g * cg; i < (g + 1) * cg; ++i) {
        const float ai = static_cast<float>(rstd) * scale_[i];
        mul[i] = ai;
        add[i] = -ai * static_cast<float>(gmean[g]) + shift_[i];
      }
    }
    // pass 3: y = x * a[c] + b[c]
    for (size_t p = 0; p < pix; ++p)
      for (size_t i = 0; i < c; ++i) {
        const float t = x[p * c + i] * mul[i];
        y[p * c + i] = t + add[i];
      }
  }

  ValueInfo v_;
  int64_t groups_;
  double eps_;
  std::vector<float> scale_, shift_;
};

std::unique_ptr<OpKernel> build(BuildCtx& ctx) {
  ctx.require_input(0, DType::kF32, 0);
  const int64_t c = ctx.input().c, groups = ctx.attr_int("groups");
  if (c % groups != 0)
    ctx.fail("attribute 'groups' (" + std::to_string(groups) + ") must divide the " + std::to_string(c) +
             " channels");
  const double eps = ctx.attr_real("eps");
  if (!(static_cast<float>(eps) > 0.0f) || !std::isfinite(static_cast<float>(eps)))
    ctx.fail("attribute 'eps' must be a positive float32, is " + std::to_string(eps));
  ctx.out = ctx.input();
  return std::make_unique<GroupNormKernel>(ctx.input(), groups, eps, ctx.param_f32("scale", c),
                                           ctx.param_f32("shift", c));
}

}  // namespace

extern const OpDef kOpGroupNorm = {
    "group_norm",
    "Per sample and group of C / groups channels: (x - mean) / sqrt(var + eps) over the group's channels and "
    "pixels, then x * scale + shift per channel.",
    1,
    1,
    {Int("groups", 1, kMaxChannels, "number of channel groups; divides C"),
     Real("eps", 1e-5, "added to the variance; a positive float32")},
    {{"scale", true, "float [C]"}, {"shift", true, "float [C]"}},
    true,
    build};

}  // namespace onebit::ops
