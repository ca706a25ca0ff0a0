// Non-x86 builds: the AVX entry points fall back to portable code (never
// selected at run time, since dispatch reports those ISAs unsupported).
#include "kernels/activation.h"
#include "kernels/bf16gemm.h"
#include "kernels/i8gemm.h"
#include "kernels/bgconv.h"
#include "kernels/bgemm.h"
#include "kernels/chanwise.h"
#include "kernels/peak.h"
#include "kernels/pool.h"
#include "kernels/sgemm.h"
#include "pack/pack.h"

namespace onebit {
const BgemmConfig& bgemm_config_avx2() { return bgemm_config_portable(); }
const BgemmConfig& bgemm_config_avx512() { return bgemm_config_portable(); }
const BgconvConfig& bgconv_config_avx2() { return bgconv_config_portable(); }
const BgconvConfig& bgconv_config_avx512() { return bgconv_config_portable(); }
const SgemmConfig& sgemm_config_avx2() { return sgemm_config_portable(); }
const SgemmConfig& sgemm_config_avx512() { return sgemm_config_portable(); }
const Bf16GemmConfig& bf16gemm_config_avx512bf16() { return bf16gemm_config_portable(); }
const I8GemmConfig& i8gemm_config_avx512vnni() { return i8gemm_config_portable(); }
const I8GemmConfig& i8gemm_config_amx() { return i8gemm_config_portable(); }
const PoolKernels& pool_kernels_avx2() { return pool_kernels_portable(); }
const PoolKernels& pool_kernels_avx512() { return pool_kernels_portable(); }
ChanFn chanwise_avx2() { return chanwise_portable(); }
ChanFn chanwise_avx512() { return chanwise_portable(); }
void pack_rows_f32_avx2(const float* x, size_t rows, int channels, const float* thr, uint64_t* out,
                        size_t ldx) {
  pack_rows_f32_portable(x, rows, channels, thr, out, ldx);
}
void pack_rows_f32_multi_avx512(const float* x, size_t r0, size_t r1, int channels, size_t ldx, const SignSet* sets,
                                int n) {
  pack_rows_f32_multi_generic(x, r0, r1, channels, ldx, sets, n);
}
void activation_f32_avx2(ActKind kind, const float* x, float* y, size_t n) {
  activation_f32_portable(kind, x, y, n);
}
void activation_f32_avx512(ActKind kind, const float* x, float* y, size_t n) {
  activation_f32_portable(kind, x, y, n);
}
double peak_binary_macs_avx512(double) { return 0.0; }
double peak_fp32_fmas_avx512(double) { return 0.0; }
double peak_binary_macs_avx2(double) { return 0.0; }
double peak_fp32_fmas_avx2(double) { return 0.0; }
void peak_int_macs_avx2(double, double* madd16, double* maddubs8) { *madd16 = *maddubs8 = 0.0; }
double peak_int8_macs_amx(double) { return 0.0; }
}  // namespace onebit
