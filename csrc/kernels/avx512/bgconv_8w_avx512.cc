// Bit-sliced grouped / depthwise binary conv kernel, AVX-512F: 8 words a zmm register (vpxorq / vpandq / vpternlogq).
// Instantiated from kernels/bgconv_impl.h (contract: kernels/bgconv.h).
#include "kernels/bgconv_impl.h"

namespace onebit {

const BgconvConfig& bgconv_config_avx512() {
  static const BgconvConfig cfg{"bgconv_8w_avx512", &bgconv_dispatch<8, 4>};
  return cfg;
}

}  // namespace onebit
