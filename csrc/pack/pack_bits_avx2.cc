// Sign-bit packing with AVX2: 8 compares per instruction (vcmpltps + vmovmskps),
// 8 masks per word; a row's last < 8 channels are compared one by one.
#include <immintrin.h>

#include "pack/pack.h"

namespace onebit {

void pack_rows_f32_avx2(const float* x, size_t rows, int channels, const float* thr,
                        uint64_t* out, size_t ldx) {
  const int W = words_for(channels);
  const __m256 zero = _mm256_setzero_ps();
  for (size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    uint64_t* o = out + r * W;
    for (int wd = 0; wd < W; ++wd) {
      const int c0 = wd * 64, c1 = c0 + 64 < channels ? c0 + 64 : channels;
      uint64_t word = 0;
      int c = c0;
      for (; c + 8 <= c1; c += 8) {
        const __m256 t = thr ? _mm256_loadu_ps(thr + c) : zero;
        const int m = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(xr + c), t, _CMP_LT_OQ));
        word |= static_cast<uint64_t>(static_cast<unsigned>(m)) << (c - c0);
      }
      for (; c < c1; ++c) word |= static_cast<uint64_t>(xr[c] < (thr ? thr[c] : 0.0f)) << (c - c0);
      o[wd] = word;
    }
  }
}

}  // namespace onebit
