// NEON output stage of one 32-channel block (shared by the aarch64 binary
// micro-kernels; included only by NEON translation units).
//
// dot: the 32 exact +-1 dot products as 8 x int32x4 (channels 4q..4q+3 in
// dot[q]). The arithmetic is the contract of kernels/bgemm.h, step for step:
//   float: y = float(dot) * mult (rounded), y = y + bias (rounded; vmulq then
//          vaddq, never a fused FMLA), then relu (y < 0 ? 0 : y) or prelu
//          (y < 0 ? y * slope : y), so every value equals the scalar stage's;
//   bits:  bit j = (dot[j] < thr[j]) ^ flip bit j. NEON has no movemask: each
//          compare mask is ANDed with its lanes' bit weights and the eight
//          vectors are summed (the bits are disjoint) and reduced across lanes.
#pragma once

#include <arm_neon.h>

#include <cstdint>

#include "kernels/bgemm.h"

namespace onebit {
namespace neon {

static inline void epilogue_block(const int32x4_t dot[8], const BgemmEpilogue& ep, void* out) {
  if (ep.kind == OutKind::kBits) {
    static const uint32_t kWeights[4] = {1, 2, 4, 8};
    const uint32x4_t w = vld1q_u32(kWeights);
    uint32x4_t sum = vdupq_n_u32(0);
    for (int q = 0; q < 8; ++q) {
      const uint32x4_t lt = vcltq_s32(dot[q], vld1q_s32(ep.thr + 4 * q));
      sum = vorrq_u32(sum, vandq_u32(lt, vshlq_u32(w, vdupq_n_s32(4 * q))));
    }
    *static_cast<uint32_t*>(out) = vaddvq_u32(sum) ^ ep.flip;
    return;
  }
  const float32x4_t zero = vdupq_n_f32(0.0f);
  float32x4_t y[8];
  for (int q = 0; q < 8; ++q) {
    float32x4_t v = vmulq_f32(vcvtq_f32_s32(dot[q]), vld1q_f32(ep.mult + 4 * q));
    v = vaddq_f32(v, vld1q_f32(ep.bias + 4 * q));
    if (ep.act == Act::kRelu) {
      v = vbslq_f32(vcltq_f32(v, zero), zero, v);
    } else if (ep.act == Act::kPrelu) {
      v = vbslq_f32(vcltq_f32(v, zero), vmulq_f32(v, vld1q_f32(ep.slope + 4 * q)), v);
    }
    y[q] = v;
  }
  float* o = static_cast<float*>(out);
  if (ep.nvalid == kNR) {
    for (int q = 0; q < 8; ++q) vst1q_f32(o + 4 * q, y[q]);
  } else {
    float tmp[kNR];
    for (int q = 0; q < 8; ++q) vst1q_f32(tmp + 4 * q, y[q]);
    for (int j = 0; j < ep.nvalid; ++j) o[j] = tmp[j];
  }
}

}  // namespace neon
}  // namespace onebit
