// Float pooling windows (kernels/pool.h): the loops, included by one translation unit
// per instruction set (kernels/<isa>/pool_<isa>.cc), each compiled with its own flags,
// so GCC vectorizes them 4 (SSE2, NEON), 8 (AVX2) or 16 (AVX-512) lanes wide.
// Everything here has internal linkage: each unit keeps its own copy.
//
// Channels go in blocks of 64 (then 16, then 1) kept in registers over the whole
// window, so each input value is read once and each output written once (the loop
// this replaced re-read and re-wrote the output for every tap, in scalar code).
// The same operations in the same order on every ISA: the results are bit for bit
// those of the scalar loop (the depthwise conv's pixels too) (-ffp-contract=off; -fno-trapping-math only lets GCC
// if-convert the max's select).
#pragma once
#include <cmath>

#include "kernels/pool.h"

namespace onebit {
namespace {

// The max over a window's rows (row(iy) for iy < nrows, pixels C floats apart) and
// columns [x0, x1), B channels from the rows' pointers: rows outer, columns inner.
template <int B, class RowAt>
inline void max_window(RowAt row, int nrows, int C, int x0, int x1, float* d) {
  float acc[B];
  for (int c = 0; c < B; ++c) acc[c] = -INFINITY;
  for (int iy = 0; iy < nrows; ++iy)
    for (int ix = x0; ix < x1; ++ix) {
      const float* s = row(iy) + static_cast<long>(ix) * C;
      for (int c = 0; c < B; ++c) {
        const float v = s[c];
        acc[c] = (v > acc[c] || v != v) ? v : acc[c];  // torch: NaN wins and stays
      }
    }
  for (int c = 0; c < B; ++c) d[c] = acc[c];
}

template <int B>
inline void max_block(const float* x, long rs, int C, int y0, int y1, int x0, int x1, float* d) {
  max_window<B>([&](int iy) { return x + (y0 + iy) * rs; }, y1 - y0, C, x0, x1, d);
}

// PoolRowsFn: the window's rows by pointer (a fused pool's ring of conv rows).
void max_rows(const float* const* rows, int nrows, int C, int x0, int x1, float* d) {
  int c = 0;
  for (; c + 64 <= C; c += 64) max_window<64>([&](int iy) { return rows[iy] + c; }, nrows, C, x0, x1, d + c);
  for (; c + 16 <= C; c += 16) max_window<16>([&](int iy) { return rows[iy] + c; }, nrows, C, x0, x1, d + c);
  for (; c < C; ++c) max_window<1>([&](int iy) { return rows[iy] + c; }, nrows, C, x0, x1, d + c);
}

template <int B>
inline void sum_block(const float* x, long rs, int C, int y0, int y1, int x0, int x1, float* d) {
  float acc[B];
  for (int c = 0; c < B; ++c) acc[c] = 0.0f;
  for (int iy = y0; iy < y1; ++iy)
    for (int ix = x0; ix < x1; ++ix) {
      const float* s = x + iy * rs + static_cast<long>(ix) * C;
      for (int c = 0; c < B; ++c) acc[c] += s[c];
    }
  for (int c = 0; c < B; ++c) d[c] = acc[c];
}

template <void (*Block64)(const float*, long, int, int, int, int, int, float*),
          void (*Block16)(const float*, long, int, int, int, int, int, float*),
          void (*Block1)(const float*, long, int, int, int, int, int, float*)>
void window(const float* x, long rs, int C, int y0, int y1, int x0, int x1, float* d) {
  int c = 0;
  for (; c + 64 <= C; c += 64) Block64(x + c, rs, C, y0, y1, x0, x1, d + c);
  for (; c + 16 <= C; c += 16) Block16(x + c, rs, C, y0, y1, x0, x1, d + c);
  for (; c < C; ++c) Block1(x + c, rs, C, y0, y1, x0, x1, d + c);
}

// The channel loops are unrolled whole: left as loops, GCC -O3 interchanged them with
// the tap loop and ran the sums in memory, one channel at a time (2x slower than the
// scalar loop this replaced).
template <int B>
inline void dw_block(const float* const* xs, const float* const* ws, int ntaps, const float* bias, int c0,
                     float* d) {
  float acc[B];
#pragma GCC unroll 64
  for (int c = 0; c < B; ++c) acc[c] = bias ? bias[c0 + c] : 0.0f;
  for (int t = 0; t < ntaps; ++t) {
    const float* x = xs[t] + c0;
    const float* w = ws[t] + c0;
#pragma GCC unroll 64
    for (int c = 0; c < B; ++c) acc[c] += x[c] * w[c];
  }
#pragma GCC unroll 64
  for (int c = 0; c < B; ++c) d[c0 + c] = acc[c];
}

void dw_pixel(const float* const* xs, const float* const* ws, int ntaps, const float* bias, int C, float* d) {
  int c = 0;
  for (; c + 64 <= C; c += 64) dw_block<64>(xs, ws, ntaps, bias, c, d);
  for (; c + 16 <= C; c += 16) dw_block<16>(xs, ws, ntaps, bias, c, d);
  for (; c < C; ++c) dw_block<1>(xs, ws, ntaps, bias, c, d);
}

constexpr PoolKernels kPoolKernels{window<max_block<64>, max_block<16>, max_block<1>>, max_rows,
                                   window<sum_block<64>, sum_block<16>, sum_block<1>>, dw_pixel};

}  // namespace
}  // namespace onebit
