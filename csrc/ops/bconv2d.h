// Binary 2-D convolution and binary GEMM over bit-packed NHWC activations.
#pragma once

#include <cstdint>

#include "kernels/bgemm.h"
#include "pack/pack.h"

namespace onebit {

enum class PadValue : int { kZero = 0, kPlusOne = 1, kMinusOne = -1 };

struct ConvParams {
  int n = 1, h = 1, w = 1, cin = 1;     // input (bit-packed, words_for(cin) per pixel)
  int kh = 1, kw = 1;
  int sh = 1, sw = 1, dh = 1, dw = 1;
  int pt = 0, pl = 0, pb = 0, pr = 0;   // padding top, left, bottom, right
  int oh = 1, ow = 1;                   // output size (computed by the caller)
  PadValue pad = PadValue::kPlusOne;
  int groups = 1;
  int oc = 1;
};

// Per-output-channel output stage; null arrays mean mult 1, bias 0, slope 0.25,
// thr 0, flip 0. Bits output: bit set (= -1) iff dot < thr[c], or dot > thr[c]
// where flip[c] != 0.
struct OutputStage {
  OutKind kind = OutKind::kFloat;
  Act act = Act::kNone;
  const float* mult = nullptr;
  const float* bias = nullptr;
  const float* slope = nullptr;
  const int32_t* thr = nullptr;
  const uint8_t* flip = nullptr;
  // Float output, after the stage above: y = post_act(y + residual) (ops/post_ops.h),
  // residual [n][oh][ow][oc] or null; what the exporter fused from a following add/relu.
  // It may be the output's own buffer (Model's residual_in_place): the kernels that add
  // it in their registers read each value before storing over it; bconv2d gives the
  // others a copy.
  const float* residual = nullptr;
  Act post_act = Act::kNone;
  // Both or neither: y = post_act(y) * post_scale + post_shift (+ residual) instead
  // (ops/post_ops.h), per output channel.
  const float* post_scale = nullptr;
  const float* post_shift = nullptr;
  // Float output: also the sign of the final values (Model::fuse_bconv_sign), packed
  // [n][oh][ow][words_for(oc)]: bit c set iff y[c] < sign_thr[c], xor bit c of sign_flip
  // (null: none); the bits of pack_rows_f32 on the output. sign_out null: no sign.
  uint64_t* sign_out = nullptr;
  const float* sign_thr = nullptr;      // [oc]
  const uint64_t* sign_flip = nullptr;  // [words_for(oc)] or null
};

// Output: float [n][oh][ow][oc] or uint64 [n][oh][ow][words_for(oc)].
// Uses the active ISA (the naive reference kernel for Isa::kReference).
// ldo: floats from one output pixel to the next of a float output (0: oc); a
// wider stride needs groups = 1, a kernel other than the bit-sliced one
// (bconv2d_strided_ok) and no residual.
// Zero padding's corrections of the GEMM kernel's sums (a padded tap reads +1, not 0).
// Output rows (columns) with the same taps inside the input form a class; a pair of
// classes with taps outside has a row of the table, the weight sums of those taps,
// [nblocks * 32]. O(oh + ow + patterns * oc) memory; they depend on the geometry and the
// weights only (not on the batch); bconv2d makes them per call unless given them.
struct ZeroPadCorrections {
  std::vector<int32_t> row_class, col_class;  // [oh], [ow]
  int ncols = 0;                              // column classes
  std::vector<int32_t> pattern;               // [row class * ncols + column class]: -1 or table row
  avector<int32_t> table;
  int at(int oy, int ox) const { return pattern[static_cast<size_t>(row_class[oy]) * ncols + col_class[ox]]; }
  bool empty() const { return pattern.empty(); }
};
// Empty unless p has zero padding; g: the group whose weights.
ZeroPadCorrections zero_pad_corrections(const ConvParams& p, const PackedWeights& w, int g = 0);

// corr: zero_pad_corrections(p, w) made earlier (at load) for p's geometry, or null.
void bconv2d(const uint64_t* x, const PackedWeights& w, const ConvParams& p,
             const OutputStage& os, void* out, int nthreads, size_t ldo = 0,
             const ZeroPadCorrections* corr = nullptr);
bool bconv2d_strided_ok(const ConvParams& p, const OutputStage& os);

// The naive, obviously correct kernel: bit by bit, straight from the
// definition of a +-1 convolution with the given padding.
void bconv2d_reference(const uint64_t* x, const PackedWeights& w, const ConvParams& p,
                       const OutputStage& os, void* out, size_t ldo = 0);

// Name of the micro-kernel bconv2d/bgemm use under the active ISA.
const char* bgemm_kernel_name();
// Name of the bit-sliced kernel grouped convs with few channels per group use
// (bgconv_uses_lanes) under the active ISA.
const char* bgconv_kernel_name();

}  // namespace onebit
