// bnot: negate the flagged channels of packed bits (reference.py _op_bnot).
#include "engine/ops/common.h"

namespace onebit::ops {
namespace {

class BnotKernel final : public OpKernel {
 public:
  BnotKernel(ValueInfo v, avector<uint64_t> mask) : v_(v), mask_(std::move(mask)) {}
  void run(const RunArgs& a) const override {
    const size_t rows = rows_of(a.n, v_), cw = mask_.size();
    const auto* x = static_cast<const uint64_t*>(a.in[0]);
    auto* y = static_cast<uint64_t*>(a.out);
    for (size_t r = 0; r < rows; ++r)
      for (size_t k = 0; k < cw; ++k) y[r * cw + k] = x[r * cw + k] ^ mask_[k];
  }

 private:
  ValueInfo v_;
  avector<uint64_t> mask_;
};

std::unique_ptr<OpKernel> build(BuildCtx& ctx) {
  ctx.require_input(0, DType::kBits, 0);
  ctx.out = ctx.input();
  return std::make_unique<BnotKernel>(ctx.input(), word_mask(param_flags(ctx, "mask", ctx.input().c)));
}

}  // namespace

extern const OpDef kOpBnot = {
    "bnot", "Flip the sign of the channels set in `mask` (binary in, binary out).", 1, 1, {},
    {{"mask", true, "[C], nonzero: negate the channel"}}, true, build};

}  // namespace onebit::ops
