// The NEON output stage as a callable function, with the scalar stage's
// signature (kernels/bgemm.h), so tests can hold it against
// bgemm_epilogue_scalar directly. The micro-kernels inline the same code.
#include <arm_neon.h>

#include "kernels/bgemm.h"
#include "kernels/neon/epilogue_32_neon.h"

namespace onebit {

void bgemm_epilogue_neon(const int32_t* dot, const BgemmEpilogue& ep, void* out) {
  int32x4_t d[8];
  for (int q = 0; q < 8; ++q) d[q] = vld1q_s32(dot + 4 * q);
  neon::epilogue_block(d, ep, out);
}

}  // namespace onebit
