// relu: y = max(x, 0), NaN stays NaN (reference.py _op_relu).
#include <cmath>

#include "engine/ops/pointwise.h"

namespace onebit::ops {
namespace {
std::unique_ptr<OpKernel> build(BuildCtx& ctx) {
  return pointwise(ctx, [](float x, size_t) { return (x > 0.0f || std::isnan(x)) ? x : 0.0f; });
}
}  // namespace

extern const OpDef kOpRelu = {"relu", "y = max(x, 0).", 1, 1, {}, {}, true, build};

}  // namespace onebit::ops
