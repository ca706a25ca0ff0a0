// What bconv2d and bdense share: binary filters and the per-channel output
// stage (float multiplier + bias, or integer thresholds emitting bits).
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "engine/op.h"
#include "ops/bconv2d.h"

namespace onebit::ops {

struct BinaryLayer {
  PackedWeights w;
  bool bits_out = false;
  std::vector<float> mult, bias;
  std::vector<int32_t> thr;
  std::vector<uint8_t> flip;
  OutputStage stage() const;
};

// Reads `weight` (packed_sign [O, kh, kw, words] / [O, words] or float OHWI /
// [O, I]) for in_channels / groups inputs per filter and the output stage params.
BinaryLayer read_binary_layer(const BuildCtx& ctx, int64_t in_channels, int64_t kh, int64_t kw,
                              int64_t groups, bool dense);

std::vector<AttrSpec> binary_output_attrs();
std::vector<ParamSpec> binary_layer_params();

// A binary layer whose input is float and binarized inside it into `bits`
// residual sign planes with one scale per sample (attribute residual_bits > 1,
// quantizers.residual_sign(scale="sample")): every plane goes through the
// binary kernel and the epilogue sums the plane results with their scales,
// y = multiplier * sum_i a_i[n] * dot_i + bias (in double, then float32).
struct ResidualInput {
  int bits = 1;                  // 1: the input is packed bits, nothing to do
  int64_t rows_in = 1, c = 1;    // pixels and channels of one input sample
  int64_t rows_out = 1;          // output pixels per sample
};
// Reads residual_bits and checks the input for it: packed bits of `rank` for 1,
// else float of `rank` and a float output.
ResidualInput read_residual_input(const BuildCtx& ctx, int rank);
// The binary kernel on `images` packed images -> raw dot products [images][rows_out][oc].
using BinaryRun = std::function<void(const uint64_t* planes, int64_t images, float* dots)>;
void run_residual_input(const ResidualInput& r, const BinaryLayer& L, const float* x, int64_t n,
                        float* y, int nthreads, const BinaryRun& run);
// The scratch run_residual_input holds for a batch of n (planes, dots, scales).
int64_t residual_input_bytes(const ResidualInput& r, int64_t oc, int64_t n, int nthreads);

}  // namespace onebit::ops
