// Register-resident peak loops for the avx2 path (benchmarks/kernels.py): the
// ceiling of the nibble-lookup popcount that bgemm_2x32_avx2 uses, per core.
#include <immintrin.h>

#include <chrono>

#include "kernels/peak.h"

namespace onebit {
namespace {
double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

double peak_binary_macs_avx2(double seconds) {
  // The kernel's op mix per ymm of 4 x 64 weight bits: vpxor, vpand, vpsrlw,
  // vpand, 2 vpshufb, 2 vpaddb (byte counts; their 64-bit folding, once per 31
  // words, is left out). 8 independent chains; inputs change every iteration.
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1,
                                       2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  __m256i acc[8], x[8];
  for (int i = 0; i < 8; ++i) {
    acc[i] = _mm256_setzero_si256();
    x[i] = _mm256_set1_epi64x(0x0123456789ABCDEFLL * (i + 1));
  }
  __m256i w = _mm256_set1_epi64x(0x5555AAAA3333CCCCLL);
  const long iters = 1 << 16;
  double t0 = now(), t1 = t0, best = 0;
  while (t1 - t0 < seconds) {
    double s = now();
    for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) {
        const __m256i v = _mm256_xor_si256(x[i], w);
        const __m256i lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(v, low4));
        const __m256i hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), low4));
        acc[i] = _mm256_add_epi8(acc[i], _mm256_add_epi8(lo, hi));
      }
      __asm__ volatile("" : "+x"(w));
    }
    t1 = now();
    const double rate = static_cast<double>(iters) * 8 * 256 / (t1 - s);
    if (rate > best) best = rate;
  }
  __m256i sink = acc[0];
  for (int i = 1; i < 8; ++i) sink = _mm256_add_epi8(sink, acc[i]);
  __asm__ volatile("" : : "x"(sink));
  return best;
}

double peak_fp32_fmas_avx2(double seconds) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(0.001f * i);
  __m256 a = _mm256_set1_ps(0.9999f), b = _mm256_set1_ps(0.0001f);
  const long iters = 1 << 16;
  double t0 = now(), t1 = t0, best = 0;
  while (t1 - t0 < seconds) {
    double s = now();
    for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 12
      for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
      __asm__ volatile("" : "+x"(a));
    }
    t1 = now();
    const double rate = static_cast<double>(iters) * 12 * 8 / (t1 - s);
    if (rate > best) best = rate;
  }
  __m256 sink = acc[0];
  for (int i = 1; i < 12; ++i) sink = _mm256_add_ps(sink, acc[i]);
  __asm__ volatile("" : : "x"(sink));
  return best;
}

void peak_int_macs_avx2(double seconds, double* madd16, double* maddubs8) {
  // What an int8 float layer could use on AVX2 (no VNNI): vpmaddwd on int16 (exact: 16
  // products per instruction, then vpaddd into int32), and vpmaddubsw on u8 x s8 (32
  // products, but its int16 pair sums saturate: 2 x 255 x 127 > 32767), then vpmaddwd by 1
  // and vpaddd. 8 independent chains each.
  __m256i a16[8], a8[8], acc[8];
  for (int i = 0; i < 8; ++i) {
    a16[i] = _mm256_set1_epi16(static_cast<short>(i + 1));
    a8[i] = _mm256_set1_epi8(static_cast<char>(i + 1));
    acc[i] = _mm256_setzero_si256();
  }
  __m256i b = _mm256_set1_epi16(5);
  const __m256i one = _mm256_set1_epi16(1);
  const long iters = 1 << 16;
  *madd16 = *maddubs8 = 0;
  double t0 = now(), t1 = t0;
  while (t1 - t0 < seconds) {
    double s = now();
    for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(a16[i], b));
      __asm__ volatile("" : "+x"(b));
    }
    double m = now();
    for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i)
        acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(_mm256_maddubs_epi16(a8[i], b), one));
      __asm__ volatile("" : "+x"(b));
    }
    t1 = now();
    const double r16 = static_cast<double>(iters) * 8 * 16 / (m - s);
    const double r8 = static_cast<double>(iters) * 8 * 32 / (t1 - m);
    if (r16 > *madd16) *madd16 = r16;
    if (r8 > *maddubs8) *maddubs8 = r8;
  }
  __m256i sink = acc[0];
  for (int i = 1; i < 8; ++i) sink = _mm256_add_epi32(sink, acc[i]);
  __asm__ volatile("" : : "x"(sink));
}

}  // namespace onebit
