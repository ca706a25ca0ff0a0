// Sign-bit packing with AVX-512: 16 compares per instruction, 4 masks per word.
#include <immintrin.h>

#include "pack/pack.h"

namespace onebit {

void pack_rows_f32_avx512(const float* x, size_t rows, int channels, const float* thr,
                          uint64_t* out, size_t ldx) {
  const int W = words_for(channels);
  const __m512 zero = _mm512_setzero_ps();
  for (size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    uint64_t* o = out + r * W;
    for (int wd = 0; wd < W; ++wd) {
      uint64_t word = 0;
      for (int q = 0; q < 4; ++q) {
        int c0 = wd * 64 + q * 16;
        int n = channels - c0;
        if (n <= 0) break;
        __mmask16 m = n >= 16 ? static_cast<__mmask16>(0xFFFF)
                              : static_cast<__mmask16>((1u << n) - 1);
        __m512 v = _mm512_maskz_loadu_ps(m, xr + c0);
        __m512 t = thr ? _mm512_maskz_loadu_ps(m, thr + c0) : zero;
        __mmask16 lt = _mm512_mask_cmp_ps_mask(m, v, t, _CMP_LT_OQ);
        word |= static_cast<uint64_t>(lt) << (q * 16);
      }
      o[wd] = word;
    }
  }
}

}  // namespace onebit
