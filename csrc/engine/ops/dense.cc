// dense: float fully connected layer, y = x (weight * multiplier)^T + bias
// (reference.py _op_dense). Under float_precision = bf16 / bf16_emulated the
// folded weights are rounded to bf16 and packed once here; +-1 weights
// (binary_weight) are packed unfolded, exact, and their multiplier scales the
// fp32 sums instead; their input enters as two bf16 parts (Bf16Weights::split).
// int8 / int8_emulated quantize them per output channel here (+-1 weights
// exactly, the multiplier as their scale); a layer deeper than kInt8MaxK stays
// fp32.
#include "engine/ops/common.h"
#include "ops/float_ops.h"

namespace onebit::ops {
namespace {

class DenseKernel final : public OpKernel {
 public:
  // scale: empty, or (bf16 with +-1 weights) the multiplier not folded into w.
  DenseKernel(std::vector<float> w, std::vector<float> scale, std::vector<float> bias, int k, int oc,
              FloatPrecision precision)
      : w_(std::move(w)), scale_(std::move(scale)), bias_(std::move(bias)), k_(k), oc_(oc) {
    emulated_ = precision == FloatPrecision::kBf16Emulated || precision == FloatPrecision::kInt8Emulated;
    if (precision == FloatPrecision::kBf16 || precision == FloatPrecision::kBf16Emulated) {
      bf16_ = true;
      w_bf16_ = pack_weights_bf16(oc_, k_, w_.data(), k_, !scale_.empty());  // +-1: split input
      w_ = std::vector<float>();
    } else if (precision == FloatPrecision::kInt8 || precision == FloatPrecision::kInt8Emulated) {
      int8_ = true;
      w_i8_ = pack_weights_int8(oc_, k_, w_.data(), k_, scale_.empty() ? nullptr : scale_.data());
      w_ = std::vector<float>(), scale_ = std::vector<float>();
    }
  }
  void run(const RunArgs& a) const override {
    if (int8_) {
      gemm_int8(static_cast<int>(a.n), static_cast<const float*>(a.in[0]), k_, w_i8_, static_cast<float*>(a.out),
                oc_, bias_.data(), emulated_, a.nthreads);
      return;
    }
    if (bf16_) {
      gemm_bf16(static_cast<int>(a.n), static_cast<const float*>(a.in[0]), k_, w_bf16_,
                static_cast<float*>(a.out), oc_, scale_.empty() ? nullptr : scale_.data(), bias_.data(),
                emulated_, a.nthreads);
      return;
    }
    sgemm(static_cast<int>(a.n), oc_, k_, static_cast<const float*>(a.in[0]), k_, w_.data(), 1, k_,
          static_cast<float*>(a.out), oc_, bias_.data(), Act::kNone, nullptr, a.nthreads);
  }
  int64_t transient_bytes(int64_t n, int nthreads) const override {
    if (bf16_)  // weights packed at load; a split row is twice as long, and formed from K floats
      return w_bf16_.split ? bf16_transient_bytes(n, oc_, 2 * k_, nthreads) + int64_t{std::max(nthreads, 1)} * k_ * 4
                           : bf16_transient_bytes(n, oc_, k_, nthreads);
    if (int8_) return int8_transient_bytes(n, oc_, k_, nthreads);
    // sgemm packs the weights, K x N rounded up to 32 columns, for batches above 4 (its
    // small-batch path reads them in place). Uncounted, a 513 KB file (one output, 2^22
    // binary weights) allocated 512 MiB at batch 5 under a 256 MiB cap.
    return n > 4 ? int64_t{k_} * ((oc_ + 31) / 32 * 32) * 4 : 0;
  }

 private:
  std::vector<float> w_, scale_, bias_;
  Bf16Weights w_bf16_;
  Int8Weights w_i8_;
  bool bf16_ = false, int8_ = false, emulated_ = false;
  int k_, oc_;
};

std::unique_ptr<OpKernel> build(BuildCtx& ctx) {
  ctx.require_input(0, DType::kF32, 2);
  const int64_t k = ctx.input().c;
  const TensorRef& t = ctx.param("weight");
  const std::vector<int64_t> ws = t.logical_shape();
  if (ws.size() != 2 || ws[1] != k)
    ctx.fail("weight must be [out, " + std::to_string(k) + "]");
  const int64_t oc = ws[0];
  if (oc < 1 || oc > (int64_t{1} << 24)) ctx.fail("weight has " + std::to_string(oc) + " outputs");
  if (k > (int64_t{1} << 28) / 1 || oc * k > (int64_t{1} << 31)) ctx.fail("weight is too large");
  FloatPrecision prec = ctx.float_precision();
  if ((prec == FloatPrecision::kInt8 || prec == FloatPrecision::kInt8Emulated) && k > kInt8MaxK)
    prec = FloatPrecision::kFp32;  // its int32 sums could overflow
  std::vector<float> w = ctx.param_f32("weight", oc * k);
  std::vector<float> mult = ctx.param_f32("multiplier", oc);
  // bf16 and int8 keep +-1 weights exact (a packed_sign tensor unpacks to +-1 only)
  const bool unfolded = prec != FloatPrecision::kFp32 && t.packed_sign;
  for (int64_t o = 0; o < oc && !unfolded; ++o)
    if (mult[o] != 1.0f)
      for (int64_t i = 0; i < k; ++i) w[o * k + i] *= mult[o];
  if (!unfolded) mult.clear();
  ctx.out = ValueInfo{DType::kF32, 2, 1, 1, oc};
  ctx.precision = float_precision_name(prec);
  return std::make_unique<DenseKernel>(std::move(w), std::move(mult), ctx.param_f32("bias", oc),
                                       static_cast<int>(k), static_cast<int>(oc), prec);
}

}  // namespace

extern const OpDef kOpDense = {
    "dense", "Float dense layer: y = x (weight * multiplier)^T + bias.", 1, 1,
    {Bool("binary_weight", false, "weights are +-1 (stored packed), the scale is the multiplier")},
    {{"weight", true, "float [O, C], or packed_sign"}, {"multiplier", true, "float [O]"}, {"bias", true, "float [O]"}},
    false, build};

}  // namespace onebit::ops
