// The per-channel element-wise ops (kernels/chanwise_impl.h) compiled for avx512 (16 lanes).
#include "kernels/chanwise_impl.h"

namespace onebit {
ChanFn chanwise_avx512() { return chanwise_impl; }
}  // namespace onebit
