// Helpers the op files share: window geometry, flag parameters, bit masks.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/op.h"
#include "ops/float_ops.h"
#include "pack/pack.h"
#include "runtime/threadpool.h"

namespace onebit::ops {

// Kernel, stride, dilation and padding of a windowed op (conv, pool), read from
// the node's attributes ("padding" is (left, right, top, bottom) in the file)
// and checked against the input: the window fits the padded input and each
// padding is at most max_pad(kernel extent).
struct Window {
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1;
  int64_t pt = 0, pb = 0, pl = 0, pr = 0;
  int64_t oh = 1, ow = 1;
};
enum class PadRule { kConv, kPool };  // conv: pad <= dilated extent - 1; pool: pad <= kernel / 2
Window read_window(const BuildCtx& ctx, const ValueInfo& in, PadRule rule, bool has_dilation = true,
                   bool ceil_mode = false);

// A parameter read as per-channel flags (nonzero = set), any numeric dtype.
std::vector<uint8_t> param_flags(const BuildCtx& ctx, const char* role, int64_t count);

// words_for(c) words with the bits of the flagged channels set.
avector<uint64_t> word_mask(const std::vector<uint8_t>& flags);

// Rows of a value in a batch of n: n * h * w pixels (n for 2-D values).
inline size_t rows_of(int64_t n, const ValueInfo& v) { return static_cast<size_t>(n * v.h * v.w); }

// fn(r0, r1) over [0, rows) in tasks of about 16K elements (row_elems per row) on up
// to nthreads threads; one call on the calling thread when there is less than two
// tasks' work (a memory-bound pass over a few KB is not worth a wake-up).
template <class F>
void for_row_chunks(size_t rows, size_t row_elems, int nthreads, F&& fn) {
  const size_t per = std::max<size_t>(1, (size_t{1} << 14) / std::max<size_t>(row_elems, 1));
  const size_t tasks = std::min<size_t>((rows + per - 1) / per, size_t{1} << 20);
  if (tasks <= 1 || nthreads == 1) {
    fn(size_t{0}, rows);
    return;
  }
  const size_t step = (rows + tasks - 1) / tasks;
  parallel_for(static_cast<int>((rows + step - 1) / step), nthreads, [&](int t) {
    const size_t r0 = static_cast<size_t>(t) * step;
    fn(r0, std::min(rows, r0 + step));
  });
}

// Common attribute schemas.
std::vector<AttrSpec> window_attrs(bool dilation);

// The fused epilogue of a float-output conv (conv2d, bconv2d): an optional second
// input `residual` of the output's shape and the `activation` attribute,
// y = activation(conv(x) + residual) (ops/post_ops.h). The exporter writes them
// for the add and relu that followed the conv (passes.fuse_conv_epilogues).
AttrSpec activation_attr();
struct FusedEpilogue {
  bool residual = false;  // input 1 is added
  Act act = Act::kNone;
  // Parameters post_scale and post_shift (bconv2d): y = act(conv(x)) * post_scale +
  // post_shift (+ residual), the BatchNorm after QuickNet's relu (ops/post_ops.h).
  std::vector<float> post_scale, post_shift;
};
// The optional parameters of that affine.
std::vector<ParamSpec> post_affine_params();
// Reads `activation` and checks input 1 (if present) against `out` (set ctx.out
// first). Both need a float output.
FusedEpilogue read_fused_epilogue(const BuildCtx& ctx, const ValueInfo& out);

// The numpy reduction numpy.add.reduce uses for float32 along a contiguous
// axis (pairwise, blocks of 8): the old Python engine computed mean_abs and
// xnor_k this way, and keeping its rounding keeps outputs bit-identical.
float pairwise_sum_f32(const float* a, int64_t n);

}  // namespace onebit::ops

namespace onebit::ops {
// A pooling window as the kernels take it: ceil_mode's overhang past the
// bottom/right edge becomes extra padding there (the kernels ignore padded
// positions for max, and for averages that do not count padding).
// The kernels' geometry struct for batch 1 of `in` (the caller sets n per call).
PoolParams window_params(const ValueInfo& in, const Window& g);
PoolParams pool_params(const BuildCtx& ctx, const ValueInfo& in, bool ceil_mode, Window* window = nullptr);
std::vector<AttrSpec> pool_attrs(bool average);
}  // namespace onebit::ops
