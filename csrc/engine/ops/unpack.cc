// unpack: packed bits -> float +-1 (reference.py _op_unpack).
#include "engine/ops/common.h"

namespace onebit::ops {
namespace {

class UnpackKernel final : public OpKernel {
 public:
  explicit UnpackKernel(ValueInfo in) : in_(in) {}
  void run(const RunArgs& a) const override {
    unpack_rows_f32(static_cast<const uint64_t*>(a.in[0]), rows_of(a.n, in_), static_cast<int>(in_.c),
                    static_cast<float*>(a.out));
  }

 private:
  ValueInfo in_;
};

std::unique_ptr<OpKernel> build(BuildCtx& ctx) {
  ctx.require_input(0, DType::kBits, 0);
  ctx.out = ctx.input();
  ctx.out.dtype = DType::kF32;
  return std::make_unique<UnpackKernel>(ctx.input());
}

}  // namespace

extern const OpDef kOpUnpack = {"unpack", "Binary activations as float +-1 (for a float layer).",
                                1, 1, {}, {}, false, build};

}  // namespace onebit::ops
