// prelu: y = x where x >= 0, else x * slope[c] (reference.py _op_prelu).
#include "engine/ops/pointwise.h"

namespace onebit::ops {
namespace {
std::unique_ptr<OpKernel> build(BuildCtx& ctx) {
  return pointwise(ctx, [s = ctx.param_f32("slope", ctx.input().c)](float x, size_t i) {
    return x < 0.0f ? x * s[i] : x;
  });
}
}  // namespace

extern const OpDef kOpPrelu = {"prelu", "y = x for x >= 0, x * slope (per channel) otherwise.", 1, 1, {},
                               {{"slope", true, "float [C]"}}, true, build};

}  // namespace onebit::ops
