// Binary GEMM micro-kernel interface (XNOR-popcount with a fused output stage).
//
// A micro-kernel computes an MR x 32 tile: MR output pixels (rows of A) times
// one block of 32 output channels of packed weights. The K dimension is kw
// 64-bit words; word k of row i is rows[i][koff[k]] (the input is physically
// padded, so word c of tap t of every pixel is the fixed offset
// tap_offset[t] + c from the pixel's first tap). For row i and channel j:
//
//   pop[i][j] = sum_k popcount(rows[i][koff[k]] ^ w[k*32 + j])
//   dot[i][j] = k_bits - 2 * pop[i][j] - corr[i][j]      (the exact +-1 dot product)
//
// and writes, per the output stage,
//   float: y = float(dot) * mult[j];  y = y + bias[j]  (two roundings, no FMA,
//          so every ISA gives identical bits); relu: y < 0 ? 0 : y;
//          prelu: y < 0 ? y * slope[j] : y;  only channels < oc are stored.
//   bits:  bit j = (dot < thr[j]) XOR flip bit j, stored as one uint32.
//          Channels past the layer's end have thr = INT_MIN.
//
// corr[i] is null for rows with no zero-padded taps, else points to 32 int32.
#pragma once

#include <cstddef>
#include <cstdint>

namespace onebit {

constexpr int kNR = 32;  // output channels per packed weight block (all ISAs)

enum class OutKind : int { kFloat = 0, kBits = 1 };
enum class Act : int { kNone = 0, kRelu = 1, kPrelu = 2 };

struct BgemmEpilogue {
  OutKind kind;
  Act act;
  int32_t k_bits;
  int nvalid;           // float output: channels of this block that exist
  const float* mult;    // 32 entries
  const float* bias;    // 32
  const float* slope;   // 32 (prelu)
  const int32_t* thr;   // 32 (bits)
  uint32_t flip;        // bits: channels whose comparison is reversed
};

// Output-stage arrays for a whole layer (padded to whole 32-channel blocks).
struct BgemmStage {
  OutKind kind;
  Act act;
  int32_t k_bits;
  int oc;                // channels that exist (float stores stop there)
  const float* mult;     // [nblocks * 32]
  const float* bias;
  const float* slope;
  const int32_t* thr;
  const uint32_t* flip;  // [nblocks]
  // Bits output, rows without a zero-padding correction: dot < thr[j] <=>
  // pop > pop_thr[j] = floor((k_bits - thr[j]) / 2), so kernels may compare
  // the raw 64-bit popcounts (no narrowing, no arithmetic).
  const int64_t* pop_thr;
  // The fused add / relu / BatchNorm of a float output (ops/post_ops.h), done in
  // registers by the kernels whose BgemmConfig::fuses_post is set (the others leave
  // it to the caller): with post set, y = relu?(y + res), or with post_scale
  // y = relu?(y) * post_scale + post_shift (+ res), in that order, one rounding per
  // step, as ChanOp::kPost. Row i's residual (null: none) is at
  // residual + (out[i] - out_base): the residual and the output share one layout.
  bool post = false;
  bool post_relu = false;
  const float* post_scale = nullptr;
  const float* post_shift = nullptr;
  const float* residual = nullptr;
  const float* out_base = nullptr;
  // The sign of a float output fused in (Model::fuse_bconv_sign), by the kernels whose
  // BgemmConfig::fuses_post is set: after the post-op, bit j of half-word b of row i's
  // bits (sign_rows[i][b]) is set iff y_j < sign_thr[32b + j], xor sign_flip[b]; bits
  // past oc are 0. The same bits as pack_rows_f32 of the stored output (sign.cc).
  const float* sign_thr = nullptr;      // [nblocks * 32]; null: no sign
  const uint32_t* sign_flip = nullptr;  // [nblocks]
  uint32_t* const* sign_rows = nullptr;  // per row of the call
};

// The per-block view used by the scalar output stage. (static: header code is
// compiled into every ISA's unit, and must not be merged across them.)
static inline BgemmEpilogue stage_block(const BgemmStage& st, int b) {
  const int left = st.oc - b * kNR;
  return BgemmEpilogue{st.kind, st.act, st.k_bits, left < kNR ? left : kNR, st.mult + b * kNR,
                       st.bias + b * kNR, st.slope + b * kNR, st.thr + b * kNR, st.flip[b]};
}

// One call computes MR pixels x channel blocks [b0, b1): block b's filters
// start at w + b * block_words; row i's output starts at out[i] (float: the
// pixel's first channel, bits: its first word) and block b writes channels
// [32b, 32b + 32) of it. corr[i] is null or the row's full correction vector.
using BgemmUkernelFn = void (*)(int kw, const uint64_t* const* rows, const ptrdiff_t* koff,
                                const uint64_t* w,
                                size_t block_words, int b0, int b1, const int32_t* const* corr,
                                const BgemmStage& st, void* const* out);

// Per-ISA micro-kernel set: fn[mr - 1] handles mr rows, mr in [1, mr_max].
struct BgemmConfig {
  const char* name;
  int mr_max;
  BgemmUkernelFn fn[8];
  bool fuses_post = false;  // the kernels apply BgemmStage's post-op and sign themselves
};

const BgemmConfig& bgemm_config_portable();
const BgemmConfig& bgemm_config_avx2();
const BgemmConfig& bgemm_config_avx512();
const BgemmConfig& bgemm_config_neon();

// Where block b of a row's output starts.
static inline void* block_out(void* row, OutKind kind, int b) {
  return kind == OutKind::kFloat ? static_cast<void*>(static_cast<float*>(row) + b * kNR)
                                 : static_cast<void*>(static_cast<uint32_t*>(row) + b);
}

// Scalar output stage shared by the reference, portable and AVX2 paths
// (ops/epilogue.cc, compiled for baseline x86-64). dot: n values for channels
// [0, n) of one block; out as in the micro-kernel contract.
void bgemm_epilogue_scalar(const int32_t* dot, const BgemmEpilogue& ep, void* out);
// The NEON output stage the aarch64 kernel inlines, callable (tests); dot and
// the stage arrays hold 32 entries.
void bgemm_epilogue_neon(const int32_t* dot, const BgemmEpilogue& ep, void* out);

}  // namespace onebit
