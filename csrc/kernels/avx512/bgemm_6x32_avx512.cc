// AVX-512 binary GEMM micro-kernel: MR <= 6 pixels x 32 output channels.
//
// Weights are laid out 32 channels per 64-bit word of K, so one zmm holds word
// k of 8 channels; each input word is broadcast (embedded {1to8} broadcast of
// a memory operand, no shuffle uop) and XORed against 4 weight vectors. Per
// 512 binary MACs: vpxorq + vpopcntq + vpaddq, i.e. the machine's peak triple;
// 6 x 4 = 24 independent accumulator chains hide the popcount latency.
// The output stage (scale/bias/activation to float, or threshold to bits)
// runs in registers.
#include <immintrin.h>

#include "kernels/bgemm.h"

namespace onebit {
namespace {

// BgemmStage's fused post-op on the 32 values of one block about to be stored at o
// (channels c0 .. c0 + 31, n of them valid): the operations of ChanOp::kPost
// (kernels/chanwise_impl.h) in its order, so the same bits as the separate pass.
inline void post_op(const BgemmStage& st, const float* o, int n, int c0, __m512& y0, __m512& y1) {
  const __mmask16 m0 = n >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << n) - 1);
  const __mmask16 m1 = n >= 32 ? 0xFFFF : n <= 16 ? 0 : static_cast<__mmask16>((1u << (n - 16)) - 1);
  const float* r = st.residual ? st.residual + (o - st.out_base) : nullptr;
  const __m512 zero = _mm512_setzero_ps();
  if (r && !st.post_scale) {
    y0 = _mm512_add_ps(y0, _mm512_maskz_loadu_ps(m0, r));
    y1 = _mm512_add_ps(y1, _mm512_maskz_loadu_ps(m1, r + 16));
  }
  if (st.post_relu) {  // v > 0 or NaN: v, else +0 (the relu op: -0 becomes +0)
    y0 = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(y0, zero, _CMP_NLE_UQ), y0);
    y1 = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(y1, zero, _CMP_NLE_UQ), y1);
  }
  if (st.post_scale) {
    y0 = _mm512_add_ps(_mm512_mul_ps(y0, _mm512_maskz_loadu_ps(m0, st.post_scale + c0)),
                       _mm512_maskz_loadu_ps(m0, st.post_shift + c0));
    y1 = _mm512_add_ps(_mm512_mul_ps(y1, _mm512_maskz_loadu_ps(m1, st.post_scale + c0 + 16)),
                       _mm512_maskz_loadu_ps(m1, st.post_shift + c0 + 16));
    if (r) {
      y0 = _mm512_add_ps(y0, _mm512_maskz_loadu_ps(m0, r));
      y1 = _mm512_add_ps(y1, _mm512_maskz_loadu_ps(m1, r + 16));
    }
  }
}

template <int MR>
void bgemm_mrx32_avx512(int kw, const uint64_t* const* rows, const ptrdiff_t* koff,
                        const uint64_t* wbase,
                        size_t block_words, int b0, int b1, const int32_t* const* corr,
                        const BgemmStage& st, void* const* out) {
  const __m512i kb = _mm512_set1_epi32(st.k_bits);
  const __m512i lo_dwords =
      _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512 zero = _mm512_setzero_ps();
  const __m512 kf = _mm512_set1_ps(static_cast<float>(st.k_bits));
  const __m512 two = _mm512_set1_ps(2.0f);
  for (int b = b0; b < b1; ++b) {
  const uint64_t* w = wbase + b * block_words;
  __m512i acc[MR][4];
  // Word 0 seeds the accumulators (no zeroing moves on the popcount ports).
  {
    const ptrdiff_t off = koff[0];
    const __m512i w0 = _mm512_load_si512(w), w1 = _mm512_load_si512(w + 8);
    const __m512i w2 = _mm512_load_si512(w + 16), w3 = _mm512_load_si512(w + 24);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512i av = _mm512_set1_epi64(static_cast<long long>(rows[i][off]));
      acc[i][0] = _mm512_popcnt_epi64(_mm512_xor_si512(av, w0));
      acc[i][1] = _mm512_popcnt_epi64(_mm512_xor_si512(av, w1));
      acc[i][2] = _mm512_popcnt_epi64(_mm512_xor_si512(av, w2));
      acc[i][3] = _mm512_popcnt_epi64(_mm512_xor_si512(av, w3));
    }
  }
  for (int k = 1; k < kw; ++k) {
    const ptrdiff_t off = koff[k];
    const uint64_t* wk = w + static_cast<size_t>(k) * kNR;
    const __m512i w0 = _mm512_load_si512(wk);
    const __m512i w1 = _mm512_load_si512(wk + 8);
    const __m512i w2 = _mm512_load_si512(wk + 16);
    const __m512i w3 = _mm512_load_si512(wk + 24);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512i av = _mm512_set1_epi64(static_cast<long long>(rows[i][off]));
      acc[i][0] = _mm512_add_epi64(acc[i][0], _mm512_popcnt_epi64(_mm512_xor_si512(av, w0)));
      acc[i][1] = _mm512_add_epi64(acc[i][1], _mm512_popcnt_epi64(_mm512_xor_si512(av, w1)));
      acc[i][2] = _mm512_add_epi64(acc[i][2], _mm512_popcnt_epi64(_mm512_xor_si512(av, w2)));
      acc[i][3] = _mm512_add_epi64(acc[i][3], _mm512_popcnt_epi64(_mm512_xor_si512(av, w3)));
    }
  }
  const int nvalid = st.oc - b * kNR < kNR ? st.oc - b * kNR : kNR;
  const float* mult = st.mult + b * kNR;
  const float* bias = st.bias + b * kNR;
  const float* slope = st.slope + b * kNR;
  const int32_t* thr = st.thr + b * kNR;
  const int64_t* pthr = st.pop_thr + b * kNR;
  // a fused sign (BgemmStage::sign_thr): its thresholds and masks held for the block
  uint32_t* const* const srows = st.sign_thr ? st.sign_rows : nullptr;
  __m512 sthr0 = zero, sthr1 = zero;
  uint32_t sflip = 0, svalid = 0;
  if (srows) {
    sthr0 = _mm512_loadu_ps(st.sign_thr + b * kNR);
    sthr1 = _mm512_loadu_ps(st.sign_thr + b * kNR + 16);
    sflip = st.sign_flip[b];
    svalid = nvalid == kNR ? ~uint32_t{0} : (uint32_t{1} << nvalid) - 1;
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    if (st.kind == OutKind::kBits && !corr[i]) {
      // Compare the 64-bit popcounts directly: 4 compares per 32 channels.
      const uint32_t m0 = _mm512_cmpgt_epi64_mask(acc[i][0], _mm512_loadu_si512(pthr));
      const uint32_t m1 = _mm512_cmpgt_epi64_mask(acc[i][1], _mm512_loadu_si512(pthr + 8));
      const uint32_t m2 = _mm512_cmpgt_epi64_mask(acc[i][2], _mm512_loadu_si512(pthr + 16));
      const uint32_t m3 = _mm512_cmpgt_epi64_mask(acc[i][3], _mm512_loadu_si512(pthr + 24));
      static_cast<uint32_t*>(out[i])[b] =
          (m0 | (m1 << 8) | (m2 << 16) | (m3 << 24)) ^ st.flip[b];
      continue;
    }
    // popcounts (64-bit lanes, < 2^31) -> int32 for channels 0..15 and 16..31:
    // one two-source permute of the low dwords per pair (1 uop, vs 2 vpmovqd + insert)
    __m512i p0 = _mm512_permutex2var_epi32(acc[i][0], lo_dwords, acc[i][1]);
    __m512i p1 = _mm512_permutex2var_epi32(acc[i][2], lo_dwords, acc[i][3]);
    if (st.kind == OutKind::kFloat) {
      // float(dot) = k - 2 * pop (- corr): integers below 2^24, so computing
      // it in float (cvt, then one fused k - 2 * pop) is exact.
      __m512 f0 = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(p0), two, kf);
      __m512 f1 = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(p1), two, kf);
      if (corr[i]) {
        f0 = _mm512_sub_ps(f0, _mm512_cvtepi32_ps(_mm512_loadu_si512(corr[i] + b * kNR)));
        f1 = _mm512_sub_ps(f1, _mm512_cvtepi32_ps(_mm512_loadu_si512(corr[i] + b * kNR + 16)));
      }
      __m512 y0 = _mm512_mul_ps(f0, _mm512_loadu_ps(mult));
      __m512 y1 = _mm512_mul_ps(f1, _mm512_loadu_ps(mult + 16));
      y0 = _mm512_add_ps(y0, _mm512_loadu_ps(bias));
      y1 = _mm512_add_ps(y1, _mm512_loadu_ps(bias + 16));
      if (st.act == Act::kRelu) {
        y0 = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(y0, zero, _CMP_LT_OQ), y0, zero);
        y1 = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(y1, zero, _CMP_LT_OQ), y1, zero);
      } else if (st.act == Act::kPrelu) {
        y0 = _mm512_mask_mul_ps(y0, _mm512_cmp_ps_mask(y0, zero, _CMP_LT_OQ), y0,
                                _mm512_loadu_ps(slope));
        y1 = _mm512_mask_mul_ps(y1, _mm512_cmp_ps_mask(y1, zero, _CMP_LT_OQ), y1,
                                _mm512_loadu_ps(slope + 16));
      }
      float* o = static_cast<float*>(out[i]) + b * kNR;
      if (st.post) post_op(st, o, nvalid, b * kNR, y0, y1);
      if (srows) {  // the next sign's bits, from the values about to be stored
        const uint32_t lo = _mm512_cmp_ps_mask(y0, sthr0, _CMP_LT_OQ);
        const uint32_t hi = _mm512_cmp_ps_mask(y1, sthr1, _CMP_LT_OQ);
        srows[i][b] = ((lo | (hi << 16)) ^ sflip) & svalid;
      }
      if (nvalid == kNR) {
        _mm512_storeu_ps(o, y0);
        _mm512_storeu_ps(o + 16, y1);
      } else {
        const uint32_t m = (uint32_t{1} << nvalid) - 1;
        _mm512_mask_storeu_ps(o, static_cast<__mmask16>(m & 0xFFFF), y0);
        _mm512_mask_storeu_ps(o + 16, static_cast<__mmask16>(m >> 16), y1);
      }
    } else {
      __m512i d0 = _mm512_sub_epi32(kb, _mm512_add_epi32(p0, p0));
      __m512i d1 = _mm512_sub_epi32(kb, _mm512_add_epi32(p1, p1));
      d0 = _mm512_sub_epi32(d0, _mm512_loadu_si512(corr[i] + b * kNR));
      d1 = _mm512_sub_epi32(d1, _mm512_loadu_si512(corr[i] + b * kNR + 16));
      const uint32_t lo = _mm512_cmplt_epi32_mask(d0, _mm512_loadu_si512(thr));
      const uint32_t hi = _mm512_cmplt_epi32_mask(d1, _mm512_loadu_si512(thr + 16));
      static_cast<uint32_t*>(out[i])[b] = (lo | (hi << 16)) ^ st.flip[b];
    }
  }
  }
}

}  // namespace

const BgemmConfig& bgemm_config_avx512() {
  static const BgemmConfig cfg{"bgemm_6x32_avx512", 6,
                               {bgemm_mrx32_avx512<1>, bgemm_mrx32_avx512<2>,
                                bgemm_mrx32_avx512<3>, bgemm_mrx32_avx512<4>,
                                bgemm_mrx32_avx512<5>, bgemm_mrx32_avx512<6>},
                               /*fuses_post=*/true};
  return cfg;
}

}  // namespace onebit
