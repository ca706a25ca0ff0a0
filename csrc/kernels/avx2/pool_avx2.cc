// The float pooling windows (kernels/pool_impl.h) compiled for AVX2 (8 lanes).
#include "kernels/pool_impl.h"

namespace onebit {
const PoolKernels& pool_kernels_avx2() { return kPoolKernels; }
}  // namespace onebit
