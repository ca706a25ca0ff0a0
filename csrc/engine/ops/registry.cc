// The list of engine ops. Adding an op: its file under engine/ops/ (the OpDef),
// one line here, its numpy definition in src/onebit/runtime/reference.py, and
// its lowering in the exporter.
#include "engine/op.h"

#define ONEBIT_OPS(X) \
  X(kOpSign) X(kOpBnot) X(kOpUnpack) X(kOpBconv2d) X(kOpBdense) X(kOpConv2d) X(kOpDense) \
  X(kOpAffine) X(kOpRelu) X(kOpPrelu) X(kOpClip) X(kOpScale) X(kOpAdd) X(kOpMulMap) \
  X(kOpConcat) X(kOpFlatten) X(kOpMaxpool) X(kOpBmaxpool) X(kOpAvgpool) X(kOpGlobalAvgpool) \
  X(kOpSoftmax) X(kOpMeanAbs) X(kOpXnorK) X(kOpActivation) X(kOpLayerNorm) X(kOpGroupNorm) \
  X(kOpUpsample) X(kOpResidualSign)

namespace onebit {
namespace ops {
#define ONEBIT_DECLARE(name) extern const OpDef name;
ONEBIT_OPS(ONEBIT_DECLARE)
#undef ONEBIT_DECLARE
}  // namespace ops

const std::vector<const OpDef*>& op_registry() {
#define ONEBIT_ADDRESS(name) &ops::name,
  static const std::vector<const OpDef*> all = {ONEBIT_OPS(ONEBIT_ADDRESS)};
#undef ONEBIT_ADDRESS
  return all;
}

const OpDef* find_op(std::string_view name) {
  for (const OpDef* d : op_registry())
    if (name == d->name) return d;
  return nullptr;
}

}  // namespace onebit
