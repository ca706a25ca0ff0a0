// AVX512-VNNI int8 GEMM micro-kernel, 6 x 32: 12 zmm int32 accumulators, per
// group of 4 k one broadcast of a row's 4 u8 values and two VPDPBUSD (64
// products each) against the packed int8 panel; masked stores for the column
// tail. Plus the activation quantization and the u8 im2col gather, 16 / 64
// values per instruction. The contract (and the bits) is kernels/i8gemm.h's.
// Compiled with -mavx512vnni (csrc/CMakeLists.txt), selected only where
// cpu_features().avx512vnni.
#include <immintrin.h>

#include <cstring>

#include "kernels/avx512/i8_epilogue_avx512.h"
#include "kernels/i8gemm.h"

namespace onebit {
namespace {

// acc += VPDPBUSD(a u8, b s8), through inline asm: GCC 12 expands
// _mm512_dpbusd_epi32 on an array of accumulators with two register copies per
// instruction (24 VMOVDQA beside the 12 VPDPBUSD of each k step, seen in
// objdump), which cost the 6x32 kernel ~30% on Zen 5. The "+v" operand keeps
// each accumulator in one register for the whole loop.
inline void dpbusd(__m512i& acc, __m512i a, __m512i b) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
}

// SEGW > 0: A.seg_words == SEGW, the segment loop unrolled whole (the kernel rows of
// an RGB stem are 3 or 6 words: with a loop of 6 steps per segment, its exit
// branch and set-up cost the 7x7 stem ~15%). NP panels of 32 columns (the second
// panel_words words after the first): with NP = 2, 24 accumulators, and per group of
// 4 k 6 broadcasts for 24 VPDPBUSD instead of 12 (the 6x32 tile's loads and
// instructions per VPDPBUSD held it at ~55% of the VNNI peak on the 7x7 stem).
template <int MR, int SEGW, int NP>
void kernel(int nr, const I8A& A, const uint32_t* bp, long panel_words, float* c, long ldc, const I8Epilogue& e) {
  __m512i acc[MR][2 * NP];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < 2 * NP; ++j) acc[i][j] = _mm512_setzero_si512();
  const int segw = SEGW > 0 ? SEGW : A.seg_words;
  for (int s = 0; s < A.nseg; ++s) {
    const uint8_t* a = A.p + s * A.seg_stride;
#pragma GCC unroll 8
    for (int q = 0; q < segw; ++q, bp += 32) {
      __m512i b[2 * NP];
#pragma GCC unroll 4
      for (int j = 0; j < 2 * NP; ++j) b[j] = _mm512_loadu_si512(bp + (j / 2) * panel_words + (j % 2) * 16);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        int32_t w;
        std::memcpy(&w, a + i * A.ld + 4 * q, 4);  // any alignment: a VPBROADCASTD from memory
        const __m512i av = _mm512_set1_epi32(w);
#pragma GCC unroll 4
        for (int j = 0; j < 2 * NP; ++j) dpbusd(acc[i][j], av, b[j]);
      }
    }
  }
#pragma GCC unroll 2
  for (int p = 0; p < NP; ++p) {
    const int np = nr - 32 * p;
    if (np <= 0) break;
    const I8Epilogue ep{e.zp, e.sa, e.wsum + 32 * p, e.sw + 32 * p, e.bias ? e.bias + 32 * p : nullptr};
    const I8Columns cols = i8_columns(np < 32 ? np : 32, ep);
    const I8RowTerms t0 = i8_row_terms(cols, e.zp[0], e.sa[0]);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
      i8_store_terms(cols, i8_terms_of_row(cols, e, i, t0), e.bias != nullptr, acc[i][2 * p], acc[i][2 * p + 1],
                     c + i * ldc + 32 * p);
  }
}

template <int SEGW, int NP>
void by_rows(int mr, int nr, const I8A& a, const uint32_t* bp, long panel_words, float* c, long ldc,
             const I8Epilogue& e) {
  switch (mr) {
    case 6: kernel<6, SEGW, NP>(nr, a, bp, panel_words, c, ldc, e); break;
    case 5: kernel<5, SEGW, NP>(nr, a, bp, panel_words, c, ldc, e); break;
    case 4: kernel<4, SEGW, NP>(nr, a, bp, panel_words, c, ldc, e); break;
    case 3: kernel<3, SEGW, NP>(nr, a, bp, panel_words, c, ldc, e); break;
    case 2: kernel<2, SEGW, NP>(nr, a, bp, panel_words, c, ldc, e); break;
    default: kernel<1, SEGW, NP>(nr, a, bp, panel_words, c, ldc, e); break;
  }
}

void i8gemm_seg_6x32_avx512vnni(int mr, int nr, const I8A& a, const uint32_t* bp, float* c, long ldc,
                                const I8Epilogue& e) {
  if (a.nseg > 1 && a.seg_words == 6) return by_rows<6, 1>(mr, nr, a, bp, 0, c, ldc, e);  // 7x7 on RGB
  if (a.nseg > 1 && a.seg_words == 3) return by_rows<3, 1>(mr, nr, a, bp, 0, c, ldc, e);  // 3x3 on RGB
  by_rows<0, 1>(mr, nr, a, bp, 0, c, ldc, e);
}

void i8gemm_seg2_6x64_avx512vnni(int mr, int nr, const I8A& a, const uint32_t* bp, long panel_words, float* c,
                                 long ldc, const I8Epilogue& e) {
  if (a.nseg > 1 && a.seg_words == 6) return by_rows<6, 2>(mr, nr, a, bp, panel_words, c, ldc, e);
  if (a.nseg > 1 && a.seg_words == 3) return by_rows<3, 2>(mr, nr, a, bp, panel_words, c, ldc, e);
  by_rows<0, 2>(mr, nr, a, bp, panel_words, c, ldc, e);
}

void i8gemm_6x32_avx512vnni(int mr, int nr, int kq, const uint32_t* a, long lda, const uint32_t* bp,
                            float* c, long ldc, const I8Epilogue& e) {
  i8gemm_seg_6x32_avx512vnni(mr, nr, I8A{reinterpret_cast<const uint8_t*>(a), lda * 4, 1, kq, 0}, bp, c, ldc, e);
}

// x * inv, + zp, max(., 0) (NaN -> 0: VMAXPS returns its second operand), min(., 255),
// VCVTPS2DQ (round to nearest even), narrowed to bytes.
void quantize_avx512vnni(const float* src, uint8_t* dst, long n, float inv, float zp) {
  const __m512 vinv = _mm512_set1_ps(inv), vzp = _mm512_set1_ps(zp);
  const __m512 lo = _mm512_setzero_ps(), hi = _mm512_set1_ps(255.0f);
  for (long i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (n - i)) - 1);
    __m512 v = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, src + i), vinv), vzp);
    // (the masked forms with every lane set: GCC 12 warns on the plain ones' undefined pass-through)
    v = _mm512_mask_max_ps(v, 0xFFFF, v, lo);
    v = _mm512_mask_min_ps(v, 0xFFFF, v, hi);
    _mm512_mask_cvtepi32_storeu_epi8(dst + i, m, _mm512_mask_cvtps_epi32(_mm512_setzero_si512(), 0xFFFF, v));
  }
}

// VMINPS / VMAXPS with the running value second: a NaN input leaves it.
void range_avx512vnni(const float* x, long n, float* lo, float* hi) {
  __m512 l = _mm512_setzero_ps(), h = _mm512_setzero_ps();
  for (long i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    l = _mm512_mask_min_ps(l, 0xFFFF, v, l);
    h = _mm512_mask_max_ps(h, 0xFFFF, v, h);
  }
  float ls[16], hs[16];  // min / max are exact: any order gives the same value
  _mm512_storeu_ps(ls, l);
  _mm512_storeu_ps(hs, h);
  float a = 0.0f, b = 0.0f;
  for (int j = 0; j < 16; ++j) a = ls[j] < a ? ls[j] : a, b = hs[j] > b ? hs[j] : b;
  *lo = a, *hi = b;
}

void gather_avx512vnni(const uint8_t* const* src, int runs, int run, uint8_t fill, uint8_t* dst,
                       long dst_stride) {
  const __m512i vfill = _mm512_set1_epi8(static_cast<char>(fill));
  for (int i = 0; i < runs; ++i, dst += dst_stride)
    for (int q = 0; q < run; q += 64) {
      const __mmask64 m = run - q >= 64 ? ~__mmask64{0} : (__mmask64{1} << (run - q)) - 1;
      const __m512i v = src[i] ? _mm512_maskz_loadu_epi8(m, src[i] + q) : vfill;
      _mm512_mask_storeu_epi8(dst + q, m, v);
    }
}

}  // namespace

const I8GemmConfig& i8gemm_config_avx512vnni() {
  static const I8GemmConfig cfg{"i8gemm_6x32_avx512vnni", 6, i8gemm_6x32_avx512vnni, nullptr, quantize_avx512vnni,
                                range_avx512vnni, gather_avx512vnni,
                                i8gemm_seg_6x32_avx512vnni, i8gemm_seg2_6x64_avx512vnni};
  return cfg;
}

}  // namespace onebit
