// AVX-512 fp32 GEMM micro-kernel, 6 x 32 (12 zmm accumulators, 2 FMAs per
// broadcast; masked stores for the column tail).
#include <immintrin.h>

#include "kernels/sgemm.h"

namespace onebit {
namespace {

// The output stage of one row's 32 columns (m0 / m1 the column masks): + bias, then
// relu / prelu, then post_relu, as finish_rows.
inline void out_stage(const SgemmOut* out, __mmask16 m0, __mmask16 m1, __m512& r0, __m512& r1) {
  const __m512 zero = _mm512_setzero_ps();
  r0 = _mm512_add_ps(r0, out->bias ? _mm512_maskz_loadu_ps(m0, out->bias) : zero);
  r1 = _mm512_add_ps(r1, out->bias ? _mm512_maskz_loadu_ps(m1, out->bias + 16) : zero);
  if (out->act == Act::kRelu) {
    r0 = _mm512_mask_mov_ps(r0, _mm512_cmp_ps_mask(r0, zero, _CMP_LT_OQ), zero);
    r1 = _mm512_mask_mov_ps(r1, _mm512_cmp_ps_mask(r1, zero, _CMP_LT_OQ), zero);
  } else if (out->act == Act::kPrelu) {
    r0 = _mm512_mask_mul_ps(r0, _mm512_cmp_ps_mask(r0, zero, _CMP_LT_OQ), r0, _mm512_maskz_loadu_ps(m0, out->slope));
    r1 = _mm512_mask_mul_ps(r1, _mm512_cmp_ps_mask(r1, zero, _CMP_LT_OQ), r1,
                            _mm512_maskz_loadu_ps(m1, out->slope + 16));
  }
  if (out->post_relu) {  // v > 0 or NaN: v, else +0
    r0 = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(r0, zero, _CMP_NLE_UQ), r0);
    r1 = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(r1, zero, _CMP_NLE_UQ), r1);
  }
}

// NP panels of 32 columns, the second panel_floats floats after the first: with NP = 2
// (24 accumulators) 6 broadcasts feed 24 FMAs instead of 12, the 6x32 tile's loads
// per FMA having held the 7x7 stem at ~62% of the FMA peak.
template <int MR, bool OUT = false, int NP = 1>
void kernel(int nr, const SgemmA& A, const float* bp, float* c, long ldc, bool accumulate,
            const SgemmOut* out = nullptr, long panel_floats = 0) {
  __m512 acc[MR][2 * NP];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < 2 * NP; ++j) acc[i][j] = _mm512_setzero_ps();
  const long lda = A.ld;
  for (int s = 0; s < A.nseg; ++s, bp += A.seg_len * 32) {
    const float* a = A.p + s * A.seg_stride;
    for (int k = 0; k < A.seg_len; ++k) {
      __m512 b[2 * NP];
#pragma GCC unroll 4
      for (int j = 0; j < 2 * NP; ++j) b[j] = _mm512_loadu_ps(bp + (j / 2) * panel_floats + k * 32 + (j % 2) * 16);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const __m512 av = _mm512_set1_ps(a[i * lda + k]);
#pragma GCC unroll 4
        for (int j = 0; j < 2 * NP; ++j) acc[i][j] = _mm512_fmadd_ps(av, b[j], acc[i][j]);
      }
    }
  }
#pragma GCC unroll 2
  for (int p = 0; p < NP; ++p) {
    const int np = nr - 32 * p;
    if (np <= 0) break;
    const __mmask16 m0 = np >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << np) - 1);
    const __mmask16 m1 = np >= 32 ? 0xFFFF : np <= 16 ? 0 : static_cast<__mmask16>((1u << (np - 16)) - 1);
    SgemmOut o{};
    if constexpr (OUT)
      o = SgemmOut{out->bias ? out->bias + 32 * p : nullptr, out->act, out->slope ? out->slope + 32 * p : nullptr,
                   out->post_relu};
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      float* ci = c + i * ldc + 32 * p;
      __m512 r0 = acc[i][2 * p], r1 = acc[i][2 * p + 1];
      if (accumulate) {
        r0 = _mm512_add_ps(r0, _mm512_maskz_loadu_ps(m0, ci));
        r1 = _mm512_add_ps(r1, _mm512_maskz_loadu_ps(m1, ci + 16));
      }
      if constexpr (OUT) out_stage(&o, m0, m1, r0, r1);
      _mm512_mask_storeu_ps(ci, m0, r0);
      _mm512_mask_storeu_ps(ci + 16, m1, r1);
    }
  }
}

void sgemm_6x32_avx512(int mr, int nr, const SgemmA& a, const float* bp, float* c, long ldc,
                       bool accumulate) {
  switch (mr) {
    case 6: kernel<6>(nr, a, bp, c, ldc, accumulate); break;
    case 5: kernel<5>(nr, a, bp, c, ldc, accumulate); break;
    case 4: kernel<4>(nr, a, bp, c, ldc, accumulate); break;
    case 3: kernel<3>(nr, a, bp, c, ldc, accumulate); break;
    case 2: kernel<2>(nr, a, bp, c, ldc, accumulate); break;
    default: kernel<1>(nr, a, bp, c, ldc, accumulate); break;
  }
}

void sgemm_out_6x32_avx512(int mr, int nr, const SgemmA& a, const float* bp, float* c, long ldc,
                           const SgemmOut& o) {
  switch (mr) {
    case 6: kernel<6, true>(nr, a, bp, c, ldc, false, &o); break;
    case 5: kernel<5, true>(nr, a, bp, c, ldc, false, &o); break;
    case 4: kernel<4, true>(nr, a, bp, c, ldc, false, &o); break;
    case 3: kernel<3, true>(nr, a, bp, c, ldc, false, &o); break;
    case 2: kernel<2, true>(nr, a, bp, c, ldc, false, &o); break;
    default: kernel<1, true>(nr, a, bp, c, ldc, false, &o); break;
  }
}

template <bool OUT, int NP>
void by_mr(int mr, int nr, const SgemmA& a, const float* bp, long panel_floats, float* c, long ldc, bool accumulate,
           const SgemmOut* o) {
  switch (mr) {
    case 6: kernel<6, OUT, NP>(nr, a, bp, c, ldc, accumulate, o, panel_floats); break;
    case 5: kernel<5, OUT, NP>(nr, a, bp, c, ldc, accumulate, o, panel_floats); break;
    case 4: kernel<4, OUT, NP>(nr, a, bp, c, ldc, accumulate, o, panel_floats); break;
    case 3: kernel<3, OUT, NP>(nr, a, bp, c, ldc, accumulate, o, panel_floats); break;
    case 2: kernel<2, OUT, NP>(nr, a, bp, c, ldc, accumulate, o, panel_floats); break;
    default: kernel<1, OUT, NP>(nr, a, bp, c, ldc, accumulate, o, panel_floats); break;
  }
}

template <int NP>
void dispatch2(int mr, int nr, const SgemmA& a, const float* bp, long panel_floats, float* c, long ldc,
               bool accumulate, const SgemmOut* o) {
  if (o)
    by_mr<true, NP>(mr, nr, a, bp, panel_floats, c, ldc, accumulate, o);
  else
    by_mr<false, NP>(mr, nr, a, bp, panel_floats, c, ldc, accumulate, nullptr);
}

void sgemm2_6x64_avx512(int mr, int nr, const SgemmA& a, const float* bp, long panel_floats, float* c, long ldc,
                        bool accumulate, const SgemmOut* o) {
  if (nr > 32)
    dispatch2<2>(mr, nr, a, bp, panel_floats, c, ldc, accumulate, o);
  else
    dispatch2<1>(mr, nr, a, bp, panel_floats, c, ldc, accumulate, o);
}

// 4 weight rows at a time share each load of a; 16 (8) lanes per FMA.
void sgemv_avx512(int M, int N, int K, const float* a, long lda, const float* w, long ldw,
                float* c, long ldc) {
  for (int m = 0; m < M; ++m) {
    const float* am = a + m * lda;
    int n = 0;
    for (; n + 4 <= N; n += 4) {
      __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
      const float* w0 = w + n * ldw;
      int k = 0;
      for (; k + 16 <= K; k += 16) {
        const __m512 x = _mm512_loadu_ps(am + k);
        s0 = _mm512_fmadd_ps(x, _mm512_loadu_ps(w0 + k), s0);
        s1 = _mm512_fmadd_ps(x, _mm512_loadu_ps(w0 + ldw + k), s1);
        s2 = _mm512_fmadd_ps(x, _mm512_loadu_ps(w0 + 2 * ldw + k), s2);
        s3 = _mm512_fmadd_ps(x, _mm512_loadu_ps(w0 + 3 * ldw + k), s3);
      }
      float r[4] = {_mm512_reduce_add_ps(s0), _mm512_reduce_add_ps(s1), _mm512_reduce_add_ps(s2), _mm512_reduce_add_ps(s3)};
      for (; k < K; ++k)
        for (int q = 0; q < 4; ++q) r[q] += am[k] * w0[q * ldw + k];
      for (int q = 0; q < 4; ++q) c[m * ldc + n + q] = r[q];
    }
    for (; n < N; ++n) {
      __m512 s0 = _mm512_setzero_ps();
      const float* wn = w + n * ldw;
      int k = 0;
      for (; k + 16 <= K; k += 16) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(am + k), _mm512_loadu_ps(wn + k), s0);
      float r = _mm512_reduce_add_ps(s0);
      for (; k < K; ++k) r += am[k] * wn[k];
      c[m * ldc + n] = r;
    }
  }
}

}  // namespace

const SgemmConfig& sgemm_config_avx512() {
  static const SgemmConfig cfg{"sgemm_6x32_avx512", 6, 32, sgemm_6x32_avx512, sgemv_avx512, sgemm_out_6x32_avx512,
                                sgemm2_6x64_avx512};
  return cfg;
}

}  // namespace onebit
