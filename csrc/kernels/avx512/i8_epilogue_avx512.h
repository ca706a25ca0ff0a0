// The int8 output stage of kernels/i8gemm.h for one row of up to 32 columns,
// shared by the AVX512-VNNI and AMX kernels so their bits agree by
// construction. Included only by files compiled with AVX-512 F/BW/VL; internal
// linkage, since those files are compiled with different target flags.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

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

// The per-row terms of the output stage for one sample (zero point zp, scale sa):
// zp * wsum[j] and sa * sw[j]. The rows of a tile that share their sample's parameters
// (every row of a convolution's tile on one image) share these.
struct I8RowTerms {
  __m512i zw0, zw1;
  __m512 s0, s1;
};

inline I8RowTerms i8_row_terms(const I8Columns& k, int32_t zp, float sa) {
  const __m512i vzp = _mm512_set1_epi32(zp);
  const __m512 vsa = _mm512_set1_ps(sa);
  return I8RowTerms{_mm512_mullo_epi32(vzp, k.ws0), _mm512_mullo_epi32(vzp, k.ws1), _mm512_mul_ps(vsa, k.sw0),
                    _mm512_mul_ps(vsa, k.sw1)};
}

// Row i's terms: row 0's when its zero point and scale are row 0's (bit for bit), else its own.
inline I8RowTerms i8_terms_of_row(const I8Columns& k, const I8Epilogue& e, int i, const I8RowTerms& t0) {
  uint32_t s0, si;
  std::memcpy(&s0, e.sa, 4);
  std::memcpy(&si, e.sa + i, 4);
  return i == 0 || (e.zp[i] == e.zp[0] && si == s0) ? t0 : i8_row_terms(k, e.zp[i], e.sa[i]);
}

// One row: C[j] = float(acc[j] - zp * wsum[j]) * (sa * sw[j]) (+ bias[j]).
inline void i8_store_terms(const I8Columns& k, const I8RowTerms& t, bool bias, __m512i acc0, __m512i acc1,
                           float* c) {
  // (masked forms with every lane set: GCC 12 warns on the plain ones' undefined pass-through)
  __m512 y0 = _mm512_mask_cvtepi32_ps(k.sw0, 0xFFFF, _mm512_sub_epi32(acc0, t.zw0));
  __m512 y1 = _mm512_mask_cvtepi32_ps(k.sw1, 0xFFFF, _mm512_sub_epi32(acc1, t.zw1));
  y0 = _mm512_mul_ps(y0, t.s0);
  y1 = _mm512_mul_ps(y1, t.s1);
  if (bias) {
    y0 = _mm512_add_ps(y0, k.b0);
    y1 = _mm512_add_ps(y1, k.b1);
  }
  _mm512_mask_storeu_ps(c, k.m0, y0);
  _mm512_mask_storeu_ps(c + 16, k.m1, y1);
}

// Row i of the tile with its own sample's terms.
inline void i8_store_row(const I8Columns& k, const I8Epilogue& e, int i, bool bias, __m512i acc0, __m512i acc1,
                         float* c) {
  i8_store_terms(k, i8_row_terms(k, e.zp[i], e.sa[i]), bias, acc0, acc1, c);
}

}  // namespace
}  // namespace onebit
