// Non-aarch64 builds: the NEON entry points fall back to portable code (never
// selected at run time, since dispatch reports NEON unsupported there).
#include "kernels/bgconv.h"
#include "kernels/bgemm.h"
#include "kernels/bmaxpool.h"
#include "kernels/sgemm.h"
#include "pack/pack.h"

namespace onebit {
const BgemmConfig& bgemm_config_neon() { return bgemm_config_portable(); }
const BgconvConfig& bgconv_config_neon() { return bgconv_config_portable(); }
const SgemmConfig& sgemm_config_neon() { return sgemm_config_portable(); }
void bgemm_epilogue_neon(const int32_t* dot, const BgemmEpilogue& ep, void* out) {
  bgemm_epilogue_scalar(dot, ep, out);
}
void pack_rows_f32_neon(const float* x, size_t rows, int channels, const float* thr,
                        uint64_t* out, size_t ldx) {
  pack_rows_f32_portable(x, rows, channels, thr, out, ldx);
}
void bmaxpool_window_neon(const uint64_t* img, int width, int words, int y0, int y1, int x0,
                          int x1, uint64_t* out) {
  for (int c = 0; c < words; ++c) out[c] = (y0 < y1 && x0 < x1) ? ~uint64_t{0} : 0;
  for (int iy = y0; iy < y1; ++iy)
    for (int ix = x0; ix < x1; ++ix)
      for (int c = 0; c < words; ++c) out[c] &= img[(static_cast<long>(iy) * width + ix) * words + c];
}
}  // namespace onebit
