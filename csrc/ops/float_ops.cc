#include "ops/float_ops.h"

#include <algorithm>
#include <cfloat>
#include <cstring>
#include <vector>

#include "dispatch.h"
#include "kernels/bmaxpool.h"
#include "kernels/sgemm.h"
#include "ops/post_ops.h"
#include "pack/pack.h"
#include "runtime/threadpool.h"

namespace onebit {
namespace {

const SgemmConfig& sgemm_cfg() {
  switch (active_isa()) {
    case Isa::kAvx512: return sgemm_config_avx512();
    case Isa::kAvx2: return sgemm_config_avx2();
    case Isa::kNeon: return sgemm_config_neon();
    default: return sgemm_config_portable();
  }
}

constexpr int kKC = 256;

}  // namespace

const char* sgemm_kernel_name() { return sgemm_cfg().name; }

namespace {

// B packed for the micro-kernel: [kb][panel][kc][NR], zero-padded columns.
struct PackedB {
  avector<float> data;
  int npanels = 0, nkb = 0;
};

PackedB pack_b(const SgemmConfig& cfg, int N, int K, const float* b, long b_rs, long b_cs) {
  const int NR = cfg.nr;
  PackedB pb;
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

// C rows [0, rows) = A rows (stride lda) x packed B.
void sgemm_rows(const SgemmConfig& cfg, const PackedB& pb, int rows, int N, int K,
                const float* a, long lda, float* c, long ldc) {
  const int NR = cfg.nr, MR = cfg.mr;
  if (pb.nkb == 0) {
    for (int r = 0; r < rows; ++r) std::fill(c + r * ldc, c + r * ldc + N, 0.0f);
    return;
  }
  for (int kb = 0; kb < pb.nkb; ++kb) {
    const int k0 = kb * kKC, kc = std::min(kKC, K - k0);
    for (int pn = 0; pn < pb.npanels; ++pn) {
      const float* panel = pb.data.data() + static_cast<size_t>(k0) * pb.npanels * NR +
                           static_cast<size_t>(pn) * kc * NR;
      const int nr = std::min(NR, N - pn * NR);
      for (int r = 0; r < rows; r += MR)
        cfg.fn(std::min(MR, rows - r), nr, kc, a + r * lda + k0, lda, panel,
               c + r * ldc + pn * NR, ldc, kb > 0);
    }
  }
}

void finish_rows(float* c, long ldc, int r0, int r1, int n0, int n1, const float* bias, Act act,
                 const float* slope) {
  if (!bias && act == Act::kNone) return;
  for (int r = r0; r < r1; ++r) {
    float* cr = c + r * ldc;
    for (int j = n0; j < n1; ++j) {
      float y = cr[j] + (bias ? bias[j] : 0.0f);
      if (act == Act::kRelu) y = y < 0.0f ? 0.0f : y;
      else if (act == Act::kPrelu) y = y < 0.0f ? y * slope[j] : y;
      cr[j] = y;
    }
  }
}

constexpr int kRowChunk = 96;  // rows per task step: 16 micro-tiles of 6

}  // namespace

void sgemm(int M, int N, int K, const float* a, long lda, const float* b, long b_rs, long b_cs,
           float* c, long ldc, const float* bias, Act act, const float* slope, int nthreads,
           const float* residual, Act post_act) {
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
  const PackedB pb = pack_b(cfg, N, K, b, b_rs, b_cs);
  const int chunks = (M + kRowChunk - 1) / kRowChunk;
  const int ntasks = std::min(chunks, nthreads == 1 ? 1 : 8 * nthreads);
  parallel_for(ntasks, nthreads, [&](int t) {
    for (int ch = chunks * t / ntasks; ch < chunks * (t + 1) / ntasks; ++ch) {
      const int r0 = ch * kRowChunk, r1 = std::min(M, r0 + kRowChunk);
      sgemm_rows(cfg, pb, r1 - r0, N, K, a + r0 * lda, lda, c + r0 * ldc, ldc);
      finish_rows(c, ldc, r0, r1, 0, N, bias, act, slope);
      if (post)
        add_residual_act(c + r0 * ldc, residual ? residual + r0 * ldc : nullptr,
                         static_cast<size_t>(ldc), static_cast<size_t>(r1 - r0), 0, N, post_act);
    }
  });
}

void conv2d_f32(const float* x, const float* w, const float* bias, const PoolParams& p, int oc,
                int dh, int dw, Act act, const float* slope, float* out, int nthreads,
                const float* residual, Act post_act) {
  const int K = p.kh * p.kw * p.c;
  const long M = static_cast<long>(p.n) * p.oh * p.ow;
  const bool direct = p.kh == 1 && p.kw == 1 && p.sh == 1 && p.sw == 1 && p.pt == 0 &&
                      p.pl == 0 && p.pb == 0 && p.pr == 0;
  if (direct) {
    sgemm(static_cast<int>(M), oc, K, x, K, w, 1, K, out, oc, bias, act, slope, nthreads,
          residual, post_act);
    return;
  }
  // im2col one chunk of rows at a time into a small per-task buffer that
  // stays in L1/L2 (a whole-image im2col buffer, 7 MB for a 224x224 7x7
  // stem, costs more in page faults and DRAM traffic than the GEMM).
  const SgemmConfig& cfg = sgemm_cfg();
  const PackedB pb = pack_b(cfg, oc, K, w, 1, K);
  if (nthreads <= 0) nthreads = get_num_threads();
  const long chunks = (M + kRowChunk - 1) / kRowChunk;
  const int ntasks = static_cast<int>(std::min<long>(chunks, nthreads == 1 ? 1 : 8 * nthreads));
  parallel_for(ntasks, nthreads, [&](int t) {
    avector<float> cols(static_cast<size_t>(kRowChunk) * K);
    for (long ch = chunks * t / ntasks; ch < chunks * (t + 1) / ntasks; ++ch) {
      const long m0 = ch * kRowChunk, m1 = std::min(M, m0 + kRowChunk);
      for (long m = m0; m < m1; ++m) {
        const int ox = static_cast<int>(m % p.ow), oy = static_cast<int>((m / p.ow) % p.oh);
        const int n = static_cast<int>(m / (static_cast<long>(p.ow) * p.oh));
        float* dst = cols.data() + (m - m0) * K;
        for (int ky = 0; ky < p.kh; ++ky) {
          const int iy = oy * p.sh - p.pt + ky * dh;
          const int ix0 = ox * p.sw - p.pl;
          float* d = dst + ky * p.kw * p.c;
          const float* srow = x + (static_cast<long>(n) * p.h + iy) * p.w * p.c;
          if (iy < 0 || iy >= p.h) {
            for (int q = 0; q < p.kw * p.c; ++q) d[q] = 0.0f;
          } else if (dw == 1 && ix0 >= 0 && ix0 + p.kw <= p.w) {
            // the kw taps of this kernel row are contiguous in the input row
            const float* s = srow + static_cast<long>(ix0) * p.c;
            for (int q = 0; q < p.kw * p.c; ++q) d[q] = s[q];
          } else {
            for (int kx = 0; kx < p.kw; ++kx) {
              const int ix = ix0 + kx * dw;
              float* dd = d + kx * p.c;
              if (ix < 0 || ix >= p.w) {
                for (int c = 0; c < p.c; ++c) dd[c] = 0.0f;
              } else {
                for (int c = 0; c < p.c; ++c) dd[c] = srow[static_cast<long>(ix) * p.c + c];
              }
            }
          }
        }
      }
      const int rows = static_cast<int>(m1 - m0);
      sgemm_rows(cfg, pb, rows, oc, K, cols.data(), K, out + m0 * oc, oc);
      finish_rows(out + m0 * oc, oc, 0, rows, 0, oc, bias, act, slope);
      if (residual || post_act != Act::kNone)
        add_residual_act(out + m0 * oc, residual ? residual + m0 * oc : nullptr,
                         static_cast<size_t>(oc), static_cast<size_t>(rows), 0, oc, post_act);
    }
  });
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
  parallel_for(ntasks, nthreads, [&](int t) {
    for (long r = rows * t / ntasks; r < rows * (t + 1) / ntasks; ++r) {
      const int n = static_cast<int>(r / p.oh), oy = static_cast<int>(r % p.oh);
      for (int ox = 0; ox < p.ow; ++ox) {
        float* o = out + (r * p.ow + ox) * C;
        for (int c = 0; c < C; ++c) o[c] = bias ? bias[c] : 0.0f;
        for (int ky = 0; ky < p.kh; ++ky) {
          const int iy = oy * p.sh - p.pt + ky * dh;
          if (iy < 0 || iy >= p.h) continue;
          for (int kx = 0; kx < p.kw; ++kx) {
            const int ix = ox * p.sw - p.pl + kx * dw;
            if (ix < 0 || ix >= p.w) continue;
            const float* xs = x + ((static_cast<long>(n) * p.h + iy) * p.w + ix) * C;
            const float* ws = w + (static_cast<long>(ky) * p.kw + kx) * C;
            for (int c = 0; c < C; ++c) o[c] += xs[c] * ws[c];  // channels are contiguous
          }
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
  if (active_isa() == Isa::kNeon) {
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

void maxpool_f32(const float* x, const PoolParams& p, float* out, int nthreads) {
  pool_loop(p, nthreads, [&](int n, int, int, int y0, int y1, int x0, int x1, long o) {
    float* d = out + o * p.c;
    for (int c = 0; c < p.c; ++c) d[c] = -FLT_MAX;
    for (int iy = y0; iy < y1; ++iy)
      for (int ix = x0; ix < x1; ++ix) {
        const float* s = x + ((static_cast<long>(n) * p.h + iy) * p.w + ix) * p.c;
        for (int c = 0; c < p.c; ++c) d[c] = s[c] > d[c] ? s[c] : d[c];
      }
  });
}

void avgpool_f32(const float* x, const PoolParams& p, bool count_include_pad, float* out,
                 int nthreads) {
  pool_loop(p, nthreads, [&](int n, int oy, int ox, int y0, int y1, int x0, int x1, long o) {
    float* d = out + o * p.c;
    for (int c = 0; c < p.c; ++c) d[c] = 0.0f;
    for (int iy = y0; iy < y1; ++iy)
      for (int ix = x0; ix < x1; ++ix) {
        const float* s = x + ((static_cast<long>(n) * p.h + iy) * p.w + ix) * p.c;
        for (int c = 0; c < p.c; ++c) d[c] += s[c];
      }
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
