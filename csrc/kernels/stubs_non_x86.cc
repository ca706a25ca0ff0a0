// Non-x86 builds: the AVX entry points fall back to portable code (never
// selected at run time, since dispatch reports those ISAs unsupported).
#include "kernels/bgconv.h"
#include "kernels/bgemm.h"
#include "kernels/peak.h"
#include "kernels/sgemm.h"
#include "pack/pack.h"

namespace onebit {
const BgemmConfig& bgemm_config_avx2() { return bgemm_config_portable(); }
const BgemmConfig& bgemm_config_avx512() { return bgemm_config_portable(); }
const BgconvConfig& bgconv_config_avx2() { return bgconv_config_portable(); }
const BgconvConfig& bgconv_config_avx512() { return bgconv_config_portable(); }
const SgemmConfig& sgemm_config_avx2() { return sgemm_config_portable(); }
const SgemmConfig& sgemm_config_avx512() { return sgemm_config_portable(); }
void pack_rows_f32_avx512(const float* x, size_t rows, int channels, const float* thr,
                          uint64_t* out) {
  pack_rows_f32_portable(x, rows, channels, thr, out);
}
double peak_binary_macs_avx512(double) { return 0.0; }
double peak_fp32_fmas_avx512(double) { return 0.0; }
}  // namespace onebit
