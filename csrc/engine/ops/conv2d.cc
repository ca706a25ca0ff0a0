// conv2d: float convolution (stems, shortcuts, BlurPool), NHWC, zero padding,
// any groups; the multiplier is folded into the weights at load
// (reference.py _op_conv2d).
#include <algorithm>
#include <cstring>

#include "engine/ops/common.h"
#include "ops/float_ops.h"
#include "ops/post_ops.h"

namespace onebit::ops {
namespace {

class Conv2dKernel final : public OpKernel {
 public:
  Conv2dKernel(std::vector<float> w, std::vector<float> bias, PoolParams p, int oc, int dh, int dw,
               int groups, FusedEpilogue e)
      : w_(std::move(w)), bias_(std::move(bias)), p_(p), oc_(oc), dh_(dh), dw_(dw), groups_(groups), e_(e) {
    if (groups_ != 1 && groups_ == p_.c && groups_ == oc_) {  // depthwise: weights as [kh][kw][C]
      w_hwc_.resize(w_.size());
      const int taps = p_.kh * p_.kw;
      for (int o = 0; o < oc_; ++o)
        for (int t = 0; t < taps; ++t) w_hwc_[static_cast<size_t>(t) * oc_ + o] = w_[o * taps + t];
    }
  }
  void run(const RunArgs& a) const override {
    PoolParams p = p_;
    p.n = static_cast<int>(a.n);
    const auto* x = static_cast<const float*>(a.in[0]);
    auto* y = static_cast<float*>(a.out);
    const float* residual = e_.residual ? static_cast<const float*>(a.in[1]) : nullptr;
    if (groups_ == 1) {  // the add and relu fused into each chunk of rows
      conv2d_f32(x, w_.data(), bias_.data(), p, oc_, dh_, dw_, Act::kNone, nullptr, y, a.nthreads,
                 residual, e_.act);
      return;
    }
    if (!w_hwc_.empty()) {
      depthwise_conv2d_f32(x, w_hwc_.data(), bias_.data(), p, dh_, dw_, Act::kNone, nullptr, y,
                           a.nthreads);
    } else {  // one GEMM per group over a contiguous copy of its channels
      const int cg = p_.c / groups_, og = oc_ / groups_;
      const size_t pix_in = static_cast<size_t>(p.n) * p.h * p.w, pix_out = static_cast<size_t>(p.n) * p.oh * p.ow;
      std::vector<float> xg(pix_in * cg), yg(pix_out * og);
      PoolParams pg = p;
      pg.c = cg;
      const size_t wg = static_cast<size_t>(og) * p.kh * p.kw * cg;
      for (int g = 0; g < groups_; ++g) {
        for (size_t i = 0; i < pix_in; ++i)
          std::memcpy(&xg[i * cg], x + i * p.c + static_cast<size_t>(g) * cg, cg * sizeof(float));
        conv2d_f32(xg.data(), w_.data() + g * wg, bias_.data() + g * og, pg, og, dh_, dw_, Act::kNone,
                   nullptr, yg.data(), a.nthreads);
        for (size_t i = 0; i < pix_out; ++i)
          std::memcpy(y + i * oc_ + static_cast<size_t>(g) * og, &yg[i * og], og * sizeof(float));
      }
    }
    add_residual_act(y, residual, static_cast<size_t>(oc_),
                     static_cast<size_t>(p.n) * p.oh * p.ow, 0, oc_, e_.act);
  }
  int64_t transient_bytes(int64_t n, int nthreads) const override {
    if (!w_hwc_.empty()) return 0;  // depthwise: a direct loop
    // conv2d_f32 (per group): each thread running a task holds an im2col chunk of 96 rows
    // (kRowChunk in ops/float_ops.cc) x K floats, and each call packs the weights for the
    // GEMM, K x N rounded up to 32 columns. (This counted 2 x 64 rows and no packing: with
    // 2 threads a 64 KB file with a 64 x 64 x 120 kernel held 432 MiB under a 256 MiB cap.)
    const int64_t cg = p_.c / groups_, og = oc_ / groups_, k = int64_t{p_.kh} * p_.kw * cg;
    const int64_t chunks = (n * p_.oh * p_.ow + 95) / 96;
    int64_t b = std::min<int64_t>(chunks, std::max(nthreads, 1)) * 96 * k * 4 + k * ((og + 31) / 32 * 32) * 4;
    if (groups_ != 1) b += n * (int64_t{p_.h} * p_.w * cg + int64_t{p_.oh} * p_.ow * og) * 4;
    return b;
  }

 private:
  std::vector<float> w_, w_hwc_, bias_;
  PoolParams p_;
  int oc_, dh_, dw_, groups_;
  FusedEpilogue e_;
};

std::unique_ptr<OpKernel> build(BuildCtx& ctx) {
  ctx.require_input(0, DType::kF32, 4);
  const ValueInfo& in = ctx.input();
  const Window g = read_window(ctx, in, PadRule::kConv);
  const int64_t groups = ctx.attr_int("groups");
  const TensorRef& t = ctx.param("weight");
  const std::vector<int64_t> ws = t.logical_shape();
  if (ws.size() != 4) ctx.fail("weight must be 4-D OHWI");
  const int64_t oc = ws[0];
  if (oc < 1 || oc > kMaxChannels) ctx.fail("weight has " + std::to_string(oc) + " filters");
  if (ws[1] != g.kh || ws[2] != g.kw) ctx.fail("weight kernel does not match the kernel attribute");
  if (in.c % groups || oc % groups) ctx.fail("groups must divide the input and output channels");
  if (ws[3] * groups != in.c)
    ctx.fail("weight expects " + std::to_string(ws[3]) + " input channels per group x " +
             std::to_string(groups) + " groups, the input has " + std::to_string(in.c));
  std::vector<float> w = ctx.param_f32("weight", t.logical_count());
  const std::vector<float> mult = ctx.param_f32("multiplier", oc);
  const size_t per = static_cast<size_t>(t.logical_count() / oc);
  for (int64_t o = 0; o < oc; ++o)  // w * multiplier in float32, as the old engine did
    if (mult[o] != 1.0f)
      for (size_t i = 0; i < per; ++i) w[o * per + i] *= mult[o];
  std::vector<float> bias = ctx.param_f32("bias", oc);
  const PoolParams p = window_params(in, g);
  ctx.out = ValueInfo{DType::kF32, 4, g.oh, g.ow, oc};
  const FusedEpilogue e = read_fused_epilogue(ctx, ctx.out);
  return std::make_unique<Conv2dKernel>(std::move(w), std::move(bias), p, static_cast<int>(oc),
                                        static_cast<int>(g.dh), static_cast<int>(g.dw),
                                        static_cast<int>(groups), e);
}

std::vector<AttrSpec> attrs() {
  std::vector<AttrSpec> a = window_attrs(true);
  a.push_back(Int("groups", 1, kMaxChannels, 1, "groups (divides in and out channels)"));
  a.push_back(Bool("binary_weight", false, "weights are +-1 (stored packed), the scale is the multiplier"));
  a.push_back(activation_attr());
  return a;
}

}  // namespace

extern const OpDef kOpConv2d = {
    "conv2d",
    "Float convolution, zero padding, any groups: y = conv(x, weight * multiplier) + bias; an "
    "optional second input is added, then the activation (the fused residual add).",
    1, 2, attrs(),
    {{"weight", true, "float OHWI [O, kh, kw, C / groups], or packed_sign"},
     {"multiplier", true, "float [O]"},
     {"bias", true, "float [O]"}},
    false, build};

}  // namespace onebit::ops
