// Per-channel element-wise float ops (the engine ops affine, prelu, relu, clip and scale),
// one entry point per instruction set: kernels/chanwise_impl.h compiled per ISA, chosen
// from active_isa() per call.
//
// They were lambdas in the ops' own files, built for the baseline ISA (4-wide SSE2), and
// on data that sits in L2 that width bounded them: reactnet_a's 52 affines and 26 prelus
// took about 2.7 of its 11.2 ms on one thread (benchmarks/threads.py --per-op).
#pragma once
#include <cstddef>
#include <cstdint>

namespace onebit {

enum class ChanOp : uint8_t {
  kAffine,  // y = x * a[i] + b[i], two roundings (BatchNorm, LearnableBias)
  kPrelu,   // y = x where x >= 0 or NaN, else x * a[i]
  kRelu,    // y = x where x > 0 or NaN, else +0
  kClip,    // y = lo where x < lo, hi where x > hi, else x (NaN stays)
  kScale,   // y = x * lo
  // A float conv/dense layer's output stage (ops/float_ops.cc): t = x + b[i], then
  kBias,       // y = t
  kBiasRelu,   // y = 0 where t < 0, else t (-0 and NaN stay)
  kBiasPrelu,  // y = t * a[i] where t < 0, else t
  // The ops the exporter fused into a conv (ops/post_ops.h), in their order, one
  // rounding each: without a: y = relu?(x + res[r * ldr + i]); with a (scale)
  // and b (shift): y = relu?(x) * a[i] + b[i] (+ res[r * ldr + i]); res may be null.
  kPost,
};

struct ChanParams {
  ChanOp op = ChanOp::kRelu;
  const float* a = nullptr;  // per channel
  const float* b = nullptr;
  float lo = 0, hi = 0;
  // kPost: the residual rows (null: none) and whether relu comes first
  const float* res = nullptr;
  size_t ldr = 0;
  bool relu = false;
};

// y[r * ldy + i] = op(x[r * ldx + i]) for r < rows, i in [c0, c1) (i indexes the
// per-channel parameters); x may be y with ldx = ldy. The same bits on every ISA.
using ChanFn = void (*)(const ChanParams& p, const float* x, size_t ldx, float* y, size_t ldy, size_t rows,
                        int c0, int c1);

ChanFn chanwise_portable();  // also NEON (baseline)
ChanFn chanwise_avx2();
ChanFn chanwise_avx512();
// The entry point of active_isa().
void chanwise(const ChanParams& p, const float* x, size_t ldx, float* y, size_t ldy, size_t rows, int c0, int c1);

}  // namespace onebit
