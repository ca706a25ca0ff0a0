// NEON (aarch64) binary max-pool of one output pixel: the max of +-1 values is
// the AND of their sign bits (bit set = -1). Up to 8 words (512 channels) of
// the output stay in 4 q registers while the window is walked (the portable
// loop reads and writes the output row per window pixel).
#include <arm_neon.h>

#include "kernels/bmaxpool.h"

namespace onebit {

void bmaxpool_window_neon(const uint64_t* img, int width, int words, int y0, int y1, int x0,
                          int x1, uint64_t* out) {
  if (y0 >= y1 || x0 >= x1) {  // empty window: +1 (cannot happen with torch's rules)
    for (int c = 0; c < words; ++c) out[c] = 0;
    return;
  }
  int c0 = 0;
  for (; c0 + 8 <= words; c0 += 8) {
    uint64x2_t m0 = vdupq_n_u64(~uint64_t{0}), m1 = m0, m2 = m0, m3 = m0;
    for (int iy = y0; iy < y1; ++iy)
      for (int ix = x0; ix < x1; ++ix) {
        const uint64_t* s = img + (static_cast<long>(iy) * width + ix) * words + c0;
        m0 = vandq_u64(m0, vld1q_u64(s));
        m1 = vandq_u64(m1, vld1q_u64(s + 2));
        m2 = vandq_u64(m2, vld1q_u64(s + 4));
        m3 = vandq_u64(m3, vld1q_u64(s + 6));
      }
    vst1q_u64(out + c0, m0);
    vst1q_u64(out + c0 + 2, m1);
    vst1q_u64(out + c0 + 4, m2);
    vst1q_u64(out + c0 + 6, m3);
  }
  for (; c0 + 2 <= words; c0 += 2) {
    uint64x2_t m = vdupq_n_u64(~uint64_t{0});
    for (int iy = y0; iy < y1; ++iy)
      for (int ix = x0; ix < x1; ++ix)
        m = vandq_u64(m, vld1q_u64(img + (static_cast<long>(iy) * width + ix) * words + c0));
    vst1q_u64(out + c0, m);
  }
  if (c0 < words) {
    uint64_t m = ~uint64_t{0};
    for (int iy = y0; iy < y1; ++iy)
      for (int ix = x0; ix < x1; ++ix) m &= img[(static_cast<long>(iy) * width + ix) * words + c0];
    out[c0] = m;
  }
}

}  // namespace onebit
