// Float pooling windows (the engine ops `maxpool` and `avgpool`, ops/float_ops.cc),
// one entry point per instruction set (kernels/pool_impl.h compiled per ISA).
//
// One output pixel of NHWC data: x points at the input image's first value, rs is
// its row stride in floats (w * C), the window is rows [y0, y1) and columns
// [x0, x1) of the input (already clipped to it), d receives C values.
#pragma once

namespace onebit {

// d[c] = the max over the window of x[., ., c], as torch.max_pool2d: a NaN in the
// window gives NaN, an empty window -inf.
using PoolWindowFn = void (*)(const float* x, long rs, int C, int y0, int y1, int x0, int x1, float* d);

// The same max over a window whose rows lie anywhere (a fused pool's conv rows in a
// ring buffer): row iy of the window (iy < nrows) at rows[iy], pixels C floats apart;
// the same comparisons in the same order as PoolWindowFn (rows outer, columns inner),
// so the same bits.
using PoolRowsFn = void (*)(const float* const* rows, int nrows, int C, int x0, int x1, float* d);

// One output pixel of a depthwise conv (ops/float_ops.cc depthwise_conv2d_f32):
// d[c] = bias[c] (+0 without a bias), then d[c] += xs[t][c] * ws[t][c] for the taps
// t < ntaps in order (those inside the input), the product and the sum each rounded.
using DwPixelFn = void (*)(const float* const* xs, const float* const* ws, int ntaps, const float* bias, int C,
                           float* d);

// maxpool: as above. sum: d[c] = the sum over the window, added row by row, left to
// right, each addition rounded in fp32 (avgpool scales it afterwards).
struct PoolKernels {
  PoolWindowFn max;
  PoolRowsFn max_rows;
  PoolWindowFn sum;
  DwPixelFn dwconv;
};

const PoolKernels& pool_kernels_portable();  // also NEON (baseline)
const PoolKernels& pool_kernels_avx2();
const PoolKernels& pool_kernels_avx512();

}  // namespace onebit
