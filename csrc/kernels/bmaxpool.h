// Binary max-pool of one output pixel, NEON (ops/float_ops.cc walks the pixels;
// its own loop is the portable path).
#pragma once

#include <cstdint>

namespace onebit {

// out[c] = AND of img[(iy * width + ix) * words + c] over iy in [y0, y1),
// ix in [x0, x1), for c < words; all zero (+1) for an empty window.
// img points at the first pixel of one image (NHWC, `words` words per pixel).
void bmaxpool_window_neon(const uint64_t* img, int width, int words, int y0, int y1, int x0,
                          int x1, uint64_t* out);

}  // namespace onebit
