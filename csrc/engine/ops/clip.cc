// clip: y = min(max(x, min), max), NaN stays NaN (Hardtanh; reference.py _op_clip).
#include "engine/ops/pointwise.h"

namespace onebit::ops {
namespace {
std::unique_ptr<OpKernel> build(BuildCtx& ctx) {
  const float lo = static_cast<float>(ctx.attr_real("min")), hi = static_cast<float>(ctx.attr_real("max"));
  if (!(lo <= hi)) ctx.fail("attribute 'min' must not exceed 'max'");
  ChanParams p{ChanOp::kClip};
  p.lo = lo, p.hi = hi;
  return chan_op(ctx, p);
}
}  // namespace

extern const OpDef kOpClip = {"clip", "y = min(max(x, min), max).", 1, 1,
                              {Real("min", "lower bound"), Real("max", "upper bound")}, {}, true, build};

}  // namespace onebit::ops
