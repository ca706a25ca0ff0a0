// Portable emulation of the AVX512-VNNI int8 GEMM, 4 x 32 (plain loops; SSE2 at
// baseline), its activation quantization and u8 gather: the same integers and
// the same fp32 steps as the AVX512-VNNI kernels (kernels/i8gemm.h), so the same
// bits on any CPU (float_precision = "int8_emulated", and "int8" when ONEBIT_ISA /
// set_isa puts a path without AVX-512 in force).
#include <cmath>
#include <cstring>

#include "kernels/i8gemm.h"

namespace onebit {
namespace {

void i8gemm_4x32_portable(int mr, int nr, int kq, const uint32_t* a, long lda, const uint32_t* bp,
                          float* c, long ldc, const I8Epilogue& e) {
  int32_t acc[4][32] = {};
  for (int q = 0; q < kq; ++q) {
    const uint32_t* b = bp + q * 32;
    for (int i = 0; i < mr; ++i) {
      const uint32_t aw = a[i * lda + q];
      for (int j = 0; j < 32; ++j) {
        int32_t s = 0;
        for (int t = 0; t < 4; ++t)
          s += static_cast<int32_t>((aw >> (8 * t)) & 0xFFu) * static_cast<int8_t>((b[j] >> (8 * t)) & 0xFFu);
        acc[i][j] += s;
      }
    }
  }
  for (int i = 0; i < mr; ++i)
    for (int j = 0; j < nr; ++j) {
      float y = static_cast<float>(acc[i][j] - e.zp[i] * e.wsum[j]);
      y = y * (e.sa[i] * e.sw[j]);
      c[i * ldc + j] = e.bias ? y + e.bias[j] : y;
    }
}

void quantize_portable(const float* src, uint8_t* dst, long n, float inv, float zp) {
  for (long i = 0; i < n; ++i) {
    float v = src[i] * inv;
    v = v + zp;
    v = v > 0.0f ? v : 0.0f;  // NaN -> 0, as VMAXPS(v, 0)
    v = v < 255.0f ? v : 255.0f;
    dst[i] = static_cast<uint8_t>(std::lrint(v));  // round to nearest even (the default mode)
  }
}

void range_portable(const float* x, long n, float* lo, float* hi) {
  float l = 0.0f, h = 0.0f;
  for (long i = 0; i < n; ++i) {
    l = x[i] < l ? x[i] : l;
    h = x[i] > h ? x[i] : h;
  }
  *lo = l, *hi = h;
}

void gather_portable(const uint8_t* const* src, int runs, int run, uint8_t fill, uint8_t* dst,
                     long dst_stride) {
  for (int i = 0; i < runs; ++i, dst += dst_stride) {
    if (src[i]) std::memcpy(dst, src[i], static_cast<size_t>(run));
    else std::memset(dst, fill, static_cast<size_t>(run));
  }
}

}  // namespace

const I8GemmConfig& i8gemm_config_portable() {
  static const I8GemmConfig cfg{"i8gemm_4x32_portable", 4, i8gemm_4x32_portable, nullptr, quantize_portable,
                                range_portable, gather_portable,
                                nullptr};  // rows always formed, as on AMX: that path is tested on every CPU
  return cfg;
}

}  // namespace onebit
