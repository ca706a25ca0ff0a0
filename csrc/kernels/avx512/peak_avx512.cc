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

double peak_binary_macs_avx512(double seconds) {
  // 12 independent chains; inputs change every iteration so nothing is hoisted.
  __m512i acc[12], x[12];
  for (int i = 0; i < 12; ++i) {
    acc[i] = _mm512_setzero_si512();
    x[i] = _mm512_set1_epi64(0x0123456789ABCDEFLL * (i + 1));
  }
  __m512i w = _mm512_set1_epi64(0x5555AAAA3333CCCCLL);
  const long iters = 1 << 16;
  long total = 0;
  double t0 = now(), t1 = t0;
  double best = 0;
  while (t1 - t0 < seconds) {
    double s = now();
    for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 12
      for (int i = 0; i < 12; ++i)
        acc[i] = _mm512_add_epi64(acc[i], _mm512_popcnt_epi64(_mm512_xor_si512(x[i], w)));
      __asm__ volatile("" : "+v"(w));
    }
    t1 = now();
    double rate = static_cast<double>(iters) * 12 * 512 / (t1 - s);
    if (rate > best) best = rate;
    total += iters;
  }
  long long sink = 0;
  for (int i = 0; i < 12; ++i) sink += _mm512_reduce_add_epi64(acc[i]);
  __asm__ volatile("" : : "r"(sink));
  return best;
}

double peak_fp32_fmas_avx512(double seconds) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(0.001f * i);
  __m512 a = _mm512_set1_ps(0.9999f), b = _mm512_set1_ps(0.0001f);
  const long iters = 1 << 16;
  double t0 = now(), t1 = t0, best = 0;
  while (t1 - t0 < seconds) {
    double s = now();
    for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 12
      for (int i = 0; i < 12; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
      __asm__ volatile("" : "+v"(a));
    }
    t1 = now();
    double rate = static_cast<double>(iters) * 12 * 16 / (t1 - s);
    if (rate > best) best = rate;
  }
  float sink = 0;
  for (int i = 0; i < 12; ++i) sink += _mm512_reduce_add_ps(acc[i]);
  __asm__ volatile("" : : "x"(sink));
  return best;
}

}  // namespace onebit
