// Element-wise float activations, one entry point per instruction set (the
// engine op `activation` picks one per call from active_isa()). y may be x.
#pragma once
#include <cstddef>

namespace onebit {

enum class ActKind { kGelu, kGeluTanh, kSilu, kHardswish, kHardsigmoid, kSigmoid, kTanh };

void activation_f32_portable(ActKind kind, const float* x, float* y, size_t n);  // also NEON (baseline)
void activation_f32_avx2(ActKind kind, const float* x, float* y, size_t n);
void activation_f32_avx512(ActKind kind, const float* x, float* y, size_t n);

}  // namespace onebit
