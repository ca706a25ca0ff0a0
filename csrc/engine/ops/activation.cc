// activation: y = f(x) element by element, f one of the smooth activations of
// torch.nn (reference.py _op_activation):
//   gelu         x/2 * (1 + erf(x/sqrt 2))                  (nn.GELU(), F.gelu)
//   gelu_tanh    x/2 * (1 + tanh(sqrt(2/pi)(x + 0.044715x^3))) (approximate='tanh')
//   silu         x * sigmoid(x)                             (nn.SiLU, F.silu)
//   hardswish    x * min(max(x + 3, 0), 6) / 6              (nn.Hardswish)
//   hardsigmoid  min(max(x + 3, 0), 6) / 6                  (nn.Hardsigmoid)
//   sigmoid      1 / (1 + exp(-x))                          (nn.Sigmoid, torch.sigmoid)
//   tanh                                                    (nn.Tanh, torch.tanh)
// One op with a `kind` attribute rather than seven ops: they share the schema
// (one float input, same shape, in place), the kernel and the math below.
//
// The math is branch-free float code (selects, no libm calls) so the loop
// vectorizes in every ISA's build; it is written for relative accuracy of a
// few float ulps everywhere, tails included (erfc and expm1 forms, never
// 1 - erf or 1 - exp of a number near 1). NaN in gives NaN out.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "engine/ops/common.h"
#include "runtime/threadpool.h"

namespace onebit::ops {
namespace {

inline float from_bits(int32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

// 2^n * e^r split of x: n = round(x / ln 2), r = x - n ln 2 (Cody-Waite), for x
// clamped to [-87.3, 88.3] (NaN is clamped too: callers put NaN back).
inline void exp_split(float x, float& n, float& r) {
  x = x > -87.3f ? x : -87.3f;
  x = x < 88.3f ? x : 88.3f;
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

inline float exp_f(float x) {  // e^x, x <= 88.3 (smaller results are clamped to ~1.2e-38)
  float n, r;
  exp_split(x, n, r);
  const float scale = from_bits((static_cast<int32_t>(n) + 127) << 23);
  return (expm1_small(r) + 1.0f) * scale;
}

inline float expm1_f(float x) {  // e^x - 1 with full relative accuracy near 0
  float n, r;
  exp_split(x, n, r);
  const float scale = from_bits((static_cast<int32_t>(n) + 127) << 23);
  return expm1_small(r) * scale + (scale - 1.0f);
}

inline float sigmoid_f(float x) {
  const float ax = x < 0.0f ? -x : x;
  const float e = exp_f(-ax), s = 1.0f / (1.0f + e), es = e * s;
  return x >= 0.0f ? s : es;
}

inline float tanh_f(float x) {
  const float ax = x < 0.0f ? -x : x;
  const float m = expm1_f(-2.0f * ax);  // in (-1, 0]
  const float t = -m / (2.0f + m), nt = -t;
  return x < 0.0f ? nt : t;
}

// erfc(a) for a >= 0: exp(-a^2) * p(t) / (1 + 2a) with t = (a - 2) / (a + 2) and p
// fitted (weighted least squares on Chebyshev nodes, a in [0, 12], against
// mpmath) to erfc(a) exp(a^2) (1 + 2a); relative error of p in float about
// 1.3e-7. Zero past a = 9.3, where erfc is below the smallest normal float.
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
  return a > 9.3f ? 0.0f : v;
}

inline float keep_nan(float x, float y) { return x != x ? x : y; }

struct Gelu {
  float operator()(float x) const {
    const float z = x * 0.707106781f, a = z < 0.0f ? -z : z;
    const float c = erfc_pos(a), c2 = 2.0f - c;  // erfc(|z|), erfc(-|z|) = 2 - erfc(|z|)
    return keep_nan(x, 0.5f * x * (x < 0.0f ? c : c2));
  }
};
struct GeluTanh {  // x/2 (1 + tanh u) = x sigmoid(2u)
  float operator()(float x) const {
    const float u = 0.797884561f * (x + 0.044715f * (x * x * x));
    return keep_nan(x, x * sigmoid_f(2.0f * u));
  }
};
struct Silu {
  float operator()(float x) const { return keep_nan(x, x * sigmoid_f(x)); }
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

// Runs f over the whole value in blocks of kBlock: each block is copied to a
// local buffer, transformed there (no aliasing, so the loop vectorizes) and
// copied back, which keeps the kernel correct in place (out == in). Blocks are
// spread over the pool for large values.
template <class F>
class ActivationKernel final : public OpKernel {
 public:
  explicit ActivationKernel(ValueInfo v) : v_(v) {}
  void run(const RunArgs& a) const override {
    const size_t total = rows_of(a.n, v_) * static_cast<size_t>(v_.c);
    const auto* x = static_cast<const float*>(a.in[0]);
    auto* y = static_cast<float*>(a.out);
    const size_t per_task = size_t{1} << 14;
    const int tasks = static_cast<int>((total + per_task - 1) / per_task);
    auto work = [&](int t) {
      const size_t end = std::min(total, (static_cast<size_t>(t) + 1) * per_task);
      float buf[kBlock];
      for (size_t i = static_cast<size_t>(t) * per_task; i < end; i += kBlock) {
        const size_t m = std::min(kBlock, end - i);
        std::memcpy(buf, x + i, m * sizeof(float));
        if (m < kBlock) std::memset(buf + m, 0, (kBlock - m) * sizeof(float));
        for (size_t j = 0; j < kBlock; ++j) buf[j] = F()(buf[j]);  // a full block: no tail loop
        std::memcpy(y + i, buf, m * sizeof(float));
      }
    };
    if (tasks <= 1) {
      if (tasks == 1) work(0);
    } else {
      parallel_for(tasks, a.nthreads, work);
    }
  }

 private:
  static constexpr size_t kBlock = 256;
  ValueInfo v_;
};

template <class F>
std::unique_ptr<OpKernel> make(BuildCtx& ctx) {
  return std::make_unique<ActivationKernel<F>>(ctx.input());
}

std::unique_ptr<OpKernel> build(BuildCtx& ctx) {
  ctx.require_input(0, DType::kF32, 0);
  ctx.out = ctx.input();
  const std::string kind = ctx.attr_enum("kind");
  if (kind == "gelu") return make<Gelu>(ctx);
  if (kind == "gelu_tanh") return make<GeluTanh>(ctx);
  if (kind == "silu") return make<Silu>(ctx);
  if (kind == "hardswish") return make<Hardswish>(ctx);
  if (kind == "hardsigmoid") return make<Hardsigmoid>(ctx);
  if (kind == "sigmoid") return make<Sigmoid>(ctx);
  if (kind == "tanh") return make<Tanh>(ctx);
  ctx.fail("unknown activation kind '" + kind + "'");  // the schema's enum check runs first
}

}  // namespace

extern const OpDef kOpActivation = {
    "activation",
    "Element-wise y = f(x) for f = kind: gelu (erf form), gelu_tanh, silu, hardswish, hardsigmoid, "
    "sigmoid, tanh.",
    1,
    1,
    {Enum("kind", "gelu|gelu_tanh|silu|hardswish|hardsigmoid|sigmoid|tanh", nullptr, "the function")},
    {},
    true,
    build};

}  // namespace onebit::ops
