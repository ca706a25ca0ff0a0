// The float pooling windows (kernels/pool_impl.h) compiled for the baseline (SSE2 on x86-64, NEON on aarch64).
#include "kernels/pool_impl.h"

namespace onebit {
const PoolKernels& pool_kernels_portable() { return kPoolKernels; }
}  // namespace onebit
