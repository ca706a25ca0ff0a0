// What bconv2d and bdense share: binary filters and the per-channel output
// stage (float multiplier + bias, or integer thresholds emitting bits).
#pragma once
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

}  // namespace onebit::ops
