// The int8 output stage of kernels/i8gemm.h for one row of up to 32 columns,
// shared by the AVX512-VNNI and AMX kernels so their bits agree by
// construction. Included only by files compiled with AVX-512 F/BW/VL; internal
// linkage, since those files are compiled with different target flags.
#pragma once

#include <immintrin.h>

#include "kernels/i8gemm.h"

namespace onebit {
namespace {

// The per-column terms of a 32-column panel, loaded once per tile.
struct I8Columns {
  __mmask16 m0, m1;
  __m512i ws0, ws1;
  __m512 sw0, sw1, b0, b1;
};

inline I8Columns i8_columns(int nr, const I8Epilogue& e) {
  I8Columns k;
  k.m0 = nr >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << nr) - 1);
  k.m1 = nr >= 32 ? 0xFFFF : nr <= 16 ? 0 : static_cast<__mmask16>((1u << (nr - 16)) - 1);
  k.ws0 = _mm512_maskz_loadu_epi32(k.m0, e.wsum), k.ws1 = _mm512_maskz_loadu_epi32(k.m1, e.wsum + 16);
  k.sw0 = _mm512_maskz_loadu_ps(k.m0, e.sw), k.sw1 = _mm512_maskz_loadu_ps(k.m1, e.sw + 16);
  k.b0 = e.bias ? _mm512_maskz_loadu_ps(k.m0, e.bias) : _mm512_setzero_ps();
  k.b1 = e.bias ? _mm512_maskz_loadu_ps(k.m1, e.bias + 16) : _mm512_setzero_ps();
  return k;
}

// Row i of the tile: C[j] = float(acc[j] - zp[i] * wsum[j]) * (sa[i] * sw[j]) (+ bias[j]).
inline void i8_store_row(const I8Columns& k, const I8Epilogue& e, int i, bool bias, __m512i acc0, __m512i acc1,
                         float* c) {
  const __m512i zp = _mm512_set1_epi32(e.zp[i]);
  const __m512 sa = _mm512_set1_ps(e.sa[i]);
  // (masked forms with every lane set: GCC 12 warns on the plain ones' undefined pass-through)
  __m512 y0 = _mm512_mask_cvtepi32_ps(k.sw0, 0xFFFF, _mm512_sub_epi32(acc0, _mm512_mullo_epi32(zp, k.ws0)));
  __m512 y1 = _mm512_mask_cvtepi32_ps(k.sw1, 0xFFFF, _mm512_sub_epi32(acc1, _mm512_mullo_epi32(zp, k.ws1)));
  y0 = _mm512_mul_ps(y0, _mm512_mul_ps(sa, k.sw0));
  y1 = _mm512_mul_ps(y1, _mm512_mul_ps(sa, k.sw1));
  if (bias) {
    y0 = _mm512_add_ps(y0, k.b0);
    y1 = _mm512_add_ps(y1, k.b1);
  }
  _mm512_mask_storeu_ps(c, k.m0, y0);
  _mm512_mask_storeu_ps(c + 16, k.m1, y1);
}

}  // namespace
}  // namespace onebit
