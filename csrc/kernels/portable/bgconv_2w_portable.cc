// Bit-sliced grouped / depthwise binary conv kernel, no ISA extension: baseline x86-64 (SSE2) or the host's baseline, 2 words an xmm.
// Instantiated from kernels/bgconv_impl.h (contract: kernels/bgconv.h).
#include "kernels/bgconv_impl.h"

namespace onebit {

const BgconvConfig& bgconv_config_portable() {
  static const BgconvConfig cfg{"bgconv_2w_portable", &bgconv_dispatch<2, 2>};
  return cfg;
}

}  // namespace onebit
