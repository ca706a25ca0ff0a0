// prelu: y = x where x >= 0, else x * slope[c] (reference.py _op_prelu).
#include "engine/ops/pointwise.h"

namespace onebit::ops {
namespace {
std::unique_ptr<OpKernel> build(BuildCtx& ctx) {
  // (As a conditional multiply in a lambda of this file, built for the baseline ISA under
  // -ftrapping-math, GCC kept a scalar branch on each value's sign, mispredicted half the
  // time: 3.9 ms for 112 x 112 x 64 values. kernels/chanwise.h is a vector select.)
  return chan_op(ctx, ChanParams{ChanOp::kPrelu}, ctx.param_f32("slope", ctx.input().c));
}
}  // namespace

extern const OpDef kOpPrelu = {"prelu", "y = x for x >= 0, x * slope (per channel) otherwise.", 1, 1, {},
                               {{"slope", true, "float [C]"}}, true, build};

}  // namespace onebit::ops
