// NEON (aarch64) fp32 GEMM micro-kernel, 4 x 16 (16 accumulators, FMLA by
// element: each A row is loaded 4 values of k at a time and used lane by
// lane), and the dense-layer GEMV.
//
// Every output element is summed in the order the x86 AVX-512 and AVX2
// kernels use: k ascending within a 256-deep block, one fused multiply-add
// per k from zero, then added to the previous blocks' sum (the blocking is
// the shared driver's, ops/float_ops.cc). The GEMV keeps the AVX-512 kernel's
// 16 partial sums per output (lane l sums k = l mod 16, fused), folds them in
// the order of GCC's _mm512_reduce_add_ps and finishes the k tail with a
// separate multiply and add. So NEON float layers give the same bits as
// AVX-512 ones (the portable kernel, which does not fuse, rounds differently).
#include <arm_neon.h>

#include "kernels/sgemm.h"

namespace onebit {
namespace {

template <int MR>
void kernel(int nr, const SgemmA& A, const float* bp, float* c, long ldc, bool accumulate) {
  float32x4_t acc[MR][4];
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) acc[i][j] = vdupq_n_f32(0.0f);
  const long lda = A.ld;
  for (int s = 0; s < A.nseg; ++s, bp += A.seg_len * 16) {
    const float* a = A.p + s * A.seg_stride;
    const int kc = A.seg_len;
    int k = 0;
    for (; k + 4 <= kc; k += 4) {
      float32x4_t av[MR];
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) av[i] = vld1q_f32(a + i * lda + k);
      const float* b = bp + k * 16;
#define ONEBIT_SGEMM_STEP(L)                                                        \
  {                                                                                 \
    const float32x4_t b0 = vld1q_f32(b + 16 * L), b1 = vld1q_f32(b + 16 * L + 4);   \
    const float32x4_t b2 = vld1q_f32(b + 16 * L + 8), b3 = vld1q_f32(b + 16 * L + 12); \
    _Pragma("GCC unroll 4") for (int i = 0; i < MR; ++i) {                          \
      acc[i][0] = vfmaq_laneq_f32(acc[i][0], b0, av[i], L);                         \
      acc[i][1] = vfmaq_laneq_f32(acc[i][1], b1, av[i], L);                         \
      acc[i][2] = vfmaq_laneq_f32(acc[i][2], b2, av[i], L);                         \
      acc[i][3] = vfmaq_laneq_f32(acc[i][3], b3, av[i], L);                         \
    }                                                                               \
    }
      ONEBIT_SGEMM_STEP(0)
      ONEBIT_SGEMM_STEP(1)
      ONEBIT_SGEMM_STEP(2)
      ONEBIT_SGEMM_STEP(3)
#undef ONEBIT_SGEMM_STEP
    }
    for (; k < kc; ++k) {
      const float* b = bp + k * 16;
      const float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4);
      const float32x4_t b2 = vld1q_f32(b + 8), b3 = vld1q_f32(b + 12);
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) {
        const float32x4_t av = vld1q_dup_f32(a + i * lda + k);
        acc[i][0] = vfmaq_f32(acc[i][0], b0, av);
        acc[i][1] = vfmaq_f32(acc[i][1], b1, av);
        acc[i][2] = vfmaq_f32(acc[i][2], b2, av);
        acc[i][3] = vfmaq_f32(acc[i][3], b3, av);
      }
    }
  }
  // Column tails go through a copy of one vector, never of the accumulator
  // array: with the array's address taken (or its loops left rolled) GCC kept
  // all 16 accumulators on the stack and stored them at every step of k.
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const int lanes = nr - 4 * j;
      float32x4_t r = acc[i][j];
      if (lanes >= 4) {
        if (accumulate) r = vaddq_f32(r, vld1q_f32(ci + 4 * j));
        vst1q_f32(ci + 4 * j, r);
      } else if (lanes > 0) {
        float t[4];
        vst1q_f32(t, r);
        for (int l = 0; l < lanes; ++l) ci[4 * j + l] = accumulate ? t[l] + ci[4 * j + l] : t[l];
      }
    }
  }
}

void sgemm_4x16_neon(int mr, int nr, const SgemmA& a, const float* bp, float* c, long ldc,
                     bool accumulate) {
  switch (mr) {
    case 4: kernel<4>(nr, a, bp, c, ldc, accumulate); break;
    case 3: kernel<3>(nr, a, bp, c, ldc, accumulate); break;
    case 2: kernel<2>(nr, a, bp, c, ldc, accumulate); break;
    default: kernel<1>(nr, a, bp, c, ldc, accumulate); break;
  }
}

// 16 partial sums in 4 registers, folded as _mm512_reduce_add_ps folds a zmm:
// (hi 256 + lo 256), then (hi 128 + lo 128), then lanes (0 + 2), (1 + 3), then
// the two.
inline float reduce16(float32x4_t s0, float32x4_t s1, float32x4_t s2, float32x4_t s3) {
  const float32x4_t t = vaddq_f32(vaddq_f32(s3, s1), vaddq_f32(s2, s0));
  const float32x4_t u = vaddq_f32(t, vextq_f32(t, t, 2));
  return vgetq_lane_f32(u, 0) + vgetq_lane_f32(u, 1);
}

// 4 weight rows at a time share each load of a; 16 lanes of k per row.
void sgemv_neon(int M, int N, int K, const float* a, long lda, const float* w, long ldw,
                float* c, long ldc) {
  for (int m = 0; m < M; ++m) {
    const float* am = a + m * lda;
    int n = 0;
    for (; n + 4 <= N; n += 4) {
      float32x4_t s[4][4];
      for (int q = 0; q < 4; ++q)
        for (int v = 0; v < 4; ++v) s[q][v] = vdupq_n_f32(0.0f);
      const float* w0 = w + n * ldw;
      int k = 0;
      for (; k + 16 <= K; k += 16) {
        float32x4_t x[4];
        for (int v = 0; v < 4; ++v) x[v] = vld1q_f32(am + k + 4 * v);
        for (int q = 0; q < 4; ++q)
          for (int v = 0; v < 4; ++v)
            s[q][v] = vfmaq_f32(s[q][v], x[v], vld1q_f32(w0 + q * ldw + k + 4 * v));
      }
      float r[4];
      for (int q = 0; q < 4; ++q) r[q] = reduce16(s[q][0], s[q][1], s[q][2], s[q][3]);
      for (; k < K; ++k)
        for (int q = 0; q < 4; ++q) r[q] += am[k] * w0[q * ldw + k];
      for (int q = 0; q < 4; ++q) c[m * ldc + n + q] = r[q];
    }
    for (; n < N; ++n) {
      float32x4_t s[4];
      for (int v = 0; v < 4; ++v) s[v] = vdupq_n_f32(0.0f);
      const float* wn = w + n * ldw;
      int k = 0;
      for (; k + 16 <= K; k += 16)
        for (int v = 0; v < 4; ++v)
          s[v] = vfmaq_f32(s[v], vld1q_f32(am + k + 4 * v), vld1q_f32(wn + k + 4 * v));
      float r = reduce16(s[0], s[1], s[2], s[3]);
      for (; k < K; ++k) r += am[k] * wn[k];
      c[m * ldc + n] = r;
    }
  }
}

}  // namespace

const SgemmConfig& sgemm_config_neon() {
  static const SgemmConfig cfg{"sgemm_4x16_neon", 4, 16, sgemm_4x16_neon, sgemv_neon};
  return cfg;
}

}  // namespace onebit
