// Bit-sliced grouped binary convolution micro-kernel ("lanes" kernel).
//
// A grouped conv with few input channels per group (depthwise: one) has short
// dot products: K' = taps * cin_g terms, 9 for a 3x3 depthwise conv. The
// popcount GEMM (bgemm.h) would spend a whole 64-bit word and a 32-channel
// block per group on them. This kernel instead puts one *output channel per
// bit lane*: the driver (ops/bconv2d.cc) lays the input out so that term k of
// output channel o is bit o of a plane word (for depthwise the packed input
// itself), XORs it with the weight plane, and counts the mismatches of every
// lane at once in a bit-sliced counter (B bit planes, ripple-carry adds):
//
//   pop[o]  = #{k : plane_k[o] != w_k[o]}      (ctr[b] holds bit b of pop)
//   dot[o]  = k_bits - 2 * pop[o] - corr[o]    (corr: zero-padded taps' weights)
//
// Output stage, per output channel o < oc:
//   float: y = float(dot) * mult[o]; y = y + bias[o] (two roundings, no FMA:
//          the same bits as bgemm_epilogue_scalar); relu / prelu as there.
//   bits:  bit o = (pop[o] >= q[o]) XOR flip[o], compared bit-sliced against
//          the bit planes of q (the driver turns a threshold into q); lanes
//          past oc are stored as 0.
//
// Exact for any cin_g and any channel count: lanes are output channels, so
// padding lanes (past oc) never reach a stored result.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/bgemm.h"

namespace onebit {

constexpr int kBgconvMaxBits = 16;  // counter planes: K' < 2^16 - 1

struct BgconvRun {
  // Input: term k of pixel i reads the `words` words at src + i * pix_step + off[k].
  const uint64_t* src;
  ptrdiff_t pix_step;
  int npix;
  int terms;
  const ptrdiff_t* off;  // [terms]
  const uint64_t* w;     // [terms][words] weight planes (bit set = -1)
  int words;             // words_for(oc)
  int oc;
  int bits;              // counter planes B: 2^B > terms + 1
  OutKind kind;
  // bits output
  const uint64_t* q;     // [bits][words]: planes of the per-channel count threshold
  const uint64_t* flip;  // [words]
  uint64_t* out_bits;    // pixel i at out_bits + i * out_stride
  // float output
  int32_t k_bits;
  const int32_t* corr;   // [oc] or null
  const float* mult;     // [oc]
  const float* bias;
  const float* slope;
  Act act;
  float* out_f;
  size_t out_stride;     // words (bits) or floats per output pixel
};

using BgconvFn = void (*)(const BgconvRun& r);

struct BgconvConfig {
  const char* name;
  BgconvFn fn;
};

const BgconvConfig& bgconv_config_portable();
const BgconvConfig& bgconv_config_avx2();
const BgconvConfig& bgconv_config_avx512();
const BgconvConfig& bgconv_config_neon();

}  // namespace onebit
