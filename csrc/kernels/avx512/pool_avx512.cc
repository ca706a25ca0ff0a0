// The float pooling windows (kernels/pool_impl.h) compiled for AVX-512 (16 lanes).
#include "kernels/pool_impl.h"

namespace onebit {
const PoolKernels& pool_kernels_avx512() { return kPoolKernels; }
}  // namespace onebit
