// bdense: binary fully connected layer on packed (N, C) activations: a 1x1
// binary convolution over N pixels; or on the residual sign planes of a float
// (N, C) input (residual_bits, binary_layer.h) (reference.py _op_bdense).
#include "engine/ops/binary_layer.h"
#include "engine/ops/common.h"

namespace onebit::ops {
namespace {

class BdenseKernel final : public OpKernel {
 public:
  BdenseKernel(BinaryLayer layer, int in_ch, ResidualInput r) : L_(std::move(layer)), in_ch_(in_ch), r_(r) {}
  void run(const RunArgs& a) const override {
    if (r_.bits > 1) {  // float input: residual sign planes as rows, one GEMM, scaled sum
      run_residual_input(r_, L_, static_cast<const float*>(a.in[0]), a.n, static_cast<float*>(a.out),
                         a.nthreads, [&](const uint64_t* planes, int64_t rows, float* dots) {
                           dense(planes, rows, OutputStage{}, dots, a.nthreads);
                         });
      return;
    }
    dense(static_cast<const uint64_t*>(a.in[0]), a.n, L_.stage(), a.out, a.nthreads);
  }
  int64_t transient_bytes(int64_t n, int nthreads) const override {
    return n * r_.bits * words_for(in_ch_) * 8 + residual_input_bytes(r_, L_.w.oc, n, nthreads);
  }

 private:
  void dense(const uint64_t* x, int64_t rows, const OutputStage& os, void* out, int nthreads) const {
    ConvParams p;
    p.n = 1, p.h = static_cast<int>(rows), p.w = 1, p.cin = in_ch_;
    p.oh = p.h, p.ow = 1, p.pad = PadValue::kPlusOne, p.oc = L_.w.oc;
    bconv2d(x, L_.w, p, os, out, nthreads);
  }
  BinaryLayer L_;
  int in_ch_;
  ResidualInput r_;
};

std::unique_ptr<OpKernel> build(BuildCtx& ctx) {
  const ResidualInput r = read_residual_input(ctx, 2);
  const int64_t in_ch = ctx.attr_int("in_channels");
  if (ctx.input().c != in_ch)
    ctx.fail("input has " + std::to_string(ctx.input().c) + " features, in_channels is " +
             std::to_string(in_ch));
  BinaryLayer L = read_binary_layer(ctx, in_ch, 1, 1, 1, true);
  ctx.out = ValueInfo{L.bits_out ? DType::kBits : DType::kF32, 2, 1, 1, L.w.oc};
  return std::make_unique<BdenseKernel>(std::move(L), static_cast<int>(in_ch), r);
}

}  // namespace

extern const OpDef kOpBdense = {
    "bdense", "Binary dense layer: packed (N, C) input, packed filters; output stage as bconv2d.", 1, 1,
    binary_output_attrs(), binary_layer_params(), false, build};

}  // namespace onebit::ops
