// The per-channel element-wise ops (kernels/chanwise_impl.h) compiled for avx2 (8 lanes).
#include "kernels/chanwise_impl.h"

namespace onebit {
ChanFn chanwise_avx2() { return chanwise_impl; }
}  // namespace onebit
