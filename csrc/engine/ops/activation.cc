// activation: y = f(x) element by element, f one of the smooth activations of
// torch.nn (reference.py _op_activation):
//   gelu         x/2 * (1 + erf(x/sqrt 2))                     (nn.GELU(), F.gelu)
//   gelu_tanh    x/2 * (1 + tanh(sqrt(2/pi)(x + 0.044715x^3))) (approximate='tanh')
//   silu         x * sigmoid(x)                                (nn.SiLU, F.silu)
//   hardswish    x * min(max(x + 3, 0), 6) / 6                 (nn.Hardswish)
//   hardsigmoid  min(max(x + 3, 0), 6) / 6                     (nn.Hardsigmoid)
//   sigmoid      1 / (1 + exp(-x))                             (nn.Sigmoid, torch.sigmoid)
//   tanh                                                       (nn.Tanh, torch.tanh)
// One op with a `kind` attribute rather than seven ops: they share the schema
// (one float input, same shape, in place) and the kernel. The kernels are
// kernels/activation_impl.h, compiled once per instruction set.
#include <algorithm>

#include "dispatch.h"
#include "engine/ops/common.h"
#include "kernels/activation.h"
#include "runtime/threadpool.h"

namespace onebit::ops {
namespace {

class ActivationKernel final : public OpKernel {
 public:
  ActivationKernel(ValueInfo v, ActKind kind) : v_(v), kind_(kind) {}
  void run(const RunArgs& a) const override {
    const size_t total = rows_of(a.n, v_) * static_cast<size_t>(v_.c);
    const auto* x = static_cast<const float*>(a.in[0]);
    auto* y = static_cast<float*>(a.out);
    auto fn = activation_f32_portable;
    if (active_simd_isa() == Isa::kAvx512) fn = activation_f32_avx512;
    else if (active_simd_isa() == Isa::kAvx2) fn = activation_f32_avx2;
    // 16K floats per task (more for values above 2^34 floats: at most 2^20 tasks)
    const size_t per_task = std::max(size_t{1} << 14, (total + (size_t{1} << 20) - 1) >> 20);
    const int tasks = static_cast<int>((total + per_task - 1) / per_task);
    if (tasks <= 1) {
      fn(kind_, x, y, total);
      return;
    }
    parallel_for(tasks, a.nthreads, [&](int t) {
      const size_t begin = static_cast<size_t>(t) * per_task;
      fn(kind_, x + begin, y + begin, std::min(total - begin, per_task));
    });
  }

 private:
  ValueInfo v_;
  ActKind kind_;
};

std::unique_ptr<OpKernel> build(BuildCtx& ctx) {
  ctx.require_input(0, DType::kF32, 0);
  ctx.out = ctx.input();
  static const std::pair<const char*, ActKind> kinds[] = {
      {"gelu", ActKind::kGelu},           {"gelu_tanh", ActKind::kGeluTanh}, {"silu", ActKind::kSilu},
      {"hardswish", ActKind::kHardswish}, {"hardsigmoid", ActKind::kHardsigmoid},
      {"sigmoid", ActKind::kSigmoid},     {"tanh", ActKind::kTanh}};
  const std::string kind = ctx.attr_enum("kind");
  for (const auto& [name, k] : kinds)
    if (kind == name) return std::make_unique<ActivationKernel>(ctx.input(), k);
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
