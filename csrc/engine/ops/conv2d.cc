// conv2d: float convolution (stems, shortcuts, BlurPool), NHWC, zero padding,
// any groups; the multiplier is folded into the weights at load
// (reference.py _op_conv2d). Under the load option float_precision = bf16 /
// bf16_emulated the folded weights are rounded to bf16 and packed once here,
// one panel set per group; +-1 weights (binary_weight) are packed unfolded,
// exact in bf16, and their multiplier scales the fp32 sums instead; their
// input enters as two bf16 parts (Bf16Weights::split), so that such a layer
// (BinaryNet's first) loses almost nothing to bf16. int8 /
// int8_emulated quantize them per output channel here (+-1 weights: exactly,
// with the multiplier as their scale); a layer deeper than kInt8MaxK stays fp32.
// Depthwise convolutions stay fp32.
#include <algorithm>
#include <cstring>

#include "engine/ops/common.h"
#include "ops/float_ops.h"
#include "ops/post_ops.h"

namespace onebit::ops {
namespace {

class Conv2dKernel final : public OpKernel {
 public:
  // scale: empty, or (bf16 / int8 with +-1 weights) the multiplier not folded into w.
  Conv2dKernel(std::vector<float> w, std::vector<float> scale, std::vector<float> bias, PoolParams p, int oc,
               int dh, int dw, int groups, FusedEpilogue e, FloatPrecision precision)
      : w_(std::move(w)), scale_(std::move(scale)), bias_(std::move(bias)), p_(p), oc_(oc), dh_(dh), dw_(dw),
        groups_(groups), e_(e) {
    if (groups_ != 1 && groups_ == p_.c) {  // depthwise (x oc / C filters per channel): weights as [kh][kw][oc]
      w_hwc_.resize(w_.size());
      const int taps = p_.kh * p_.kw;
      for (int o = 0; o < oc_; ++o)
        for (int t = 0; t < taps; ++t) w_hwc_[static_cast<size_t>(t) * oc_ + o] = w_[o * taps + t];
    } else if (precision != FloatPrecision::kFp32) {
      emulated_ = precision == FloatPrecision::kBf16Emulated || precision == FloatPrecision::kInt8Emulated;
      const bool int8 = precision == FloatPrecision::kInt8 || precision == FloatPrecision::kInt8Emulated;
      const int og = oc_ / groups_, k = p_.kh * p_.kw * (p_.c / groups_);
      // int8, groups = 1: kernel rows read in place where int8_conv_run allows
      const int run = int8 && groups_ == 1 ? int8_conv_run(p_, dw_) : 0;
      for (int g = 0; g < groups_; ++g) {
        const float* wg = w_.data() + static_cast<size_t>(g) * og * k;
        if (int8)
          w_i8_.push_back(pack_weights_int8(og, k, wg, k, scale_.empty() ? nullptr : scale_.data() + g * og, run));
        else
          w_bf16_.push_back(pack_weights_bf16(og, k, wg, k, !scale_.empty()));  // +-1: split input
      }
      if (int8) scale_.clear();  // in the int8 weights' scales
      w_ = std::vector<float>();  // the packed panels replace the fp32 weights
    } else {
      // fp32: packed once here for the active ISA's GEMM kernel (the raw weights stay,
      // for a call under another ISA), unless the panels' zero columns would more than
      // double them (a group of few filters: packed per call, as before).
      const int og = oc_ / groups_, k = p_.kh * p_.kw * (p_.c / groups_);
      if (packed_f32_bytes(og, k) <= 2 * int64_t{og} * k * 4)
        for (int g = 0; g < groups_; ++g)
          w_f32_.push_back(pack_weights_f32(og, k, w_.data() + static_cast<size_t>(g) * og * k, k));
    }
  }
  bool bf16() const { return !w_bf16_.empty(); }
  bool int8() const { return !w_i8_.empty(); }
  // One group's convolution (groups = 1: the whole layer, with the fused add and relu
  // applied to each chunk of rows as it is finished).
  // pool: the fused max-pool of the output (groups = 1), or null.
  void conv_group(const float* x, int g, const PoolParams& p, float* y, int nthreads,
                  const float* residual = nullptr, Act act = Act::kNone, long ldo = 0,
                  const ConvMaxpool* pool = nullptr) const {
    const int og = oc_ / groups_;
    const float* b = bias_.data() + static_cast<size_t>(g) * og;
    if (bf16()) {
      const float* sc = scale_.empty() ? nullptr : scale_.data() + static_cast<size_t>(g) * og;
      conv2d_bf16(x, w_bf16_[g], sc, b, p, dh_, dw_, y, emulated_, nthreads, residual, act, ldo);
      if (pool) maxpool_f32(y, pool->p, pool->out, nthreads, pool->ldo);
    } else if (int8()) {
      conv2d_int8(x, w_i8_[g], b, p, dh_, dw_, y, emulated_, nthreads, residual, act, ldo, pool);
    } else {
      const size_t wg = static_cast<size_t>(og) * p.kh * p.kw * p.c;
      conv2d_f32(x, w_.data() + g * wg, b, p, og, dh_, dw_, Act::kNone, nullptr, y, nthreads, residual, act,
                 ldo, w_f32_.empty() ? nullptr : &w_f32_[g], pool);
    }
  }
  // groups = 1 without a residual can write into a slice of a concat.
  bool strided_output() const override { return groups_ == 1 && !e_.residual; }
  // A max-pool of the output (the stems' 3x3/2): fp32 and int8 pool each row of it from
  // the conv rows still in cache (conv2d_f32's and conv2d_int8's pool); bf16 pools after
  // the conv.
  bool fuse_maxpool(const PoolParams& pool) override {
    if (groups_ != 1 || e_.residual || !w_hwc_.empty() || pool.kh > kMaxFusedPoolRows) return false;
    pool_ = pool;
    fused_pool_ = true;
    return true;
  }
  void run(const RunArgs& a) const override {
    if (fused_pool_ && a.next_out) {
      PoolParams p = p_;
      p.n = static_cast<int>(a.n);
      ConvMaxpool pool{pool_, static_cast<float*>(a.next_out), static_cast<long>(a.next_out_ld)};
      pool.p.n = p.n;
      conv_group(static_cast<const float*>(a.in[0]), 0, p, static_cast<float*>(a.out), a.nthreads, nullptr, e_.act,
                 0, &pool);
      return;
    }
    PoolParams p = p_;
    p.n = static_cast<int>(a.n);
    const auto* x = static_cast<const float*>(a.in[0]);
    auto* y = static_cast<float*>(a.out);
    const float* residual = e_.residual ? static_cast<const float*>(a.in[1]) : nullptr;
    if (groups_ == 1) {  // the add and relu fused into each chunk of rows
      conv_group(x, 0, p, y, a.nthreads, residual, e_.act, static_cast<long>(a.out_ld));
      return;
    }
    if (!w_hwc_.empty() && oc_ != p_.c) {
      // A channel multiplier m = oc / C (a MobileNet-style grouped conv): the depthwise kernel
      // on the input with each channel repeated m times (output channel o reads input channel
      // o / m). One GEMM per group with copies in and out took 1.8x as long (56x56, 32 -> 64
      // channels in 32 groups: 0.95 -> 0.52 ms, one thread, Zen 5).
      const int m = oc_ / p_.c;
      const size_t pix = static_cast<size_t>(p.n) * p.h * p.w;
      std::vector<float> xr(pix * oc_);
      for (size_t i = 0; i < pix; ++i)
        for (int c = 0; c < p_.c; ++c) std::fill_n(&xr[i * oc_ + static_cast<size_t>(c) * m], m, x[i * p_.c + c]);
      PoolParams pr = p;
      pr.c = oc_;
      depthwise_conv2d_f32(xr.data(), w_hwc_.data(), bias_.data(), pr, dh_, dw_, Act::kNone, nullptr, y,
                           a.nthreads);
    } else if (!w_hwc_.empty()) {
      depthwise_conv2d_f32(x, w_hwc_.data(), bias_.data(), p, dh_, dw_, Act::kNone, nullptr, y,
                           a.nthreads);
    } else {  // one GEMM per group over a contiguous copy of its channels
      const int cg = p_.c / groups_, og = oc_ / groups_;
      const size_t pix_in = static_cast<size_t>(p.n) * p.h * p.w, pix_out = static_cast<size_t>(p.n) * p.oh * p.ow;
      std::vector<float> xg(pix_in * cg), yg(pix_out * og);
      PoolParams pg = p;
      pg.c = cg;
      for (int g = 0; g < groups_; ++g) {
        for (size_t i = 0; i < pix_in; ++i)
          std::memcpy(&xg[i * cg], x + i * p.c + static_cast<size_t>(g) * cg, cg * sizeof(float));
        conv_group(xg.data(), g, pg, yg.data(), a.nthreads);
        for (size_t i = 0; i < pix_out; ++i)
          std::memcpy(y + i * oc_ + static_cast<size_t>(g) * og, &yg[i * og], og * sizeof(float));
      }
    }
    add_residual_act(y, residual, static_cast<size_t>(oc_),
                     static_cast<size_t>(p.n) * p.oh * p.ow, 0, oc_, e_.act);
  }
  int64_t transient_bytes(int64_t n, int nthreads) const override {
    if (!w_hwc_.empty())  // depthwise: a direct loop (on the input with its channels repeated, for a multiplier)
      return oc_ == p_.c ? 0 : n * p_.h * p_.w * int64_t{oc_} * 4;
    // conv2d_f32 (per group): each thread running a task holds an im2col chunk of 96 rows
    // (kRowChunk in ops/float_ops.cc), or of one output row where it reads the kernel rows
    // in place, x K floats, and each call packs the weights for the GEMM, K x N rounded up
    // to 32 columns. (This counted 2 x 64 rows and no packing: with
    // 2 threads a 64 KB file with a 64 x 64 x 120 kernel held 432 MiB under a 256 MiB cap.)
    const int64_t cg = p_.c / groups_, og = oc_ / groups_, k = int64_t{p_.kh} * p_.kw * cg;
    const int64_t chunks = (n * p_.oh * p_.ow + 95) / 96;
    // bf16 (ops/float_ops.cc): the input rounded to bf16 and the tasks' chunks of bf16 rows;
    // the weights were packed at load.
    PoolParams pg = p_;
    pg.n = static_cast<int>(n), pg.c = static_cast<int>(cg);
    // int8: the input quantized to u8, its per-sample parameters and the tasks' chunks of u8 rows.
    int64_t b = bf16()   ? conv2d_bf16_transient_bytes(pg, static_cast<int>(og), !scale_.empty(), nthreads)
                : int8() ? conv2d_int8_transient_bytes(pg, static_cast<int>(og), w_i8_[0].run, nthreads)
                         : std::min<int64_t>(std::max(chunks, n * p_.oh), std::max(nthreads, 1)) * std::max(96, p_.ow) * k * 4 +
                               k * ((og + 31) / 32 * 32) * 4;
    if (!bf16() && !int8()) b += conv2d_f32_pad_copy_bytes(pg, dw_);
    if (groups_ != 1) b += n * (int64_t{p_.h} * p_.w * cg + int64_t{p_.oh} * p_.ow * og) * 4;
    // a fused max-pool: each running task's ring of the pool's kh conv rows (RowPooler)
    if (fused_pool_) b += int64_t{std::max(nthreads, 1)} * pool_.kh * p_.ow * int64_t{oc_} * 4;
    return b;
  }

 private:
  std::vector<float> w_, w_hwc_, scale_, bias_;
  PoolParams pool_{};  // the fused max-pool's window (fused_pool_)
  bool fused_pool_ = false;
  std::vector<Bf16Weights> w_bf16_;  // per group, when the layer runs in bf16
  std::vector<Int8Weights> w_i8_;    // per group, when the layer runs in int8
  std::vector<F32Weights> w_f32_;    // per group, packed at load, when it runs in fp32
  bool emulated_ = false;
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
  const bool depthwise = groups != 1 && groups == in.c;  // one input channel per group (oc: any multiple)
  FloatPrecision prec = depthwise ? FloatPrecision::kFp32 : ctx.float_precision();
  const bool int8 = prec == FloatPrecision::kInt8 || prec == FloatPrecision::kInt8Emulated;
  if (int8 && g.kh * g.kw * ws[3] > kInt8MaxK) prec = FloatPrecision::kFp32;  // its int32 sums could overflow
  ctx.precision = float_precision_name(prec);
  std::vector<float> w = ctx.param_f32("weight", t.logical_count());
  std::vector<float> mult = ctx.param_f32("multiplier", oc);
  // bf16 and int8 keep +-1 weights exact (a packed_sign tensor unpacks to +-1 only)
  const bool unfolded = prec != FloatPrecision::kFp32 && t.packed_sign;
  const size_t per = static_cast<size_t>(t.logical_count() / oc);
  for (int64_t o = 0; o < oc && !unfolded; ++o)  // w * multiplier in float32, as the old engine did
    if (mult[o] != 1.0f)
      for (size_t i = 0; i < per; ++i) w[o * per + i] *= mult[o];
  if (!unfolded) mult.clear();
  std::vector<float> bias = ctx.param_f32("bias", oc);
  const PoolParams p = window_params(in, g);
  ctx.out = ValueInfo{DType::kF32, 4, g.oh, g.ow, oc};
  const FusedEpilogue e = read_fused_epilogue(ctx, ctx.out);
  return std::make_unique<Conv2dKernel>(std::move(w), std::move(mult), std::move(bias), p, static_cast<int>(oc),
                                        static_cast<int>(g.dh), static_cast<int>(g.dw),
                                        static_cast<int>(groups), e, prec);
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
