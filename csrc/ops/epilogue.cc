#include <climits>

#include "kernels/bgemm.h"

namespace onebit {

void bgemm_epilogue_scalar(const int32_t* dot, const BgemmEpilogue& ep, void* out) {
  if (ep.kind == OutKind::kFloat) {
    float* o = static_cast<float*>(out);
    for (int j = 0; j < ep.nvalid; ++j) {
      float y = static_cast<float>(dot[j]) * ep.mult[j];
      y = y + ep.bias[j];
      if (ep.act == Act::kRelu) {
        y = y < 0.0f ? 0.0f : y;
      } else if (ep.act == Act::kPrelu) {
        y = y < 0.0f ? y * ep.slope[j] : y;
      }
      o[j] = y;
    }
  } else {
    uint32_t bits = 0;
    for (int j = 0; j < kNR; ++j) bits |= static_cast<uint32_t>(dot[j] < ep.thr[j]) << j;
    *static_cast<uint32_t*>(out) = bits ^ ep.flip;
  }
}

}  // namespace onebit
