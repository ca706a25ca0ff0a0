// Bit-sliced grouped / depthwise binary conv kernel, AVX2: 4 words a ymm register.
// Instantiated from kernels/bgconv_impl.h (contract: kernels/bgconv.h).
#include "kernels/bgconv_impl.h"

namespace onebit {

const BgconvConfig& bgconv_config_avx2() {
  static const BgconvConfig cfg{"bgconv_4w_avx2", &bgconv_dispatch<4, 2>};
  return cfg;
}

}  // namespace onebit
