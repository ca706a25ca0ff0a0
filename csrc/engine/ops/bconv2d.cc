// bconv2d: binary 2-D convolution of packed activations with packed filters
// (XNOR-popcount), +1/-1/0 padding, float or bit output; or of the residual
// sign planes of a float input (residual_bits, binary_layer.h) (reference.py _op_bconv2d).
#include "engine/ops/binary_layer.h"
#include "engine/ops/common.h"

#include <algorithm>

#include "ops/post_ops.h"

namespace onebit::ops {
namespace {

class Bconv2dKernel final : public OpKernel {
 public:
  // Zero padding's corrections made once here, not on every call (conv_core's own code,
  // mostly them, was 1.6% of binary_resnet_e18's samples in perf record). Kept when no
  // larger than the packed weights (+ 4 KB): a file cannot make the engine hold much
  // more than it brings (ZeroPadCorrections is O(oh + ow + patterns * oc)).
  Bconv2dKernel(BinaryLayer layer, ConvParams p, ResidualInput r, FusedEpilogue e)
      : L_(std::move(layer)), p_(p), r_(r), e_(e) {
    if (p_.groups != 1) return;
    ZeroPadCorrections z = zero_pad_corrections(p_, L_.w);
    const size_t bytes = 4 * (z.row_class.size() + z.col_class.size() + z.pattern.size() + z.table.size());
    const size_t weights = 8 * L_.w.blocks.size() + 4 * L_.w.wsum.size();
    if (bytes <= weights + 4096) corr_ = std::move(z);
  }
  void run(const RunArgs& a) const override {
    const float* residual = e_.residual ? static_cast<const float*>(a.in[1]) : nullptr;
    if (r_.bits > 1) {  // float input: residual sign planes, one conv over all of them, scaled sum
      auto* y = static_cast<float*>(a.out);
      run_residual_input(r_, L_, static_cast<const float*>(a.in[0]), a.n, y,
                         a.nthreads, [&](const uint64_t* planes, int64_t images, float* dots) {
                           conv(planes, images, OutputStage{}, dots, a.nthreads);
                         });
      add_residual_act(y, residual, static_cast<size_t>(p_.oc), static_cast<size_t>(a.n * r_.rows_out),
                       0, p_.oc, e_.act, scale(), shift());
      return;
    }
    OutputStage os = L_.stage();
    os.residual = residual;
    os.post_act = e_.act;
    os.post_scale = scale();
    os.post_shift = shift();
    if (sign_ && a.next_out) {
      os.sign_out = static_cast<uint64_t*>(a.next_out);
      os.sign_thr = sign_->thr;
      os.sign_flip = sign_->flip;
    }
    conv(static_cast<const uint64_t*>(a.in[0]), a.n, os, a.out, a.nthreads, static_cast<size_t>(a.out_ld));
  }
  // The next sign, from the float output (bconv2d's OutputStage::sign_out: in the AVX-512
  // kernel's registers, elsewhere packed after the conv); not for residual-planes input.
  bool fuse_sign(const SignSpec& s) override {
    if (r_.bits != 1 || L_.bits_out || s.c != p_.oc) return false;
    sign_ = &s;
    return true;
  }
  // A float output straight into a slice of a concat (not the residual-planes input,
  // whose scaled sum is written densely).
  bool strided_output() const override {
    OutputStage os = L_.stage();
    return r_.bits == 1 && !e_.residual && bconv2d_strided_ok(p_, os);
  }
  // The output over the residual's buffer: bconv2d reads each residual value before
  // storing over it, or adds a copy (ops/bconv2d.h). Not for the residual-planes input,
  // whose scaled sum is written before the residual is added.
  bool overwrites_input(size_t k) const override { return k == 1 && e_.residual && r_.bits == 1 && !L_.bits_out; }
  int64_t transient_bytes(int64_t n, int nthreads) const override {
    // the binary kernel runs on every residual plane: n * residual_bits images
    // (+ the residual's copy that kernels without the in-register add take when the
    // output is over the residual: bconv2d's OutputStage::residual)
    const int64_t copy = overwrites_input(1) ? n * r_.rows_out * p_.oc * 4 : 0;
    return kernel_bytes(n * r_.bits) + residual_input_bytes(r_, p_.oc, n, nthreads) + copy;
  }
  // Scratch of one binary-kernel call on n images.
  int64_t kernel_bytes(int64_t n) const {
    const int64_t padded_pixels = n * (p_.h + p_.pt + p_.pb) * (p_.w + p_.pl + p_.pr);
    const int64_t cin_g = p_.cin / p_.groups;
    if (bgconv_uses_lanes(p_.groups, static_cast<int>(cin_g))) {
      // The bit-sliced kernel's padded input (cin_g planes of words_for(oc) words a
      // pixel) and, per border pattern, a correction row and count-threshold planes
      // (<= 17). As oy grows, both ends of the valid ky range only move one way, so
      // there are at most 2 kh + 2 row patterns (and 2 kw + 2 column patterns).
      const int64_t wo = words_for(p_.oc);
      const bool zero_pad = p_.pad == PadValue::kZero && (p_.pt || p_.pb || p_.pl || p_.pr);
      const int64_t patterns =
          zero_pad ? 1 + std::min<int64_t>(p_.oh, 2 * p_.kh + 2) * std::min<int64_t>(p_.ow, 2 * p_.kw + 2) : 1;
      return padded_pixels * cin_g * wo * 8 + patterns * (int64_t{p_.oc} * 4 + 17 * wo * 8) +
             int64_t{p_.oh} * p_.ow * 4;
    }
    // the driver's physically padded copy of the input (and per-group copies)
    const int64_t cw = words_for(p_.cin);
    int64_t b = padded_pixels * cw * 8;
    if (p_.groups > 1) b += n * p_.h * p_.w * cw * 8 + n * p_.oh * p_.ow * p_.oc * 4;
    return b;
  }

 private:
  const float* scale() const { return e_.post_scale.empty() ? nullptr : e_.post_scale.data(); }
  const float* shift() const { return e_.post_shift.empty() ? nullptr : e_.post_shift.data(); }
  void conv(const uint64_t* x, int64_t images, const OutputStage& os, void* out, int nthreads,
            size_t ldo = 0) const {
    ConvParams p = p_;
    p.n = static_cast<int>(images);
    bconv2d(x, L_.w, p, os, out, nthreads, ldo, corr_.empty() ? nullptr : &corr_);
  }
  BinaryLayer L_;
  ConvParams p_;
  ResidualInput r_;
  FusedEpilogue e_;
  const SignSpec* sign_ = nullptr;  // a fused sign (the sign kernel's, which the model keeps)
  ZeroPadCorrections corr_;          // empty: none, or made per call
};

std::unique_ptr<OpKernel> build(BuildCtx& ctx) {
  ResidualInput r = read_residual_input(ctx, 4);
  const ValueInfo& in = ctx.input();
  const int64_t in_ch = ctx.attr_int("in_channels");
  if (in.c != in_ch)
    ctx.fail("input has " + std::to_string(in.c) + " channels, in_channels is " + std::to_string(in_ch));
  const Window g = read_window(ctx, in, PadRule::kConv);
  const double pv = ctx.attr_real("pad_value");
  if (pv != 0 && pv != 1 && pv != -1) ctx.fail("pad_value must be +1, -1 or 0");
  // +-1 padding of x_hat = sum_i a_i s_i is not a sum of +-1-padded planes (sum_i a_i != 1)
  if (r.bits > 1 && pv != 0) ctx.fail("residual_bits > 1 needs pad_value 0");
  const int64_t groups = ctx.attr_int("groups");
  BinaryLayer L = read_binary_layer(ctx, in_ch, g.kh, g.kw, groups, false);
  ConvParams p;
  p.h = static_cast<int>(in.h), p.w = static_cast<int>(in.w), p.cin = static_cast<int>(in_ch);
  p.kh = static_cast<int>(g.kh), p.kw = static_cast<int>(g.kw);
  p.sh = static_cast<int>(g.sh), p.sw = static_cast<int>(g.sw);
  p.dh = static_cast<int>(g.dh), p.dw = static_cast<int>(g.dw);
  p.pt = static_cast<int>(g.pt), p.pb = static_cast<int>(g.pb);
  p.pl = static_cast<int>(g.pl), p.pr = static_cast<int>(g.pr);
  p.oh = static_cast<int>(g.oh), p.ow = static_cast<int>(g.ow);
  p.pad = static_cast<PadValue>(static_cast<int>(pv));
  p.groups = static_cast<int>(groups);
  p.oc = L.w.oc;
  r.rows_out = g.oh * g.ow;
  ctx.out = ValueInfo{L.bits_out ? DType::kBits : DType::kF32, 4, g.oh, g.ow, L.w.oc};
  const FusedEpilogue e = read_fused_epilogue(ctx, ctx.out);
  return std::make_unique<Bconv2dKernel>(std::move(L), p, r, e);
}

std::vector<AttrSpec> attrs() {
  std::vector<AttrSpec> a = window_attrs(true);
  for (AttrSpec& s : binary_output_attrs()) a.push_back(s);
  a.push_back(Int("groups", 1, kMaxChannels, 1, "groups (divides in and out channels)"));
  a.push_back(Real("pad_value", 1.0, "value of padded positions: +1, -1 or 0"));
  a.push_back(activation_attr());
  return a;
}

std::vector<ParamSpec> params() {
  std::vector<ParamSpec> p = binary_layer_params();
  for (const ParamSpec& s : post_affine_params()) p.push_back(s);
  return p;
}

}  // namespace

extern const OpDef kOpBconv2d = {
    "bconv2d",
    "Binary convolution: packed +-1 input and filters, exact integer dot products, then a float "
    "multiplier and bias, or per-channel integer thresholds that emit bits for the next binary layer. "
    "Float output: an optional second input is added, then the activation (the fused residual add); "
    "with post_scale / post_shift, y = activation(conv) * post_scale + post_shift + the second input.",
    1, 2, attrs(), params(), false, build};

}  // namespace onebit::ops
