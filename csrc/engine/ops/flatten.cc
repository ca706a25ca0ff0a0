// flatten: (N, H, W, C) -> (N, H*W*C) in NHWC order, float or binary (bits are
// re-packed across pixels when C is not a multiple of 64; reference.py _op_flatten).
#include <cstring>

#include "engine/ops/common.h"

namespace onebit::ops {
namespace {

class FlattenKernel final : public OpKernel {
 public:
  FlattenKernel(ValueInfo in, ValueInfo out) : in_(in), out_(out) {}
  void run(const RunArgs& a) const override {
    if (in_.dtype == DType::kF32 || in_.c % 64 == 0) {  // whole words: a copy
      std::memcpy(a.out, a.in[0], static_cast<size_t>(a.n * in_.sample_bytes()));
      return;
    }
    const size_t pix = static_cast<size_t>(in_.h * in_.w), iw = static_cast<size_t>(in_.row_elems()),
                 ow = static_cast<size_t>(out_.row_elems()), c = static_cast<size_t>(in_.c);
    const auto* x = static_cast<const uint64_t*>(a.in[0]);
    auto* y = static_cast<uint64_t*>(a.out);
    std::memset(y, 0, static_cast<size_t>(a.n) * ow * 8);
    for (int64_t s = 0; s < a.n; ++s)
      for (size_t p = 0; p < pix; ++p) copy_bits(x + (s * pix + p) * iw, 0, y + s * ow, p * c, c);
  }

 private:
  ValueInfo in_, out_;
};

std::unique_ptr<OpKernel> build(BuildCtx& ctx) {
  const ValueInfo& in = ctx.input();
  ctx.out = ValueInfo{in.dtype, 2, 1, 1, in.h * in.w * in.c};
  return std::make_unique<FlattenKernel>(in, ctx.out);
}

}  // namespace

extern const OpDef kOpFlatten = {"flatten", "(N, H, W, C) -> (N, H*W*C), NHWC order; float or binary.",
                                 1, 1, {}, {}, false, build};

}  // namespace onebit::ops
