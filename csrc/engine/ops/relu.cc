// relu: y = max(x, 0), NaN stays NaN, -0 becomes +0 (reference.py _op_relu).
#include "engine/ops/pointwise.h"

namespace onebit::ops {
namespace {
std::unique_ptr<OpKernel> build(BuildCtx& ctx) {
  return chan_op(ctx, ChanParams{ChanOp::kRelu});
}
}  // namespace

extern const OpDef kOpRelu = {"relu", "y = max(x, 0).", 1, 1, {}, {}, true, build};

}  // namespace onebit::ops
