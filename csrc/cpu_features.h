// CPU feature detection, read once at first use: cpuid (x86), getauxval(AT_HWCAP*)
// (aarch64 Linux).
#pragma once

#include <string>

namespace onebit {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512vpopcntdq = false;
  bool avx512bitalg = false;
  bool avx512vnni = false;
  bool avx512bf16 = false;  // VCVTNE2PS2BF16 / VDPBF16PS (cpuid leaf 7 subleaf 1, EAX bit 5)
  // AMX (cpuid leaf 7 EDX bits 24, 25, 22), true only where the OS enables the
  // tile state (XCR0 bits 17 and 18) and, on Linux, grants this process the
  // tile data (arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA), asked once
  // at detection): without that permission the first tile instruction faults.
  bool amx_tile = false;
  bool amx_int8 = false;
  bool amx_bf16 = false;
  // aarch64: Advanced SIMD is architectural (always true there); dot product
  // (ARMv8.2 UDOT/SDOT) and i8mm (ARMv8.6 USMMLA) are detected, not used
  // (docs/performance.md, "aarch64": they would not shorten the binary kernel).
  bool neon = false;
  bool dotprod = false;
  bool i8mm = false;
};

// Features of the CPU this process runs on (OS support for the wide registers
// included, via xgetbv).
const CpuFeatures& cpu_features();

// A short human-readable description, e.g. "avx2 fma avx512f avx512vpopcntdq".
std::string cpu_features_string();

}  // namespace onebit
