// Sign-bit packing with AVX-512: 16 compares per instruction, 4 masks per word.
// (pack_rows_f32 on AVX-512 is one set of pack_rows_f32_multi_avx512.)
#include <immintrin.h>

#include <algorithm>

#include "pack/pack.h"

namespace onebit {

namespace {
// NJ sets over all rows for the 64 channels from c0: their thresholds in 4 NJ registers,
// each row's values loaded once. A set whose word lands whole on a word (shift 0, all 64
// bits its own) stores it; the others merge it into the words it straddles.
template <int NJ>
void multi_word(const float* x, size_t r0, size_t r1, size_t ldx, int c0, const __mmask16 (&m)[4],
                const SignSet* const* sets) {
  const __m512 zero = _mm512_setzero_ps();
  __m512 t[NJ][4];
  uint64_t fl[NJ];
  uint64_t* o[NJ];  // local copies: the stores below cannot alias them
  size_t lo[NJ];
  int sh[NJ], own[NJ];
  bool whole[NJ];
  const int wd = c0 / 64;
  for (int j = 0; j < NJ; ++j) {
    const SignSet& s = *sets[j];
    for (int q = 0; q < 4; ++q) t[j][q] = s.thr ? _mm512_maskz_loadu_ps(m[q], s.thr + c0 + q * 16) : zero;
    fl[j] = s.flip && m[0] ? s.flip[wd] : 0;  // past the channels (an owned rest): none
    o[j] = s.out + r0 * s.ldo + wd;
    lo[j] = s.ldo;
    sh[j] = s.shift;
    own[j] = std::min(64, s.nbits - c0);
    whole[j] = sh[j] == 0 && own[j] == 64;
  }
  const float* xr = x + r0 * ldx + c0;
  // A concat's slice: its 256-byte rows lie ldx floats apart (1.8 KB in DenseNet's first
  // block), a stride the hardware prefetchers do not follow; the loads waited on L3.
  constexpr size_t kAhead = 16;
  for (size_t r = r0; r < r1; ++r, xr += ldx) {
    if (r + kAhead < r1)
      for (int q = 0; q < 4; ++q)
        _mm_prefetch(reinterpret_cast<const char*>(xr + kAhead * ldx + q * 16), _MM_HINT_T0);
    __m512 v[4];
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) v[q] = _mm512_maskz_loadu_ps(m[q], xr + q * 16);
#pragma GCC unroll 6
    for (int j = 0; j < NJ; ++j) {
      uint64_t word = 0;
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q)
        word |= static_cast<uint64_t>(_mm512_mask_cmp_ps_mask(m[q], v[q], t[j][q], _CMP_LT_OQ)) << (q * 16);
      if (whole[j]) *o[j] = word ^ fl[j];
      else put_bits(o[j], word ^ fl[j], sh[j], own[j]);
      o[j] += lo[j];
    }
  }
}
}  // namespace

void pack_rows_f32_multi_avx512(const float* x, size_t r0, size_t r1, int channels, size_t ldx, const SignSet* sets,
                                int n) {
  int words = 0;
  for (int j = 0; j < n; ++j) words = std::max(words, words_for(sets[j].nbits));
  for (int wd = 0; wd < words; ++wd) {
    const int c0 = wd * 64;
    __mmask16 m[4];
    for (int q = 0; q < 4; ++q) {
      const int k = channels - c0 - q * 16;
      m[q] = k >= 16 ? static_cast<__mmask16>(0xFFFF) : k <= 0 ? 0 : static_cast<__mmask16>((1u << k) - 1);
    }
    // The sets that own bits of this word, 6 at a time.
    const SignSet* live[6];
    for (int j = 0, nl = 0; j < n; ++j) {
      if (sets[j].nbits > c0) live[nl++] = &sets[j];
      if (nl < 6 && j + 1 < n) continue;
      switch (nl) {
        case 0: break;
        case 1: multi_word<1>(x, r0, r1, ldx, c0, m, live); break;
        case 2: multi_word<2>(x, r0, r1, ldx, c0, m, live); break;
        case 3: multi_word<3>(x, r0, r1, ldx, c0, m, live); break;
        case 4: multi_word<4>(x, r0, r1, ldx, c0, m, live); break;
        case 5: multi_word<5>(x, r0, r1, ldx, c0, m, live); break;
        default: multi_word<6>(x, r0, r1, ldx, c0, m, live); break;
      }
      nl = 0;
    }
  }
}

}  // namespace onebit
