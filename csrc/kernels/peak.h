// Register-resident peak loops (benchmarks): operations per second, 1 thread.
#pragma once

namespace onebit {

// vpxorq + vpopcntq + vpaddq chains on zmm registers: binary MACs/s
// (512 per triple). 0 if the CPU lacks AVX-512 VPOPCNTDQ.
double peak_binary_macs_avx512(double seconds);
// vfmadd231ps on zmm registers, 12 independent chains: fp32 FMAs/s.
double peak_fp32_fmas_avx512(double seconds);
// VPDPBUSD on zmm registers, 12 independent chains: u8 x s8 MACs/s (64 per
// instruction; AVX512-VNNI only, where cpu_features().avx512vnni). The ceiling
// of the int8 float layers' 6x32 kernel.
double peak_int8_macs_avx512vnni(double seconds);
// The avx2 path's ceilings: its nibble-lookup popcount (xor, 2 and, shift,
// 2 vpshufb, 2 byte adds per 256 binary MACs) and vfmadd231ps on ymm.
double peak_binary_macs_avx2(double seconds);
double peak_fp32_fmas_avx2(double seconds);
// Integer MACs/s an int8 layer could reach on AVX2: vpmaddwd + vpaddd on int16 (exact), and
// vpmaddubsw + vpmaddwd + vpaddd on u8 x s8 (saturates in int16, so not exact).
void peak_int_macs_avx2(double seconds, double* madd16, double* maddubs8);
// TDPBUSD on four register-resident 16x16 tiles: u8 x s8 MACs/s (AMX-INT8 only,
// where isa_supported(Isa::kAmx); 0 elsewhere).
double peak_int8_macs_amx(double seconds);

}  // namespace onebit
