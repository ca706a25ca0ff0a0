// affine: per-channel y = x * scale + shift, two roundings as numpy did
// (BatchNorm, LearnableBias; reference.py _op_affine).
#include "engine/ops/pointwise.h"

namespace onebit::ops {
namespace {
std::unique_ptr<OpKernel> build(BuildCtx& ctx) {
  const int64_t c = ctx.input().c;
  return chan_op(ctx, ChanParams{ChanOp::kAffine}, ctx.param_f32("scale", c), ctx.param_f32("shift", c));
}
}  // namespace

extern const OpDef kOpAffine = {"affine", "Per-channel y = x * scale + shift.", 1, 1, {},
                                {{"scale", true, "float [C]"}, {"shift", true, "float [C]"}}, true, build};

}  // namespace onebit::ops
