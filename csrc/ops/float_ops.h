// Float operators around the binary layers, and binary max-pool.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/bgemm.h"
#include "kernels/i8gemm.h"
#include "pack/pack.h"

namespace onebit {

// fp32 weights (N, K), row n at w + n * ldw, packed for the GEMM micro-kernel of the
// ISA active when they were packed ([kb][panel][kc][NR], zero-padded columns): once at
// load, instead of at every call. A call under another ISA (set_isa after the load)
// packs the raw weights again for itself; the packing never changes a result.
struct F32Weights {
  const char* kernel = nullptr;  // the SgemmConfig name (sgemm_kernel_name()) packed for
  avector<float> data;
  int npanels = 0, nkb = 0;
};
F32Weights pack_weights_f32(int N, int K, const float* w, long ldw);
// Bytes pack_weights_f32 holds for (N, K) under the active ISA.
int64_t packed_f32_bytes(int N, int K);

// C[M x N] = A[M x K] * B[K x N] (+ bias[n]) then activation (relu / prelu
// with per-column slope). B(k, n) = b[k * b_rs + n * b_cs], so a (N, K) weight
// matrix is used as-is with b_rs = 1, b_cs = K.
// residual / post_act: then y = post_act(y + residual[m * ldc + n]) (ops/post_ops.h), on
// each chunk of rows as it is finished.
// packed: b packed at load (pack_weights_f32 of the (N, K) matrix), or null.
void sgemm(int M, int N, int K, const float* a, long lda, const float* b, long b_rs, long b_cs,
           float* c, long ldc, const float* bias, Act act, const float* slope, int nthreads,
           const float* residual = nullptr, Act post_act = Act::kNone, const F32Weights* packed = nullptr);

const char* sgemm_kernel_name();

struct PoolParams {
  int n, h, w, c;
  int kh, kw, sh, sw, pt, pl, pb, pr;
  int oh, ow;
};

// A max-pool computed by conv2d_f32 from its output (the model fuses a float
// maxpool into the conv that produces its input): p its window over the conv's
// output (p.n included), out its output. The same values as maxpool_f32. Where
// conv2d_f32 reads its kernel rows in place, each row of the pool's output is
// pooled as soon as its window's conv rows are done (still in cache); elsewhere
// the pool runs after the conv.
constexpr int kMaxFusedPoolRows = 16;  // the largest window height (p.kh) fused
struct ConvMaxpool {
  PoolParams p;
  float* out;
  long ldo = 0;  // floats from one pooled pixel to the next (0: p.c; wider: a slice of a concat)
};

// Float conv, NHWC input, OHWI weights (groups = 1), zero padding.
// residual / post_act as for sgemm (residual [n][oh][ow][oc]).
// ldo: floats from one output pixel to the next (0: oc; wider only without a residual).
// The same for conv2d_bf16 and conv2d_int8.
// packed: w packed at load (pack_weights_f32(oc, kh * kw * C, w, kh * kw * C)), or null.
// pool: also the max-pool of the output (with ldo = oc), or null.
void conv2d_f32(const float* x, const float* w, const float* bias, const PoolParams& p, int oc,
                int dh, int dw, Act act, const float* slope, float* out, int nthreads,
                const float* residual = nullptr, Act post_act = Act::kNone, long ldo = 0,
                const F32Weights* packed = nullptr, const ConvMaxpool* pool = nullptr);

// Rows [r0, r1) of a max-pool's output (rows counted over p.n * p.oh), as maxpool_f32.
void maxpool_f32_rows(const float* x, const PoolParams& p, float* out, long r0, long r1, long ldo = 0);

// Bytes of the zero-padded input copy a conv2d_f32 call with these parameters makes
// (the stems whose kernel rows are read in place; 0 for the others).
int64_t conv2d_f32_pad_copy_bytes(const PoolParams& p, int dw);

// Depthwise float conv (groups = channels, one filter per channel), NHWC,
// weights [kh][kw][c], zero padding.
void depthwise_conv2d_f32(const float* x, const float* w, const float* bias, const PoolParams& p,
                          int dh, int dw, Act act, const float* slope, float* out, int nthreads);

// ---- bf16 float layers (load option float_precision = "bf16" / "bf16_emulated") ----
//
// Weights are rounded to bf16 and packed once (at load); each call rounds the
// rows of A to bf16 while it forms them (the im2col chunk of a convolution)
// and sums the products in fp32 as kernels/bf16gemm.h defines. `emulated`
// selects the portable emulation; otherwise the AVX512-BF16 kernel runs when
// the avx512 path is in force and the CPU has AVX512_BF16, and the emulation
// (the same bits) under any other path (ONEBIT_ISA=avx2, portable, ...).
struct Bf16Weights {
  avector<uint32_t> data;  // panels of kBf16NR columns, see kernels/bf16gemm.h
  int n = 0, k = 0, kp = 0, npanels = 0;
  // k = 2 K: [W | W], and each input value x enters as bf16(x) (the first K) and
  // bf16(x - bf16(x)) (the last K), ~16 significant bits (for +-1 weights, which
  // are then as exact as the input: the layer is nearly fp32 at twice the MACs).
  bool split = false;
  size_t bytes() const { return data.size() * sizeof(uint32_t); }
};

// W(n, k) = w[n * ldw + k] for n < N, k < K: (N, K) dense weights, OHWI filters
// as (O, kh * kw * C) with ldw = kh * kw * C. split: see Bf16Weights::split.
Bf16Weights pack_weights_bf16(int N, int K, const float* w, long ldw, bool split = false);

// C[M x N] = (bf16(A[M x K]) * bf16(W)^T) (* scale[n]) (+ bias[n]), A(m, k) =
// a[m * lda + k]; scale and bias may be null. (scale: the multiplier of +-1
// weights, applied in fp32 so that the weights stay exact.)
// residual / post_act as for sgemm (applied to each chunk of rows as it is finished).
void gemm_bf16(int M, const float* a, long lda, const Bf16Weights& w, float* c, long ldc,
               const float* scale, const float* bias, bool emulated, int nthreads,
               const float* residual = nullptr, Act post_act = Act::kNone);

// Float conv through the bf16 GEMM: NHWC input, the packed (O, kh*kw*C) filters
// (groups = 1), zero padding; scale and bias as gemm_bf16's.
void conv2d_bf16(const float* x, const Bf16Weights& w, const float* scale, const float* bias,
                 const PoolParams& p, int dh, int dw, float* out, bool emulated, int nthreads,
                 const float* residual = nullptr, Act post_act = Act::kNone, long ldo = 0);

// Bytes a gemm_bf16 call of M rows allocates on nthreads threads (each task
// running at once holds its chunk of bf16 rows), and a conv2d_bf16 call (p.n
// included; the same, plus the bf16 copy of the input unless it is a 1x1
// stride-1 unpadded conv).
int64_t bf16_transient_bytes(int64_t M, int N, int K, int nthreads);
int64_t conv2d_bf16_transient_bytes(const PoolParams& p, int N, bool split, int nthreads);

// The micro-kernel a call would use now ("bf16gemm_6x32_avx512bf16" or
// "bf16gemm_4x32_portable").
const char* bf16gemm_kernel_name(bool emulated);

// ---- int8 float layers (load option float_precision = "int8" / "int8_emulated") ----
//
// Weights quantized per output channel (symmetric int8) once at load; each call
// quantizes the input per sample (u8 with a zero point) and sums the integer
// products exactly (kernels/i8gemm.h). `emulated` as for bf16: the AMX-INT8
// kernel on the amx path, the AVX512-VNNI kernels where the avx512 path is in
// force and the CPU has AVX512_VNNI, else the portable emulation, all with the
// same bits.
struct Int8Weights {
  avector<uint32_t> data;      // panels of kI8NR columns, see kernels/i8gemm.h
  std::vector<float> scale;    // per column: s_w
  std::vector<int32_t> wsum;   // per column: sum_k w_q
  int n = 0, k = 0, kq = 0, npanels = 0;
  int kq_pad = 0;  // kq rounded up to kI8KB: the groups per panel and the words per A row
  // > 0: K is K / run kernel rows of `run` values, each padded with zero weights to
  // run_words words (kernels/i8gemm.h, "Kernel rows"), so that a conv2d_int8 reads
  // its rows of A in place from the quantized input.
  int run = 0, run_words = 0;
  size_t bytes() const { return data.size() * 4 + scale.size() * 4 + wsum.size() * 4; }
};

// W(n, k) = w[n * ldw + k]. pm1_scale non-null: the weights are +-1 and
// pm1_scale[n] their multiplier (w_q = +-1, s_w = the multiplier); else w_q =
// round(w / s_w) with s_w = max_k |W(n, k)| / 127. K must be <= kInt8MaxK.
// run > 0 (a divisor of K): the kernel-row layout, for conv2d_int8 with that
// conv's kw * C as run and no dilation along x (int8_conv_run says when).
Int8Weights pack_weights_int8(int N, int K, const float* w, long ldw, const float* pm1_scale, int run = 0);

// The `run` of pack_weights_int8 for a conv2d_int8 with these parameters: kw * C
// where its rows can be read in place (groups = 1, no dilation along x, not a
// pointwise conv) and the padding of its kernel rows to whole words adds at most
// a third to K; else 0 (rows of A formed per call).
int int8_conv_run(const PoolParams& p, int dw);

// C[M x N] = dequantized(q(A) * W_q^T) + bias[n], each row of A quantized on its own.
void gemm_int8(int M, const float* a, long lda, const Int8Weights& w, float* c, long ldc,
               const float* bias, bool emulated, int nthreads, const float* residual = nullptr,
               Act post_act = Act::kNone);

// Float conv through the int8 GEMM (NHWC, groups = 1, zero padding), each
// sample's input quantized on its own. pool: as conv2d_f32's (on the kernel-row
// path each pooled row as soon as its conv rows are done, elsewhere after the conv).
void conv2d_int8(const float* x, const Int8Weights& w, const float* bias, const PoolParams& p, int dh,
                 int dw, float* out, bool emulated, int nthreads, const float* residual = nullptr,
                 Act post_act = Act::kNone, long ldo = 0, const ConvMaxpool* pool = nullptr);

// Transient bytes of a gemm_int8 call of M rows, and of a conv2d_int8 call (p.n included).
int64_t int8_transient_bytes(int64_t M, int N, int K, int nthreads);
// run: the weights' Int8Weights::run.
int64_t conv2d_int8_transient_bytes(const PoolParams& p, int N, int run, int nthreads);

const char* i8gemm_kernel_name(bool emulated);

// Max of +-1 values on packed bits: AND of the sign bits (bit set = -1);
// padded positions are ignored.
void maxpool_packed(const uint64_t* x, const PoolParams& p, uint64_t* out, int nthreads);
// ldo: floats from one output pixel to the next (0: p.c).
void maxpool_f32(const float* x, const PoolParams& p, float* out, int nthreads, long ldo = 0);
void avgpool_f32(const float* x, const PoolParams& p, bool count_include_pad, float* out,
                 int nthreads);

}  // namespace onebit
