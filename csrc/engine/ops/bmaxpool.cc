// bmaxpool: max-pooling of binary activations: the AND of the sign bits
// (max of +-1), padded positions ignored (reference.py _op_bmaxpool).
#include "engine/ops/common.h"

namespace onebit::ops {
namespace {

class BmaxpoolKernel final : public OpKernel {
 public:
  explicit BmaxpoolKernel(PoolParams p) : p_(p) {}
  void run(const RunArgs& a) const override {
    PoolParams p = p_;
    p.n = static_cast<int>(a.n);
    maxpool_packed(static_cast<const uint64_t*>(a.in[0]), p, static_cast<uint64_t*>(a.out), a.nthreads);
  }

 private:
  PoolParams p_;
};

std::unique_ptr<OpKernel> build(BuildCtx& ctx) {
  ctx.require_input(0, DType::kBits, 4);
  const PoolParams p = pool_params(ctx, ctx.input(), ctx.attr_bool("ceil_mode"));
  ctx.out = ValueInfo{DType::kBits, 4, p.oh, p.ow, ctx.input().c};
  return std::make_unique<BmaxpoolKernel>(p);
}

}  // namespace

extern const OpDef kOpBmaxpool = {"bmaxpool", "Max-pooling of binary activations (padding ignored).", 1, 1,
                                  pool_attrs(false), {}, false, build};

}  // namespace onebit::ops
