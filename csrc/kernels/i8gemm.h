// int8 GEMM micro-kernels (the float conv2d and dense layers under the load
// option float_precision = "int8" / "int8_emulated").
//
// Quantization (ops/float_ops.cc does it; the kernels only multiply integers):
// * weights, once at load: per output channel symmetric, w_q = round(w / s_w)
//   in [-127, 127], s_w = max |w| / 127 (+-1 weights: w_q = +-1, s_w = their
//   multiplier);
// * activations, on every call: per sample (one image, a grouped conv's group
//   of channels of one image, one row of a dense layer), asymmetric u8: s_a = (max(x, 0) - min(x, 0)) / 255, zero point
//   zp = round(-min(x, 0) / s_a), x_q = clamp(round(x * (1 / s_a) + zp), 0, 255)
//   (each step an fp32 operation rounded to nearest even; NaN -> 0), so a
//   zero (the convolutions' padding) is exactly zp;
// * the output: y = float(sum_k x_q w_q - zp * sum_k w_q) * (s_a * s_w) + bias,
//   the integer sum exact (int32; K <= kInt8MaxK).
// The integer products are exact, so the AVX512-VNNI kernel (VPDPBUSD) and the
// portable emulation give the same bits (tests/csrc/test_kernels.cc).
//
// Layouts (shared by every kernel):
// * A: rows of kq = ceil(K / 4) 32-bit words, word q holding x_q[4q .. 4q+3]
//   (byte 0 first; K not a multiple of 4: zero bytes), then zero words up to
//   kq_pad = kq rounded up to kI8KB; lda counts words.
// * B: panels of kI8NR = 32 columns; for each group q of 4 k, 32 words (column
//   j: the 4 int8 w_q[4q .. 4q+3][j]), zero-padded columns and k, kq_pad groups
//   per panel (the AMX tiles read whole blocks of kI8KB groups; the other
//   kernels stop at kq). No K blocks: the int32 sums are exact.
// * Rows: a caller's A buffer holds whole blocks of kI8RowAlign rows (rows past
//   M are read by the AMX kernel and their results dropped).
// * Kernel rows (convolutions with no dilation along x, Int8Weights::run > 0):
//   K = kh runs of run = kw * C values, each run padded with zero weights to
//   run_words = ceil(run / 4) words, so kq = kh * run_words. A row of A is then
//   the kh runs of its input pixels, each starting a word boundary of the row:
//   the bytes between a run's end and the next word boundary are multiplied by
//   zero weights (any value gives the same sums). Such a row can be read in place
//   from the quantized NHWC input (I8A below), at any byte address.
#pragma once

#include <cstdint>

namespace onebit {

constexpr int kI8NR = 32;        // columns per packed panel
constexpr int kI8KB = 16;        // k groups (64 bytes) per AMX tile row
constexpr int kI8RowAlign = 32;  // rows per AMX block (two 16-row tiles)
constexpr int kI8Slack = 4;      // zero bytes after a quantized input whose rows are read in place
// The most k a layer may have for its int32 sums to be exact: |x_q w_q| <= 255 * 127
// and |zp * sum w_q| <= 255 * 127 * K, so 2 * 32385 * K < 2^31.
constexpr int kInt8MaxK = 32768;

// The output stage of a tile: row i has zero point zp[i] and scale sa[i]
// (its sample's), column j weight sum wsum[j], weight scale sw[j], bias[j]
// (bias may be null): C[i][j] = float(acc - zp[i] * wsum[j]) * (sa[i] * sw[j])
// (+ bias[j]), each operation an fp32 (int32 for the first) operation.
struct I8Epilogue {
  const int32_t* zp;
  const float* sa;
  const int32_t* wsum;
  const float* sw;
  const float* bias;
};

// C[mr x nr] = the output stage of A[mr x 4kq] * Bp[4kq x 32] (int32 sums); only
// the first nr columns are stored.
using I8UkernelFn = void (*)(int mr, int nr, int kq, const uint32_t* a, long lda, const uint32_t* bp,
                             float* c, long ldc, const I8Epilogue& e);

// dst[i] = clamp(round(src[i] * inv + zp), 0, 255) as in the contract above.
using I8QuantizeFn = void (*)(const float* src, uint8_t* dst, long n, float inv, float zp);

// lo = min(0, min x), hi = max(0, max x) over n values (NaNs skipped).
using I8RangeFn = void (*)(const float* x, long n, float* lo, float* hi);

// Copies `runs` runs of `run` bytes, run i from src[i] (null: `fill` bytes), to
// dst + i * dst_stride (an im2col row: one run per kernel row); the bytes
// between runs are not written.
using I8GatherFn = void (*)(const uint8_t* const* src, int runs, int run, uint8_t fill, uint8_t* dst,
                            long dst_stride);

// Rows of A read where they lie: row i's word q of segment s is the 4 bytes at
// p + i * ld + s * seg_stride + 4 * q (any alignment), for nseg segments of
// seg_words words (kq = nseg * seg_words): the kernel rows of a convolution's
// quantized input (nseg = kh), or rows formed in a buffer (nseg = 1).
struct I8A {
  const uint8_t* p;
  long ld;
  int nseg, seg_words;
  long seg_stride;
};

// C[mr x nr] = the output stage of A[mr x 4kq] * Bp[4kq x 32], A as I8A says.
using I8SegUkernelFn = void (*)(int mr, int nr, const I8A& a, const uint32_t* bp, float* c, long ldc,
                                const I8Epilogue& e);

// C[m x n] = the output stage of A[m x 4kq] * B[4kq x n], B's panels ldb words
// apart, e's arrays starting at row 0 / column 0: a whole block of a GEMM in
// one call (the AMX kernel configures its tiles once per call).
using I8BlockFn = void (*)(int m, int n, int kq, const uint32_t* a, long lda, const uint32_t* b, long ldb,
                           float* c, long ldc, const I8Epilogue& e);

// The same over two panels at once: C[mr x nr], nr <= 2 * kI8NR, the second panel
// panel_words words after the first (e's arrays covering all nr columns).
using I8Seg2UkernelFn = void (*)(int mr, int nr, const I8A& a, const uint32_t* bp, long panel_words, float* c,
                                 long ldc, const I8Epilogue& e);

struct I8GemmConfig {
  const char* name;
  int mr;  // rows per micro-tile (nr is always kI8NR)
  I8UkernelFn fn;  // null where `block` is set
  I8BlockFn block;  // null: the caller tiles the block with `fn`
  I8QuantizeFn quantize;
  I8RangeFn range;
  I8GatherFn gather;
  I8SegUkernelFn seg;  // null: A rows are always formed (the AMX kernel; the portable emulation, so
                       // that the formed rows of the kernel-row layout are tested on every CPU)
  I8Seg2UkernelFn seg2 = nullptr;  // two panels a call where seg reads in place (null: one at a time)
};

// The emulation in portable C++ (any CPU), the AVX512-VNNI kernels (only
// where cpu_features().avx512vnni; a stub elsewhere) and the AMX-INT8 block
// kernel, with the VNNI kernels' quantization and gather (only where
// cpu_features().amx_int8 and the amx path is in force; a stub elsewhere).
const I8GemmConfig& i8gemm_config_portable();
const I8GemmConfig& i8gemm_config_avx512vnni();
const I8GemmConfig& i8gemm_config_amx();

}  // namespace onebit
