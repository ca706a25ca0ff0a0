// NEON (aarch64) binary GEMM micro-kernel: MR <= 4 pixels x 32 output channels.
//
// Weights are laid out 32 channels per 64-bit word of K (kernels/bgemm.h), so
// one q register holds word k of 2 channels. Each input word is broadcast to
// both lanes (LD1R) and, per 8 channels, XORed with 4 weight registers; CNT
// counts the bits of every byte; two levels of ADDP (pairwise byte add) fold
// the 4 x 16 byte counts into 16 bytes, 2 per channel; UADALP adds those pairs
// into 8 u16 lanes, one per channel. Per 512 binary MACs (8 channels x 64
// bits) that is 4 EOR + 4 CNT + 3 ADDP + 1 UADALP = 12 vector instructions,
// 24 per 1,024 MACs: one XOR and one CNT per 128 bits are unavoidable, and
// every CNT result needs one instruction to be added somewhere, so three per
// 128 bits is the floor for Advanced SIMD (the same count as Larq Compute
// Engine's 8x4x2 kernel; loads here are 2.5 registers per 1,024 MACs against
// its 4, since 4 pixels share each weight register).
//
// Alternatives measured on paper (docs/performance.md, "aarch64"): summing
// CNT bytes with ADD in u8 lanes, or UDOT (dot product, ARMv8.2) against a
// vector of ones, also costs one instruction per CNT result but keeps 8 or 2
// partial sums per channel, so the 4 x 32 tile no longer fits the 32
// registers; Harley-Seal carry-save adders replace a 1-instruction CNT by 5
// logic instructions. Neither saves anything.
//
// Registers: 16 u16 accumulators (4 pixels x 32 channels), 4 broadcast inputs,
// 4 weights, 8 temporaries. A u16 lane gains at most 64 per K word, so K is
// walked in chunks of 1,023 words (65,472 bits) and widened to u32 between
// chunks (never for the zoo's layers: 3x3x512 is 72 words). The output stage
// runs in registers (kernels/neon/epilogue_32_neon.h).
#include <arm_neon.h>

#include "kernels/bgemm.h"
#include "kernels/neon/epilogue_32_neon.h"

namespace onebit {
namespace {

constexpr int kChunk = 1023;  // K words per u16 accumulation: 1023 * 64 < 65536

// The K loop is inline assembly: written with intrinsics, GCC hoists all 16
// weight loads of a K word ahead of the arithmetic and spills 11 of the 16
// accumulators to the stack every iteration. Here each 8-channel group's 4
// weight registers (v4-v7) are loaded just before use, pixels go in pairs
// (8 temporaries, v8-v15, so two chains interleave), and pixel i's
// accumulators for channels 8q .. 8q+7 are v(16 + 4i + q).
//
// Per K word (4 pixels x 32 channels x 64 bits = 8,192 binary MACs): 1 LDR
// (offset) + 4 ADD (addresses) + 4 LD1R + 8 LDP (weights) + 64 EOR + 64 CNT
// + 48 ADDP + 16 UADALP + SUBS + B.NE = 211 instructions, 192 of them vector
// arithmetic: 24 per 1,024 MACs (docs/performance.md counts them from the
// disassembly).
#define ONEBIT_W_LOAD "ldp q4, q5, [%[w]], #32\n\tldp q6, q7, [%[w]], #32\n\t"
// Pixels A and B (broadcast inputs) against v4-v7, += into ACCA and ACCB.
#define ONEBIT_PAIR(A, B, ACCA, ACCB)                                               \
  "eor v8.16b, " A ".16b, v4.16b\n\teor v12.16b, " B ".16b, v4.16b\n\t"             \
  "eor v9.16b, " A ".16b, v5.16b\n\teor v13.16b, " B ".16b, v5.16b\n\t"             \
  "eor v10.16b, " A ".16b, v6.16b\n\teor v14.16b, " B ".16b, v6.16b\n\t"            \
  "eor v11.16b, " A ".16b, v7.16b\n\teor v15.16b, " B ".16b, v7.16b\n\t"            \
  "cnt v8.16b, v8.16b\n\tcnt v12.16b, v12.16b\n\t"                                  \
  "cnt v9.16b, v9.16b\n\tcnt v13.16b, v13.16b\n\t"                                  \
  "cnt v10.16b, v10.16b\n\tcnt v14.16b, v14.16b\n\t"                                \
  "cnt v11.16b, v11.16b\n\tcnt v15.16b, v15.16b\n\t"                                \
  "addp v8.16b, v8.16b, v9.16b\n\taddp v12.16b, v12.16b, v13.16b\n\t"               \
  "addp v10.16b, v10.16b, v11.16b\n\taddp v14.16b, v14.16b, v15.16b\n\t"            \
  "addp v8.16b, v8.16b, v10.16b\n\taddp v12.16b, v12.16b, v14.16b\n\t"              \
  "uadalp " ACCA ".8h, v8.16b\n\tuadalp " ACCB ".8h, v12.16b\n\t"
#define ONEBIT_ONE(A, ACC)                                                          \
  "eor v8.16b, " A ".16b, v4.16b\n\teor v9.16b, " A ".16b, v5.16b\n\t"              \
  "eor v10.16b, " A ".16b, v6.16b\n\teor v11.16b, " A ".16b, v7.16b\n\t"            \
  "cnt v8.16b, v8.16b\n\tcnt v9.16b, v9.16b\n\t"                                    \
  "cnt v10.16b, v10.16b\n\tcnt v11.16b, v11.16b\n\t"                                \
  "addp v8.16b, v8.16b, v9.16b\n\taddp v10.16b, v10.16b, v11.16b\n\t"               \
  "addp v8.16b, v8.16b, v10.16b\n\t"                                                \
  "uadalp " ACC ".8h, v8.16b\n\t"
// Row I's pointer into x1I, zero its accumulators; per K word: its input
// word broadcast into vI.
#define ONEBIT_ROW_INIT(I, Q0, Q1, Q2, Q3)                                          \
  "ldr x1" #I ", [%[rows], #" #I "*8]\n\t"                                          \
  "movi " Q0 ".8h, #0\n\tmovi " Q1 ".8h, #0\n\tmovi " Q2 ".8h, #0\n\tmovi " Q3 ".8h, #0\n\t"
#define ONEBIT_ROW(I) "add x9, x1" #I ", x8, lsl #3\n\tld1r {v" #I ".2d}, [x9]\n\t"
#define ONEBIT_ROW_STORE(I, Q0, Q1, Q2, Q3)                                         \
  "stp " Q0 ", " Q1 ", [%[out], #" #I "*64]\n\tstp " Q2 ", " Q3 ", [%[out], #" #I "*64+32]\n\t"
#define ONEBIT_CLOBBERS                                                             \
  "cc", "memory", "x8", "x9", "x10", "x11", "x12", "x13", "v0", "v1", "v2", "v3", "v4", \
      "v5", "v6", "v7", "v8", "v9", "v10", "v11", "v12", "v13", "v14", "v15", "v16",   \
      "v17", "v18", "v19", "v20", "v21", "v22", "v23", "v24", "v25", "v26", "v27",     \
      "v28", "v29", "v30", "v31"

// out[i][j] (u16) = popcounts of rows[i] against channel j over the n >= 1 K
// words whose offsets start at kp, weights at wp (32 words per K word).
template <int MR>
void popcount_words(int n, const uint64_t* const* rows, const ptrdiff_t* kp,
                    const uint64_t* wp, uint16_t* out);

template <>
void popcount_words<4>(int n, const uint64_t* const* rows, const ptrdiff_t* kp,
                       const uint64_t* wp, uint16_t* out) {
  asm volatile(
      ONEBIT_ROW_INIT(0, "v16", "v17", "v18", "v19") ONEBIT_ROW_INIT(1, "v20", "v21", "v22", "v23")
      ONEBIT_ROW_INIT(2, "v24", "v25", "v26", "v27") ONEBIT_ROW_INIT(3, "v28", "v29", "v30", "v31")
      "1:\n\t"
      "ldr x8, [%[kp]], #8\n\t"
      ONEBIT_ROW(0) ONEBIT_ROW(1) ONEBIT_ROW(2) ONEBIT_ROW(3)
      ONEBIT_W_LOAD ONEBIT_PAIR("v0", "v1", "v16", "v20") ONEBIT_PAIR("v2", "v3", "v24", "v28")
      ONEBIT_W_LOAD ONEBIT_PAIR("v0", "v1", "v17", "v21") ONEBIT_PAIR("v2", "v3", "v25", "v29")
      ONEBIT_W_LOAD ONEBIT_PAIR("v0", "v1", "v18", "v22") ONEBIT_PAIR("v2", "v3", "v26", "v30")
      ONEBIT_W_LOAD ONEBIT_PAIR("v0", "v1", "v19", "v23") ONEBIT_PAIR("v2", "v3", "v27", "v31")
      "subs %w[n], %w[n], #1\n\t"
      "b.ne 1b\n\t"
      ONEBIT_ROW_STORE(0, "q16", "q17", "q18", "q19") ONEBIT_ROW_STORE(1, "q20", "q21", "q22", "q23")
      ONEBIT_ROW_STORE(2, "q24", "q25", "q26", "q27") ONEBIT_ROW_STORE(3, "q28", "q29", "q30", "q31")
      : [kp] "+r"(kp), [w] "+r"(wp), [n] "+r"(n)
      : [rows] "r"(rows), [out] "r"(out)
      : ONEBIT_CLOBBERS);
}

template <>
void popcount_words<3>(int n, const uint64_t* const* rows, const ptrdiff_t* kp,
                       const uint64_t* wp, uint16_t* out) {
  asm volatile(
      ONEBIT_ROW_INIT(0, "v16", "v17", "v18", "v19") ONEBIT_ROW_INIT(1, "v20", "v21", "v22", "v23")
      ONEBIT_ROW_INIT(2, "v24", "v25", "v26", "v27")
      "1:\n\t"
      "ldr x8, [%[kp]], #8\n\t"
      ONEBIT_ROW(0) ONEBIT_ROW(1) ONEBIT_ROW(2)
      ONEBIT_W_LOAD ONEBIT_PAIR("v0", "v1", "v16", "v20") ONEBIT_ONE("v2", "v24")
      ONEBIT_W_LOAD ONEBIT_PAIR("v0", "v1", "v17", "v21") ONEBIT_ONE("v2", "v25")
      ONEBIT_W_LOAD ONEBIT_PAIR("v0", "v1", "v18", "v22") ONEBIT_ONE("v2", "v26")
      ONEBIT_W_LOAD ONEBIT_PAIR("v0", "v1", "v19", "v23") ONEBIT_ONE("v2", "v27")
      "subs %w[n], %w[n], #1\n\t"
      "b.ne 1b\n\t"
      ONEBIT_ROW_STORE(0, "q16", "q17", "q18", "q19") ONEBIT_ROW_STORE(1, "q20", "q21", "q22", "q23")
      ONEBIT_ROW_STORE(2, "q24", "q25", "q26", "q27")
      : [kp] "+r"(kp), [w] "+r"(wp), [n] "+r"(n)
      : [rows] "r"(rows), [out] "r"(out)
      : ONEBIT_CLOBBERS);
}

template <>
void popcount_words<2>(int n, const uint64_t* const* rows, const ptrdiff_t* kp,
                       const uint64_t* wp, uint16_t* out) {
  asm volatile(
      ONEBIT_ROW_INIT(0, "v16", "v17", "v18", "v19") ONEBIT_ROW_INIT(1, "v20", "v21", "v22", "v23")
      "1:\n\t"
      "ldr x8, [%[kp]], #8\n\t"
      ONEBIT_ROW(0) ONEBIT_ROW(1)
      ONEBIT_W_LOAD ONEBIT_PAIR("v0", "v1", "v16", "v20")
      ONEBIT_W_LOAD ONEBIT_PAIR("v0", "v1", "v17", "v21")
      ONEBIT_W_LOAD ONEBIT_PAIR("v0", "v1", "v18", "v22")
      ONEBIT_W_LOAD ONEBIT_PAIR("v0", "v1", "v19", "v23")
      "subs %w[n], %w[n], #1\n\t"
      "b.ne 1b\n\t"
      ONEBIT_ROW_STORE(0, "q16", "q17", "q18", "q19") ONEBIT_ROW_STORE(1, "q20", "q21", "q22", "q23")
      : [kp] "+r"(kp), [w] "+r"(wp), [n] "+r"(n)
      : [rows] "r"(rows), [out] "r"(out)
      : ONEBIT_CLOBBERS);
}

template <>
void popcount_words<1>(int n, const uint64_t* const* rows, const ptrdiff_t* kp,
                       const uint64_t* wp, uint16_t* out) {
  asm volatile(
      ONEBIT_ROW_INIT(0, "v16", "v17", "v18", "v19")
      "1:\n\t"
      "ldr x8, [%[kp]], #8\n\t"
      ONEBIT_ROW(0)
      ONEBIT_W_LOAD ONEBIT_ONE("v0", "v16")
      ONEBIT_W_LOAD ONEBIT_ONE("v0", "v17")
      ONEBIT_W_LOAD ONEBIT_ONE("v0", "v18")
      ONEBIT_W_LOAD ONEBIT_ONE("v0", "v19")
      "subs %w[n], %w[n], #1\n\t"
      "b.ne 1b\n\t"
      ONEBIT_ROW_STORE(0, "q16", "q17", "q18", "q19")
      : [kp] "+r"(kp), [w] "+r"(wp), [n] "+r"(n)
      : [rows] "r"(rows), [out] "r"(out)
      : ONEBIT_CLOBBERS);
}

#undef ONEBIT_W_LOAD
#undef ONEBIT_PAIR
#undef ONEBIT_ONE
#undef ONEBIT_ROW_INIT
#undef ONEBIT_ROW
#undef ONEBIT_ROW_STORE
#undef ONEBIT_CLOBBERS

template <int MR>
void bgemm_mrx32_neon(int kw, const uint64_t* const* rows, const ptrdiff_t* koff,
                      const uint64_t* wbase, size_t block_words, int b0, int b1,
                      const int32_t* const* corr, const BgemmStage& st, void* const* out) {
  for (int b = b0; b < b1; ++b) {
    const uint64_t* w = wbase + b * block_words;
    // pop[i][j]: popcount of row i against channel j. K longer than kChunk
    // words is summed chunk by chunk in u32.
    alignas(16) uint16_t part[MR][kNR];
    alignas(16) uint32_t pop[MR][kNR];
    popcount_words<MR>(kw < kChunk ? kw : kChunk, rows, koff, w, part[0]);
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < kNR; j += 8) {
        const uint16x8_t v = vld1q_u16(part[i] + j);
        vst1q_u32(pop[i] + j, vmovl_u16(vget_low_u16(v)));
        vst1q_u32(pop[i] + j + 4, vmovl_high_u16(v));
      }
    for (int k0 = kChunk; k0 < kw; k0 += kChunk) {
      popcount_words<MR>(kw - k0 < kChunk ? kw - k0 : kChunk, rows, koff + k0,
                         w + static_cast<size_t>(k0) * kNR, part[0]);
      for (int i = 0; i < MR; ++i)
        for (int j = 0; j < kNR; j += 8) {
          const uint16x8_t v = vld1q_u16(part[i] + j);
          vst1q_u32(pop[i] + j, vaddw_u16(vld1q_u32(pop[i] + j), vget_low_u16(v)));
          vst1q_u32(pop[i] + j + 4, vaddw_high_u16(vld1q_u32(pop[i] + j + 4), v));
        }
    }
    const BgemmEpilogue ep = stage_block(st, b);
    const int32x4_t kb = vdupq_n_s32(ep.k_bits);
    for (int i = 0; i < MR; ++i) {
      int32x4_t dot[8];
      for (int q = 0; q < 8; ++q) {
        // dot = k - 2 * pop (- corr); pop <= k < 2^31 / 2 (k_bits is an int32).
        const int32x4_t p2 = vreinterpretq_s32_u32(vshlq_n_u32(vld1q_u32(pop[i] + 4 * q), 1));
        int32x4_t d = vsubq_s32(kb, p2);
        if (corr[i]) d = vsubq_s32(d, vld1q_s32(corr[i] + b * kNR + 4 * q));
        dot[q] = d;
      }
      neon::epilogue_block(dot, ep, block_out(out[i], ep.kind, b));
    }
  }
}

}  // namespace

const BgemmConfig& bgemm_config_neon() {
  static const BgemmConfig cfg{"bgemm_4x32_neon", 4,
                               {bgemm_mrx32_neon<1>, bgemm_mrx32_neon<2>, bgemm_mrx32_neon<3>,
                                bgemm_mrx32_neon<4>}};
  return cfg;
}

}  // namespace onebit
