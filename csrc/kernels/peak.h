// Register-resident peak loops (benchmarks): operations per second, 1 thread.
#pragma once

namespace onebit {

// vpxorq + vpopcntq + vpaddq chains on zmm registers: binary MACs/s
// (512 per triple). 0 if the CPU lacks AVX-512 VPOPCNTDQ.
double peak_binary_macs_avx512(double seconds);
// vfmadd231ps on zmm registers, 12 independent chains: fp32 FMAs/s.
double peak_fp32_fmas_avx512(double seconds);

}  // namespace onebit
