// Portable emulation of the AVX512-BF16 GEMM, 4 x 32 (plain loops; SSE2 at
// baseline): the same bf16 rounding and the same fp32 summation as
// VCVTNEPS2BF16 and VDPBF16PS (kernels/bf16gemm.h), so it gives the AVX512-BF16
// kernel's bits on any CPU (float_precision = "bf16_emulated", and "bf16" when
// ONEBIT_ISA / set_isa puts a path without AVX-512 in force).
#include <cstring>

#include "kernels/bf16gemm.h"

namespace onebit {
namespace {

inline float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline uint32_t to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// A subnormal result becomes a zero of its sign (VDPBF16PS's flush to zero).
inline float ftz(float x) {
  const uint32_t u = to_bits(x);
  return (u & 0x7f800000u) == 0 ? from_bits(u & 0x80000000u) : x;
}

void bf16gemm_4x32_portable(int mr, int nr, int kp, const uint32_t* a, long lda,
                            const uint32_t* bp, float* c, long ldc, bool accumulate,
                            const float* scale, const float* bias) {
  float acc[4][32] = {};
  for (int p = 0; p < kp; ++p) {
    const uint32_t* b = bp + p * 32;
    for (int i = 0; i < mr; ++i) {
      const uint32_t aw = a[i * lda + p];
      const float a_even = from_bits(aw << 16), a_odd = from_bits(aw & 0xffff0000u);
      for (int j = 0; j < 32; ++j) {
        const float b_even = from_bits(b[j] << 16), b_odd = from_bits(b[j] & 0xffff0000u);
        // Each product of two bf16 values is exact in fp32; the odd element is added first.
        const float t = ftz(acc[i][j] + a_odd * b_odd);
        acc[i][j] = ftz(t + a_even * b_even);
      }
    }
  }
  for (int i = 0; i < mr; ++i)
    for (int j = 0; j < nr; ++j) {
      float y = accumulate ? c[i * ldc + j] + acc[i][j] : acc[i][j];
      if (scale) y = y * scale[j];
      if (bias) y = y + bias[j];
      c[i * ldc + j] = y;
    }
}

// Round to nearest even; zeros and fp32 subnormals become zeros of their sign,
// NaNs quiet NaNs with the sign and the top of the payload (VCVTNEPS2BF16).
void convert_portable(const float* src, uint16_t* dst, long n) {
  for (long i = 0; i < n; ++i) {
    const uint32_t u = to_bits(src[i]);
    uint32_t h;
    if ((u & 0x7f800000u) == 0) h = (u >> 16) & 0x8000u;
    else if ((u & 0x7fffffffu) > 0x7f800000u) h = (u >> 16) | 0x40u;
    else h = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    dst[i] = static_cast<uint16_t>(h);
  }
}

void gather_portable(const uint16_t* const* src, int runs, int run, uint16_t* dst) {
  for (int i = 0; i < runs; ++i, dst += run) {
    if (src[i]) std::memcpy(dst, src[i], static_cast<size_t>(run) * sizeof(uint16_t));
    else std::memset(dst, 0, static_cast<size_t>(run) * sizeof(uint16_t));
  }
}

}  // namespace

const Bf16GemmConfig& bf16gemm_config_portable() {
  static const Bf16GemmConfig cfg{"bf16gemm_4x32_portable", 4, bf16gemm_4x32_portable,
                                  convert_portable, gather_portable};
  return cfg;
}

}  // namespace onebit
