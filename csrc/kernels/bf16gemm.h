// bf16 GEMM micro-kernels (the float conv2d and dense layers under the load
// option float_precision = "bf16" / "bf16_emulated").
//
// Inputs and weights are rounded to bfloat16 (round to nearest even, as
// VCVTNE2PS2BF16 does: fp32 subnormals become signed zeros, NaNs stay quiet
// NaNs); products are summed in fp32 exactly as AVX512-BF16's VDPBF16PS sums
// them (Intel SDM; measured on Zen 4 too):
//
//   acc = ftz(acc + a[2p+1] * b[2p+1]);  acc = ftz(acc + a[2p] * b[2p])
//
// for each pair p of k values: the bf16 product is exact in fp32, each addition
// rounds to nearest even, a subnormal sum is flushed to zero (ftz). K is summed
// in blocks of kBf16KC values, each block's sum added to C in fp32 (as the fp32
// kernels do). Every kernel below computes exactly this, so the AVX512-BF16
// kernel and the portable emulation give the same bits (tests/csrc/test_kernels.cc);
// they can differ only where a single product a*b is below FLT_MIN in magnitude
// (about 1e-38), which the emulation rounds to a subnormal before adding.
//
// Layouts (shared by every kernel, so packed weights do not depend on the
// instruction set in force when a call runs):
// * A: rows of kp = ceil(K / 2) 32-bit words, word p holding bf16 a[2p] in its
//   low half and a[2p+1] in its high half (K odd: a zero in the last high half);
//   lda counts words.
// * B: panels of kBf16NR = 32 columns; within a K block, for each pair p, 32
//   words (column j: b[2p][j] low, b[2p+1][j] high), zero-padded columns and k.
#pragma once

#include <cstdint>

namespace onebit {

constexpr int kBf16NR = 32;   // columns per packed panel
constexpr int kBf16KC = 256;  // k values (128 pairs) per K block

// C[mr x nr] (+)= A[mr x 2kp] * Bp[2kp x 32]; only the first nr columns are
// stored; accumulate: add to C (in fp32) instead of overwriting it. scale and
// bias are given for the last K block only (else null, and either may be null
// there): then C = (sum of the blocks) * scale[j] + bias[j], each step rounded
// in fp32 (the per-channel multiplier of a layer with +-1 weights, which stay
// exact in bf16, and the layer's bias).
using Bf16UkernelFn = void (*)(int mr, int nr, int kp, const uint32_t* a, long lda,
                               const uint32_t* bp, float* c, long ldc, bool accumulate,
                               const float* scale, const float* bias);

// dst[i] = bf16(src[i]) for i < n (uint16 halves: the low half of A's words).
using Bf16ConvertFn = void (*)(const float* src, uint16_t* dst, long n);

// Copies `runs` runs of `run` bf16 values, run i from src[i] (null: zeros), one
// after the other to dst (an im2col row: one run per kernel row).
using Bf16GatherFn = void (*)(const uint16_t* const* src, int runs, int run, uint16_t* dst);

struct Bf16GemmConfig {
  const char* name;
  int mr;  // rows per micro-tile (nr is always kBf16NR)
  Bf16UkernelFn fn;
  Bf16ConvertFn convert;
  Bf16GatherFn gather;
};

// The emulation in portable C++ (any CPU), and the AVX512-BF16 kernels (only
// where cpu_features().avx512bf16; a stub elsewhere).
const Bf16GemmConfig& bf16gemm_config_portable();
const Bf16GemmConfig& bf16gemm_config_avx512bf16();

}  // namespace onebit
