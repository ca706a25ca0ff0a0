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

double peak_int8_macs_avx512vnni(double seconds) {
  // One asm block of 12 VPDPBUSD on 12 accumulators held in registers (inline asm:
  // this file is not built with -mavx512vnni, and GCC 12's intrinsic adds register
  // copies, see kernels/avx512/i8gemm_6x32_avx512vnni.cc).
  __m512i c0 = _mm512_set1_epi32(0), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0,
          c8 = c0, c9 = c0, c10 = c0, c11 = c0;
  __m512i a = _mm512_set1_epi32(0x01020304), b = _mm512_set1_epi32(0x05060708);
  const long iters = 1 << 16;
  double t0 = now(), t1 = t0, best = 0;
  while (t1 - t0 < seconds) {
    double s = now();
    for (long it = 0; it < iters; ++it) {
      asm volatile(
          "vpdpbusd %13, %12, %0\n\tvpdpbusd %13, %12, %1\n\tvpdpbusd %13, %12, %2\n\t"
          "vpdpbusd %13, %12, %3\n\tvpdpbusd %13, %12, %4\n\tvpdpbusd %13, %12, %5\n\t"
          "vpdpbusd %13, %12, %6\n\tvpdpbusd %13, %12, %7\n\tvpdpbusd %13, %12, %8\n\t"
          "vpdpbusd %13, %12, %9\n\tvpdpbusd %13, %12, %10\n\tvpdpbusd %13, %12, %11"
          : "+v"(c0), "+v"(c1), "+v"(c2), "+v"(c3), "+v"(c4), "+v"(c5), "+v"(c6), "+v"(c7), "+v"(c8),
            "+v"(c9), "+v"(c10), "+v"(c11)
          : "v"(a), "v"(b));
    }
    t1 = now();
    double rate = static_cast<double>(iters) * 12 * 64 / (t1 - s);
    if (rate > best) best = rate;
  }
  const __m512i sum = _mm512_add_epi32(
      _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(c0, c1), _mm512_add_epi32(c2, c3)),
                       _mm512_add_epi32(_mm512_add_epi32(c4, c5), _mm512_add_epi32(c6, c7))),
      _mm512_add_epi32(_mm512_add_epi32(c8, c9), _mm512_add_epi32(c10, c11)));
  const int sink = _mm_cvtsi128_si32(_mm512_castsi512_si128(sum));
  __asm__ volatile("" : : "r"(sink));
  return best;
}

}  // namespace onebit
