// Run-time choice of the instruction set the kernels use.
//
// The best path the CPU supports is chosen once (x86: AVX-512 with VPOPCNTDQ
// -> AVX2 -> portable C++; aarch64: NEON -> portable).
// ONEBIT_ISA=avx512|avx2|neon|portable|reference forces a path (tests use
// this); forcing a path the CPU lacks is an error, not a silent fallback.
#pragma once

#include <string>

namespace onebit {

enum class Isa { kReference = 0, kPortable = 1, kAvx2 = 2, kAvx512 = 3, kNeon = 4 };

const char* isa_name(Isa isa);
// Parses "reference", "portable", "avx2", "avx512", "neon"; throws std::invalid_argument.
Isa parse_isa(const std::string& name);
bool isa_supported(Isa isa);
// The best supported instruction set, ignoring ONEBIT_ISA.
Isa best_isa();
// The instruction set in force: ONEBIT_ISA if set (validated), else best_isa().
Isa active_isa();
// Override for the rest of the process (tests, benchmarks); throws if unsupported.
void set_active_isa(Isa isa);

}  // namespace onebit
