// NEON (aarch64) sign / threshold packing: 64 floats -> one 64-bit word.
//
// 16 compares (FCMGT, 4 lanes each) give all-ones/zero lanes; two narrowing
// moves make them bytes, each byte is ANDed with its bit weight (1 .. 128,
// channel c % 8), and three levels of ADDP sum each group of 8 bytes into one
// byte: bytes 0..7 of the result are the word. Bit set iff x < thr (NaN and
// -0.0 pack as +1, as the portable loop's `x < t`). A partial last word is
// packed from a zero-padded copy (0 < 0 is false, so padding bits stay 0).
#include <arm_neon.h>

#include <cstring>

#include "pack/pack.h"

namespace onebit {
namespace {

inline uint8x16_t mask16(const float* x, const float* t) {
  const float32x4_t z = vdupq_n_f32(0.0f);
  uint32x4_t c[4];
  for (int v = 0; v < 4; ++v) c[v] = vcltq_f32(vld1q_f32(x + 4 * v), t ? vld1q_f32(t + 4 * v) : z);
  const uint16x8_t h0 = vcombine_u16(vmovn_u32(c[0]), vmovn_u32(c[1]));
  const uint16x8_t h1 = vcombine_u16(vmovn_u32(c[2]), vmovn_u32(c[3]));
  return vcombine_u8(vmovn_u16(h0), vmovn_u16(h1));
}

inline uint64_t pack64(const float* x, const float* t, uint8x16_t weights) {
  const uint8x16_t m0 = vandq_u8(mask16(x, t ? t : nullptr), weights);
  const uint8x16_t m1 = vandq_u8(mask16(x + 16, t ? t + 16 : nullptr), weights);
  const uint8x16_t m2 = vandq_u8(mask16(x + 32, t ? t + 32 : nullptr), weights);
  const uint8x16_t m3 = vandq_u8(mask16(x + 48, t ? t + 48 : nullptr), weights);
  uint8x16_t p = vpaddq_u8(vpaddq_u8(m0, m1), vpaddq_u8(m2, m3));  // 4 channels per byte
  p = vpaddq_u8(p, p);                                              // 8 channels per byte
  return vgetq_lane_u64(vreinterpretq_u64_u8(p), 0);
}

}  // namespace

void pack_rows_f32_neon(const float* x, size_t rows, int channels, const float* thr,
                        uint64_t* out, size_t ldx) {
  static const uint8_t kWeights[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
  const uint8x16_t weights = vld1q_u8(kWeights);
  const int W = words_for(channels), full = channels / 64;
  for (size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    uint64_t* o = out + r * W;
    for (int wd = 0; wd < full; ++wd) o[wd] = pack64(xr + wd * 64, thr ? thr + wd * 64 : nullptr, weights);
    if (full < W) {
      const int n = channels - full * 64;
      float xb[64] = {}, tb[64] = {};
      std::memcpy(xb, xr + full * 64, n * sizeof(float));
      if (thr) std::memcpy(tb, thr + full * 64, n * sizeof(float));
      o[full] = pack64(xb, thr ? tb : nullptr, weights);
    }
  }
}

}  // namespace onebit
