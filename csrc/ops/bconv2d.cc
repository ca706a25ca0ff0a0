// Binary convolution driver: implicit-GEMM ("direct") convolution over a
// physically padded, bit-packed NHWC input.
//
// No im2col buffer: the input is copied once into a buffer with a border of
// padding words (all +1 or all -1 bits), so every tap of every output pixel is
// the pixel's first-tap address plus a per-tap offset. The micro-kernel
// (kernels/<isa>/bgemm_*) takes MR row pointers and the offset table,
// accumulates popcounts across all taps in registers for MR pixels x 32
// output channels, and applies the output stage in registers.
// Zero padding is exact: padded taps read +1 words, and the surplus, the sum
// over the padded taps of the +-1 weights, is subtracted per output pixel from
// a small table (one row per distinct border pattern).
//
// (An earlier version built a pointer per tap per pixel, "indirect BGEMM";
// building those pointers cost 10-35% of a 64-channel layer.)
//
// Work split: tasks of (M tiles x 32-channel blocks); a task walks its tiles
// and, per tile, all its channel blocks, so the packed filters (<= 300 KB for
// 512->512 3x3) stay in L1/L2.
#include "ops/bconv2d.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <map>
#include <stdexcept>
#include <tuple>
#include <vector>

#include "dispatch.h"
#include "kernels/bgconv.h"
#include "ops/post_ops.h"
#include "runtime/threadpool.h"

namespace onebit {

ZeroPadCorrections zero_pad_corrections(const ConvParams& p, const PackedWeights& w, int g) {
  ZeroPadCorrections z;
  const bool has_pad = p.pt || p.pl || p.pb || p.pr;
  if (p.pad != PadValue::kZero || !has_pad) return z;
  const int T = p.kh * p.kw, nb = w.nblocks;
  const int32_t* wsum = w.wsum.data() + static_cast<size_t>(g) * nb * T * kNR;
  // The taps [lo, hi] of output o inside the input, along one axis.
  const auto range = [](int o, int s, int pad, int d, int k, int size) {
    int lo = k, hi = -1;
    for (int q = 0; q < k; ++q) {
      const int i = o * s - pad + q * d;
      if (i >= 0 && i < size) {
        if (lo == k) lo = q;
        hi = q;
      }
    }
    return std::make_pair(lo, hi);
  };
  // Rows (columns) with the same tap range form one class.
  const auto classes = [&](int n, int s, int pad, int d, int k, int size, std::vector<int32_t>& cls,
                           std::vector<std::pair<int, int>>& ranges) {
    std::map<std::pair<int, int>, int> index;
    cls.resize(static_cast<size_t>(n));
    for (int o = 0; o < n; ++o) {
      const auto r = range(o, s, pad, d, k, size);
      const auto it = index.emplace(r, static_cast<int>(ranges.size())).first;
      if (it->second == static_cast<int>(ranges.size())) ranges.push_back(r);
      cls[static_cast<size_t>(o)] = it->second;
    }
  };
  std::vector<std::pair<int, int>> ry, rx;
  classes(p.oh, p.sh, p.pt, p.dh, p.kh, p.h, z.row_class, ry);
  classes(p.ow, p.sw, p.pl, p.dw, p.kw, p.w, z.col_class, rx);
  z.ncols = static_cast<int>(rx.size());
  z.pattern.assign(ry.size() * rx.size(), -1);
  for (size_t cy = 0; cy < ry.size(); ++cy)
    for (size_t cx = 0; cx < rx.size(); ++cx) {
      const auto [ylo, yhi] = ry[cy];
      const auto [xlo, xhi] = rx[cx];
      if (ylo == 0 && yhi == p.kh - 1 && xlo == 0 && xhi == p.kw - 1) continue;  // every tap inside
      const int id = static_cast<int>(z.table.size() / (static_cast<size_t>(nb) * kNR));
      z.table.resize(static_cast<size_t>(id + 1) * nb * kNR, 0);
      int32_t* row = z.table.data() + static_cast<size_t>(id) * nb * kNR;
      for (int ky = 0; ky < p.kh; ++ky)
        for (int kx = 0; kx < p.kw; ++kx) {
          if (ky >= ylo && ky <= yhi && kx >= xlo && kx <= xhi) continue;
          const int t = ky * p.kw + kx;
          for (int b = 0; b < nb; ++b)
            for (int j = 0; j < kNR; ++j) row[b * kNR + j] += wsum[(static_cast<size_t>(b) * T + t) * kNR + j];
        }
      z.pattern[cy * rx.size() + cx] = id;
    }
  return z;
}

namespace {

const BgconvConfig& lanes_config_for(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return bgconv_config_avx512();
    case Isa::kAvx2: return bgconv_config_avx2();
    case Isa::kNeon: return bgconv_config_neon();
    default: return bgconv_config_portable();
  }
}

const BgemmConfig& config_for(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return bgemm_config_avx512();
    case Isa::kAvx2: return bgemm_config_avx2();
    case Isa::kNeon: return bgemm_config_neon();
    default: return bgemm_config_portable();
  }
}

// Output-stage arrays padded to whole 32-channel blocks.
struct StageArrays {
  avector<float> mult, bias, slope;
  avector<int32_t> thr;
  std::vector<uint32_t> flip;
  StageArrays(const OutputStage& os, int c0, int oc, int nblocks) {
    const int n = nblocks * kNR;
    mult.assign(n, 1.0f);
    bias.assign(n, 0.0f);
    slope.assign(n, 0.25f);
    thr.assign(n, INT_MIN);  // padded channels: bit never set
    flip.assign(nblocks, 0);
    for (int c = 0; c < oc; ++c) {
      if (os.mult) mult[c] = os.mult[c0 + c];
      if (os.bias) bias[c] = os.bias[c0 + c];
      if (os.slope) slope[c] = os.slope[c0 + c];
      const int f = os.flip ? (os.flip[c0 + c] != 0) : 0;
      const int t = os.thr ? os.thr[c0 + c] : 0;
      thr[c] = f ? (t == INT_MAX ? INT_MAX : t + 1) : t;  // dot > t <=> !(dot < t + 1)
      flip[c / kNR] |= static_cast<uint32_t>(f) << (c % kNR);
    }
  }
};

// One group: x has x_stride words per pixel, cin = p.cin bits starting at bit 0;
// out has out_stride floats (or words) per pixel.
void conv_core(const BgemmConfig& cfg, const uint64_t* x, int x_stride, const ConvParams& p,
               const PackedWeights& w, int g, const StageArrays& sa, OutKind kind, Act act,
               void* out, size_t out_stride, int nthreads, const float* residual = nullptr,
               Act post_act = Act::kNone, const float* post_scale = nullptr,
               const float* post_shift = nullptr, const OutputStage* sign = nullptr,
               const ZeroPadCorrections* corr = nullptr) {
  const int T = p.kh * p.kw, cw = w.cw, nb = w.nblocks, oc = p.oc;
  const size_t M = static_cast<size_t>(p.n) * p.oh * p.ow;
  const size_t block_words = static_cast<size_t>(T) * cw * kNR;
  const uint64_t* wblocks = w.blocks.data() + static_cast<size_t>(g) * nb * block_words;
  const int32_t* wsum = w.wsum.data() + static_cast<size_t>(g) * nb * T * kNR;

  avector<uint64_t> pad_row(cw + 8, 0);
  if (p.pad == PadValue::kMinusOne)
    for (int c = 0; c < p.cin; ++c) pad_row[c / 64] |= uint64_t{1} << (c % 64);

  // Zero padding: the correction table per border pattern (made at load, or now).
  const bool has_pad = p.pt || p.pl || p.pb || p.pr;
  ZeroPadCorrections local;
  const ZeroPadCorrections* zc = nullptr;
  if (p.pad == PadValue::kZero && has_pad) {
    if (corr && g == 0 && corr->row_class.size() == static_cast<size_t>(p.oh) &&
        corr->col_class.size() == static_cast<size_t>(p.ow)) {
      zc = corr;
    } else {
      local = zero_pad_corrections(p, w, g);
      zc = &local;
    }
  }
  const int32_t* corr_table = zc ? zc->table.data() : nullptr;

  if (kind == OutKind::kBits && (nb & 1)) {
    // The last 32-bit half-word of each output row is never written by a kernel.
    for (size_t m = 0; m < M; ++m)
      reinterpret_cast<uint32_t*>(static_cast<uint64_t*>(out) + m * out_stride)[nb] = 0;
  }

  // Physically padded input: a border of padding words (all +1, all -1, or
  // +1 for zero padding, corrected above) so that every tap of every output
  // pixel is a fixed offset from the pixel's first tap. The copy is O(input),
  // small next to the O(input x taps x out channels) convolution, and removes
  // all per-pixel bounds logic from the hot loops.
  const int Hp = p.h + p.pt + p.pb, Wp = p.w + p.pl + p.pr;
  avector<uint64_t> padded;
  const uint64_t* src = x;
  if (has_pad) {
    padded.resize(static_cast<size_t>(p.n) * Hp * Wp * x_stride);
    const size_t xs = static_cast<size_t>(x_stride);
    auto fill = [&](uint64_t* d, size_t pixels) {
      for (size_t q = 0; q < pixels; ++q, d += xs)
        for (size_t c = 0; c < xs; ++c) d[c] = pad_row[c];
    };
    for (int n = 0; n < p.n; ++n)
      for (int y = 0; y < Hp; ++y) {
        uint64_t* d = padded.data() + (static_cast<size_t>(n) * Hp + y) * Wp * xs;
        const int iy = y - p.pt;
        if (iy < 0 || iy >= p.h) {
          fill(d, Wp);
          continue;
        }
        fill(d, p.pl);
        std::memcpy(d + p.pl * xs, x + (static_cast<size_t>(n) * p.h + iy) * p.w * xs,
                    static_cast<size_t>(p.w) * xs * sizeof(uint64_t));
        fill(d + (p.pl + p.w) * xs, p.pr);
      }
    src = padded.data();
  }

  const int MR = cfg.mr_max;
  const size_t mtiles = (M + MR - 1) / MR;
  if (nthreads <= 0) nthreads = get_num_threads();
  // Tasks: ~16 per thread for load balance, but each worth >= ~2M binary MACs
  // (~2 us): claiming a task moves two cache lines between cores, which would
  // eat the gain on a 20 us layer. Channel blocks are split only when M is short.
  const double macs = static_cast<double>(M) * oc * T * p.cin;
  size_t target = nthreads == 1 ? 1 : static_cast<size_t>(16) * nthreads;
  const size_t by_work = static_cast<size_t>(macs / (2 << 20)) + 1;
  if (by_work < target) target = by_work;
  int nsplit = 1;
  while (static_cast<size_t>(nsplit) * 2 <= static_cast<size_t>(nb) && mtiles * nsplit < target)
    nsplit *= 2;
  const size_t tiles_per_task = (mtiles * nsplit + target - 1) / target;
  const size_t mtasks = (mtiles + tiles_per_task - 1) / tiles_per_task;
  const int ntasks = static_cast<int>(mtasks * nsplit);
  const int32_t kbits = T * p.cin;

  // Offset of each K word from a pixel's first word: tap (ky, kx), word c.
  const int kw = T * cw;
  std::vector<ptrdiff_t> koff(kw);
  for (int ky = 0; ky < p.kh; ++ky)
    for (int kx = 0; kx < p.kw; ++kx)
      for (int c = 0; c < cw; ++c)
        koff[(ky * p.kw + kx) * cw + c] =
            (static_cast<ptrdiff_t>(ky) * p.dh * Wp + static_cast<ptrdiff_t>(kx) * p.dw) *
                x_stride + c;

  // Tiles swept together block by block: with big filters (a 4096x4096 GEMM
  // has 2 MB) each 32-channel block then stays in L1 across the panel
  // instead of streaming from L3 once per tile.
  const size_t wbytes = static_cast<size_t>(nb) * block_words * sizeof(uint64_t);
  const size_t panel = wbytes > (static_cast<size_t>(512) << 10) ? 32 : 1;
  const bool pointwise = T == 1 && p.sh == 1 && p.sw == 1 && !has_pad;

  // Row pointers (first tap in the padded input) and zero-padding corrections
  // of one M tile.
  // Output pixel of the next row to build, stepped rather than divided
  // (three 64-bit divisions per tile cost ~10% of a 64-channel layer).
  struct Cursor {
    int n, oy, ox;
  };
  auto cursor_at = [&](size_t m) {
    return Cursor{static_cast<int>(m / (static_cast<size_t>(p.ow) * p.oh)),
                  static_cast<int>((m / p.ow) % p.oh), static_cast<int>(m % p.ow)};
  };
  auto build = [&](size_t tile, Cursor& cur, const uint64_t** rows, const int32_t** corr_rows) {
    const size_t m0 = tile * MR;
    const int mr = static_cast<int>(std::min<size_t>(MR, M - m0));
    if (pointwise) {  // 1x1, stride 1, no padding (and GEMM): pixel m reads input pixel m
      for (int i = 0; i < mr; ++i) {
        rows[i] = src + (m0 + i) * x_stride;
        corr_rows[i] = nullptr;
      }
      return mr;
    }
    for (int i = 0; i < mr; ++i) {
      const int n = cur.n, oy = cur.oy, ox = cur.ox;
      if (++cur.ox == p.ow) {
        cur.ox = 0;
        if (++cur.oy == p.oh) {
          cur.oy = 0;
          ++cur.n;
        }
      }
      rows[i] = src + ((static_cast<size_t>(n) * Hp + static_cast<size_t>(oy) * p.sh) * Wp +
                       static_cast<size_t>(ox) * p.sw) * x_stride;
      corr_rows[i] = nullptr;
      if (zc) {
        const int id = zc->at(oy, ox);
        if (id >= 0) corr_rows[i] = corr_table + static_cast<size_t>(id) * nb * kNR;
      }
    }
    return mr;
  };

  avector<int64_t> pop_thr(static_cast<size_t>(nb) * kNR);
  for (size_t c = 0; c < pop_thr.size(); ++c) {
    const int64_t v = static_cast<int64_t>(kbits) - sa.thr[c];  // floor(v / 2)
    pop_thr[c] = v >= 0 ? v / 2 : -((-v + 1) / 2);
  }
  BgemmStage stage{kind,          act,           kbits,         oc,
                   sa.mult.data(), sa.bias.data(), sa.slope.data(), sa.thr.data(),
                   sa.flip.data(), pop_thr.data()};
  // The fused add/relu of a float output: in the kernel's registers where it can
  // (BgemmConfig::fuses_post), else on the rows and channels just written.
  const bool post = kind == OutKind::kFloat && (residual || post_act != Act::kNone || post_scale);
  const bool post_in_kernel = post && cfg.fuses_post;
  if (post_in_kernel) {
    stage.post = true;
    stage.post_relu = post_act == Act::kRelu;
    stage.post_scale = post_scale, stage.post_shift = post_shift;
    stage.residual = residual;
    stage.out_base = static_cast<const float*>(out);
  }
  // A fused sign (OutputStage::sign_out): in the kernel's registers where it can, else
  // packed from the finished output after the convolution.
  const bool sign_in_kernel = sign && kind == OutKind::kFloat && cfg.fuses_post;
  const size_t sign_words = static_cast<size_t>(words_for(oc));
  avector<float> sign_thr;
  std::vector<uint32_t> sign_flip;
  if (sign_in_kernel) {
    sign_thr.assign(static_cast<size_t>(nb) * kNR, 0.0f);
    std::copy(sign->sign_thr, sign->sign_thr + oc, sign_thr.begin());
    sign_flip.assign(static_cast<size_t>(nb), 0);
    if (sign->sign_flip)
      for (int b = 0; b < nb; ++b) sign_flip[b] = static_cast<uint32_t>(sign->sign_flip[b / 2] >> (32 * (b % 2)));
    stage.sign_thr = sign_thr.data();
    stage.sign_flip = sign_flip.data();
    if (nb & 1)  // the last half-word of each bits row is never written by a kernel
      for (size_t m = 0; m < M; ++m) reinterpret_cast<uint32_t*>(sign->sign_out + m * sign_words)[nb] = 0;
  }

  auto task = [&](int task_id) {
    const size_t mt = static_cast<size_t>(task_id) / nsplit;
    const int sp = task_id % nsplit;
    const int b0 = nb * sp / nsplit, b1 = nb * (sp + 1) / nsplit;
    const uint64_t* rows[32 * 8];
    const int32_t* corr[32 * 8];
    int mrs[32];
    void* outp[8];
    uint32_t* sign_outp[8];
    BgemmStage st = stage;
    if (sign_in_kernel) st.sign_rows = sign_outp;
    auto rows_out = [&](size_t m0, int mr) {
      for (int i = 0; i < mr; ++i)
        outp[i] = kind == OutKind::kFloat
                      ? static_cast<void*>(static_cast<float*>(out) + (m0 + i) * out_stride)
                      : static_cast<void*>(static_cast<uint64_t*>(out) + (m0 + i) * out_stride);
      if (sign_in_kernel)
        for (int i = 0; i < mr; ++i) sign_outp[i] = reinterpret_cast<uint32_t*>(sign->sign_out + (m0 + i) * sign_words);
    };
    const int c0 = b0 * kNR, c1 = std::min(oc, b1 * kNR);
    auto finish = [&](size_t m0, size_t rows) {
      add_residual_act(static_cast<float*>(out) + m0 * out_stride,
                       residual ? residual + m0 * out_stride : nullptr, out_stride, rows, c0, c1,
                       post_act, post_scale, post_shift);
    };
    const size_t t_end = std::min(mtiles, (mt + 1) * tiles_per_task);
    Cursor cur = cursor_at(mt * tiles_per_task * MR);
    for (size_t tile0 = mt * tiles_per_task; tile0 < t_end; tile0 += panel) {
      const int np = static_cast<int>(std::min(panel, t_end - tile0));
      for (int q = 0; q < np; ++q) mrs[q] = build(tile0 + q, cur, rows + q * MR, corr + q * MR);
      if (np == 1) {  // all blocks of one tile in one call
        rows_out(tile0 * MR, mrs[0]);
        cfg.fn[mrs[0] - 1](kw, rows, koff.data(), wblocks, block_words, b0, b1, corr,
                           st, outp);
        if (post && !post_in_kernel) finish(tile0 * MR, static_cast<size_t>(mrs[0]));
        continue;
      }
      for (int b = b0; b < b1; ++b)
        for (int q = 0; q < np; ++q) {
          rows_out((tile0 + q) * MR, mrs[q]);
          cfg.fn[mrs[q] - 1](kw, rows + q * MR, koff.data(), wblocks, block_words, b, b + 1,
                             corr + q * MR, st, outp);
        }
      if (post && !post_in_kernel)
        for (int q = 0; q < np; ++q) finish((tile0 + q) * MR, static_cast<size_t>(mrs[q]));
    }
  };
  parallel_for(ntasks, nthreads, task);
  if (sign && !sign_in_kernel)  // as the sign op
    pack_rows_f32(static_cast<const float*>(out), M, oc, sign->sign_thr, sign->sign_out, nthreads, out_stride,
                  sign->sign_flip);
}


// floor(v / 2) and ceil(v / 2) for any sign.
int64_t floor_half(int64_t v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); }
int64_t ceil_half(int64_t v) { return -floor_half(-v); }

// Grouped convolution with few input channels per group, one output channel
// per bit lane (kernels/bgconv.h). The input is laid out once, physically
// padded, as cin_g planes of words_for(oc) words per pixel: bit o of plane c
// is input channel (o / ocg) * cin_g + c, the c-th input of output channel o
// (depthwise with one output per channel: the packed input itself). Every
// output pixel then reads term (tap t, plane c) at a fixed offset from its
// first tap, as in conv_core (the layout is PackedWeights::lane_moves). Zero padding: padded taps read +1 planes and the
// border pattern's per-channel weight sums are subtracted (float) or folded
// into the count thresholds (bits).
void conv_lanes(const BgconvConfig& cfg, const uint64_t* x, const PackedWeights& w,
                const ConvParams& p, const OutputStage& os, void* out, int nthreads) {
  const int G = p.groups, cing = p.cin / G, oc = p.oc, ocg = oc / G;
  const int T = p.kh * p.kw, terms = T * cing, wo = words_for(oc), win = words_for(p.cin);
  int B = 2;
  while ((int64_t{1} << B) <= int64_t{terms} + 1) ++B;  // pop in [0, terms], q up to terms + 1
  const bool identity = cing == 1 && ocg == 1;           // depthwise, multiplier 1
  const int xs = cing * wo;                               // words per laid-out pixel
  const bool has_pad = p.pt || p.pl || p.pb || p.pr;
  const int Hp = p.h + p.pt + p.pb, Wp = p.w + p.pl + p.pr;

  // Lay out (and pad) the input.
  avector<uint64_t> buf;
  const uint64_t* src = x;
  if (has_pad || !identity) {
    buf.resize(static_cast<size_t>(p.n) * Hp * Wp * xs);
    std::vector<uint64_t> pad_px(static_cast<size_t>(xs), 0);
    if (p.pad == PadValue::kMinusOne)
      for (int c = 0; c < cing; ++c)
        for (int o = 0; o < oc; ++o) pad_px[static_cast<size_t>(c) * wo + o / 64] |= uint64_t{1} << (o % 64);
    const size_t xsz = static_cast<size_t>(xs);
    parallel_for(p.n * Hp, nthreads, [&](int row) {
      const int n = row / Hp, y = row % Hp, iy = y - p.pt;
      uint64_t* d = buf.data() + static_cast<size_t>(row) * Wp * xsz;
      for (int xq = 0; xq < Wp; ++xq, d += xsz) {
        const int ix = xq - p.pl;
        if (iy < 0 || iy >= p.h || ix < 0 || ix >= p.w) {
          std::memcpy(d, pad_px.data(), xsz * sizeof(uint64_t));
          continue;
        }
        const uint64_t* s = x + ((static_cast<size_t>(n) * p.h + iy) * p.w + ix) * win;
        if (identity) {
          std::memcpy(d, s, xsz * sizeof(uint64_t));
          continue;
        }
        std::memset(d, 0, xsz * sizeof(uint64_t));
        for (const LaneMove& mv : w.lane_moves) {
          // 64 input bits starting at bit mv.src (words outside the pixel read as 0)
          const int64_t w0 = mv.src >= 0 ? mv.src / 64 : -((-mv.src + 63) / 64);
          const int r = static_cast<int>(mv.src - w0 * 64);
          const uint64_t lo = w0 >= 0 && w0 < win ? s[w0] : 0;
          const uint64_t hi = w0 + 1 >= 0 && w0 + 1 < win ? s[w0 + 1] : 0;
          const uint64_t v = r ? (lo >> r) | (hi << (64 - r)) : lo;
          d[mv.dst] |= v & mv.mask;
        }
      }
    });
    src = buf.data();
  }

  std::vector<ptrdiff_t> off(static_cast<size_t>(terms));
  for (int ky = 0; ky < p.kh; ++ky)
    for (int kx = 0; kx < p.kw; ++kx)
      for (int c = 0; c < cing; ++c)
        off[static_cast<size_t>(ky * p.kw + kx) * cing + c] =
            (static_cast<ptrdiff_t>(ky) * p.dh * Wp + static_cast<ptrdiff_t>(kx) * p.dw) * xs +
            static_cast<ptrdiff_t>(c) * wo;

  // Border patterns (zero padding only): pattern 0 is the interior (no correction).
  std::vector<int> pattern_of;  // per (oy, ox)
  std::vector<std::vector<int32_t>> corr{std::vector<int32_t>(static_cast<size_t>(oc), 0)};
  if (p.pad == PadValue::kZero && has_pad) {
    pattern_of.assign(static_cast<size_t>(p.oh) * p.ow, 0);
    std::map<std::vector<uint8_t>, int> index;
    std::vector<uint8_t> valid(static_cast<size_t>(T));
    for (int oy = 0; oy < p.oh; ++oy)
      for (int ox = 0; ox < p.ow; ++ox) {
        bool all = true;
        for (int ky = 0; ky < p.kh; ++ky)
          for (int kx = 0; kx < p.kw; ++kx) {
            const int iy = oy * p.sh - p.pt + ky * p.dh, ix = ox * p.sw - p.pl + kx * p.dw;
            const bool in = iy >= 0 && iy < p.h && ix >= 0 && ix < p.w;
            valid[static_cast<size_t>(ky * p.kw + kx)] = in;
            all = all && in;
          }
        if (all) continue;
        auto it = index.find(valid);
        int id;
        if (it == index.end()) {
          id = static_cast<int>(corr.size());
          index.emplace(valid, id);
          std::vector<int32_t> cr(static_cast<size_t>(oc), 0);
          for (int t = 0; t < T; ++t)
            if (!valid[static_cast<size_t>(t)])
              for (int o = 0; o < oc; ++o) cr[o] += w.lane_wsum[static_cast<size_t>(t) * oc + o];
          corr.push_back(std::move(cr));
        } else {
          id = it->second;
        }
        pattern_of[static_cast<size_t>(oy) * p.ow + ox] = id;
      }
  }
  const int npat = static_cast<int>(corr.size());

  // Output stage per pattern.
  std::vector<float> mult(static_cast<size_t>(oc), 1.0f), bias(static_cast<size_t>(oc), 0.0f),
      slope(static_cast<size_t>(oc), 0.25f);
  for (int o = 0; o < oc; ++o) {
    if (os.mult) mult[o] = os.mult[o];
    if (os.bias) bias[o] = os.bias[o];
    if (os.slope) slope[o] = os.slope[o];
  }
  avector<uint64_t> q, flip(static_cast<size_t>(wo), 0);
  if (os.kind == OutKind::kBits) {
    // Bit set iff dot < t (dot > t where flipped), dot = terms - 2 pop - corr:
    //   dot < t <=> pop >= floor((terms - corr - t) / 2) + 1;
    //   dot > t <=> !(pop >= ceil((terms - corr - t) / 2)).
    q.assign(static_cast<size_t>(npat) * B * wo, 0);
    for (int o = 0; o < oc; ++o) {
      const bool f = os.flip && os.flip[o];
      if (f) flip[o / 64] |= uint64_t{1} << (o % 64);
      const int64_t t = os.thr ? os.thr[o] : 0;
      for (int pt = 0; pt < npat; ++pt) {
        const int64_t v = int64_t{terms} - corr[pt][o] - t;
        int64_t qv = f ? ceil_half(v) : floor_half(v) + 1;
        qv = std::clamp<int64_t>(qv, 0, int64_t{terms} + 1);
        for (int b = 0; b < B; ++b)
          if ((qv >> b) & 1) q[(static_cast<size_t>(pt) * B + b) * wo + o / 64] |= uint64_t{1} << (o % 64);
      }
    }
  }

  const size_t out_stride = os.kind == OutKind::kFloat ? static_cast<size_t>(oc) : static_cast<size_t>(wo);
  const int rows = p.n * p.oh;
  if (nthreads <= 0) nthreads = get_num_threads();
  // Tasks of whole output rows, each worth >= ~64K lane-word terms.
  const double work = static_cast<double>(p.ow) * terms * wo;
  int per_task = static_cast<int>(65536.0 / (work + 1)) + 1;
  if (nthreads > 1) per_task = std::min(per_task, std::max(1, rows / (4 * nthreads)));
  const int ntasks = (rows + per_task - 1) / per_task;
  parallel_for(ntasks, nthreads, [&](int task) {
    BgconvRun r{};
    r.pix_step = static_cast<ptrdiff_t>(p.sw) * xs;
    r.terms = terms;
    r.off = off.data();
    r.w = w.lanes.data();
    r.words = wo;
    r.oc = oc;
    r.bits = B;
    r.kind = os.kind;
    r.flip = flip.data();
    r.k_bits = terms;
    r.mult = mult.data();
    r.bias = bias.data();
    r.slope = slope.data();
    r.act = os.act;
    r.out_stride = out_stride;
    const int r1 = std::min(rows, (task + 1) * per_task);
    for (int row = task * per_task; row < r1; ++row) {
      const int n = row / p.oh, oy = row % p.oh;
      const uint64_t* base =
          src + ((static_cast<size_t>(n) * Hp + static_cast<size_t>(oy) * p.sh) * Wp) * xs;
      for (int ox = 0; ox < p.ow;) {
        const int pt = pattern_of.empty() ? 0 : pattern_of[static_cast<size_t>(oy) * p.ow + ox];
        int ox1 = ox + 1;
        if (!pattern_of.empty())
          while (ox1 < p.ow && pattern_of[static_cast<size_t>(oy) * p.ow + ox1] == pt) ++ox1;
        else
          ox1 = p.ow;
        r.src = base + static_cast<size_t>(ox) * p.sw * xs;
        r.npix = ox1 - ox;
        const size_t m0 = static_cast<size_t>(row) * p.ow + ox;
        if (os.kind == OutKind::kBits) {
          r.q = q.data() + static_cast<size_t>(pt) * B * wo;
          r.out_bits = static_cast<uint64_t*>(out) + m0 * out_stride;
        } else {
          r.corr = pt ? corr[pt].data() : nullptr;
          r.out_f = static_cast<float*>(out) + m0 * out_stride;
        }
        cfg.fn(r);
        ox = ox1;
      }
    }
  });
}

}  // namespace

const char* bgconv_kernel_name() {
  Isa isa = active_simd_isa();
  if (isa == Isa::kReference) return "bconv2d_reference";
  return lanes_config_for(isa).name;
}

const char* bgemm_kernel_name() {
  Isa isa = active_simd_isa();
  if (isa == Isa::kReference) return "bconv2d_reference";
  return config_for(isa).name;
}

namespace {
void bconv2d_unfused(const uint64_t* x, const PackedWeights& w, const ConvParams& p,
                     const OutputStage& os, void* out, int nthreads, size_t ldo, const ZeroPadCorrections* corr);
}  // namespace

bool bconv2d_strided_ok(const ConvParams& p, const OutputStage& os) {
  return os.kind == OutKind::kFloat && !os.residual && p.groups == 1 && !bgconv_uses_lanes(1, p.cin);
}

void bconv2d(const uint64_t* x, const PackedWeights& w, const ConvParams& p,
             const OutputStage& os, void* out, int nthreads, size_t ldo, const ZeroPadCorrections* corr) {
  if (ldo == 0 || os.kind != OutKind::kFloat) ldo = static_cast<size_t>(p.oc);
  if (ldo != static_cast<size_t>(p.oc) && !bconv2d_strided_ok(p, os))
    throw std::logic_error("bconv2d: a strided output needs groups = 1, the GEMM kernel and no residual");
  const bool post =
      os.kind == OutKind::kFloat && (os.residual || os.post_act != Act::kNone || os.post_scale);
  const bool sign = os.kind == OutKind::kFloat && os.sign_out;
  const Isa isa = active_simd_isa();
  const bool fused = (post || sign) && isa != Isa::kReference && p.groups == 1 && !bgconv_uses_lanes(1, p.cin);
  const size_t M = static_cast<size_t>(p.n) * p.oh * p.ow;
  // A residual in the output's buffer: only kernels that add it in their registers
  // (BgemmConfig::fuses_post) read each value before they store over it; the others
  // write the conv's values first, so they add a copy.
  const float* residual = os.residual;
  avector<float> residual_copy;
  if (residual && !(fused && config_for(isa).fuses_post)) {
    const auto* r0 = reinterpret_cast<const char*>(residual);
    const auto* o0 = static_cast<const char*>(out);
    const size_t bytes = M * ldo * sizeof(float);
    if (r0 < o0 + bytes && o0 < r0 + M * static_cast<size_t>(p.oc) * sizeof(float)) {
      residual_copy.assign(residual, residual + M * static_cast<size_t>(p.oc));
      residual = residual_copy.data();
    }
  }
  if (fused) {
    // the common case: fused into the tiles of the implicit GEMM
    StageArrays sa(os, 0, p.oc, w.nblocks);
    conv_core(config_for(isa), x, words_for(p.cin), p, w, 0, sa, os.kind, os.act, out, ldo, nthreads,
              residual, os.post_act, os.post_scale, os.post_shift, sign ? &os : nullptr, corr);
    return;
  }
  bconv2d_unfused(x, w, p, os, out, nthreads, ldo, corr);
  if (post)  // the other kernels: one pass over the output after them
    add_residual_act(static_cast<float*>(out), residual, ldo, M, 0, p.oc, os.post_act, os.post_scale,
                     os.post_shift);
  if (sign)  // as the sign op
    pack_rows_f32(static_cast<const float*>(out), M, p.oc, os.sign_thr, os.sign_out, nthreads, ldo, os.sign_flip);
}

namespace {
void bconv2d_unfused(const uint64_t* x, const PackedWeights& w, const ConvParams& p,
                     const OutputStage& os, void* out, int nthreads, size_t ldo, const ZeroPadCorrections* corr) {
  const Isa isa = active_simd_isa();
  if (isa == Isa::kReference) {
    bconv2d_reference(x, w, p, os, out, ldo);
    return;
  }
  const BgemmConfig& cfg = config_for(isa);
  const int G = p.groups;
  const size_t M = static_cast<size_t>(p.n) * p.oh * p.ow;
  if (bgconv_uses_lanes(G, p.cin / G)) {
    conv_lanes(lanes_config_for(isa), x, w, p, os, out, nthreads);
    return;
  }
  if (G == 1) {
    StageArrays sa(os, 0, p.oc, w.nblocks);
    const size_t stride = os.kind == OutKind::kFloat ? ldo : words_for(p.oc);
    conv_core(cfg, x, words_for(p.cin), p, w, 0, sa, os.kind, os.act, out, stride, nthreads, nullptr, Act::kNone,
              nullptr, nullptr, nullptr, corr);
    return;
  }
  // Groups: slice each group's channels into a word-aligned buffer, run it as
  // its own convolution, merge its output channels back.
  const int cing = p.cin / G, ocg = p.oc / G, cw = words_for(cing);
  const int win = words_for(p.cin), wout = words_for(p.oc), wog = words_for(ocg);
  const size_t pixels = static_cast<size_t>(p.n) * p.h * p.w;
  avector<uint64_t> xg(pixels * cw);
  avector<uint64_t> og_bits;
  avector<float> og_f;
  if (os.kind == OutKind::kFloat) og_f.resize(M * ocg);
  else og_bits.resize(M * wog);
  if (os.kind == OutKind::kBits) std::memset(out, 0, M * wout * sizeof(uint64_t));
  ConvParams pg = p;
  pg.cin = cing;
  pg.oc = ocg;
  pg.groups = 1;
  for (int g = 0; g < G; ++g) {
    std::fill(xg.begin(), xg.end(), 0);
    for (size_t q = 0; q < pixels; ++q)
      copy_bits(x + q * win, static_cast<size_t>(g) * cing, xg.data() + q * cw, 0, cing);
    StageArrays sa(os, g * ocg, ocg, w.nblocks);
    if (os.kind == OutKind::kFloat) {
      conv_core(cfg, xg.data(), cw, pg, w, g, sa, os.kind, os.act, og_f.data(), ocg, nthreads);
      float* o = static_cast<float*>(out);
      for (size_t m = 0; m < M; ++m)
        std::memcpy(o + m * p.oc + static_cast<size_t>(g) * ocg, og_f.data() + m * ocg,
                    ocg * sizeof(float));
    } else {
      conv_core(cfg, xg.data(), cw, pg, w, g, sa, os.kind, os.act, og_bits.data(), wog,
                nthreads);
      uint64_t* o = static_cast<uint64_t*>(out);
      for (size_t m = 0; m < M; ++m)
        copy_bits(og_bits.data() + m * wog, 0, o + m * wout, static_cast<size_t>(g) * ocg, ocg);
    }
  }
}

}  // namespace

}  // namespace onebit
