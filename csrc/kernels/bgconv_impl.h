// The bit-sliced grouped-conv kernel (contract in kernels/bgconv.h), written
// once over a vector of VW 64-bit words and compiled by each ISA's unit with
// its own flags (kernels/<isa>/bgconv_<VW>w_<isa>.cc): the word loops are
// plain fixed-size loops the compiler turns into zmm (8 words), ymm (4) or
// xmm / q registers (2). Include only from those units: everything here has
// internal linkage, so no ISA's copy can be merged into another's.
#pragma once

#include "kernels/bgconv.h"

namespace onebit {
namespace {

// Counts the mismatches of words [w0, w0 + VW) of one pixel into B planes.
template <int B, int VW>
inline void bgconv_count(const BgconvRun& r, const uint64_t* p, int w0, uint64_t (&ctr)[B][VW]) {
  for (int b = 0; b < B; ++b)
    for (int v = 0; v < VW; ++v) ctr[b][v] = 0;
  const uint64_t* wk = r.w + w0;
  for (int k = 0; k < r.terms; ++k, wk += r.words) {
    const uint64_t* s = p + r.off[k] + w0;
    uint64_t c[VW];
    for (int v = 0; v < VW; ++v) c[v] = s[v] ^ wk[v];
    for (int b = 0; b < B; ++b)
      for (int v = 0; v < VW; ++v) {
        const uint64_t carry = ctr[b][v] & c[v];
        ctr[b][v] ^= c[v];
        c[v] = carry;
      }
  }
}

template <int B, int VW>
inline void bgconv_chunk(const BgconvRun& r, const uint64_t* p, int w0, int i) {
  uint64_t ctr[B][VW];
  bgconv_count<B, VW>(r, p, w0, ctr);
  if (r.kind == OutKind::kBits) {
    // pop >= q, most significant plane first.
    uint64_t gt[VW], eq[VW];
    for (int v = 0; v < VW; ++v) gt[v] = 0, eq[v] = ~uint64_t{0};
    for (int b = B - 1; b >= 0; --b) {
      const uint64_t* qb = r.q + static_cast<size_t>(b) * r.words + w0;
      for (int v = 0; v < VW; ++v) {
        gt[v] |= eq[v] & ctr[b][v] & ~qb[v];
        eq[v] &= ~(ctr[b][v] ^ qb[v]);
      }
    }
    uint64_t* o = r.out_bits + static_cast<size_t>(i) * r.out_stride + w0;
    for (int v = 0; v < VW; ++v) o[v] = (gt[v] | eq[v]) ^ r.flip[w0 + v];
    return;
  }
  float* o = r.out_f + static_cast<size_t>(i) * r.out_stride;
  for (int v = 0; v < VW; ++v) {
    const int c0 = (w0 + v) * 64;
    const int n = r.oc - c0 < 64 ? r.oc - c0 : 64;
    for (int j = 0; j < n; ++j) {
      int32_t pop = 0;
      for (int b = 0; b < B; ++b) pop |= static_cast<int32_t>((ctr[b][v] >> j) & 1) << b;
      const int c = c0 + j;
      const int32_t dot = r.k_bits - 2 * pop - (r.corr ? r.corr[c] : 0);
      float y = static_cast<float>(dot) * r.mult[c];
      y = y + r.bias[c];
      if (r.act == Act::kRelu) {
        y = y < 0.0f ? 0.0f : y;
      } else if (r.act == Act::kPrelu) {
        y = y < 0.0f ? y * r.slope[c] : y;
      }
      o[c] = y;
    }
  }
}

template <int B, int VWMAX>
void bgconv_run(const BgconvRun& r) {
  const int tail = r.oc % 64;
  const uint64_t last_mask = tail ? (uint64_t{1} << tail) - 1 : ~uint64_t{0};
  for (int i = 0; i < r.npix; ++i) {
    const uint64_t* p = r.src + i * r.pix_step;
    int w0 = 0;
    if constexpr (VWMAX >= 8)
      for (; r.words - w0 >= 8; w0 += 8) bgconv_chunk<B, 8>(r, p, w0, i);
    if constexpr (VWMAX >= 4)
      for (; r.words - w0 >= 4; w0 += 4) bgconv_chunk<B, 4>(r, p, w0, i);
    if constexpr (VWMAX >= 2)
      for (; r.words - w0 >= 2; w0 += 2) bgconv_chunk<B, 2>(r, p, w0, i);
    for (; w0 < r.words; ++w0) bgconv_chunk<B, 1>(r, p, w0, i);
    if (r.kind == OutKind::kBits)
      r.out_bits[static_cast<size_t>(i) * r.out_stride + r.words - 1] &= last_mask;
  }
}

// The counter width is a template parameter so the planes live in registers.
template <int VWMAX>
void bgconv_dispatch(const BgconvRun& r) {
  switch (r.bits) {
    case 2: return bgconv_run<2, VWMAX>(r);
    case 3: return bgconv_run<3, VWMAX>(r);
    case 4: return bgconv_run<4, VWMAX>(r);
    case 5: return bgconv_run<5, VWMAX>(r);
    case 6: return bgconv_run<6, VWMAX>(r);
    case 7: return bgconv_run<7, VWMAX>(r);
    case 8: return bgconv_run<8, VWMAX>(r);
    case 9: return bgconv_run<9, VWMAX>(r);
    case 10: return bgconv_run<10, VWMAX>(r);
    case 11: return bgconv_run<11, VWMAX>(r);
    case 12: return bgconv_run<12, VWMAX>(r);
    case 13: return bgconv_run<13, VWMAX>(r);
    case 14: return bgconv_run<14, VWMAX>(r);
    case 15: return bgconv_run<15, VWMAX>(r);
    default: return bgconv_run<16, VWMAX>(r);
  }
}

}  // namespace
}  // namespace onebit
