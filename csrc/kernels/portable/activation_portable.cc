// The activation kernels (kernels/activation_impl.h) compiled for the baseline instruction set (SSE2 on x86-64, NEON on aarch64).
#include "kernels/activation_impl.h"

namespace onebit {
void activation_f32_portable(ActKind kind, const float* x, float* y, size_t n) { activation_f32_impl(kind, x, y, n); }
}  // namespace onebit
