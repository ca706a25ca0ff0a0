// What a float-output conv does after its own output stage when the exporter
// fused the ops that followed it (onebit.export.passes.fuse_conv_epilogues):
//
//   y = act(y + residual)      (residual optional, act none or relu)
//
// or, with a per-channel scale and shift (a BatchNorm after the activation, as
// QuickNet's blocks have it; passes.fuse_conv_post_affine, binary convs only):
//
//   y = act(y) * scale + shift + residual
//
// in float32, one rounding per step, in the order the separate add and relu
// ops used, so a fused graph gives the same bits as the unfused one. Applied
// to a tile right after the micro-kernel wrote it (still in L1), not as a
// pass over the whole output.
#pragma once

#include <cstddef>

#include "kernels/bgemm.h"

namespace onebit {

// rows x [c0, c1) of y (and of residual, when not null), both at stride ld floats;
// scale and shift (both or neither) are indexed by channel.
static inline void add_residual_act(float* y, const float* residual, size_t ld, size_t rows,
                                    int c0, int c1, Act act, const float* scale = nullptr,
                                    const float* shift = nullptr) {
  if (!residual && act == Act::kNone && !scale) return;
  for (size_t r = 0; r < rows; ++r) {
    float* yr = y + r * ld;
    if (scale) {  // as the relu, affine and add ops, one rounding each
      for (int j = c0; j < c1; ++j) {
        float v = yr[j];
        if (act == Act::kRelu) v = (v > 0.0f || v != v) ? v : 0.0f;
        const float t = v * scale[j];
        v = t + shift[j];
        yr[j] = residual ? v + residual[r * ld + j] : v;
      }
      continue;
    }
    if (residual) {
      const float* rr = residual + r * ld;
      for (int j = c0; j < c1; ++j) yr[j] = yr[j] + rr[j];
    }
    if (act == Act::kRelu)  // as the relu op: NaN stays NaN, -0 becomes +0
      for (int j = c0; j < c1; ++j) yr[j] = (yr[j] > 0.0f || yr[j] != yr[j]) ? yr[j] : 0.0f;
  }
}

}  // namespace onebit
