// Run-time choice of the instruction set the kernels use.
//
// The best path the CPU supports is chosen once (x86: AVX-512 with VPOPCNTDQ
// -> AVX2 -> portable C++; aarch64: NEON -> portable).
// ONEBIT_ISA=amx|avx512|avx2|neon|portable|reference forces a path (tests use
// this); forcing a path the CPU lacks is an error, not a silent fallback.
// "amx" is the avx512 path plus the AMX tile kernels where a layer has one
// (the int8 float layers). It is opt-in: on the AMX CPU measured, the tile
// kernel sped up the int8 convolutions themselves but the models as a whole
// ran slower (docs/performance.md, "AMX"), so best_isa() never picks it.
#pragma once

#include <string>

namespace onebit {

enum class Isa { kReference = 0, kPortable = 1, kAvx2 = 2, kAvx512 = 3, kNeon = 4, kAmx = 5 };

// The vector path an ISA's kernels without a tile form run on: amx -> avx512,
// every other ISA itself.
constexpr Isa simd_isa(Isa isa) { return isa == Isa::kAmx ? Isa::kAvx512 : isa; }

const char* isa_name(Isa isa);
// Parses "reference", "portable", "avx2", "avx512", "amx", "neon"; throws std::invalid_argument.
Isa parse_isa(const std::string& name);
bool isa_supported(Isa isa);
// The best supported instruction set, ignoring ONEBIT_ISA.
Isa best_isa();
// The instruction set in force: ONEBIT_ISA if set (validated), else best_isa().
Isa active_isa();
// Override for the rest of the process (tests, benchmarks); throws if unsupported.
void set_active_isa(Isa isa);
// simd_isa(active_isa()): which vector kernels run.
inline Isa active_simd_isa() { return simd_isa(active_isa()); }

}  // namespace onebit
