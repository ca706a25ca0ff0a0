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
#include <cstring>
#include <string>
#include <vector>

#include "engine/ops/common.h"
#include "runtime/threadpool.h"

namespace onebit::ops {
namespace {

constexpr int64_t kChunk = 4096;  // elements per task of the elementwise passes
constexpr int kChannelBlock = 64;  // channels per task of the per-channel means

// sum |v[0..m)| in double: eight lanes (v[j], v[j + 8], ... each summed in order), then the
// lanes and the tail in order. The same numbers whatever the ISA or thread count.
double abs_sum(const float* v, int64_t m) {
  double lane[8] = {};
  int64_t j = 0;
  for (; j + 8 <= m; j += 8)
    for (int l = 0; l < 8; ++l) lane[l] += static_cast<double>(std::fabs(v[j + l]));
  double sum = 0;
  for (int l = 0; l < 8; ++l) sum += lane[l];
  for (; j < m; ++j) sum += static_cast<double>(std::fabs(v[j]));
  return sum;
}

// a_i from the current residual r: per sample, or per channel over the whole batch.
void scale_pass(const float* r, const ResidualShape& s, int i, float* a, int nthreads) {
  const int64_t per_sample = s.rows * s.c;
  if (s.scale == ResidualScale::kSample) {
    parallel_for(static_cast<int>(s.samples), nthreads, [&](int n) {
      const double sum = abs_sum(r + n * per_sample, per_sample);
      a[n * s.bits + i] = static_cast<float>(sum / static_cast<double>(per_sample));
    });
    return;
  }
  const int64_t pixels = s.samples * s.rows;
  const int tasks = static_cast<int>((s.c + kChannelBlock - 1) / kChannelBlock);
  parallel_for(tasks, nthreads, [&](int t) {
    const int64_t c0 = int64_t{t} * kChannelBlock, nc = std::min<int64_t>(s.c - c0, kChannelBlock);
    double sum[kChannelBlock] = {};  // each channel's sum over all pixels of the batch, in order
    for (int64_t p = 0; p < pixels; ++p) {
      const float* row = r + p * s.c + c0;
      for (int64_t k = 0; k < nc; ++k) sum[k] += static_cast<double>(std::fabs(row[k]));
    }
    for (int64_t k = 0; k < nc; ++k)
      a[i * s.c + c0 + k] = static_cast<float>(sum[k] / static_cast<double>(pixels));
  });
}

// One run of k elements: r -= a s, y += a s with s = sign(r) (+1 at 0; NaN -> -1, as
// torch.where(x >= 0, 1, -1)), in training's float32 steps: a * (+-1) is exact, each sum
// rounds once. Branch-free, so the compiler vectorizes it (random signs defeat a branch).
// a_stride 0: one scale for the run (the sample rule), 1: one per channel.
inline void update_run(float* __restrict r, float* __restrict y, const float* __restrict a, int a_stride,
                       int64_t k) {
  if (y) {
    for (int64_t j = 0; j < k; ++j) {
      const float step = a[j * a_stride] * (r[j] >= 0.0f ? 1.0f : -1.0f);
      y[j] += step;
      r[j] -= step;
    }
  } else {
    for (int64_t j = 0; j < k; ++j) r[j] -= a[j * a_stride] * (r[j] >= 0.0f ? 1.0f : -1.0f);
  }
}

// r_{i+1} = r_i - a_i sign(r_i), and y += a_i sign(r_i) when y is given.
void update_pass(float* r, float* y, const ResidualShape& s, int i, const float* a, int nthreads) {
  const int64_t total = s.samples * s.rows * s.c, per_sample = s.rows * s.c;
  parallel_for(static_cast<int>((total + kChunk - 1) / kChunk), nthreads, [&](int t) {
    const int64_t e0 = int64_t{t} * kChunk, e1 = std::min(total, e0 + kChunk);
    if (s.scale == ResidualScale::kSample) {  // runs within one sample
      for (int64_t e = e0; e < e1;) {
        const int64_t n = e / per_sample, run = std::min(e1, (n + 1) * per_sample) - e;
        update_run(r + e, y ? y + e : nullptr, a + n * s.bits + i, 0, run);
        e += run;
      }
    } else {  // runs within one pixel row
      for (int64_t e = e0; e < e1;) {
        const int64_t ch0 = e % s.c, run = std::min(e1 - e, s.c - ch0);
        update_run(r + e, y ? y + e : nullptr, a + i * s.c + ch0, 1, run);
        e += run;
      }
    }
  });
}

}  // namespace

void residual_planes(const float* x, const ResidualShape& s, float* a, uint64_t* planes, float* r,
                     int nthreads) {
  const int64_t per_sample = s.rows * s.c, cw = words_for(static_cast<int>(s.c));
  std::memcpy(r, x, static_cast<size_t>(s.samples * per_sample) * sizeof(float));
  for (int i = 0; i < s.bits; ++i) {
    // plane i = sign(r_i): bit set where r < 0 (0 and -0.0 are +1), as the sign op packs
    for (int64_t n = 0; n < s.samples; ++n)
      pack_rows_f32(r + n * per_sample, static_cast<size_t>(s.rows), static_cast<int>(s.c), nullptr,
                    planes + (n * s.bits + i) * s.rows * cw, nthreads);
    scale_pass(r, s, i, a, nthreads);
    if (i + 1 < s.bits) update_pass(r, nullptr, s, i, a, nthreads);
  }
}

void residual_floats(const float* x, const ResidualShape& s, float* a, float* y, float* r, int nthreads) {
  const size_t total = static_cast<size_t>(s.samples * s.rows * s.c);
  std::memcpy(r, x, total * sizeof(float));
  std::fill(y, y + total, 0.0f);  // y may be x: it is read only through r from here on
  for (int i = 0; i < s.bits; ++i) {
    scale_pass(r, s, i, a, nthreads);
    update_pass(r, y, s, i, a, nthreads);
  }
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
    std::vector<float> r(static_cast<size_t>(a.n * in_.sample_elems()));
    residual_floats(static_cast<const float*>(a.in[0]), s, scales.data(), static_cast<float*>(a.out),
                    r.data(), a.nthreads);
  }
  int64_t transient_bytes(int64_t n, int) const override {
    return (scale_ == ResidualScale::kSample ? n * bits_ : bits_ * in_.c) * 4 + n * in_.sample_bytes();
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
