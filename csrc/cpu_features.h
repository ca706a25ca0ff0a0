// CPU feature detection, read once from cpuid (x86) at first use.
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
};

// Features of the CPU this process runs on (OS support for the wide registers
// included, via xgetbv).
const CpuFeatures& cpu_features();

// A short human-readable description, e.g. "avx2 fma avx512f avx512vpopcntdq".
std::string cpu_features_string();

}  // namespace onebit
