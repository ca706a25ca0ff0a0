// bdense: binary fully connected layer on packed (N, C) activations: a 1x1
// binary convolution over N pixels (reference.py _op_bdense).
#include "engine/ops/binary_layer.h"
#include "engine/ops/common.h"

namespace onebit::ops {
namespace {

class BdenseKernel final : public OpKernel {
 public:
  BdenseKernel(BinaryLayer layer, int in_ch) : L_(std::move(layer)), in_ch_(in_ch) {}
  void run(const RunArgs& a) const override {
    ConvParams p;
    p.n = 1, p.h = static_cast<int>(a.n), p.w = 1, p.cin = in_ch_;
    p.oh = p.h, p.ow = 1, p.pad = PadValue::kPlusOne, p.oc = L_.w.oc;
    bconv2d(static_cast<const uint64_t*>(a.in[0]), L_.w, p, L_.stage(), a.out, a.nthreads);
  }
  int64_t transient_bytes(int64_t n, int) const override { return n * words_for(in_ch_) * 8; }

 private:
  BinaryLayer L_;
  int in_ch_;
};

std::unique_ptr<OpKernel> build(BuildCtx& ctx) {
  ctx.require_input(0, DType::kBits, 2);
  const int64_t in_ch = ctx.attr_int("in_channels");
  if (ctx.input().c != in_ch)
    ctx.fail("input has " + std::to_string(ctx.input().c) + " features, in_channels is " +
             std::to_string(in_ch));
  BinaryLayer L = read_binary_layer(ctx, in_ch, 1, 1, 1, true);
  ctx.out = ValueInfo{L.bits_out ? DType::kBits : DType::kF32, 2, 1, 1, L.w.oc};
  return std::make_unique<BdenseKernel>(std::move(L), static_cast<int>(in_ch));
}

}  // namespace

extern const OpDef kOpBdense = {
    "bdense", "Binary dense layer: packed (N, C) input, packed filters; output stage as bconv2d.", 1, 1,
    binary_output_attrs(), binary_layer_params(), false, build};

}  // namespace onebit::ops
