// scale: y = x * value, one float32 factor (Tang's scale layer; reference.py _op_scale).
#include "engine/ops/pointwise.h"

namespace onebit::ops {
namespace {
std::unique_ptr<OpKernel> build(BuildCtx& ctx) {
  const float v = static_cast<float>(ctx.attr_real("value"));
  ChanParams p{ChanOp::kScale};
  p.lo = v;
  return chan_op(ctx, p);
}
}  // namespace

extern const OpDef kOpScale = {"scale", "y = x * value.", 1, 1, {Real("value", "the factor")}, {}, true,
                               build};

}  // namespace onebit::ops
