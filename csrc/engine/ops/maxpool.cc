// maxpool: float max-pooling, padded positions ignored (reference.py _op_maxpool).
#include "engine/ops/common.h"

namespace onebit::ops {
namespace {

class MaxpoolKernel final : public OpKernel {
 public:
  explicit MaxpoolKernel(PoolParams p) : p_(p) {}
  void run(const RunArgs& a) const override {
    PoolParams p = p_;
    p.n = static_cast<int>(a.n);
    maxpool_f32(static_cast<const float*>(a.in[0]), p, static_cast<float*>(a.out), a.nthreads, a.out_ld);
  }
  bool strided_output() const override { return true; }
  const PoolParams* float_maxpool() const override { return &p_; }

 private:
  PoolParams p_;
};

std::unique_ptr<OpKernel> build(BuildCtx& ctx) {
  ctx.require_input(0, DType::kF32, 4);
  const PoolParams p = pool_params(ctx, ctx.input(), ctx.attr_bool("ceil_mode"));
  ctx.out = ValueInfo{DType::kF32, 4, p.oh, p.ow, ctx.input().c};
  return std::make_unique<MaxpoolKernel>(p);
}

}  // namespace

extern const OpDef kOpMaxpool = {"maxpool", "Float max-pooling (padding ignored).", 1, 1, pool_attrs(false),
                                 {}, false, build};

}  // namespace onebit::ops
