// Bit-sliced grouped / depthwise binary conv kernel, aarch64 Advanced SIMD: 2 words a q register.
// Instantiated from kernels/bgconv_impl.h (contract: kernels/bgconv.h).
#include "kernels/bgconv_impl.h"

namespace onebit {

const BgconvConfig& bgconv_config_neon() {
  static const BgconvConfig cfg{"bgconv_2w_neon", &bgconv_dispatch<2, 4>};
  return cfg;
}

}  // namespace onebit
