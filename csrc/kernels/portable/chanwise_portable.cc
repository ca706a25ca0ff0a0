// The per-channel element-wise ops (kernels/chanwise_impl.h) compiled for portable (4 lanes (SSE2) or NEON).
#include "kernels/chanwise_impl.h"

namespace onebit {
ChanFn chanwise_portable() { return chanwise_impl; }
}  // namespace onebit
