#include "ops/float_ops.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "cpu_features.h"
#include "dispatch.h"
#include "kernels/bf16gemm.h"
#include "kernels/bmaxpool.h"
#include "kernels/chanwise.h"
#include "kernels/i8gemm.h"
#include "kernels/pool.h"
#include "kernels/sgemm.h"
#include "ops/post_ops.h"
#include "pack/pack.h"
#include "runtime/threadpool.h"

namespace onebit {
namespace {

const SgemmConfig& sgemm_cfg() {
  switch (active_simd_isa()) {
    case Isa::kAvx512: return sgemm_config_avx512();
    case Isa::kAvx2: return sgemm_config_avx2();
    case Isa::kNeon: return sgemm_config_neon();
    default: return sgemm_config_portable();
  }
}

const PoolKernels& pool_cfg() {
  switch (active_simd_isa()) {
    case Isa::kAvx512: return pool_kernels_avx512();
    case Isa::kAvx2: return pool_kernels_avx2();
    default: return pool_kernels_portable();
  }
}

constexpr int kKC = 256;

}  // namespace

const char* sgemm_kernel_name() { return sgemm_cfg().name; }

namespace {

// B packed for the micro-kernel: [kb][panel][kc][NR], zero-padded columns.
using PackedB = F32Weights;

PackedB pack_b(const SgemmConfig& cfg, int N, int K, const float* b, long b_rs, long b_cs) {
  const int NR = cfg.nr;
  PackedB pb;
  pb.kernel = cfg.name;
  pb.npanels = (N + NR - 1) / NR;
  pb.nkb = K > 0 ? (K + kKC - 1) / kKC : 0;
  pb.data.assign(static_cast<size_t>(std::max(K, 1)) * pb.npanels * NR, 0.0f);
  for (int kb = 0; kb < pb.nkb; ++kb) {
    const int k0 = kb * kKC, kc = std::min(kKC, K - k0);
    for (int pn = 0; pn < pb.npanels; ++pn) {
      float* dst = pb.data.data() + static_cast<size_t>(k0) * pb.npanels * NR +
                   static_cast<size_t>(pn) * kc * NR;
      for (int k = 0; k < kc; ++k)
        for (int j = 0; j < NR && pn * NR + j < N; ++j)
          dst[k * NR + j] = b[(k0 + k) * b_rs + static_cast<long>(pn * NR + j) * b_cs];
    }
  }
  return pb;
}

// B for cfg: the weights packed at load if they were packed for cfg, else packed now into tmp.
const PackedB& packed_for(const SgemmConfig& cfg, const F32Weights* pre, PackedB& tmp, int N, int K,
                          const float* b, long b_rs, long b_cs) {
  if (pre && pre->kernel && std::strcmp(pre->kernel, cfg.name) == 0) return *pre;
  tmp = pack_b(cfg, N, K, b, b_rs, b_cs);
  return tmp;
}

// C rows [0, rows) = A rows (stride lda) x packed B, for the columns of panels [p0, p1)
// (p1 < 0: all). With the ISA's two-panel kernel (SgemmConfig::fn2) the panels go in
// pairs, and `out` (arrays indexed from column 0), if given, is applied in the last k
// block's store: returns whether it was. Otherwise the caller applies the output
// stage (finish_rows). Each output is summed k ascending, k block after k block, then
// the output stage, either way: the same bits. (One panel a tile, e18's 1x1 shortcuts ran
// at about half the FMA peak: docs/performance.md, "The 1x1 convs' GEMM in two panels".)
bool sgemm_rows(const SgemmConfig& cfg, const PackedB& pb, int rows, int N, int K, const float* a, long lda,
                float* c, long ldc, int p0 = 0, int p1 = -1, const SgemmOut* out = nullptr) {
  const int NR = cfg.nr, MR = cfg.mr;
  if (p1 < 0) p1 = pb.npanels;
  if (pb.nkb == 0) {
    const int n0 = std::min(N, p0 * NR), n1 = std::min(N, p1 * NR);
    for (int r = 0; r < rows; ++r) std::fill(c + r * ldc + n0, c + r * ldc + n1, 0.0f);
    return false;
  }
  for (int kb = 0; kb < pb.nkb; ++kb) {
    const int k0 = kb * kKC, kc = std::min(kKC, K - k0);
    const bool last = kb + 1 == pb.nkb;
    for (int pn = p0; pn < p1;) {
      const int np = cfg.fn2 && pn + 1 < p1 ? 2 : 1;
      const float* panel = pb.data.data() + static_cast<size_t>(k0) * pb.npanels * NR +
                           static_cast<size_t>(pn) * kc * NR;
      const int nr = std::min(np * NR, N - pn * NR);
      if (cfg.fn2) {
        SgemmOut o{};
        if (out && last)
          o = SgemmOut{out->bias ? out->bias + pn * NR : nullptr, out->act,
                       out->slope ? out->slope + pn * NR : nullptr, out->post_relu};
        for (int r = 0; r < rows; r += MR)
          cfg.fn2(std::min(MR, rows - r), nr, SgemmA{a + r * lda + k0, lda, 1, kc, 0}, panel,
                  static_cast<long>(kc) * NR, c + r * ldc + pn * NR, ldc, kb > 0, out && last ? &o : nullptr);
      } else {
        for (int r = 0; r < rows; r += MR)
          cfg.fn(std::min(MR, rows - r), nr, SgemmA{a + r * lda + k0, lda, 1, kc, 0}, panel,
                 c + r * ldc + pn * NR, ldc, kb > 0);
      }
      pn += np;
    }
  }
  return out && cfg.fn2;
}

// C rows [r0, r1), columns [n0, n1): + bias, then the activation, at the ISA's
// width (kernels/chanwise). A null bias adds +0 (as a scalar loop did: -0 -> +0).
void finish_rows(float* c, long ldc, int r0, int r1, int n0, int n1, const float* bias, Act act,
                 const float* slope) {
  if ((!bias && act == Act::kNone) || r1 <= r0 || n1 <= n0) return;
  if (!bias) {
    thread_local avector<float> zeros;
    if (zeros.size() < static_cast<size_t>(n1)) zeros.assign(static_cast<size_t>(n1), 0.0f);
    bias = zeros.data();
  }
  ChanParams p{act == Act::kRelu ? ChanOp::kBiasRelu : act == Act::kPrelu ? ChanOp::kBiasPrelu : ChanOp::kBias};
  p.a = slope;
  p.b = bias;
  float* rows = c + static_cast<long>(r0) * ldc;
  chanwise(p, rows, static_cast<size_t>(ldc), rows, static_cast<size_t>(ldc), static_cast<size_t>(r1 - r0), n0, n1);
}

// Row m of the im2col matrix of an NHWC input (zero padding): the kh x kw x C
// values output pixel m reads, in OHWI filter order (T: float, or the bf16 bits
// of a rounded input, or a quantized input, whose zero is `pad`).
template <class T>
void im2col_row(const T* x, const PoolParams& p, int dh, int dw, long m, T* dst, T pad = T{0}, long dst_row = 0) {
  if (dst_row == 0) dst_row = static_cast<long>(p.kw) * p.c;  // kernel row ky at dst + ky * dst_row
  const int ox = static_cast<int>(m % p.ow), oy = static_cast<int>((m / p.ow) % p.oh);
  const int n = static_cast<int>(m / (static_cast<long>(p.ow) * p.oh));
  for (int ky = 0; ky < p.kh; ++ky) {
    const int iy = oy * p.sh - p.pt + ky * dh;
    const int ix0 = ox * p.sw - p.pl;
    T* d = dst + ky * dst_row;
    const T* srow = x + (static_cast<long>(n) * p.h + iy) * p.w * p.c;
    if (iy < 0 || iy >= p.h) {
      for (int q = 0; q < p.kw * p.c; ++q) d[q] = pad;
    } else if (dw == 1 && ix0 >= 0 && ix0 + p.kw <= p.w) {
      // the kw taps of this kernel row are contiguous in the input row
      const T* s = srow + static_cast<long>(ix0) * p.c;
      for (int q = 0; q < p.kw * p.c; ++q) d[q] = s[q];
    } else {
      for (int kx = 0; kx < p.kw; ++kx) {
        const int ix = ix0 + kx * dw;
        T* dd = d + kx * p.c;
        if (ix < 0 || ix >= p.w) {
          for (int c = 0; c < p.c; ++c) dd[c] = pad;
        } else {
          for (int c = 0; c < p.c; ++c) dd[c] = srow[static_cast<long>(ix) * p.c + c];
        }
      }
    }
  }
}

// A 1x1 convolution with stride 1 and no padding: its im2col matrix is its input.
bool is_pointwise(const PoolParams& p) {
  return p.kh == 1 && p.kw == 1 && p.sh == 1 && p.sw == 1 && p.pt == 0 && p.pl == 0 && p.pb == 0 &&
         p.pr == 0;
}

constexpr int kRowChunk = 96;  // rows per task step: 16 micro-tiles of 6
constexpr int kMaxKernelRows = 64;  // kh <= 64 (engine/op.h kMaxKernel)

// The part of a conv or pooling window's output that reads no zero padding: output
// columns [ox_lo, ox_hi) (dw: dilation along x), and whether output row oy's kh rows
// (dh apart) all lie in the input.
struct InsideCols {
  int ox_lo, ox_hi;
};
InsideCols inside_cols(const PoolParams& p, int dw) {
  const int lo = std::min(p.ow, (p.pl + p.sw - 1) / p.sw);
  const int last = p.w - 1 - (p.kw - 1) * dw + p.pl;  // the last window start, + pl
  return {lo, last < 0 ? lo : std::clamp(last / p.sw + 1, lo, p.ow)};
}
bool rows_inside(const PoolParams& p, int oy, int dh) {
  const int iy0 = oy * p.sh - p.pt;
  return iy0 >= 0 && iy0 + (p.kh - 1) * dh < p.h;
}

// Splits a whole input into about 1024-pixel parts for a per-value conversion.
int conversion_parts(long pixels, int nthreads) {
  return static_cast<int>(std::min<long>(pixels / 1024 + 1, nthreads == 1 ? 1 : 4 * nthreads));
}

// A fused max-pool (ConvMaxpool) computed as a conv's row tasks go, for the conv paths
// that compute whole output rows per task (the fp32 and int8 kernel-row paths). The
// conv's output has no other reader (Model::fuse_conv_maxpool), so a task writes its
// conv rows into a ring of kh rows of its own (L1/L2) and pools each pooled row whose
// window lies within its rows as soon as those are done. Written out to the conv's
// 112x112x64 output of a 224x224 stem (3.2 MB, past L2), the rows cost the int8 stem
// kernel 13-27% of its speed and the pool read them back from L3. Only the rows of the
// windows that straddle two tasks also go to the conv's output; those pooled rows are
// computed after the conv, shared out again (finish). Inactive (no pool), row() is
// the conv's output row itself.
class RowPooler {
 public:
  // The state of one task: conv rows [r0, r1); rows < head_end or >= tail_begin also
  // go to the conv's output (a straddling window reads them); q the next pooled row.
  struct Task {
    long r0, r1, head_end, tail_begin, q;
    uvector<float> ring;
  };
  // conv_out: the conv's output, ow pixels of ldo floats per row.
  RowPooler(const ConvMaxpool* pool, float* conv_out, int ow, long ldo)
      : pool_(pool), k_(pool_cfg()), x_(conv_out), row_floats_(static_cast<long>(ow) * ldo),
        rows_(pool ? static_cast<long>(pool->p.n) * pool->p.oh : 0), done_(static_cast<size_t>(rows_), 0) {
    if (pool && (ldo != pool->p.c || pool->p.kh > kMaxFusedPoolRows))
      throw std::logic_error("RowPooler: a fused pool reads dense conv rows, at most kMaxFusedPoolRows a window");
  }
  Task start(long r0, long r1) const {
    Task t{r0, r1, r0, r1, 0, {}};
    if (!pool_) return t;
    t.q = first(r0);
    // straddling r0: the windows before q that reach past r0 (the last reaches furthest)
    if (t.q > 0) t.head_end = std::min(r1, std::max(r0, window(t.q - 1).second));
    // straddling r1: the windows starting before r1 that end past it
    for (long q = first(r1) - 1; q >= 0 && window(q).second > r1; --q) t.tail_begin = std::max(r0, window(q).first);
    t.ring.resize(static_cast<size_t>(ring_rows() * row_floats_));
    return t;
  }
  // Where conv row r (global over n * oh) is to be written.
  float* row(Task& t, long r) const {
    if (!pool_) return x_ + r * row_floats_;
    return t.ring.data() + (r % ring_rows()) * row_floats_;
  }
  // Conv row r is written: kept for a straddling window if one reads it, and the
  // pooled rows whose windows it completes are pooled from the ring.
  void row_done(Task& t, long r) {
    if (!pool_) return;
    if (r < t.head_end || r >= t.tail_begin)
      std::memcpy(x_ + r * row_floats_, row(t, r), sizeof(float) * static_cast<size_t>(row_floats_));
    const PoolParams& pp = pool_->p;
    for (; t.q < rows_ && window(t.q).second <= std::min(r + 1, t.r1); ++t.q) {
      const auto [g0, g1] = window(t.q);
      const float* rows[kMaxFusedPoolRows];
      const int nrows = static_cast<int>(g1 - g0);
      for (int i = 0; i < nrows; ++i) rows[i] = row(t, g0 + i);
      const long ldo = pool_->ldo ? pool_->ldo : pp.c;
      float* d = pool_->out + t.q * pp.ow * ldo;
      for (int ox = 0; ox < pp.ow; ++ox) {
        const int x0 = std::max(0, ox * pp.sw - pp.pl), x1 = std::min(pp.w, ox * pp.sw - pp.pl + pp.kw);
        k_.max_rows(rows, nrows, pp.c, x0, x1, d + ox * ldo);
      }
      done_[static_cast<size_t>(t.q)] = 1;
    }
  }
  void finish(int nthreads) {  // the straddling pooled rows, from the conv's output
    if (!pool_) return;
    std::vector<long> left;
    for (long q = 0; q < rows_; ++q)
      if (!done_[static_cast<size_t>(q)]) left.push_back(q);
    parallel_for(static_cast<int>(left.size()), nthreads, [&](int i) {
      maxpool_f32_rows(x_, pool_->p, pool_->out, left[i], left[i] + 1, pool_->ldo);
    });
  }
 private:
  long ring_rows() const { return pool_->p.kh; }
  // The first pooled row whose window starts at or after conv row r_begin.
  long first(long r_begin) const {
    long q = 0;
    while (q < rows_ && window(q).first < r_begin) ++q;
    return q;
  }
  std::pair<long, long> window(long q) const {  // global conv rows [g0, g1) of pooled row q
    const PoolParams& pp = pool_->p;
    const long n = q / pp.oh, py = q % pp.oh;
    const long y0 = std::max<long>(0, py * pp.sh - pp.pt), y1 = std::min<long>(pp.h, py * pp.sh - pp.pt + pp.kh);
    return {n * pp.h + y0, n * pp.h + std::max(y0, y1)};
  }
  const ConvMaxpool* pool_;
  const PoolKernels& k_;  // the active ISA's, once a call
  float* x_;
  long row_floats_, rows_;
  std::vector<uint8_t> done_;  // one byte per row: tasks set different rows
};

// A float conv with no dilation along x whose K fits one block (the 7x7 stem, a
// 3x3 stem on RGB): each tile of MR output pixels along one output row reads
// its kh kernel rows in place (SgemmA segments of kw * C values, pixel i at
// i * sw * C), so the im2col copy is made only for the tiles that touch the
// zero padding. The copy cost the 224x224 7x7 stem half as much time as its
// FMAs (K = 147 values copied per output pixel, in 21-float pieces). Same
// bits as the im2col path: one accumulator per output, k ascending from zero.
void conv2d_f32_in_place(const SgemmConfig& cfg, const PackedB& pb, const float* x, const PoolParams& p,
                         int oc, int dh, const float* bias, Act act, const float* slope, float* out,
                         int nthreads, const float* residual, Act post_act, long ldo,
                         const ConvMaxpool* pool = nullptr) {
  if (p.pt || p.pb || p.pl || p.pr) {
    // A zero-padded copy of the input, so that every tile reads in place: the im2col
    // copies of the tiles that touch the padding cost the 7x7 RGB stem ~8% of its
    // time, the copy (0.6 MB at 224x224x3) less than a third of that.
    PoolParams pp = p;
    pp.h = p.h + p.pt + p.pb, pp.w = p.w + p.pl + p.pr, pp.pt = pp.pb = pp.pl = pp.pr = 0;
    const long prow = static_cast<long>(pp.w) * p.c, rows = static_cast<long>(p.n) * pp.h;
    // Not zeroed up front: each task writes its rows whole (a serial memset of the
    // copy held the second thread up on every call).
    uvector<float> xp(static_cast<size_t>(rows * prow));
    const int parts = conversion_parts(rows * pp.w, nthreads);
    const long left = static_cast<long>(p.pl) * p.c, mid = static_cast<long>(p.w) * p.c;
    parallel_for(parts, nthreads, [&](int t) {
      for (long r = rows * t / parts; r < rows * (t + 1) / parts; ++r) {
        const int n = static_cast<int>(r / pp.h), iy = static_cast<int>(r % pp.h) - p.pt;
        float* d = xp.data() + r * prow;
        if (iy < 0 || iy >= p.h) {
          std::fill(d, d + prow, 0.0f);
          continue;
        }
        std::fill(d, d + left, 0.0f);
        std::memcpy(d + left, x + (static_cast<long>(n) * p.h + iy) * mid, sizeof(float) * mid);
        std::fill(d + left + mid, d + prow, 0.0f);
      }
    });
    conv2d_f32_in_place(cfg, pb, xp.data(), pp, oc, dh, bias, act, slope, out, nthreads, residual, post_act, ldo,
                        pool);
    return;
  }
  const int K = p.kh * p.kw * p.c, MR = cfg.mr, NR = cfg.nr;
  const int seg = p.kw * p.c;
  const long lda = static_cast<long>(p.sw) * p.c, seg_stride = static_cast<long>(dh) * p.w * p.c;
  const InsideCols in = inside_cols(p, 1);
  const long orows = static_cast<long>(p.n) * p.oh;
  const int ntasks = static_cast<int>(std::min<long>(orows, nthreads == 1 ? 1 : 8 * nthreads));
  // Whole MR-pixel tiles along each output row; a tile that touches the padding is
  // copied (im2col) whole, once for all panels (split off, it left a tile of one
  // pixel per row; copied per panel, the copies cost 8% of binary_resnet_e18).
  const auto interior = [&](bool rows_in, int ox, int mr) { return rows_in && ox >= in.ox_lo && ox + mr <= in.ox_hi; };
  // bias and activation in the kernel's store where it can (SgemmConfig::fn_out), and a
  // fused relu without a residual (the stems' BatchNorm + relu) with them
  const bool post_relu_only = !residual && post_act == Act::kRelu;
  const bool fused_out = cfg.fn_out && (bias || act != Act::kNone || post_relu_only);
  const auto out_stage = [&](int pn) {
    return SgemmOut{bias ? bias + pn * NR : nullptr, act, slope ? slope + pn * NR : nullptr, post_relu_only};
  };
  RowPooler pooler(pool, out, p.ow, ldo);
  parallel_for(ntasks, nthreads, [&](int t) {
    uvector<float> cols;  // the im2col rows of the tiles that touch the padding, if any
    RowPooler::Task pt = pooler.start(orows * t / ntasks, orows * (t + 1) / ntasks);
    for (long r = orows * t / ntasks; r < orows * (t + 1) / ntasks; ++r) {
      const int n = static_cast<int>(r / p.oh), oy = static_cast<int>(r % p.oh);
      const int iy0 = oy * p.sh - p.pt;
      const bool rows_in = rows_inside(p, oy, dh);
      const long m0 = r * p.ow;
      float* orow = pooler.row(pt, r);
      for (int ox = 0; ox < p.ow; ox += MR) {
        const int mr = std::min(MR, p.ow - ox);
        if (!interior(rows_in, ox, mr)) {
          if (cols.empty()) cols.resize(static_cast<size_t>(p.ow) * K);
          for (int q = ox; q < ox + mr; ++q) im2col_row(x, p, dh, 1, m0 + q, cols.data() + static_cast<size_t>(q) * K);
        }
      }
      const long panel_floats = static_cast<long>(K) * NR;
      for (int pn = 0; pn < pb.npanels;) {
        // two panels a tile where the kernel has it (SgemmConfig::fn2), else one
        const int np = fused_out && cfg.fn2 && pn + 1 < pb.npanels ? 2 : 1;
        const float* panel = pb.data.data() + static_cast<size_t>(pn) * panel_floats;
        const int nr = std::min(np * NR, oc - pn * NR);
        for (int ox = 0; ox < p.ow; ox += MR) {
          const int mr = std::min(MR, p.ow - ox);
          const SgemmA a =
              interior(rows_in, ox, mr)
                  ? SgemmA{x + ((static_cast<long>(n) * p.h + iy0) * p.w + (ox * p.sw - p.pl)) * p.c, lda, p.kh,
                           seg, seg_stride}
                  : SgemmA{cols.data() + static_cast<size_t>(ox) * K, K, 1, K, 0};
          float* c = orow + ox * ldo + pn * NR;
          if (np == 2) {
            const SgemmOut o = out_stage(pn);
            cfg.fn2(mr, nr, a, panel, panel_floats, c, ldo, false, &o);
          }
          else if (fused_out)
            cfg.fn_out(mr, nr, a, panel, c, ldo, out_stage(pn));
          else
            cfg.fn(mr, nr, a, panel, c, ldo, false);
        }
        pn += np;
      }
      if (!fused_out) finish_rows(orow, ldo, 0, p.ow, 0, oc, bias, act, slope);
      if (residual || (post_act != Act::kNone && !(fused_out && post_relu_only)))
        add_residual_act(orow, residual ? residual + m0 * ldo : nullptr, static_cast<size_t>(ldo),
                         static_cast<size_t>(p.ow), 0, oc, post_act);
      pooler.row_done(pt, r);
    }
  });
  pooler.finish(nthreads);
}

}  // namespace

F32Weights pack_weights_f32(int N, int K, const float* w, long ldw) { return pack_b(sgemm_cfg(), N, K, w, 1, ldw); }

int64_t packed_f32_bytes(int N, int K) {
  const int NR = sgemm_cfg().nr;
  return int64_t{std::max(K, 1)} * ((N + NR - 1) / NR) * NR * 4;
}

void sgemm(int M, int N, int K, const float* a, long lda, const float* b, long b_rs, long b_cs,
           float* c, long ldc, const float* bias, Act act, const float* slope, int nthreads,
           const float* residual, Act post_act, const F32Weights* packed) {
  if (M <= 0 || N <= 0) return;
  const bool post = residual || post_act != Act::kNone;
  const SgemmConfig& cfg = sgemm_cfg();
  if (nthreads <= 0) nthreads = get_num_threads();
  if (M <= 4 && b_rs == 1 && K > 0) {
    // Dense layer at small batch: dot products against the weight rows.
    const int chunks = std::max(1, std::min(N / 64, nthreads == 1 ? 1 : 4 * nthreads));
    parallel_for(chunks, nthreads, [&](int t) {
      const int n0 = static_cast<int>(static_cast<long>(N) * t / chunks);
      const int n1 = static_cast<int>(static_cast<long>(N) * (t + 1) / chunks);
      cfg.gemv(M, n1 - n0, K, a, lda, b + n0 * b_cs, b_cs, c + n0, ldc);
      finish_rows(c, ldc, 0, M, n0, n1, bias, act, slope);
      if (post) add_residual_act(c, residual, static_cast<size_t>(ldc), static_cast<size_t>(M), n0, n1, post_act);
    });
    return;
  }
  PackedB tmp;
  const PackedB& pb = packed_for(cfg, packed, tmp, N, K, b, b_rs, b_cs);
  // Tasks are chunks of rows times groups of column panels: with few rows (a 1x1
  // shortcut at 7x7 is one chunk of 49) row chunks alone left a second thread idle.
  const int chunks = (M + kRowChunk - 1) / kRowChunk;
  int groups = 1;
  while (nthreads > 1 && chunks * groups < 4 * nthreads && groups < pb.npanels) groups *= 2;
  groups = std::min(groups, std::max(pb.npanels, 1));
  const int total = chunks * groups;
  const int ntasks = std::min(total, nthreads == 1 ? 1 : 8 * nthreads);
  // the output stage in the kernel's store where finish_rows would change anything
  const bool fused = bias || act != Act::kNone;
  const SgemmOut out{bias, act, slope, false};
  parallel_for(ntasks, nthreads, [&](int t) {
    for (int q = static_cast<int>(static_cast<long>(total) * t / ntasks);
         q < static_cast<int>(static_cast<long>(total) * (t + 1) / ntasks); ++q) {
      const int ch = q / groups, g = q % groups;
      const int r0 = ch * kRowChunk, r1 = std::min(M, r0 + kRowChunk);
      const int p0 = pb.npanels * g / groups, p1 = pb.npanels * (g + 1) / groups;
      const int n0 = std::min(N, p0 * cfg.nr), n1 = std::min(N, p1 * cfg.nr);
      if (!sgemm_rows(cfg, pb, r1 - r0, N, K, a + r0 * lda, lda, c + r0 * ldc, ldc, p0, p1, fused ? &out : nullptr))
        finish_rows(c, ldc, r0, r1, n0, n1, bias, act, slope);
      if (post)
        add_residual_act(c + r0 * ldc, residual ? residual + r0 * ldc : nullptr,
                         static_cast<size_t>(ldc), static_cast<size_t>(r1 - r0), n0, n1, post_act);
    }
  });
}

namespace {
// The convs whose kernel rows conv2d_f32 reads in place (conv2d_f32_in_place).
bool f32_rows_in_place(const PoolParams& p, int dw) {
  const int K = p.kh * p.kw * p.c;
  return !is_pointwise(p) && dw == 1 && K > 0 && K <= kKC;
}
}  // namespace

int64_t conv2d_f32_pad_copy_bytes(const PoolParams& p, int dw) {
  if (!f32_rows_in_place(p, dw) || !(p.pt || p.pb || p.pl || p.pr)) return 0;
  return int64_t{p.n} * (p.h + p.pt + p.pb) * (p.w + p.pl + p.pr) * p.c * 4;
}

void conv2d_f32(const float* x, const float* w, const float* bias, const PoolParams& p, int oc,
                int dh, int dw, Act act, const float* slope, float* out, int nthreads,
                const float* residual, Act post_act, long ldo, const F32Weights* packed,
                const ConvMaxpool* pool) {
  const int K = p.kh * p.kw * p.c;
  const long M = static_cast<long>(p.n) * p.oh * p.ow;
  if (ldo == 0) ldo = oc;
  if (nthreads <= 0) nthreads = get_num_threads();
  if (pool && !f32_rows_in_place(p, dw)) {  // the other paths: the pool after the conv
    conv2d_f32(x, w, bias, p, oc, dh, dw, act, slope, out, nthreads, residual, post_act, ldo, packed);
    maxpool_f32(out, pool->p, pool->out, nthreads, pool->ldo);
    return;
  }
  if (is_pointwise(p)) {
    sgemm(static_cast<int>(M), oc, K, x, K, w, 1, K, out, ldo, bias, act, slope, nthreads,
          residual, post_act, packed);
    return;
  }
  const SgemmConfig& cfg = sgemm_cfg();
  PackedB tmp;
  const PackedB& pb = packed_for(cfg, packed, tmp, oc, K, w, 1, K);
  if (f32_rows_in_place(p, dw)) {
    conv2d_f32_in_place(cfg, pb, x, p, oc, dh, bias, act, slope, out, nthreads, residual, post_act, ldo, pool);
    return;
  }
  // im2col one chunk of rows at a time into a small per-task buffer that
  // stays in L1/L2 (a whole-image im2col buffer, 7 MB for a 224x224 7x7
  // stem, costs more in page faults and DRAM traffic than the GEMM).
  const long chunks = (M + kRowChunk - 1) / kRowChunk;
  const int ntasks = static_cast<int>(std::min<long>(chunks, nthreads == 1 ? 1 : 8 * nthreads));
  const bool fused = bias || act != Act::kNone;  // as in sgemm
  const SgemmOut stage{bias, act, slope, false};
  parallel_for(ntasks, nthreads, [&](int t) {
    avector<float> cols(static_cast<size_t>(kRowChunk) * K);
    for (long ch = chunks * t / ntasks; ch < chunks * (t + 1) / ntasks; ++ch) {
      const long m0 = ch * kRowChunk, m1 = std::min(M, m0 + kRowChunk);
      for (long m = m0; m < m1; ++m) im2col_row(x, p, dh, dw, m, cols.data() + (m - m0) * K);
      const int rows = static_cast<int>(m1 - m0);
      if (!sgemm_rows(cfg, pb, rows, oc, K, cols.data(), K, out + m0 * ldo, ldo, 0, -1, fused ? &stage : nullptr))
        finish_rows(out + m0 * ldo, ldo, 0, rows, 0, oc, bias, act, slope);
      if (residual || post_act != Act::kNone)
        add_residual_act(out + m0 * ldo, residual ? residual + m0 * ldo : nullptr,
                         static_cast<size_t>(ldo), static_cast<size_t>(rows), 0, oc, post_act);
    }
  });
}

// ---- bf16 and int8 float layers: the shared driver ----------------------------

namespace {

// How a low-precision GEMM of M rows of `row_words` 32-bit words against
// `npanels` column panels is split: chunks of R rows (96, 16 micro-tiles of 6,
// while a chunk fits in 1 MiB; fewer for very deep layers), each chunk split
// into `groups` groups of panels so that a few rows (a dense layer at batch 1,
// a 7x7 map) still give every thread work; items = chunks x groups, dealt to
// ntasks tasks in consecutive runs.
struct LowpSchedule {
  long rows_per_chunk = 1, chunks = 0, items = 0, ntasks = 0;
  int groups = 1;
};

LowpSchedule lowp_schedule(long M, int row_words, int npanels, int nthreads) {
  LowpSchedule s;
  s.rows_per_chunk = std::clamp<long>((long{1} << 20) / (std::max(row_words, 1) * 4L), 1, kRowChunk);
  s.chunks = (M + s.rows_per_chunk - 1) / s.rows_per_chunk;
  if (nthreads > 1 && s.chunks < 2L * nthreads)
    s.groups = static_cast<int>(std::min<long>(npanels, (2L * nthreads + s.chunks - 1) / s.chunks));
  s.items = s.chunks * s.groups;
  s.ntasks = std::min<long>(s.items, nthreads == 1 ? 1 : 8 * nthreads);
  return s;
}

// A task's buffer of A rows holds whole blocks of kI8RowAlign rows (zeros past
// the chunk's own rows; the AMX kernel reads whole tiles). It is zeroed once,
// at allocation: forming a row writes only its first kq words, so the int8
// rows' padding words up to kq_pad stay zero without a store per row.
long round_up_rows(long rows) { return (rows + kI8RowAlign - 1) / kI8RowAlign * kI8RowAlign; }

// Bytes of A rows the tasks of a schedule hold at once (one chunk each).
int64_t lowp_rows_bytes(const LowpSchedule& s, long M, int row_words, int nthreads) {
  return std::min<int64_t>(s.ntasks, nthreads) * round_up_rows(std::min<long>(s.rows_per_chunk, M)) * row_words * 4;
}

// C (M rows, n columns in panels of nr) = A x W, A's rows formed on the fly.
// Each task forms a chunk of rows once, form(m0, m1, rows), for its consecutive
// items of that chunk; run(m0, nrows, p0, p1, rows, c + m0 * ldc) computes the
// chunk's panels [p0, p1); then the fused residual add and activation.
template <class Form, class Run>
void lowp_driver(long M, int row_words, int n, int npanels, int nr, int nthreads, Form&& form, Run&& run,
                 float* c, long ldc, const float* residual, Act post_act) {
  if (M <= 0 || n <= 0) return;
  if (nthreads <= 0) nthreads = get_num_threads();
  const LowpSchedule s = lowp_schedule(M, row_words, npanels, nthreads);
  const long R = s.rows_per_chunk;
  parallel_for(static_cast<int>(s.ntasks), nthreads, [&](int t) {
    avector<uint32_t> rows(static_cast<size_t>(round_up_rows(std::min(R, M))) * row_words);
    long formed = -1;
    for (long it = s.items * t / s.ntasks; it < s.items * (t + 1) / s.ntasks; ++it) {
      const long ch = it / s.groups;
      const int g = static_cast<int>(it % s.groups);
      const long m0 = ch * R, m1 = std::min(M, m0 + R);
      if (ch != formed) {
        form(m0, m1, rows.data());
        formed = ch;
      }
      const int p0 = static_cast<int>(static_cast<long>(npanels) * g / s.groups);
      const int p1 = static_cast<int>(static_cast<long>(npanels) * (g + 1) / s.groups);
      float* cc = c + m0 * ldc;
      run(m0, static_cast<int>(m1 - m0), p0, p1, rows.data(), cc);
      add_residual_act(cc, residual ? residual + m0 * ldc : nullptr, static_cast<size_t>(ldc),
                       static_cast<size_t>(m1 - m0), p0 * nr, std::min(n, p1 * nr), post_act);
    }
  });
}

// Calls f(m, n, oy, ox) for the im2col rows [m0, m1) of a convolution's output.
template <class F>
void for_output_pixels(const PoolParams& p, long m0, long m1, F&& f) {
  int ox = static_cast<int>(m0 % p.ow), oy = static_cast<int>((m0 / p.ow) % p.oh);
  int n = static_cast<int>(m0 / (static_cast<long>(p.ow) * p.oh));
  for (long m = m0; m < m1; ++m) {
    f(m, n, oy, ox);
    if (++ox == p.ow) {
      ox = 0;
      if (++oy == p.oh) oy = 0, ++n;
    }
  }
}

// Row m = (n, oy, ox) of the im2col matrix (as im2col_row, kernel row ky at
// dst + ky * dst_row) of a converted copy x of an input: a pixel whose kernel
// rows lie inside the input horizontally takes one run per kernel row,
// gather(src, kh, run, dst, dst_row) (src[ky] null: the row is padding), a
// border pixel value by value (padding: pad).
template <class T, class Gather>
void im2col_row_runs(Gather&& gather, const T* x, const PoolParams& p, int dh, int dw, long m, int n, int oy,
                     int ox, T* dst, T pad, long dst_row) {
  const int ix0 = ox * p.sw - p.pl;
  if (dw != 1 || ix0 < 0 || ix0 + p.kw > p.w) {
    im2col_row(x, p, dh, dw, m, dst, pad, dst_row);
    return;
  }
  const T* src[kMaxKernelRows];
  for (int ky = 0; ky < p.kh; ++ky) {
    const int iy = oy * p.sh - p.pt + ky * dh;
    src[ky] = iy < 0 || iy >= p.h ? nullptr : x + ((static_cast<long>(n) * p.h + iy) * p.w + ix0) * p.c;
  }
  gather(src, p.kh, p.kw * p.c, dst, dst_row);
}

}  // namespace

// ---- bf16 float layers -------------------------------------------------------

namespace {

const Bf16GemmConfig& bf16_cfg(bool emulated) {
  if (!emulated && active_simd_isa() == Isa::kAvx512 && cpu_features().avx512bf16)
    return bf16gemm_config_avx512bf16();
  return bf16gemm_config_portable();
}

// Rounds n floats to bf16 into the low halves of A's words; K odd: the last high half is 0.
void to_bf16_row(const Bf16GemmConfig& cfg, const float* src, int K, uint32_t* dst) {
  auto* h = reinterpret_cast<uint16_t*>(dst);
  cfg.convert(src, h, K);
  if (K & 1) h[K] = 0;
}

// The low part of n values whose bf16 (high part) is hi: dst = bf16(src - hi),
// src - hi exact in fp32 (hi keeps src's top 8 significant bits); tmp holds n
// floats. A non-finite high part has no low part (0).
void to_bf16_low(const Bf16GemmConfig& cfg, const float* src, const uint16_t* hi, long n, uint16_t* dst,
                 float* tmp) {
  for (long i = 0; i < n; ++i) {
    const uint32_t bits = static_cast<uint32_t>(hi[i]) << 16;
    float h;
    std::memcpy(&h, &bits, 4);
    tmp[i] = (bits & 0x7f800000u) == 0x7f800000u ? 0.0f : src[i] - h;
  }
  cfg.convert(tmp, dst, n);
}

// C rows = bf16 rows formed by form(m0, m1, rows) x W (+ bias), K in blocks of
// kBf16KC summed into C in fp32; scale and bias applied with the last block.
template <class Form>
void bf16_driver(const Bf16GemmConfig& cfg, const Bf16Weights& w, long M, Form&& form, float* c, long ldc,
                 const float* scale, const float* bias, int nthreads, const float* residual, Act post_act) {
  const auto run = [&](long, int nrows, int p0, int p1, const uint32_t* rows, float* cc) {
    const int n0 = p0 * kBf16NR, n1 = std::min(w.n, p1 * kBf16NR);
    if (w.k == 0) {
      for (int r = 0; r < nrows; ++r) std::fill(cc + r * ldc + n0, cc + r * ldc + n1, 0.0f);
      finish_rows(cc, ldc, 0, nrows, n0, n1, bias, Act::kNone, nullptr);
      return;
    }
    for (int k0 = 0; k0 < w.k; k0 += kBf16KC) {
      const int kcp = (std::min(kBf16KC, w.k - k0) + 1) / 2;
      const uint32_t* ab = rows + k0 / 2;
      const bool last = k0 + kBf16KC >= w.k;
      for (int pn = p0; pn < p1; ++pn) {
        const uint32_t* panel = w.data.data() + static_cast<size_t>(k0 / 2) * w.npanels * kBf16NR +
                                static_cast<size_t>(pn) * kcp * kBf16NR;
        const int nr = std::min(kBf16NR, w.n - pn * kBf16NR);
        const float* sc = last && scale ? scale + pn * kBf16NR : nullptr;
        const float* b = last && bias ? bias + pn * kBf16NR : nullptr;
        for (int r = 0; r < nrows; r += cfg.mr)
          cfg.fn(std::min(cfg.mr, nrows - r), nr, kcp, ab + static_cast<long>(r) * w.kp, w.kp, panel,
                 cc + r * ldc + pn * kBf16NR, ldc, k0 > 0, sc, b);
      }
    }
  };
  lowp_driver(M, w.kp, w.n, w.npanels, kBf16NR, nthreads, form, run, c, ldc, residual, post_act);
}

}  // namespace

const char* bf16gemm_kernel_name(bool emulated) { return bf16_cfg(emulated).name; }

Bf16Weights pack_weights_bf16(int N, int K, const float* w, long ldw, bool split) {
  if (split) {  // [W | W]: the high and the low bf16 part of each input meet the same weight
    std::vector<float> w2(static_cast<size_t>(std::max(N, 0)) * 2 * std::max(K, 0));
    for (int n = 0; n < N; ++n)
      for (int k = 0; k < K; ++k) w2[static_cast<size_t>(n) * 2 * K + k] = w2[static_cast<size_t>(n) * 2 * K + K + k] = w[n * ldw + k];
    Bf16Weights pw = pack_weights_bf16(N, 2 * K, w2.data(), 2L * K, false);
    pw.split = true;
    return pw;
  }
  Bf16Weights pw;
  pw.n = std::max(N, 0);
  pw.k = std::max(K, 0);
  pw.kp = (pw.k + 1) / 2;
  pw.npanels = (pw.n + kBf16NR - 1) / kBf16NR;
  pw.data.assign(static_cast<size_t>(pw.kp) * pw.npanels * kBf16NR, 0u);
  // Rounded as VCVTNEPS2BF16 rounds (the portable conversion gives its bits on any CPU).
  const Bf16GemmConfig& cvt = bf16gemm_config_portable();
  avector<uint32_t> row(static_cast<size_t>(pw.kp));
  for (int n = 0; n < pw.n; ++n) {
    to_bf16_row(cvt, w + n * ldw, pw.k, row.data());
    const int pn = n / kBf16NR, j = n % kBf16NR;
    for (int k0 = 0; k0 < pw.k; k0 += kBf16KC) {
      const int kcp = (std::min(kBf16KC, pw.k - k0) + 1) / 2;
      uint32_t* dst = pw.data.data() + static_cast<size_t>(k0 / 2) * pw.npanels * kBf16NR +
                      static_cast<size_t>(pn) * kcp * kBf16NR + j;
      for (int q = 0; q < kcp; ++q) dst[static_cast<size_t>(q) * kBf16NR] = row[k0 / 2 + q];
    }
  }
  return pw;
}

void gemm_bf16(int M, const float* a, long lda, const Bf16Weights& w, float* c, long ldc,
               const float* scale, const float* bias, bool emulated, int nthreads,
               const float* residual, Act post_act) {
  const Bf16GemmConfig& cfg = bf16_cfg(emulated);
  bf16_driver(cfg, w, M, [&](long m0, long m1, uint32_t* rows) {
    if (!w.split) {
      for (long m = m0; m < m1; ++m) to_bf16_row(cfg, a + m * lda, w.k, rows + (m - m0) * w.kp);
      return;
    }
    const int K = w.k / 2;
    std::vector<float> tmp(static_cast<size_t>(K));
    for (long m = m0; m < m1; ++m) {
      auto* h = reinterpret_cast<uint16_t*>(rows + (m - m0) * w.kp);
      cfg.convert(a + m * lda, h, K);
      to_bf16_low(cfg, a + m * lda, h, K, h + K, tmp.data());
    }
  }, c, ldc, scale, bias, nthreads, residual, post_act);
}

void conv2d_bf16(const float* x, const Bf16Weights& w, const float* scale, const float* bias,
                 const PoolParams& p, int dh, int dw, float* out, bool emulated, int nthreads,
                 const float* residual, Act post_act, long ldo) {
  const int K = p.kh * p.kw * p.c;
  const long M = static_cast<long>(p.n) * p.oh * p.ow;
  if (ldo == 0) ldo = w.n;
  if (is_pointwise(p)) {
    gemm_bf16(static_cast<int>(M), x, K, w, out, ldo, scale, bias, emulated, nthreads, residual, post_act);
    return;
  }
  // The input is rounded to bf16 once (each value appears in up to kh x kw rows of
  // the im2col matrix), then gathered one chunk of rows at a time.
  // (w.split: a second copy holds each value's low part, gathered after the high parts.)
  const Bf16GemmConfig& cfg = bf16_cfg(emulated);
  if (nthreads <= 0) nthreads = get_num_threads();
  const long pix = static_cast<long>(p.n) * p.h * p.w;
  avector<uint16_t> xb(static_cast<size_t>(pix) * p.c), xl(w.split ? xb.size() : 0);
  const int cparts = conversion_parts(pix, nthreads);
  parallel_for(cparts, nthreads, [&](int t) {
    const long a0 = pix * t / cparts * p.c, a1 = pix * (t + 1) / cparts * p.c;
    cfg.convert(x + a0, xb.data() + a0, a1 - a0);
    if (w.split) {
      std::vector<float> tmp(4096);
      for (long b = a0; b < a1; b += 4096) {
        const long e = std::min(a1, b + 4096);
        to_bf16_low(cfg, x + b, xb.data() + b, e - b, xl.data() + b, tmp.data());
      }
    }
  });
  const auto gather = [&](const uint16_t* const* src, int runs, int run, uint16_t* dst, long /*contiguous*/) {
    cfg.gather(src, runs, run, dst);
  };
  bf16_driver(cfg, w, M, [&](long m0, long m1, uint32_t* rows) {
    for_output_pixels(p, m0, m1, [&](long m, int n, int oy, int ox) {
      auto* h = reinterpret_cast<uint16_t*>(rows + (m - m0) * w.kp);
      im2col_row_runs(gather, xb.data(), p, dh, dw, m, n, oy, ox, h, uint16_t{0}, long{p.kw} * p.c);
      if (w.split) im2col_row_runs(gather, xl.data(), p, dh, dw, m, n, oy, ox, h + K, uint16_t{0}, long{p.kw} * p.c);
      else if (K & 1) h[K] = 0;
    });
  }, out, ldo, scale, bias, nthreads, residual, post_act);
}

int64_t conv2d_bf16_transient_bytes(const PoolParams& p, int N, bool split, int nthreads) {
  if (nthreads <= 0) nthreads = get_num_threads();
  const int64_t M = int64_t{p.n} * p.oh * p.ow, K = int64_t{p.kh} * p.kw * p.c;
  // the rounded input (split: and its low parts, found 4096 floats at a time by each thread);
  // the rows of a split layer are twice as long, and its direct form keeps K floats per task
  const int64_t input_copy = is_pointwise(p) ? (split ? int64_t{nthreads} * K * 4 : 0)
                                             : int64_t{p.n} * p.h * p.w * p.c * 2 * (split ? 2 : 1) +
                                                   (split ? int64_t{nthreads} * 4096 * 4 : 0);
  return input_copy + bf16_transient_bytes(M, N, static_cast<int>(K * (split ? 2 : 1)), nthreads);
}

int64_t bf16_transient_bytes(int64_t M, int N, int K, int nthreads) {
  if (M <= 0 || N <= 0) return 0;
  if (nthreads <= 0) nthreads = get_num_threads();
  const int kp = (std::max(K, 0) + 1) / 2, npanels = (N + kBf16NR - 1) / kBf16NR;
  return lowp_rows_bytes(lowp_schedule(M, kp, npanels, nthreads), M, kp, nthreads);
}

// ---- int8 float layers --------------------------------------------------------

namespace {

const I8GemmConfig& i8_cfg(bool emulated) {
  if (emulated) return i8gemm_config_portable();
  if (active_isa() == Isa::kAmx) return i8gemm_config_amx();  // isa_supported: amx_int8
  if (active_simd_isa() == Isa::kAvx512 && cpu_features().avx512vnni) return i8gemm_config_avx512vnni();
  return i8gemm_config_portable();
}

// One sample's (or row's) activation quantization (kernels/i8gemm.h).
struct QuantParams {
  float scale = 1.0f, inv = 1.0f, zp = 0.0f;
  int32_t zpi = 0;
};

QuantParams quant_from_range(float lo, float hi) {
  QuantParams q;
  const float s = (hi - lo) / 255.0f;
  if (s > 0.0f && s <= FLT_MAX) {  // else (all zero, or infinite) s = 1
    q.scale = s;
    q.inv = 1.0f / s;
  }
  float zp = std::nearbyint(-lo * q.inv);
  zp = zp > 0.0f ? (zp < 255.0f ? zp : 255.0f) : 0.0f;
  q.zp = zp;
  q.zpi = static_cast<int32_t>(zp);
  return q;
}

QuantParams quant_params(const I8GemmConfig& cfg, const float* x, long n) {
  float lo = 0.0f, hi = 0.0f;  // the range includes 0 (the padding); NaNs are skipped
  cfg.range(x, n, &lo, &hi);
  return quant_from_range(lo, hi);
}

// Each of `samples` runs of `per` floats quantized on its own: their ranges, found in
// chunks shared out over the threads (one sample of a 224x224 RGB input was one thread's
// serial pass while the others waited) and combined; min and max do not depend on the
// order, so the parameters are those of one pass.
std::vector<QuantParams> sample_quant_params(const I8GemmConfig& cfg, const float* x, int samples, long per,
                                             int nthreads) {
  const int chunks = nthreads > 1 && per >= (1L << 15) ? nthreads : 1;
  std::vector<float> lo(static_cast<size_t>(samples) * chunks, 0.0f), hi(lo.size(), 0.0f);
  parallel_for(samples * chunks, nthreads, [&](int t) {
    const long s = t / chunks, k = t % chunks;
    const long b = per * k / chunks, e = per * (k + 1) / chunks;
    cfg.range(x + s * per + b, e - b, &lo[t], &hi[t]);
  });
  std::vector<QuantParams> qp(static_cast<size_t>(samples));
  for (int s = 0; s < samples; ++s) {
    float l = 0.0f, h = 0.0f;
    for (int k = 0; k < chunks; ++k) l = std::min(l, lo[s * chunks + k]), h = std::max(h, hi[s * chunks + k]);
    qp[s] = quant_from_range(l, h);
  }
  return qp;
}

// The zero point and scale of each row of A, in the arrays the output stage reads.
struct RowQuant {
  std::vector<int32_t> zp;
  std::vector<float> scale;
};

template <class SampleOf>
RowQuant row_quant(long M, const std::vector<QuantParams>& qp, SampleOf&& sample_of) {
  RowQuant rq;
  rq.zp.resize(static_cast<size_t>(std::max(M, 0L)));
  rq.scale.resize(rq.zp.size());
  for (long m = 0; m < M; ++m) {
    const QuantParams& q = qp[sample_of(m)];
    rq.zp[m] = q.zpi, rq.scale[m] = q.scale;
  }
  return rq;
}

// C rows = the output stage of rows formed by form(m0, m1, rows) x W_q; row m
// has the zero point and scale rq.zp[m], rq.scale[m].
template <class Form>
void i8_driver(const I8GemmConfig& cfg, const Int8Weights& w, long M, Form&& form, const RowQuant& rq,
               float* c, long ldc, const float* bias, int nthreads, const float* residual, Act post_act) {
  const long ldb = static_cast<long>(w.kq_pad) * kI8NR;  // words per panel
  const auto run = [&](long m0, int nrows, int p0, int p1, const uint32_t* rows, float* cc) {
    if (cfg.block) {
      const int j0 = p0 * kI8NR;
      const I8Epilogue e{rq.zp.data() + m0, rq.scale.data() + m0, w.wsum.data() + j0, w.scale.data() + j0,
                         bias ? bias + j0 : nullptr};
      cfg.block(nrows, std::min(w.n, p1 * kI8NR) - j0, w.kq, rows, w.kq_pad, w.data.data() + p0 * ldb, ldb,
                cc + j0, ldc, e);
      return;
    }
    // two panels a tile where the kernel has them (cfg.seg2: 6 row loads per 24 VPDPBUSD
    // instead of 12), else one; the same integer sums and output stage either way
    for (int pn = p0; pn < p1;) {
      const int np = cfg.seg2 && pn + 1 < p1 ? 2 : 1;
      const uint32_t* panel = w.data.data() + pn * ldb;
      const int nr = std::min(np * kI8NR, w.n - pn * kI8NR), j0 = pn * kI8NR;
      for (int r = 0; r < nrows; r += cfg.mr) {
        const I8Epilogue e{rq.zp.data() + m0 + r, rq.scale.data() + m0 + r, w.wsum.data() + j0,
                           w.scale.data() + j0, bias ? bias + j0 : nullptr};
        const uint32_t* a = rows + static_cast<long>(r) * w.kq_pad;
        if (np == 2)
          cfg.seg2(std::min(cfg.mr, nrows - r), nr, I8A{reinterpret_cast<const uint8_t*>(a), 4L * w.kq_pad, 1, w.kq, 0},
                   panel, ldb, cc + r * ldc + j0, ldc, e);
        else
          cfg.fn(std::min(cfg.mr, nrows - r), nr, w.kq, a, w.kq_pad, panel, cc + r * ldc + j0, ldc, e);
      }
      pn += np;
    }
  };
  lowp_driver(M, w.kq_pad, w.n, w.npanels, kI8NR, nthreads, form, run, c, ldc, residual, post_act);
}

// Quantizes K floats into a row of A (zero bytes after K).
void quantize_row(const I8GemmConfig& cfg, const float* src, int K, const QuantParams& q, uint32_t* dst, int kq) {
  auto* b = reinterpret_cast<uint8_t*>(dst);
  cfg.quantize(src, b, K, q.inv, q.zp);
  std::fill(b + K, b + 4L * kq, uint8_t{0});
}

}  // namespace

const char* i8gemm_kernel_name(bool emulated) { return i8_cfg(emulated).name; }

int int8_conv_run(const PoolParams& p, int dw) {
  const int run = p.kw * p.c, run4 = (run + 3) / 4 * 4;
  if (dw != 1 || is_pointwise(p) || run <= 0 || 3 * run4 > 4 * run) return 0;
  return run;
}

Int8Weights pack_weights_int8(int N, int K, const float* w, long ldw, const float* pm1_scale, int run) {
  Int8Weights pw;
  pw.n = std::max(N, 0);
  pw.k = std::max(K, 0);
  if (run > 0 && pw.k % run == 0) {
    pw.run = run;
    pw.run_words = (run + 3) / 4;
    pw.kq = pw.k / run * pw.run_words;
  } else {
    pw.kq = (pw.k + 3) / 4;
  }
  // where value k of a filter goes among the 4 kq bytes (the kernel-row layout leaves
  // zero weights between the runs)
  const auto at = [&](int k) { return pw.run ? k / pw.run * 4 * pw.run_words + k % pw.run : k; };
  pw.kq_pad = (pw.kq + kI8KB - 1) / kI8KB * kI8KB;
  pw.npanels = (pw.n + kI8NR - 1) / kI8NR;
  pw.data.assign(static_cast<size_t>(pw.kq_pad) * pw.npanels * kI8NR, 0u);
  pw.scale.assign(pw.n, 1.0f);
  pw.wsum.assign(pw.n, 0);
  std::vector<int8_t> q(static_cast<size_t>(pw.kq) * 4, 0);
  for (int n = 0; n < pw.n; ++n) {
    const float* wn = w + n * ldw;
    std::fill(q.begin(), q.end(), int8_t{0});
    if (pm1_scale) {
      pw.scale[n] = pm1_scale[n];
      for (int k = 0; k < pw.k; ++k) q[at(k)] = wn[k] < 0.0f ? -1 : 1;
    } else {
      float amax = 0.0f;
      for (int k = 0; k < pw.k; ++k) amax = std::max(amax, std::fabs(wn[k]));
      const float s = amax > 0.0f && amax <= FLT_MAX ? amax / 127.0f : 1.0f;
      pw.scale[n] = s;
      for (int k = 0; k < pw.k; ++k) {
        float v = std::nearbyint(wn[k] / s);
        v = v > -127.0f ? (v < 127.0f ? v : 127.0f) : -127.0f;  // clamped (a NaN weight: -127)
        q[at(k)] = static_cast<int8_t>(v);
      }
    }
    int32_t sum = 0;
    for (const int8_t v : q) sum += v;
    pw.wsum[n] = sum;
    const int pn = n / kI8NR, j = n % kI8NR;
    uint32_t* dst = pw.data.data() + static_cast<size_t>(pn) * pw.kq_pad * kI8NR + j;
    for (int g = 0; g < pw.kq; ++g) {
      uint32_t word = 0;
      for (int t = 0; t < 4; ++t) word |= static_cast<uint32_t>(static_cast<uint8_t>(q[4 * g + t])) << (8 * t);
      dst[static_cast<size_t>(g) * kI8NR] = word;
    }
  }
  return pw;
}

void gemm_int8(int M, const float* a, long lda, const Int8Weights& w, float* c, long ldc,
               const float* bias, bool emulated, int nthreads, const float* residual, Act post_act) {
  const I8GemmConfig& cfg = i8_cfg(emulated);
  std::vector<QuantParams> qp(static_cast<size_t>(std::max(M, 0)));
  for (int m = 0; m < M; ++m) qp[m] = quant_params(cfg, a + m * lda, w.k);
  const RowQuant rq = row_quant(M, qp, [](long m) { return m; });
  i8_driver(cfg, w, M, [&](long m0, long m1, uint32_t* rows) {
    for (long m = m0; m < m1; ++m) quantize_row(cfg, a + m * lda, w.k, qp[m], rows + (m - m0) * w.kq_pad, w.kq);
  }, rq, c, ldc, bias, nthreads, residual, post_act);
}

namespace {

// A conv2d_int8 in the kernel-row layout (Int8Weights::run) on a kernel that reads
// A in place (I8GemmConfig::seg). The input is quantized into a copy padded with
// the sample's zero point (kI8Slack zero bytes after it: rows read in place run up
// to 3 bytes past a kernel row), so every tile of MR output pixels along an output
// row reads its kh kernel rows where they lie (segments of run_words words, pixel i
// at i * sw * C bytes) and no row of A is formed. Forming them cost the 224x224 7x7
// stem on RGB as much time as its VPDPBUSDs (147 bytes in 21-byte pieces per output
// pixel), and forming only the tiles that touch the padding still 12% of it; the
// layout's zero weights add 1/7 to its K.
void conv2d_int8_in_place(const I8GemmConfig& cfg, const Int8Weights& w, const float* x,
                          const std::vector<QuantParams>& qp, const float* bias, const PoolParams& p, int dh,
                          float* out, long ldo, int nthreads, const float* residual, Act post_act,
                          const ConvMaxpool* pool) {
  constexpr int kMaxMR = 8;
  const int MR = std::min(cfg.mr, kMaxMR);
  const int hp = p.h + p.pt + p.pb, wp = p.w + p.pl + p.pr;
  const long prow = static_cast<long>(wp) * p.c;  // bytes per padded input row
  // Each task writes its rows whole; the slack the kernel may read past the end (against
  // zero weights) is zeroed here.
  uvector<uint8_t> xq(static_cast<size_t>(p.n) * hp * prow + kI8Slack);
  std::memset(xq.data() + static_cast<size_t>(p.n) * hp * prow, 0, kI8Slack);
  const long nrows_in = static_cast<long>(p.n) * hp;
  const int cparts = conversion_parts(nrows_in * wp, nthreads);
  parallel_for(cparts, nthreads, [&](int t) {
    for (long r = nrows_in * t / cparts; r < nrows_in * (t + 1) / cparts; ++r) {
      const int n = static_cast<int>(r / hp), iy = static_cast<int>(r % hp) - p.pt;
      uint8_t* d = xq.data() + r * prow;
      const auto zp = static_cast<uint8_t>(qp[n].zpi);
      if (iy < 0 || iy >= p.h) {
        std::memset(d, zp, static_cast<size_t>(prow));
        continue;
      }
      std::memset(d, zp, static_cast<size_t>(p.pl) * p.c);
      cfg.quantize(x + (static_cast<long>(n) * p.h + iy) * p.w * p.c, d + static_cast<long>(p.pl) * p.c,
                   static_cast<long>(p.w) * p.c, qp[n].inv, qp[n].zp);
      std::memset(d + static_cast<long>(p.pl + p.w) * p.c, zp, static_cast<size_t>(p.pr) * p.c);
    }
  });
  const long lda = static_cast<long>(p.sw) * p.c, seg_stride = static_cast<long>(dh) * prow;
  const long orows = static_cast<long>(p.n) * p.oh;
  const int ntasks = static_cast<int>(std::min<long>(orows, nthreads == 1 ? 1 : 8 * nthreads));
  RowPooler pooler(pool, out, p.ow, ldo);
  parallel_for(ntasks, nthreads, [&](int t) {
    int32_t zp[kMaxMR];
    float sa[kMaxMR];
    RowPooler::Task pt = pooler.start(orows * t / ntasks, orows * (t + 1) / ntasks);
    for (long r = orows * t / ntasks; r < orows * (t + 1) / ntasks; ++r) {
      const int n = static_cast<int>(r / p.oh), oy = static_cast<int>(r % p.oh);
      const long m0 = r * p.ow;
      float* orow = pooler.row(pt, r);
      std::fill(zp, zp + MR, qp[n].zpi);
      std::fill(sa, sa + MR, qp[n].scale);
      const uint8_t* xrow = xq.data() + (static_cast<long>(n) * hp + static_cast<long>(oy) * p.sh) * prow;
      const long panel_words = static_cast<long>(w.kq_pad) * kI8NR;
      for (int pn = 0; pn < w.npanels;) {
        // two panels a tile where the kernel has it (cfg.seg2), else one
        const int np = cfg.seg2 && pn + 1 < w.npanels ? 2 : 1;
        const uint32_t* panel = w.data.data() + static_cast<size_t>(pn) * panel_words;
        const int j0 = pn * kI8NR, nr = std::min(np * kI8NR, w.n - j0);
        const I8Epilogue e{zp, sa, w.wsum.data() + j0, w.scale.data() + j0, bias ? bias + j0 : nullptr};
        for (int ox = 0; ox < p.ow; ox += MR) {
          const I8A a{xrow + ox * lda, lda, p.kh, w.run_words, seg_stride};
          if (np == 2)
            cfg.seg2(std::min(MR, p.ow - ox), nr, a, panel, panel_words, orow + ox * ldo + j0, ldo, e);
          else
            cfg.seg(std::min(MR, p.ow - ox), nr, a, panel, orow + ox * ldo + j0, ldo, e);
        }
        pn += np;
      }
      if (residual || post_act != Act::kNone)
        add_residual_act(orow, residual ? residual + m0 * ldo : nullptr, static_cast<size_t>(ldo),
                         static_cast<size_t>(p.ow), 0, w.n, post_act);
      pooler.row_done(pt, r);
    }
  });
  pooler.finish(nthreads);
}

}  // namespace

void conv2d_int8(const float* x, const Int8Weights& w, const float* bias, const PoolParams& p, int dh,
                 int dw, float* out, bool emulated, int nthreads, const float* residual, Act post_act,
                 long ldo, const ConvMaxpool* pool) {
  const I8GemmConfig& cfg = i8_cfg(emulated);
  if (ldo == 0) ldo = w.n;
  if (nthreads <= 0) nthreads = get_num_threads();
  const int K = p.kh * p.kw * p.c;
  const long pix = static_cast<long>(p.h) * p.w, opix = static_cast<long>(p.oh) * p.ow;
  const long M = p.n * opix;
  const bool runs = w.run > 0;  // the kernel-row layout: K = kh runs of run_words words
  if (runs && (dw != 1 || w.run != p.kw * p.c))
    throw std::logic_error("conv2d_int8: weights packed for kernel rows of another shape");
  if (pool && !(runs && cfg.seg)) {  // the other paths: the pool after the conv
    conv2d_int8(x, w, bias, p, dh, dw, out, emulated, nthreads, residual, post_act, ldo);
    maxpool_f32(out, pool->p, pool->out, nthreads, pool->ldo);
    return;
  }
  const std::vector<QuantParams> qp = sample_quant_params(cfg, x, p.n, pix * p.c, nthreads);
  if (runs && cfg.seg) {
    conv2d_int8_in_place(cfg, w, x, qp, bias, p, dh, out, ldo, nthreads, residual, post_act, pool);
    return;
  }
  const RowQuant rq = row_quant(M, qp, [&](long m) { return m / opix; });
  if (is_pointwise(p)) {
    i8_driver(cfg, w, M, [&](long m0, long m1, uint32_t* rows) {
      for (long m = m0; m < m1; ++m)
        quantize_row(cfg, x + m * K, K, qp[m / opix], rows + (m - m0) * w.kq_pad, w.kq);
    }, rq, out, ldo, bias, nthreads, residual, post_act);
    return;
  }
  // The input is quantized once, then gathered one chunk of im2col rows at a time
  // (padding: the sample's zero point).
  avector<uint8_t> xq(static_cast<size_t>(p.n) * pix * p.c);
  const int cparts = conversion_parts(p.n * pix, nthreads);
  parallel_for(cparts, nthreads, [&](int t) {
    const long total = p.n * pix;
    for (long a0 = total * t / cparts, a1 = total * (t + 1) / cparts; a0 < a1;) {
      const long n = a0 / pix, end = std::min(a1, (n + 1) * pix);
      cfg.quantize(x + a0 * p.c, xq.data() + a0 * p.c, (end - a0) * p.c, qp[n].inv, qp[n].zp);
      a0 = end;
    }
  });
  const long dst_row = runs ? 4L * w.run_words : static_cast<long>(p.kw) * p.c;
  i8_driver(cfg, w, M, [&](long m0, long m1, uint32_t* rows) {
    for_output_pixels(p, m0, m1, [&](long m, int n, int oy, int ox) {
      auto* b = reinterpret_cast<uint8_t*>(rows + (m - m0) * w.kq_pad);
      const auto zp = static_cast<uint8_t>(qp[n].zpi);
      const auto gather = [&](const uint8_t* const* src, int nruns, int run, uint8_t* dst, long stride) {
        cfg.gather(src, nruns, run, zp, dst, stride);
      };
      im2col_row_runs(gather, xq.data(), p, dh, dw, m, n, oy, ox, b, zp, dst_row);
      // words kq..kq_pad, and (runs) the bytes between the runs: zero since allocation
      if (!runs) std::fill(b + K, b + 4L * w.kq, uint8_t{0});
    });
  }, rq, out, ldo, bias, nthreads, residual, post_act);
}

int64_t int8_transient_bytes(int64_t M, int N, int K, int nthreads) {
  if (M <= 0 || N <= 0) return 0;
  if (nthreads <= 0) nthreads = get_num_threads();
  const int kq = ((std::max(K, 0) + 3) / 4 + kI8KB - 1) / kI8KB * kI8KB, npanels = (N + kI8NR - 1) / kI8NR;
  // the A rows of each task; per row of A its sample's parameters and the
  // output stage's zero point and scale
  return lowp_rows_bytes(lowp_schedule(M, kq, npanels, nthreads), M, kq, nthreads) +
         M * static_cast<int64_t>(sizeof(QuantParams) + sizeof(int32_t) + sizeof(float));
}

int64_t conv2d_int8_transient_bytes(const PoolParams& p, int N, int run, int nthreads) {
  const int64_t M = int64_t{p.n} * p.oh * p.ow;
  if (is_pointwise(p)) return int8_transient_bytes(M, N, p.kh * p.kw * p.c, nthreads);
  if (nthreads <= 0) nthreads = get_num_threads();
  // the quantized input: padded (conv2d_int8_in_place) or not, and with the rows of A
  // formed in the layout of the weights (the kernel-row layout pads each run to whole
  // words) where the kernel cannot read them in place (AMX)
  const int64_t input_copy = int64_t{p.n} * (p.h + p.pt + p.pb) * (p.w + p.pl + p.pr) * p.c + kI8Slack;
  const int64_t kbytes = run > 0 ? int64_t{p.kh} * ((run + 3) / 4) * 4 : int64_t{p.kh} * p.kw * p.c;
  return input_copy + int8_transient_bytes(M, N, static_cast<int>(kbytes), nthreads);
}

namespace {
template <class F>
void pool_loop(const PoolParams& p, int nthreads, F&& f) {
  const long rows = static_cast<long>(p.n) * p.oh;
  if (nthreads <= 0) nthreads = get_num_threads();
  const int ntasks = static_cast<int>(std::min<long>(rows, nthreads == 1 ? 1 : 4 * nthreads));
  parallel_for(ntasks, nthreads, [&](int t) {
    for (long r = rows * t / ntasks; r < rows * (t + 1) / ntasks; ++r) {
      const int n = static_cast<int>(r / p.oh), oy = static_cast<int>(r % p.oh);
      for (int ox = 0; ox < p.ow; ++ox) {
        const int y0 = std::max(0, oy * p.sh - p.pt), y1 = std::min(p.h, oy * p.sh - p.pt + p.kh);
        const int x0 = std::max(0, ox * p.sw - p.pl), x1 = std::min(p.w, ox * p.sw - p.pl + p.kw);
        f(n, oy, ox, y0, y1, x0, x1, (r * p.ow + ox));
      }
    }
  });
}
}  // namespace

void depthwise_conv2d_f32(const float* x, const float* w, const float* bias, const PoolParams& p,
                          int dh, int dw, Act act, const float* slope, float* out, int nthreads) {
  const long rows = static_cast<long>(p.n) * p.oh;
  if (nthreads <= 0) nthreads = get_num_threads();
  const int ntasks = static_cast<int>(std::min<long>(rows, nthreads == 1 ? 1 : 4 * nthreads));
  const int C = p.c;
  const PoolKernels& k = pool_cfg();
  // Every tap's offset from the window's first value, and the weights' rows: an output pixel
  // whose window lies inside the input takes its taps from these (no bounds checks).
  const int taps = p.kh * p.kw;
  std::vector<long> off(static_cast<size_t>(taps));
  std::vector<const float*> wtap(static_cast<size_t>(taps));
  for (int ky = 0; ky < p.kh; ++ky)
    for (int kx = 0; kx < p.kw; ++kx) {
      off[ky * p.kw + kx] = (static_cast<long>(ky) * dh * p.w + static_cast<long>(kx) * dw) * C;
      wtap[ky * p.kw + kx] = w + (static_cast<long>(ky) * p.kw + kx) * C;
    }
  const InsideCols in = inside_cols(p, dw);
  parallel_for(ntasks, nthreads, [&](int t) {
    std::vector<const float*> xs(static_cast<size_t>(taps)), ws(xs.size());
    for (long r = rows * t / ntasks; r < rows * (t + 1) / ntasks; ++r) {
      const int n = static_cast<int>(r / p.oh), oy = static_cast<int>(r % p.oh);
      const int iy0 = oy * p.sh - p.pt;
      const bool rows_in = rows_inside(p, oy, dh);
      for (int ox = 0; ox < p.ow; ++ox) {
        float* o = out + (r * p.ow + ox) * C;
        if (rows_in && ox >= in.ox_lo && ox < in.ox_hi) {
          const float* base = x + ((static_cast<long>(n) * p.h + iy0) * p.w + (ox * p.sw - p.pl)) * C;
          for (int q = 0; q < taps; ++q) xs[q] = base + off[q];
          k.dwconv(xs.data(), wtap.data(), taps, bias, C, o);
        } else {
          int ntaps = 0;  // the taps inside the input, in (ky, kx) order; channels are contiguous
          for (int ky = 0; ky < p.kh; ++ky) {
            const int iy = iy0 + ky * dh;
            if (iy < 0 || iy >= p.h) continue;
            for (int kx = 0; kx < p.kw; ++kx) {
              const int ix = ox * p.sw - p.pl + kx * dw;
              if (ix < 0 || ix >= p.w) continue;
              xs[ntaps] = x + ((static_cast<long>(n) * p.h + iy) * p.w + ix) * C;
              ws[ntaps++] = wtap[ky * p.kw + kx];
            }
          }
          k.dwconv(xs.data(), ws.data(), ntaps, bias, C, o);
        }
        if (act != Act::kNone)
          for (int c = 0; c < C; ++c) {
            if (act == Act::kRelu) o[c] = o[c] < 0.0f ? 0.0f : o[c];
            else o[c] = o[c] < 0.0f ? o[c] * slope[c] : o[c];
          }
      }
    }
  });
}

void maxpool_packed(const uint64_t* x, const PoolParams& p, uint64_t* out, int nthreads) {
  const int W = words_for(p.c);
  if (active_simd_isa() == Isa::kNeon) {
    pool_loop(p, nthreads, [&](int n, int, int, int y0, int y1, int x0, int x1, long o) {
      bmaxpool_window_neon(x + static_cast<long>(n) * p.h * p.w * W, p.w, W, y0, y1, x0, x1,
                           out + o * W);
    });
    return;
  }
  pool_loop(p, nthreads, [&](int n, int, int, int y0, int y1, int x0, int x1, long o) {
    uint64_t* d = out + o * W;
    for (int c = 0; c < W; ++c) d[c] = ~uint64_t{0};
    for (int iy = y0; iy < y1; ++iy)
      for (int ix = x0; ix < x1; ++ix) {
        const uint64_t* s = x + ((static_cast<long>(n) * p.h + iy) * p.w + ix) * W;
        for (int c = 0; c < W; ++c) d[c] &= s[c];
      }
    if (y0 >= y1 || x0 >= x1)
      for (int c = 0; c < W; ++c) d[c] = 0;  // empty window: +1 (cannot happen with torch rules)
  });
}

void chanwise(const ChanParams& p, const float* x, size_t ldx, float* y, size_t ldy, size_t rows, int c0,
              int c1) {
  static const ChanFn portable = chanwise_portable(), avx2 = chanwise_avx2(), avx512 = chanwise_avx512();
  switch (active_simd_isa()) {
    case Isa::kAvx512: return avx512(p, x, ldx, y, ldy, rows, c0, c1);
    case Isa::kAvx2: return avx2(p, x, ldx, y, ldy, rows, c0, c1);
    default: return portable(p, x, ldx, y, ldy, rows, c0, c1);
  }
}

void maxpool_f32(const float* x, const PoolParams& p, float* out, int nthreads, long ldo) {
  const long rows = static_cast<long>(p.n) * p.oh;
  if (nthreads <= 0) nthreads = get_num_threads();
  const int ntasks = static_cast<int>(std::min<long>(rows, nthreads == 1 ? 1 : 4 * nthreads));
  parallel_for(ntasks, nthreads, [&](int t) {
    maxpool_f32_rows(x, p, out, rows * t / ntasks, rows * (t + 1) / ntasks, ldo);
  });
}

void maxpool_f32_rows(const float* x, const PoolParams& p, float* out, long r0, long r1, long ldo) {
  const PoolKernels& k = pool_cfg();
  if (ldo == 0) ldo = p.c;
  for (long r = r0; r < r1; ++r) {
    const int n = static_cast<int>(r / p.oh), oy = static_cast<int>(r % p.oh);
    const int y0 = std::max(0, oy * p.sh - p.pt), y1 = std::min(p.h, oy * p.sh - p.pt + p.kh);
    for (int ox = 0; ox < p.ow; ++ox) {
      const int x0 = std::max(0, ox * p.sw - p.pl), x1 = std::min(p.w, ox * p.sw - p.pl + p.kw);
      k.max(x + static_cast<long>(n) * p.h * p.w * p.c, static_cast<long>(p.w) * p.c, p.c, y0, y1, x0, x1,
            out + (r * p.ow + ox) * ldo);
    }
  }
}

void avgpool_f32(const float* x, const PoolParams& p, bool count_include_pad, float* out,
                 int nthreads) {
  const PoolKernels& k = pool_cfg();
  pool_loop(p, nthreads, [&](int n, int oy, int ox, int y0, int y1, int x0, int x1, long o) {
    float* d = out + o * p.c;
    k.sum(x + static_cast<long>(n) * p.h * p.w * p.c, static_cast<long>(p.w) * p.c, p.c, y0, y1, x0, x1, d);
    int cnt;
    if (count_include_pad) {
      const int ya = oy * p.sh - p.pt, xa = ox * p.sw - p.pl;
      const int yb = std::min(ya + p.kh, p.h + p.pb), xb = std::min(xa + p.kw, p.w + p.pr);
      cnt = (yb - ya) * (xb - xa);
    } else {
      cnt = (y1 - y0) * (x1 - x0);
    }
    const float inv = 1.0f / static_cast<float>(cnt > 0 ? cnt : 1);
    for (int c = 0; c < p.c; ++c) d[c] *= inv;
  });
}

}  // namespace onebit
