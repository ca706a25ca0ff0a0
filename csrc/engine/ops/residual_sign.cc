// residual_sign: Tang et al.'s k-bit residual binarization of float
// activations, x -> sum_i a_i sign(r_i), with the scales a_i computed from the
// data at run time (reference.py _op_residual_sign). It is the exact deployment
// of quantizers.residual_sign(scale="channel"), whose per-input-channel scales
// cannot be pulled out of a popcount over channels: a float (binary-weight)
// conv/dense follows it. The per-sample rule runs at binary speed inside
// bconv2d/bdense instead (their residual_bits attribute); both use the
// helpers below (residual.h).
#include "engine/ops/residual.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "engine/ops/common.h"
#include "runtime/threadpool.h"

namespace onebit::ops {
namespace {

inline float scale_at(const float* a, const ResidualShape& s, int64_t n, int64_t ch, int i) {
  return s.scale == ResidualScale::kSample ? a[n * s.bits + i] : a[i * s.c + ch];
}

// r_{i} of one element, from x and the first i scales. The float32 steps are
// the training code's: r - a * (+-1), one rounding each.
inline float residual_at(float x, const float* a, const ResidualShape& s, int64_t n, int64_t ch, int i) {
  float r = x;
  for (int j = 0; j < i; ++j) {
    const float a_j = scale_at(a, s, n, ch, j);
    r = r >= 0.0f ? r - a_j : r + a_j;
  }
  return r;
}

constexpr int kChannelBlock = 16;  // channels per task of the per-channel means
constexpr int64_t kRowBlock = 256;  // pixels per task of the elementwise passes

}  // namespace

void residual_scales(const float* x, const ResidualShape& s, float* a, int nthreads) {
  const int64_t per_sample = s.rows * s.c;
  for (int i = 0; i < s.bits; ++i) {
    if (s.scale == ResidualScale::kSample) {
      // one task per sample, its sum in pixel order
      parallel_for(static_cast<int>(s.samples), nthreads, [&](int n) {
        const float* xs = x + n * per_sample;
        double sum = 0;
        for (int64_t r = 0; r < s.rows; ++r)
          for (int64_t ch = 0; ch < s.c; ++ch)
            sum += std::fabs(residual_at(xs[r * s.c + ch], a, s, n, ch, i));
        a[n * s.bits + i] = static_cast<float>(sum / static_cast<double>(per_sample));
      });
    } else {
      // one task per block of channels, each channel's sum over all pixels of the batch in order
      const int64_t pixels = s.samples * s.rows;
      const int tasks = static_cast<int>((s.c + kChannelBlock - 1) / kChannelBlock);
      parallel_for(tasks, nthreads, [&](int t) {
        const int64_t c0 = int64_t{t} * kChannelBlock, c1 = std::min<int64_t>(s.c, c0 + kChannelBlock);
        double sum[kChannelBlock] = {};
        for (int64_t p = 0; p < pixels; ++p)
          for (int64_t ch = c0; ch < c1; ++ch)
            sum[ch - c0] += std::fabs(residual_at(x[p * s.c + ch], a, s, 0, ch, i));
        for (int64_t ch = c0; ch < c1; ++ch)
          a[i * s.c + ch] = static_cast<float>(sum[ch - c0] / static_cast<double>(pixels));
      });
    }
  }
}

void residual_reconstruct(const float* x, const ResidualShape& s, const float* a, float* y,
                          int nthreads) {
  const int64_t pixels = s.samples * s.rows;
  const int tasks = static_cast<int>((pixels + kRowBlock - 1) / kRowBlock);
  parallel_for(tasks, nthreads, [&](int t) {
    const int64_t p0 = int64_t{t} * kRowBlock, p1 = std::min(pixels, p0 + kRowBlock);
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t n = p / s.rows;
      for (int64_t ch = 0; ch < s.c; ++ch) {
        float r = x[p * s.c + ch], out = 0.0f;
        for (int i = 0; i < s.bits; ++i) {  // out = out + a_i s_i, r = r - a_i s_i (training's order)
          const float a_i = scale_at(a, s, n, ch, i);
          const bool pos = r >= 0.0f;
          out = pos ? out + a_i : out - a_i;
          r = pos ? r - a_i : r + a_i;
        }
        y[p * s.c + ch] = out;
      }
    }
  });
}

void residual_planes(const float* x, const ResidualShape& s, const float* a, uint64_t* planes,
                     int nthreads) {
  const int64_t cw = words_for(static_cast<int>(s.c));
  const int64_t pixels = s.samples * s.rows;
  const int tasks = static_cast<int>((pixels + kRowBlock - 1) / kRowBlock);
  parallel_for(tasks, nthreads, [&](int t) {
    const int64_t p0 = int64_t{t} * kRowBlock, p1 = std::min(pixels, p0 + kRowBlock);
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t n = p / s.rows, row = p % s.rows;
      uint64_t* out0 = planes + ((n * s.bits) * s.rows + row) * cw;  // plane 0 of this pixel
      const int64_t plane_stride = s.rows * cw;
      for (int i = 0; i < s.bits; ++i) std::fill(out0 + i * plane_stride, out0 + i * plane_stride + cw, 0);
      for (int64_t ch = 0; ch < s.c; ++ch) {
        float r = x[p * s.c + ch];
        for (int i = 0; i < s.bits; ++i) {
          const float a_i = scale_at(a, s, n, ch, i);
          const bool pos = r >= 0.0f;  // NaN -> -1, as torch.where(x >= 0, 1, -1)
          if (!pos) out0[i * plane_stride + ch / 64] |= uint64_t{1} << (ch % 64);
          r = pos ? r - a_i : r + a_i;
        }
      }
    }
  });
}

namespace {

ResidualScale scale_of(const std::string& name) {
  return name == "sample" ? ResidualScale::kSample : ResidualScale::kChannel;
}

class ResidualSignKernel final : public OpKernel {
 public:
  ResidualSignKernel(ValueInfo in, int bits, ResidualScale scale) : in_(in), bits_(bits), scale_(scale) {}
  void run(const RunArgs& a) const override {
    ResidualShape s;
    s.samples = a.n, s.rows = in_.h * in_.w, s.c = in_.c, s.bits = bits_, s.scale = scale_;
    std::vector<float> scales(static_cast<size_t>(s.scale_count()));
    const auto* x = static_cast<const float*>(a.in[0]);
    residual_scales(x, s, scales.data(), a.nthreads);
    residual_reconstruct(x, s, scales.data(), static_cast<float*>(a.out), a.nthreads);
  }
  int64_t transient_bytes(int64_t n, int) const override {
    return (scale_ == ResidualScale::kSample ? n * bits_ : bits_ * in_.c) * 4;
  }

 private:
  ValueInfo in_;
  int bits_;
  ResidualScale scale_;
};

std::unique_ptr<OpKernel> build(BuildCtx& ctx) {
  ctx.require_input(0, DType::kF32, 0);
  ctx.out = ctx.input();
  return std::make_unique<ResidualSignKernel>(ctx.input(), static_cast<int>(ctx.attr_int("bits")),
                                              scale_of(ctx.attr_enum("scale")));
}

}  // namespace

extern const OpDef kOpResidualSign = {
    "residual_sign",
    "Residual binarization (Tang et al.): x_hat = sum_i a_i sign(r_i), r_1 = x, r_{i+1} = r_i - a_i "
    "sign(r_i), a_i = mean |r_i| per channel over the whole batch (channel) or per sample (sample).",
    1, 1,
    {Int("bits", 1, 8, "number of sign planes"),
     Enum("scale", "channel|sample", "channel",
          "channel: a_i per channel over all samples and pixels of the batch; sample: one a_i per sample")},
    {}, true, build};

}  // namespace onebit::ops
