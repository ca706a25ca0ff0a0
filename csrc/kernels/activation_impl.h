// Element-wise float activations (the engine op `activation`, engine/ops/activation.cc):
// the math and the loop, included by one translation unit per instruction
// set (kernels/<isa>/activation_<isa>.cc), each compiled with its own flags, so
// the loops are vectorized 4 (SSE2, NEON), 8 (AVX2) or 16 (AVX-512) lanes wide.
// Everything here has internal linkage (an anonymous namespace): each unit keeps
// its own copy and the linker cannot merge an AVX-512 copy into the others.
//
// The math is branch-free float code (selects, no libm calls) in forms without
// cancellation in the tails (erfc and expm1, never 1 - erf or 1 - exp of a
// number near 1). Relative error against float64 (reference.py), all x: silu,
// sigmoid, tanh, hard* below 3e-7; gelu and gelu_tanh about 1e-6 where
// |y| >= 1e-3, and below 1e-6 absolute in their negative tails, where they
// round as PyTorch does (see Gelu). NaN in gives NaN out. Only
// IEEE operations with -ffp-contract=off, so every ISA gives the same bits;
// -fno-trapping-math (set for these units) lets GCC if-convert the selects.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/activation.h"

namespace onebit {
namespace {

inline float from_bits(int32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

// 2^n * e^r split of x: n = round(x / ln 2), r = x - n ln 2 (Cody-Waite), for x
// clamped to [lo, 88.7] (NaN is clamped too: callers put NaN back).
inline void exp_split(float x, float lo, float& n, float& r) {
  x = x > lo ? x : lo;
  x = x < 88.7f ? x : 88.7f;
  const float shifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  n = (x * 1.44269504f + shifter) - shifter;
  r = x - n * 0.693359375f;  // ln 2 high part: n * it is exact
  r = r - n * -2.12194440e-4f;
}

// e^r - 1 for |r| <= ln2 / 2: Taylor to r^8 (truncation below 1e-9 relative).
inline float expm1_small(float r) {
  float p = 2.48015873e-5f;
  p = p * r + 1.98412698e-4f;
  p = p * r + 1.38888889e-3f;
  p = p * r + 8.33333333e-3f;
  p = p * r + 4.16666667e-2f;
  p = p * r + 1.66666667e-1f;
  p = p * r + 0.5f;
  return r + (r * r) * p;
}

inline float pow2i(int32_t n) { return from_bits((n + 127) << 23); }  // 2^n for n in [-126, 127]

// e^x for any x: 2^n applied as two factors 2^(n/2) 2^(n - n/2), so results in the
// subnormal range round as they should and e^x is exactly 0 below -105 (where e^x
// is under half the smallest subnormal).
inline float exp_f(float x) {
  float n, r;
  exp_split(x, -105.0f, n, r);
  const int32_t ni = static_cast<int32_t>(n), half = ni / 2;
  return ((expm1_small(r) + 1.0f) * pow2i(half)) * pow2i(ni - half);
}

// e^x - 1 for x <= 0 with full relative accuracy near 0 (-1 below -87).
inline float expm1_neg(float x) {
  float n, r;
  exp_split(x, -87.0f, n, r);
  const float scale = pow2i(static_cast<int32_t>(n));
  return expm1_small(r) * scale + (scale - 1.0f);
}

inline float sigmoid_f(float x) {
  const float ax = x < 0.0f ? -x : x;
  const float e = exp_f(-ax), s = 1.0f / (1.0f + e), es = e * s;
  return x >= 0.0f ? s : es;
}

// tanh |x| = -m / (2 + m) with m = e^(-2|x|) - 1 near 0 (no cancellation), and
// 1 - 2e / (1 + e) with e = e^(-2|x|) from |x| = 0.55 on (t >= 0.5: one rounding
// of 1 - d, so near +-1 the result is the correctly rounded float, as PyTorch's
// scalar tanh gives it; m ~ -1 would lose the e^(-2|x|) below 2^-24 there).
inline float tanh_f(float x) {
  const float ax = x < 0.0f ? -x : x;
  const float m = expm1_neg(-2.0f * ax);  // in [-1, 0]
  const float e = exp_f(-2.0f * ax);
  const float small = -m / (2.0f + m), large = 1.0f - (e + e) / (1.0f + e);
  const float t = ax < 0.55f ? small : large, nt = -t;
  return x < 0.0f ? nt : t;
}

// erfc(a) for a >= 0: exp(-a^2) * p(t) / (1 + 2a) with t = (a - 2) / (a + 2) and p
// fitted (weighted least squares on Chebyshev nodes, a in [0, 12], against
// mpmath) to erfc(a) exp(a^2) (1 + 2a); relative error of p in float about
// 1.3e-7. Zero past a = 10.5, where erfc(a) < 1e-49 rounds to 0 anyway (and
// a = inf would give 0 * NaN).
inline float erfc_pos(float a) {
  const float t = (a - 2.0f) / (a + 2.0f);
  float p = 8.337153e-05f;
  p = p * t + 0.00017774553f;
  p = p * t + -0.00040019132f;
  p = p * t + -0.0014292902f;
  p = p * t + 0.0012493782f;
  p = p * t + 0.008712057f;
  p = p * t + -0.008029432f;
  p = p * t + -0.05421824f;
  p = p * t + 0.16405085f;
  p = p * t + -0.1660305f;
  p = p * t + -0.09276381f;
  p = p * t + 1.2769784f;
  const float v = exp_f(-(a * a)) * p / (1.0f + 2.0f * a);
  return a > 10.5f ? 0.0f : v;
}

inline float keep_nan(float x, float y) { return x != x ? x : y; }

// The GELUs follow PyTorch's float32 formulas, x/2 (1 + erf(x / sqrt 2)) and
// x/2 (1 + tanh(u)), with erf and tanh rounded to float32 before the 1 + ...:
// for x below about -5.54 (tanh form: -5.06) 1 + erf is exactly 0 there, and so
// is the result (-0, whose sign is +1), where the true value is a tiny negative
// number. A sign after a GELU then sees what the model saw in training.
struct Gelu {
  float operator()(float x) const {
    const float z = x * 0.707106781f, a = z < 0.0f ? -z : z;
    const float e = 1.0f - erfc_pos(a), erf = z < 0.0f ? -e : e;  // erf(z) in float32
    return keep_nan(x, (x * 0.5f) * (1.0f + erf));
  }
};
struct GeluTanh {
  float operator()(float x) const {
    const float u = 0.797884561f * (x + 0.044715f * (x * x * x));
    return keep_nan(x, (0.5f * x) * (1.0f + tanh_f(u)));
  }
};
struct Silu {  // x * sigmoid(x); -0 below -ln(FLT_MAX), where PyTorch's x / (1 + exp(-x)) is x / inf
  float operator()(float x) const {
    const float y = x * sigmoid_f(x), zero = x * 0.0f;
    return keep_nan(x, x < -88.7228394f ? zero : y);
  }
};
struct Hardsigmoid {  // as torch: min(max(x + 3, 0), 6) / 6 (NaN stays NaN)
  float operator()(float x) const {
    float m = x + 3.0f;
    m = m < 0.0f ? 0.0f : m;
    m = m > 6.0f ? 6.0f : m;
    return m / 6.0f;
  }
};
struct Hardswish {  // as torch: x * min(max(x + 3, 0), 6) / 6
  float operator()(float x) const {
    float m = x + 3.0f;
    m = m < 0.0f ? 0.0f : m;
    m = m > 6.0f ? 6.0f : m;
    return x * m / 6.0f;
  }
};
struct Sigmoid {
  float operator()(float x) const { return keep_nan(x, sigmoid_f(x)); }
};
struct Tanh {
  float operator()(float x) const { return keep_nan(x, tanh_f(x)); }
};

template <class F>
void activation_loop(const float* x, float* y, size_t n) {
  // In place (the executor's usual case) through one pointer, so there is nothing to
  // alias; otherwise the buffers are disjoint and GCC's run-time alias check passes.
  if (x == y) {
    for (size_t i = 0; i < n; ++i) y[i] = F()(y[i]);
  } else {
    for (size_t i = 0; i < n; ++i) y[i] = F()(x[i]);
  }
}

void activation_f32_impl(ActKind kind, const float* x, float* y, size_t n) {
  switch (kind) {
    case ActKind::kGelu: return activation_loop<Gelu>(x, y, n);
    case ActKind::kGeluTanh: return activation_loop<GeluTanh>(x, y, n);
    case ActKind::kSilu: return activation_loop<Silu>(x, y, n);
    case ActKind::kHardswish: return activation_loop<Hardswish>(x, y, n);
    case ActKind::kHardsigmoid: return activation_loop<Hardsigmoid>(x, y, n);
    case ActKind::kSigmoid: return activation_loop<Sigmoid>(x, y, n);
    case ActKind::kTanh: return activation_loop<Tanh>(x, y, n);
  }
}

}  // namespace
}  // namespace onebit
