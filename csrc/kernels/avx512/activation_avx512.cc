// The activation kernels (kernels/activation_impl.h) compiled for AVX-512 (16 lanes).
#include "kernels/activation_impl.h"

namespace onebit {
void activation_f32_avx512(ActKind kind, const float* x, float* y, size_t n) { activation_f32_impl(kind, x, y, n); }
}  // namespace onebit
