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
#include "kernels/chanwise.h"

namespace onebit {

// rows x [c0, c1) of y (and of residual, when not null), both at stride ld floats;
// scale and shift (both or neither) are indexed by channel. At the active ISA's
// width (kernels/chanwise.h, ChanOp::kPost), the same bits on every ISA.
static inline void add_residual_act(float* y, const float* residual, size_t ld, size_t rows,
                                    int c0, int c1, Act act, const float* scale = nullptr,
                                    const float* shift = nullptr) {
  if (!residual && act == Act::kNone && !scale) return;
  ChanParams p;
  p.op = ChanOp::kPost;
  p.a = scale;
  p.b = shift;
  p.res = residual;
  p.ldr = ld;
  p.relu = act == Act::kRelu;
  chanwise(p, y, ld, y, ld, rows, c0, c1);
}

}  // namespace onebit
