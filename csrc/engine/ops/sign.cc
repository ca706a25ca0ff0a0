// sign: float -> packed bits with a per-channel threshold. +1 (bit clear) where
// x >= threshold; on channels flagged in the optional `flip`, +1 where
// x <= threshold (a sign after a negative scale). Semantics: reference.py _op_sign.
#include <cmath>

#include "engine/ops/common.h"
#include "runtime/threadpool.h"

namespace onebit::ops {
namespace {

class SignKernel final : public OpKernel {
 public:
  SignKernel(ValueInfo in, std::vector<float> thr, avector<uint64_t> mask, bool zero)
      : in_(in), thr_(std::move(thr)), mask_(std::move(mask)), zero_(zero),
        spec_{in_.c, thr_.data(), mask_.empty() ? nullptr : mask_.data()} {}
  void run(const RunArgs& a) const override {
    const size_t rows = rows_of(a.n, in_);
    const int c = static_cast<int>(in_.c);
    auto* out = static_cast<uint64_t*>(a.out);
    pack_rows_f32(static_cast<const float*>(a.in[0]), rows, c, zero_ ? nullptr : thr_.data(), out,
                  a.nthreads, static_cast<size_t>(in_stride(a, 0, in_)), spec_.flip);
  }
  bool strided_input(size_t) const override { return true; }
  const SignSpec* float_sign() const override { return &spec_; }

 private:
  ValueInfo in_;
  std::vector<float> thr_;
  avector<uint64_t> mask_;
  bool zero_;
  SignSpec spec_;
};

std::unique_ptr<OpKernel> build(BuildCtx& ctx) {
  ctx.require_input(0, DType::kF32, 0);
  const ValueInfo& in = ctx.input();
  std::vector<float> thr = ctx.param_f32("threshold", in.c);
  avector<uint64_t> mask;
  if (ctx.has_param("flip")) {
    const std::vector<uint8_t> flip = param_flags(ctx, "flip", in.c);
    bool any = false;
    for (size_t c = 0; c < flip.size(); ++c) {
      // The kernel sets the bit where x < t; flipped channels want +1 where x <= t,
      // i.e. x < nextafter(t, +inf): pack with that threshold, then invert those bits.
      if (flip[c]) thr[c] = std::nextafter(thr[c], INFINITY), any = true;
    }
    if (any) mask = word_mask(flip);
  }
  bool zero = true;
  for (float t : thr) zero &= t == 0.0f;
  ctx.out = in;
  ctx.out.dtype = DType::kBits;
  return std::make_unique<SignKernel>(in, std::move(thr), std::move(mask), zero);
}

}  // namespace

extern const OpDef kOpSign = {
    "sign",
    "Binarize float activations per channel: +1 where x >= threshold (x <= threshold on flipped "
    "channels), else -1; the output is packed bits.",
    1, 1, {},
    {{"threshold", true, "float32 [C]"}, {"flip", false, "[C], nonzero: compare the other way"}},
    false, build};

}  // namespace onebit::ops
