// The bit-sliced grouped-conv kernel (contract in kernels/bgconv.h), written
// once over vectors of up to VW 64-bit words (NP pixels at a time) and compiled by each ISA's unit with
// its own flags (kernels/<isa>/bgconv_<VW>w_<isa>.cc): the word loops are
// plain fixed-size loops the compiler turns into zmm (8 words), ymm (4) or
// xmm / q registers (2). Include only from those units: everything here has
// internal linkage, so no ISA's copy can be merged into another's.
#pragma once

#include "kernels/bgconv.h"

namespace onebit {
namespace {

// byte j of kSpread[v] = bit j of v: turns 8 lanes of a plane into 8 bytes.
struct SpreadTable {
  uint64_t v[256];
  constexpr SpreadTable() : v() {
    for (int i = 0; i < 256; ++i) {
      uint64_t s = 0;
      for (int j = 0; j < 8; ++j) s |= static_cast<uint64_t>((i >> j) & 1) << (8 * j);
      v[i] = s;
    }
  }
};
constexpr SpreadTable kSpread{};

// Vectors of N 64-bit words (GCC/Clang vector extensions: plain operators,
// kept in registers; N = 1 is a plain word).
template <int N>
struct Vec {
  typedef uint64_t type __attribute__((vector_size(8 * N)));
};
template <>
struct Vec<1> {
  typedef uint64_t type;
};

template <int N>
inline typename Vec<N>::type load_words(const uint64_t* p) {
  typename Vec<N>::type v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}

// Counts the mismatches of words [w0, w0 + N) of NP pixels into B planes each.
// NP independent pixels keep the (latency-bound) ripple-carry chains overlapped.
template <int B, int N, int NP>
inline void bgconv_chunk(const BgconvRun& r, const uint64_t* const* p, int w0, int pix0) {
  using V = typename Vec<N>::type;
  V ctr[NP][B];
  for (int i = 0; i < NP; ++i)
    for (int b = 0; b < B; ++b) ctr[i][b] = V{} ^ V{};
  const uint64_t* wk = r.w + w0;
  for (int k = 0; k < r.terms; ++k, wk += r.words) {
    const ptrdiff_t o = r.off[k] + w0;
    const V wv = load_words<N>(wk);
    V c[NP];
    for (int i = 0; i < NP; ++i) c[i] = load_words<N>(p[i] + o) ^ wv;
    for (int b = 0; b < B; ++b)
      for (int i = 0; i < NP; ++i) {
        const V carry = ctr[i][b] & c[i];
        ctr[i][b] ^= c[i];
        c[i] = carry;
      }
  }
  for (int i = 0; i < NP; ++i) {
    const int pix = pix0 + i;
    if (r.kind == OutKind::kBits) {
      // pop >= q, most significant plane first.
      V gt = V{} ^ V{}, eq = ~gt;
      for (int b = B - 1; b >= 0; --b) {
        const V qb = load_words<N>(r.q + static_cast<size_t>(b) * r.words + w0);
        gt |= eq & ctr[i][b] & ~qb;
        eq &= ~(ctr[i][b] ^ qb);
      }
      const V res = (gt | eq) ^ load_words<N>(r.flip + w0);
      __builtin_memcpy(r.out_bits + static_cast<size_t>(pix) * r.out_stride + w0, &res, sizeof(res));
      continue;
    }
    uint64_t planes[B][N];
    for (int b = 0; b < B; ++b) __builtin_memcpy(planes[b], &ctr[i][b], sizeof(V));
    float* o = r.out_f + static_cast<size_t>(pix) * r.out_stride;
    for (int v = 0; v < N; ++v) {
      const int c0 = (w0 + v) * 64;
      const int n = r.oc - c0 < 64 ? r.oc - c0 : 64;
      int32_t dot[64];
      for (int j0 = 0; j0 < n; j0 += 8) {
        if constexpr (B <= 8) {  // the counts of 8 lanes at once, one byte each
          uint64_t bytes = 0;
          for (int b = 0; b < B; ++b) bytes += kSpread.v[(planes[b][v] >> j0) & 0xFF] << b;
          for (int j = 0; j < 8; ++j) dot[j0 + j] = static_cast<int32_t>((bytes >> (8 * j)) & 0xFF);
        } else {
          for (int j = j0; j < j0 + 8; ++j) {
            int32_t pop = 0;
            for (int b = 0; b < B; ++b) pop |= static_cast<int32_t>((planes[b][v] >> j) & 1) << b;
            dot[j] = pop;
          }
        }
      }
      // Plain loops over the lanes from here on (the compiler vectorizes them).
      for (int j = 0; j < n; ++j) dot[j] = r.k_bits - 2 * dot[j];
      if (r.corr)
        for (int j = 0; j < n; ++j) dot[j] -= r.corr[c0 + j];
      float* dst = o + c0;
      const float* mult = r.mult + c0;
      const float* bias = r.bias + c0;
      for (int j = 0; j < n; ++j) {
        float y = static_cast<float>(dot[j]) * mult[j];
        dst[j] = y + bias[j];
      }
      if (r.act == Act::kRelu) {
        for (int j = 0; j < n; ++j) dst[j] = dst[j] < 0.0f ? 0.0f : dst[j];
      } else if (r.act == Act::kPrelu) {
        const float* slope = r.slope + c0;
        for (int j = 0; j < n; ++j) dst[j] = dst[j] < 0.0f ? dst[j] * slope[j] : dst[j];
      }
    }
  }
}

template <int B, int NP, int VWMAX>
inline void bgconv_pixels(const BgconvRun& r, int pix0) {
  const uint64_t* p[NP];
  for (int i = 0; i < NP; ++i) p[i] = r.src + (pix0 + i) * r.pix_step;
  int w0 = 0;
  if constexpr (VWMAX >= 8)
    for (; r.words - w0 >= 8; w0 += 8) bgconv_chunk<B, 8, NP>(r, p, w0, pix0);
  if constexpr (VWMAX >= 4)
    for (; r.words - w0 >= 4; w0 += 4) bgconv_chunk<B, 4, NP>(r, p, w0, pix0);
  if constexpr (VWMAX >= 2)
    for (; r.words - w0 >= 2; w0 += 2) bgconv_chunk<B, 2, NP>(r, p, w0, pix0);
  for (; w0 < r.words; ++w0) bgconv_chunk<B, 1, NP>(r, p, w0, pix0);
}

template <int B, int VWMAX, int NP>
void bgconv_run(const BgconvRun& r) {
  int i = 0;
  for (; i + NP <= r.npix; i += NP) bgconv_pixels<B, NP, VWMAX>(r, i);
  for (; i < r.npix; ++i) bgconv_pixels<B, 1, VWMAX>(r, i);
  if (r.kind == OutKind::kBits) {
    const int tail = r.oc % 64;
    if (tail)
      for (int j = 0; j < r.npix; ++j)
        r.out_bits[static_cast<size_t>(j) * r.out_stride + r.words - 1] &= (uint64_t{1} << tail) - 1;
  }
}

// The counter width is a template parameter so the planes live in registers;
// NP pixels at a time (NP * B vectors of counters).
template <int VWMAX, int NP>
void bgconv_dispatch(const BgconvRun& r) {
  switch (r.bits) {
    case 2: return bgconv_run<2, VWMAX, NP>(r);
    case 3: return bgconv_run<3, VWMAX, NP>(r);
    case 4: return bgconv_run<4, VWMAX, NP>(r);
    case 5: return bgconv_run<5, VWMAX, NP>(r);
    case 6: return bgconv_run<6, VWMAX, NP>(r);
    case 7: return bgconv_run<7, VWMAX, NP>(r);
    case 8: return bgconv_run<8, VWMAX, NP>(r);
    case 9: return bgconv_run<9, VWMAX, NP>(r);
    case 10: return bgconv_run<10, VWMAX, NP>(r);
    case 11: return bgconv_run<11, VWMAX, NP>(r);
    case 12: return bgconv_run<12, VWMAX, NP>(r);
    case 13: return bgconv_run<13, VWMAX, NP>(r);
    case 14: return bgconv_run<14, VWMAX, NP>(r);
    case 15: return bgconv_run<15, VWMAX, NP>(r);
    default: return bgconv_run<16, VWMAX, NP>(r);
  }
}

}  // namespace
}  // namespace onebit
