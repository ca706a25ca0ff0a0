// Kernel tests: every instruction-set path this build has (portable, AVX2,
// AVX-512 on x86; portable and NEON on aarch64) bit for bit against a
// reference, over randomized shapes. A plain program (no framework), built by
// csrc/CMakeLists.txt with -DONEBIT_BUILD_TESTS=ON and run natively by
// tests/csrc/test_kernels.py and under qemu by scripts/test-aarch64.
//
//   test_kernels [--cases N] [--seed S] [--quick] [--verbose]
//
// What is compared with what:
// * bconv2d (binary convolution; a binary GEMM is its M x 1 case): each fast
//   path against the naive bit-by-bit kernel (kernels/ref/bconv2d_ref.cc):
//   odd channel counts, 1x1 spatial, every padding (asymmetric, +1 / -1 /
//   zero), strides, dilations, groups, batch > 1, float output (scale, bias,
//   ReLU / PReLU) and packed-bit output (thresholds, flipped channels), 1 and
//   2 threads, and K past the NEON kernel's 1,023-word u16 chunk.
// * the output stage alone: bgemm_epilogue_neon against bgemm_epilogue_scalar
//   (random dot products, INT_MIN / INT_MAX thresholds, all activations).
// * sign packing (pack_rows_f32) and binary max-pool (maxpool_packed) against
//   plain loops written here (NaN, -0.0, +-inf, values equal to thresholds).
// * the float GEMM (sgemm: packed GEMM and the small-batch GEMV) and
//   conv2d_f32: against a scalar model of the summation order each ISA
//   documents: FMA kernels (AVX2, AVX-512, NEON) sum k in order with one
//   fused multiply-add per term in blocks of 256, the portable kernel
//   multiplies and adds separately; the GEMVs fold their partial sums in
//   their own fixed orders (AVX-512 and NEON share one). Bit for bit, plus a
//   float64 sanity bound.
// * the bf16 float layers (gemm_bf16, conv2d_bf16: load option float_precision
//   bf16 / bf16_emulated): the rounding to bf16 of every special value against
//   a scalar model of VCVTNEPS2BF16, and both GEMM paths (the AVX512-BF16
//   kernel where the CPU has it, the portable emulation always, and "bf16"
//   under a forced non-AVX-512 path) against a scalar model of VDPBF16PS's
//   summation (kernels/bf16gemm.h), bit for bit, plus a float64 bound.
// * the int8 float layers (gemm_int8, conv2d_int8: float_precision int8 /
//   int8_emulated): both paths against a scalar model of the quantization
//   (kernels/i8gemm.h) and of the integer sums and dequantization, bit for bit.
//
// The last line is "N passed, N failed"; the exit status is 1 on a failure.
#include <algorithm>
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cpu_features.h"
#include "dispatch.h"
#include "kernels/bf16gemm.h"
#include "kernels/bgemm.h"
#include "kernels/i8gemm.h"
#include "ops/bconv2d.h"
#include "ops/float_ops.h"
#include "pack/pack.h"

using namespace onebit;

namespace {

int g_passed = 0, g_failed = 0, g_fail_lines = 0;
bool g_verbose = false;

void report(bool ok, const std::string& what) {
  if (ok) {
    ++g_passed;
    if (g_verbose) std::printf("ok   %s\n", what.c_str());
  } else {
    ++g_failed;
    if (++g_fail_lines <= 60) std::printf("FAIL %s\n", what.c_str());
  }
}

std::mt19937_64 g_rng;
int rint(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(g_rng); }
float rfloat(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(g_rng); }
template <class T>
T pick(std::initializer_list<T> v) {
  return *(v.begin() + rint(0, static_cast<int>(v.size()) - 1));
}

std::vector<Isa> fast_isas() {
  std::vector<Isa> v;
  for (Isa i : {Isa::kPortable, Isa::kAvx2, Isa::kAvx512, Isa::kNeon})
    if (isa_supported(i)) v.push_back(i);
  return v;
}

std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* f, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

// Random packed activations: bits past the channel count stay 0 (the format's rule).
std::vector<uint64_t> random_bits(size_t pixels, int channels) {
  const int W = words_for(channels);
  std::vector<uint64_t> v(pixels * W);
  for (size_t p = 0; p < pixels; ++p)
    for (int c = 0; c < W; ++c) {
      uint64_t x = g_rng();
      const int n = std::min(64, channels - 64 * c);
      if (n < 64) x &= (uint64_t{1} << n) - 1;
      v[p * W + c] = x;
    }
  return v;
}

// ---------------------------------------------------------------------------
// Binary convolution.

struct ConvCase {
  ConvParams p;
  OutputStage os;
  std::vector<float> w, mult, bias, slope;
  std::vector<int32_t> thr;
  std::vector<uint8_t> flip;
  std::string desc;
};

int out_size(int in, int pa, int pb, int k, int s, int d) { return (in + pa + pb - d * (k - 1) - 1) / s + 1; }

// A random valid convolution; `big` asks for K past 1,023 words.
ConvCase random_conv(bool big) {
  ConvCase c;
  ConvParams& p = c.p;
  for (;;) {
    p = ConvParams{};
    p.n = pick({1, 1, 2, 3});
    p.groups = pick({1, 1, 1, 1, 2, 3});
    const int cing = big ? pick({65600, 8192 + 64 * 3}) : pick({1, 2, 3, 7, 31, 32, 63, 64, 65, 100, 127, 128, 130, 200});
    p.cin = cing * p.groups;
    const int ocg = big ? pick({3, 5}) : pick({1, 2, 5, 16, 31, 32, 33, 47, 64, 65, 96});
    p.oc = ocg * p.groups;
    if (!big && rint(0, 3) == 0) {  // depthwise and few channels per group: the bit-sliced kernel
      p.groups = pick({8, 16, 64, 96, 130});
      const int g_in = pick({1, 1, 2, 3, 8});
      p.cin = g_in * p.groups;
      p.oc = pick({1, 1, 2, 3}) * p.groups;
    }
    if (big) {
      p.groups = 1;
      p.cin = cing;
      p.oc = ocg;
      p.n = 1;
      p.kh = p.kw = cing > 10000 ? 1 : 3;
      p.h = p.w = 2;
    } else {
      p.kh = pick({1, 1, 2, 3, 3, 3, 5});
      p.kw = rint(0, 3) == 0 ? pick({1, 2, 3, 5}) : p.kh;
      p.h = pick({1, 1, 2, 3, 4, 5, 7, 9});
      p.w = rint(0, 3) == 0 ? pick({1, 2, 3, 6, 8}) : p.h;
    }
    p.sh = pick({1, 1, 1, 2, 3});
    p.sw = rint(0, 2) == 0 ? pick({1, 2, 3}) : p.sh;
    p.dh = pick({1, 1, 1, 2, 3});
    p.dw = rint(0, 2) == 0 ? pick({1, 2}) : p.dh;
    p.pt = rint(0, p.kh - 1 + (p.dh - 1));
    p.pb = rint(0, 3) == 0 ? rint(0, p.kh) : p.pt;
    p.pl = rint(0, p.kw - 1 + (p.dw - 1));
    p.pr = rint(0, 3) == 0 ? rint(0, p.kw) : p.pl;
    if (rint(0, 4) == 0) p.pt = p.pb = p.pl = p.pr = 0;
    p.pad = pick({PadValue::kZero, PadValue::kPlusOne, PadValue::kMinusOne});
    // The dilated kernel must fit the padded input (the API refuses anything else).
    if (p.h + p.pt + p.pb < p.dh * (p.kh - 1) + 1 || p.w + p.pl + p.pr < p.dw * (p.kw - 1) + 1) continue;
    p.oh = out_size(p.h, p.pt, p.pb, p.kh, p.sh, p.dh);
    p.ow = out_size(p.w, p.pl, p.pr, p.kw, p.sw, p.dw);
    break;
  }
  const int T = p.kh * p.kw, cing = p.cin / p.groups, K = T * cing;
  c.w.resize(static_cast<size_t>(p.oc) * T * cing);
  for (float& v : c.w) v = rint(0, 1) ? 1.0f : -1.0f;
  c.os.kind = rint(0, 1) ? OutKind::kBits : OutKind::kFloat;
  if (c.os.kind == OutKind::kFloat) {
    c.os.act = pick({Act::kNone, Act::kRelu, Act::kPrelu});
    c.mult.resize(p.oc);
    c.bias.resize(p.oc);
    c.slope.resize(p.oc);
    for (int o = 0; o < p.oc; ++o) {
      c.mult[o] = rint(0, 9) == 0 ? 0.0f : rfloat(-2.0f, 2.0f);
      c.bias[o] = rfloat(-5.0f, 5.0f);
      c.slope[o] = rfloat(-1.0f, 1.0f);
    }
    c.os.mult = rint(0, 5) ? c.mult.data() : nullptr;
    c.os.bias = rint(0, 5) ? c.bias.data() : nullptr;
    c.os.slope = c.slope.data();
  } else {
    c.thr.resize(p.oc);
    c.flip.resize(p.oc);
    for (int o = 0; o < p.oc; ++o) {
      const int r = rint(0, 19);
      c.thr[o] = r == 0 ? INT_MIN : r == 1 ? INT_MAX : r == 2 ? INT_MAX - 1 : rint(-K - 3, K + 3);
      c.flip[o] = rint(0, 2) == 0;
    }
    c.os.thr = rint(0, 7) ? c.thr.data() : nullptr;
    c.os.flip = rint(0, 3) ? c.flip.data() : nullptr;
  }
  c.desc = fmt("n%d %dx%dx%d -> %d k%dx%d s%d,%d d%d,%d pad t%d b%d l%d r%d (%s) g%d %s",
               p.n, p.h, p.w, p.cin, p.oc, p.kh, p.kw, p.sh, p.sw, p.dh, p.dw, p.pt, p.pb, p.pl,
               p.pr, p.pad == PadValue::kZero ? "0" : p.pad == PadValue::kPlusOne ? "+1" : "-1",
               p.groups,
               c.os.kind == OutKind::kBits ? "bits"
               : c.os.act == Act::kRelu    ? "float relu"
               : c.os.act == Act::kPrelu   ? "float prelu"
                                           : "float");
  return c;
}

void test_bconv(int cases) {
  const std::vector<Isa> isas = fast_isas();
  for (int t = 0; t < cases; ++t) {
    const bool big = t < 2;  // the first two cases: K past one u16 chunk (1x1 and 3x3)
    ConvCase c = random_conv(big);
    const ConvParams& p = c.p;
    const PackedWeights w =
        pack_weights_ohwi(c.w.data(), p.oc, p.kh, p.kw, p.cin / p.groups, p.groups);
    const std::vector<uint64_t> x = random_bits(static_cast<size_t>(p.n) * p.h * p.w, p.cin);
    const size_t M = static_cast<size_t>(p.n) * p.oh * p.ow;
    const size_t bytes = c.os.kind == OutKind::kFloat ? M * p.oc * sizeof(float)
                                                      : M * words_for(p.oc) * sizeof(uint64_t);
    std::vector<unsigned char> ref(bytes, 0xAB);
    set_active_isa(Isa::kReference);
    bconv2d(x.data(), w, p, c.os, ref.data(), 1);
    for (Isa isa : isas) {
      set_active_isa(isa);
      for (int threads : {1, 2}) {
        if (threads == 2 && t % 4) continue;
        std::vector<unsigned char> got(bytes, 0xCD);
        bconv2d(x.data(), w, p, c.os, got.data(), threads);
        size_t bad = 0;
        while (bad < bytes && got[bad] == ref[bad]) ++bad;
        report(bad == bytes, fmt("bconv2d %s [%s] %d thr%s", isa_name(isa), c.desc.c_str(), threads,
                                 bad == bytes ? "" : fmt(": first differing byte %zu of %zu", bad, bytes).c_str()));
      }
    }
  }
}

// ---------------------------------------------------------------------------
// The output stage alone (the NEON one inlined in the micro-kernel).

void test_epilogue(int cases) {
  if (!isa_supported(Isa::kNeon)) return;
  int bad = 0;
  for (int t = 0; t < cases; ++t) {
    alignas(16) int32_t dot[kNR], thr[kNR];
    alignas(16) float mult[kNR], bias[kNR], slope[kNR];
    const int K = pick({1, 64, 576, 4608, 1 << 20});
    for (int j = 0; j < kNR; ++j) {
      dot[j] = rint(0, 15) == 0 ? pick({0, K, -K, INT_MAX / 2, -(INT_MAX / 2)}) : rint(-K, K);
      const int r = rint(0, 15);
      thr[j] = r == 0 ? INT_MIN : r == 1 ? INT_MAX : r == 2 ? dot[j] : r == 3 ? dot[j] + 1 : rint(-K, K);
      mult[j] = rint(0, 9) == 0 ? pick({0.0f, -0.0f, 1.0f, 1e-30f, 3e38f}) : rfloat(-3.0f, 3.0f);
      bias[j] = rint(0, 9) == 0 ? pick({0.0f, -0.0f, -1e30f}) : rfloat(-10.0f, 10.0f);
      slope[j] = rfloat(-2.0f, 2.0f);
    }
    BgemmEpilogue ep{rint(0, 1) ? OutKind::kBits : OutKind::kFloat,
                     pick({Act::kNone, Act::kRelu, Act::kPrelu}),
                     K,
                     rint(0, 3) == 0 ? rint(1, kNR) : kNR,
                     mult,
                     bias,
                     slope,
                     thr,
                     static_cast<uint32_t>(g_rng())};
    float a[kNR], b[kNR];
    std::memset(a, 0x5A, sizeof a);
    std::memset(b, 0x5A, sizeof b);
    bgemm_epilogue_scalar(dot, ep, a);
    bgemm_epilogue_neon(dot, ep, b);
    bad += std::memcmp(a, b, sizeof a) != 0;
  }
  report(bad == 0, fmt("epilogue_32_neon vs scalar output stage: %d random blocks, %d differ", cases, bad));
}

// ---------------------------------------------------------------------------
// Sign packing.

void test_pack(int cases) {
  const std::vector<Isa> isas = fast_isas();
  const float specials[] = {0.0f, -0.0f, NAN, -NAN, INFINITY, -INFINITY, FLT_MIN, -FLT_MIN, 1e-45f, -1e-45f};
  for (int t = 0; t < cases; ++t) {
    const int channels = t < 8 ? pick({1, 63, 64, 65, 128, 129}) : rint(1, 300);
    const size_t rows = rint(1, 9);
    const bool with_thr = rint(0, 1);
    std::vector<float> x(rows * channels), thr(channels);
    for (int c = 0; c < channels; ++c) thr[c] = rint(0, 4) == 0 ? specials[rint(0, 9)] : rfloat(-1.0f, 1.0f);
    for (size_t i = 0; i < x.size(); ++i) {
      const int r = rint(0, 7);
      x[i] = r == 0 ? specials[rint(0, 9)] : (r == 1 && with_thr) ? thr[i % channels] : rfloat(-2.0f, 2.0f);
    }
    const int W = words_for(channels);
    std::vector<uint64_t> ref(rows * W, 0);
    for (size_t r = 0; r < rows; ++r)
      for (int c = 0; c < channels; ++c)
        if (x[r * channels + c] < (with_thr ? thr[c] : 0.0f)) ref[r * W + c / 64] |= uint64_t{1} << (c % 64);
    for (Isa isa : isas) {
      set_active_isa(isa);
      std::vector<uint64_t> got(rows * W, 0xDEADBEEFULL);
      pack_rows_f32(x.data(), rows, channels, with_thr ? thr.data() : nullptr, got.data(), 1);
      report(got == ref, fmt("pack_rows_f32 %s: %zu rows x %d channels%s", isa_name(isa), rows, channels,
                             with_thr ? ", thresholds" : ""));
    }
  }
}

// ---------------------------------------------------------------------------
// Binary max-pool.

void test_maxpool(int cases) {
  const std::vector<Isa> isas = fast_isas();
  for (int t = 0; t < cases; ++t) {
    PoolParams p{};
    p.n = pick({1, 2, 3});
    p.c = t < 6 ? pick({1, 64, 65, 128, 512, 600}) : rint(1, 700);
    p.h = rint(1, 9);
    p.w = rint(1, 9);
    p.kh = rint(1, std::min(4, p.h + 1));
    p.kw = rint(1, std::min(4, p.w + 1));
    p.sh = rint(1, 3);
    p.sw = rint(1, 3);
    p.pt = rint(0, p.kh / 2);
    p.pb = rint(0, p.kh / 2);
    p.pl = rint(0, p.kw / 2);
    p.pr = rint(0, p.kw / 2);
    if (p.h + p.pt + p.pb < p.kh || p.w + p.pl + p.pr < p.kw) continue;
    p.oh = (p.h + p.pt + p.pb - p.kh) / p.sh + 1;
    p.ow = (p.w + p.pl + p.pr - p.kw) / p.sw + 1;
    const int W = words_for(p.c);
    std::vector<uint64_t> x = random_bits(static_cast<size_t>(p.n) * p.h * p.w, p.c);
    for (uint64_t& v : x)  // more -1s, so that ANDs over a window are not all +1
      if (rint(0, 1)) v |= g_rng();
    for (size_t q = 0; q < x.size(); ++q) {  // clear the padding bits again
      const int c = static_cast<int>(q % W);
      const int n = std::min(64, p.c - 64 * c);
      if (n < 64) x[q] &= (uint64_t{1} << n) - 1;
    }
    const size_t M = static_cast<size_t>(p.n) * p.oh * p.ow;
    std::vector<uint64_t> ref(M * W);
    for (int n = 0; n < p.n; ++n)
      for (int oy = 0; oy < p.oh; ++oy)
        for (int ox = 0; ox < p.ow; ++ox) {
          uint64_t* d = ref.data() + ((static_cast<size_t>(n) * p.oh + oy) * p.ow + ox) * W;
          bool any = false;
          for (int c = 0; c < W; ++c) d[c] = ~uint64_t{0};
          for (int ky = 0; ky < p.kh; ++ky)
            for (int kx = 0; kx < p.kw; ++kx) {
              const int iy = oy * p.sh - p.pt + ky, ix = ox * p.sw - p.pl + kx;
              if (iy < 0 || iy >= p.h || ix < 0 || ix >= p.w) continue;
              any = true;
              for (int c = 0; c < W; ++c) d[c] &= x[((static_cast<size_t>(n) * p.h + iy) * p.w + ix) * W + c];
            }
          if (!any)
            for (int c = 0; c < W; ++c) d[c] = 0;
        }
    for (Isa isa : isas) {
      set_active_isa(isa);
      std::vector<uint64_t> got(M * W, 0x1234);
      maxpool_packed(x.data(), p, got.data(), 1 + (t & 1));
      report(got == ref, fmt("maxpool_packed %s: n%d %dx%dx%d k%dx%d s%d,%d pad %d,%d,%d,%d", isa_name(isa),
                             p.n, p.h, p.w, p.c, p.kh, p.kw, p.sh, p.sw, p.pt, p.pb, p.pl, p.pr));
    }
  }
}

// ---------------------------------------------------------------------------
// Float GEMM: scalar models of each ISA's summation order.

constexpr int kKC = 256;  // ops/float_ops.cc's K block

float mul_add(float acc, float a, float b) {  // acc + a * b, two roundings, never contracted
  volatile float prod = a * b;
  return acc + prod;
}

bool fused(Isa isa) { return isa != Isa::kPortable; }

// sum over k of a[k] * b[k * bs] as the packed-GEMM micro-kernels compute it.
float gemm_dot(Isa isa, const float* a, const float* b, long bs, int K) {
  float c = 0.0f;
  for (int k0 = 0; k0 < K; k0 += kKC) {
    float acc = 0.0f;
    for (int k = k0; k < std::min(K, k0 + kKC); ++k)
      acc = fused(isa) ? std::fmaf(a[k], b[k * bs], acc) : mul_add(acc, a[k], b[k * bs]);
    c = k0 == 0 ? acc : c + acc;
  }
  return c;
}

// The same sum as each GEMV (batch <= 4 dense layers) computes it.
float gemv_dot(Isa isa, const float* a, const float* w, int K) {
  if (isa == Isa::kAvx512 || isa == Isa::kNeon) {
    float s[16] = {};
    int k = 0;
    for (; k + 16 <= K; k += 16)
      for (int l = 0; l < 16; ++l) s[l] = std::fmaf(a[k + l], w[k + l], s[l]);
    float t[8], u[4];
    for (int l = 0; l < 8; ++l) t[l] = s[l + 8] + s[l];
    for (int l = 0; l < 4; ++l) u[l] = t[l + 4] + t[l];
    float r = (u[0] + u[2]) + (u[1] + u[3]);
    for (; k < K; ++k) r = mul_add(r, a[k], w[k]);
    return r;
  }
  if (isa == Isa::kAvx2) {
    float s[8] = {};
    int k = 0;
    for (; k + 8 <= K; k += 8)
      for (int l = 0; l < 8; ++l) s[l] = std::fmaf(a[k + l], w[k + l], s[l]);
    float x[4];
    for (int l = 0; l < 4; ++l) x[l] = s[l] + s[l + 4];
    float r = (x[0] + x[2]) + (x[1] + x[3]);
    for (; k < K; ++k) r = mul_add(r, a[k], w[k]);
    return r;
  }
  float acc[8] = {};
  int k = 0;
  for (; k + 8 <= K; k += 8)
    for (int q = 0; q < 8; ++q) acc[q] = mul_add(acc[q], a[k + q], w[k + q]);
  float sum = 0.0f;
  for (; k < K; ++k) sum = mul_add(sum, a[k], w[k]);
  for (int q = 0; q < 8; ++q) sum = sum + acc[q];
  return sum;
}

float finish(float y, const float* bias, int j, Act act, const float* slope) {
  if (!bias && act == Act::kNone) return y;
  y = y + (bias ? bias[j] : 0.0f);
  if (act == Act::kRelu) y = y < 0.0f ? 0.0f : y;
  else if (act == Act::kPrelu) y = y < 0.0f ? y * slope[j] : y;
  return y;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b, size_t* where) {
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) {
      *where = i;
      return false;
    }
  return true;
}

void test_sgemm(int cases) {
  const std::vector<Isa> isas = fast_isas();
  for (int t = 0; t < cases; ++t) {
    const int M = t % 3 == 0 ? rint(1, 4) : pick({5, 6, 7, 13, 96, 97, 200});
    const int N = pick({1, 3, 15, 16, 17, 31, 32, 33, 64, 100});
    const int K = pick({1, 2, 3, 4, 5, 15, 16, 17, 27, 147, 255, 256, 257, 600});
    const bool wt = rint(0, 1);  // B given as (N, K) weights (b_rs = 1) or (K, N)
    const long b_rs = wt ? 1 : N, b_cs = wt ? K : 1;
    std::vector<float> a(static_cast<size_t>(M) * K), b(static_cast<size_t>(K) * N), bias(N), slope(N);
    for (float& v : a) v = rint(0, 9) == 0 ? 0.0f : rfloat(-1.0f, 1.0f);
    for (float& v : b) v = rfloat(-1.0f, 1.0f);
    for (float& v : bias) v = rfloat(-0.5f, 0.5f);
    for (float& v : slope) v = rfloat(-1.0f, 1.0f);
    const Act act = pick({Act::kNone, Act::kRelu, Act::kPrelu});
    const float* bp = rint(0, 2) ? bias.data() : nullptr;
    const bool gemv = M <= 4 && b_rs == 1;
    for (Isa isa : isas) {
      set_active_isa(isa);
      std::vector<float> got(static_cast<size_t>(M) * N, -7.0f), want(got.size());
      sgemm(M, N, K, a.data(), K, b.data(), b_rs, b_cs, got.data(), N, bp, act, slope.data(), 1 + (t & 1));
      double worst = 0.0;
      for (int m = 0; m < M; ++m)
        for (int n = 0; n < N; ++n) {
          const float* am = a.data() + static_cast<size_t>(m) * K;
          const float* bn = b.data() + n * b_cs;
          const float y = gemv ? gemv_dot(isa, am, bn, K) : gemm_dot(isa, am, bn, b_rs, K);
          want[static_cast<size_t>(m) * N + n] = finish(y, bp, n, act, slope.data());
          double exact = 0.0;
          for (int k = 0; k < K; ++k) exact += static_cast<double>(am[k]) * bn[k * b_rs];
          worst = std::max(worst, std::fabs(exact - (gemv ? gemv_dot(isa, am, bn, K) : gemm_dot(isa, am, bn, b_rs, K))));
        }
      size_t where = 0;
      const bool ok = same_bits(got, want, &where);
      report(ok && worst < 1e-4 * K,
             fmt("sgemm %s %s: %dx%dx%d%s%s%s", isa_name(isa), gemv ? "gemv" : "gemm", M, N, K,
                 wt ? " weights(N,K)" : " B(K,N)", bp ? " bias" : "",
                 ok ? "" : fmt(": element %zu is %.9g, expected %.9g", where, got[where], want[where]).c_str()));
    }
  }
}

void test_conv2d_f32(int cases) {
  const std::vector<Isa> isas = fast_isas();
  for (int t = 0; t < cases; ++t) {
    PoolParams p{};
    p.n = pick({1, 2});
    p.c = pick({1, 3, 4, 8, 17});
    p.h = rint(1, 12);
    p.w = rint(1, 12);
    p.kh = pick({1, 3, 5, 7});
    p.kw = rint(0, 3) ? p.kh : pick({1, 3});
    p.sh = pick({1, 2});
    p.sw = p.sh;
    const int dh = pick({1, 1, 2}), dw = dh;
    p.pt = rint(0, p.kh / 2);
    p.pb = p.pt;
    p.pl = rint(0, p.kw / 2);
    p.pr = p.pl;
    if (p.h + p.pt + p.pb < dh * (p.kh - 1) + 1 || p.w + p.pl + p.pr < dw * (p.kw - 1) + 1) continue;
    p.oh = (p.h + p.pt + p.pb - dh * (p.kh - 1) - 1) / p.sh + 1;
    p.ow = (p.w + p.pl + p.pr - dw * (p.kw - 1) - 1) / p.sw + 1;
    const int oc = pick({1, 8, 16, 24, 33, 64, 97});
    const int K = p.kh * p.kw * p.c;
    std::vector<float> x(static_cast<size_t>(p.n) * p.h * p.w * p.c), w(static_cast<size_t>(oc) * K),
        bias(oc), slope(oc);
    for (float& v : x) v = rfloat(-1.0f, 1.0f);
    for (float& v : w) v = rfloat(-1.0f, 1.0f);
    for (float& v : bias) v = rfloat(-0.5f, 0.5f);
    for (float& v : slope) v = rfloat(0.0f, 0.5f);
    const Act act = pick({Act::kNone, Act::kRelu, Act::kPrelu});
    const float* bp = rint(0, 3) ? bias.data() : nullptr;
    const size_t M = static_cast<size_t>(p.n) * p.oh * p.ow;
    for (Isa isa : isas) {
      set_active_isa(isa);
      std::vector<float> got(M * oc, -7.0f), want(M * oc), col(K);
      conv2d_f32(x.data(), w.data(), bp, p, oc, dh, dw, act, slope.data(), got.data(), 1);
      for (size_t m = 0; m < M; ++m) {
        const int ox = static_cast<int>(m % p.ow), oy = static_cast<int>((m / p.ow) % p.oh);
        const int n = static_cast<int>(m / (static_cast<size_t>(p.ow) * p.oh));
        for (int ky = 0; ky < p.kh; ++ky)
          for (int kx = 0; kx < p.kw; ++kx)
            for (int c = 0; c < p.c; ++c) {
              const int iy = oy * p.sh - p.pt + ky * dh, ix = ox * p.sw - p.pl + kx * dw;
              const bool in = iy >= 0 && iy < p.h && ix >= 0 && ix < p.w;
              col[(ky * p.kw + kx) * p.c + c] =
                  in ? x[((static_cast<size_t>(n) * p.h + iy) * p.w + ix) * p.c + c] : 0.0f;
            }
        for (int o = 0; o < oc; ++o) {
          // 1x1 stride-1 unpadded convolutions go straight to sgemm (its GEMV for <= 4 pixels).
          const bool direct = p.kh == 1 && p.kw == 1 && p.sh == 1 && p.sw == 1 && p.pt == 0 && p.pl == 0;
          const float y = direct && M <= 4 ? gemv_dot(isa, col.data(), w.data() + static_cast<size_t>(o) * K, K)
                                           : gemm_dot(isa, col.data(), w.data() + static_cast<size_t>(o) * K, 1, K);
          want[m * oc + o] = finish(y, bp, o, act, slope.data());
        }
      }
      size_t where = 0;
      const bool ok = same_bits(got, want, &where);
      report(ok, fmt("conv2d_f32 %s: n%d %dx%dx%d -> %d k%dx%d s%d d%d pad %d,%d%s", isa_name(isa), p.n, p.h,
                     p.w, p.c, oc, p.kh, p.kw, p.sh, dh, p.pt, p.pl,
                     ok ? "" : fmt(": element %zu is %.9g, expected %.9g", where, got[where], want[where]).c_str()));
    }
  }
}

// ---------------------------------------------------------------------------
// bf16 float layers: scalar models of VCVTNEPS2BF16 and VDPBF16PS.

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// VCVTNEPS2BF16 (Intel SDM): subnormals to signed zero, NaN quieted, else round to nearest even.
uint16_t model_bf16(float f) {
  const uint32_t u = bits_of(f);
  if ((u & 0x7f800000u) == 0) return static_cast<uint16_t>((u >> 16) & 0x8000u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
float bf16_value(float f) { return float_of(static_cast<uint32_t>(model_bf16(f)) << 16); }

float model_ftz(float x) { return (bits_of(x) & 0x7f800000u) == 0 ? float_of(bits_of(x) & 0x80000000u) : x; }

// One output of the bf16 GEMM: pairs (2p, 2p+1), the odd product added first,
// each sum rounded and flushed; blocks of kBf16KC values added in fp32; then scale and bias.
float bf16_dot(const float* a, const float* b, long bs, int K, const float* scale, const float* bias) {
  float c = 0.0f;
  for (int k0 = 0; k0 < K; k0 += kBf16KC) {
    float acc = 0.0f;
    for (int k = k0; k < std::min(K, k0 + kBf16KC); k += 2) {
      const float a0 = bf16_value(a[k]), b0 = bf16_value(b[k * bs]);
      const float a1 = k + 1 < K ? bf16_value(a[k + 1]) : 0.0f, b1 = k + 1 < K ? bf16_value(b[(k + 1) * bs]) : 0.0f;
      volatile float p1 = a1 * b1, p0 = a0 * b0;  // exact: 8-bit significands
      acc = model_ftz(acc + p1);
      acc = model_ftz(acc + p0);
    }
    c = k0 == 0 ? acc : c + acc;
  }
  if (scale) c = c * *scale;
  return bias ? c + *bias : c;
}

// The paths to check: (name, ISA to force, emulated).
struct Bf16Path {
  const char* name;
  Isa isa;
  bool emulated;
};
std::vector<Bf16Path> bf16_paths() {
  std::vector<Bf16Path> v{{"bf16_emulated", best_isa(), true}, {"bf16 under portable", Isa::kPortable, false}};
  if (cpu_features().avx512bf16 && isa_supported(Isa::kAvx512)) v.push_back({"bf16 avx512bf16", Isa::kAvx512, false});
  return v;
}

void test_bf16_convert() {
  std::vector<float> x{0.0f, -0.0f, 1.0f, -1.0f, 1.00390625f, 1.005859375f, 1.0078125f, 3.0e38f, 3.4028235e38f,
                       -3.4028235e38f, FLT_MIN, -FLT_MIN, FLT_MIN / 2, -FLT_MIN / 3, FLT_TRUE_MIN,
                       INFINITY, -INFINITY, NAN, -NAN, float_of(0x7f800001u), float_of(0xffc12345u),
                       float_of(0x3f808000u), float_of(0x3f818000u), float_of(0x3f807fffu), float_of(0x3f80ffffu)};
  for (int i = 0; i < 2000; ++i) x.push_back(float_of(static_cast<uint32_t>(g_rng())));
  std::vector<const Bf16GemmConfig*> cfgs{&bf16gemm_config_portable()};
  if (cpu_features().avx512bf16) cfgs.push_back(&bf16gemm_config_avx512bf16());
  for (const Bf16GemmConfig* cfg : cfgs)
    for (int n : {1, 5, 15, 16, 17, 33, static_cast<int>(x.size())}) {
      std::vector<uint16_t> got(x.size() + 1, 0xABCD);
      cfg->convert(x.data(), got.data(), n);
      int bad = -1;
      for (int i = 0; i < n && bad < 0; ++i)
        if (got[i] != model_bf16(x[i])) bad = i;
      const bool ok = bad < 0 && got[n] == 0xABCD;
      report(ok, fmt("bf16 convert %s n=%d%s", cfg->name, n,
                     bad < 0 ? (ok ? "" : ": wrote past n")
                             : fmt(": %08x -> %04x, expected %04x", bits_of(x[bad]), got[bad], model_bf16(x[bad])).c_str()));
    }
}

void test_gemm_bf16(int cases) {
  const Isa before = active_isa();
  for (int t = 0; t < cases; ++t) {
    const int M = t % 3 == 0 ? rint(1, 7) : pick({5, 6, 7, 13, 96, 97, 200});
    const int N = pick({1, 3, 15, 16, 17, 31, 32, 33, 64, 100});
    const int K = pick({1, 2, 3, 4, 5, 15, 16, 17, 27, 147, 255, 256, 257, 600, 601});
    std::vector<float> a(static_cast<size_t>(M) * K), w(static_cast<size_t>(N) * K), bias(N), mult(N);
    for (float& v : a) v = rint(0, 9) == 0 ? 0.0f : rfloat(-1.0f, 1.0f) * (rint(0, 3) ? 1.0f : 1e-3f);
    const bool pm1 = rint(0, 3) == 0;  // +-1 weights with a multiplier (binary-weight layers)
    for (float& v : w) v = pm1 ? (rint(0, 1) ? 1.0f : -1.0f) : rfloat(-1.0f, 1.0f);
    for (float& v : bias) v = rfloat(-0.5f, 0.5f);
    for (float& v : mult) v = rfloat(0.01f, 2.0f);
    const float* bp = rint(0, 2) ? bias.data() : nullptr;
    const float* sp = pm1 ? mult.data() : nullptr;
    const bool split = pm1 && rint(0, 1);  // +-1 weights: the input as a high and a low bf16 part
    const Bf16Weights pw = pack_weights_bf16(N, K, w.data(), K, split);
    std::vector<float> want(static_cast<size_t>(M) * N);
    double worst = 0.0, scale = 0.0;
    for (int m = 0; m < M; ++m)
      for (int n = 0; n < N; ++n) {
        const float* am = a.data() + static_cast<size_t>(m) * K;
        const float* wn = w.data() + static_cast<size_t>(n) * K;
        if (split) {  // [x, x - bf16(x)] against [w, w]
          std::vector<float> a2(2 * K), w2(2 * K);
          for (int k = 0; k < K; ++k) a2[k] = am[k], a2[K + k] = am[k] - bf16_value(am[k]), w2[k] = w2[K + k] = wn[k];
          want[static_cast<size_t>(m) * N + n] = bf16_dot(a2.data(), w2.data(), 1, 2 * K, sp + n, bp ? bp + n : nullptr);
        } else {
          want[static_cast<size_t>(m) * N + n] = bf16_dot(am, wn, 1, K, sp ? sp + n : nullptr, bp ? bp + n : nullptr);
        }
        double exact = 0.0, abs_sum = 0.0;
        for (int k = 0; k < K; ++k) {
          const double ak = split ? static_cast<double>(bf16_value(am[k])) + bf16_value(am[k] - bf16_value(am[k]))
                                  : bf16_value(am[k]);
          exact += ak * bf16_value(wn[k]);
          abs_sum += std::fabs(ak * bf16_value(wn[k]));
        }
        if (sp) exact *= sp[n], abs_sum *= sp[n];
        if (bp) exact += bp[n];
        worst = std::max(worst, std::fabs(exact - want[static_cast<size_t>(m) * N + n]));
        scale = std::max(scale, abs_sum);
      }
    for (const Bf16Path& path : bf16_paths()) {
      set_active_isa(path.isa);
      std::vector<float> got(static_cast<size_t>(M) * N, -7.0f);
      gemm_bf16(M, a.data(), K, pw, got.data(), N, sp, bp, path.emulated, 1 + (t & 1));
      size_t where = 0;
      const bool ok = same_bits(got, want, &where);
      report(ok && worst <= ((split ? 2 : 1) * K + 2) * 0x1p-24 * (scale + 1.0),
             fmt("gemm_bf16 %s (%s): %dx%dx%d%s%s%s", path.name, bf16gemm_kernel_name(path.emulated), M, N, K,
                 sp ? (split ? " +-1 weights, scale, split input" : " +-1 weights, scale") : "", bp ? " bias" : "",
                 ok ? "" : fmt(": element %zu is %.9g, expected %.9g", where, got[where], want[where]).c_str()));
    }
  }
  set_active_isa(before);
}

void test_conv2d_bf16(int cases) {
  const Isa before = active_isa();
  for (int t = 0; t < cases; ++t) {
    PoolParams p{};
    p.n = pick({1, 2});
    p.c = pick({1, 3, 4, 8, 17});
    p.h = rint(1, 12);
    p.w = rint(1, 12);
    p.kh = pick({1, 3, 5, 7});
    p.kw = rint(0, 3) ? p.kh : pick({1, 3});
    p.sh = pick({1, 2});
    p.sw = rint(0, 3) ? p.sh : pick({1, 2});
    const int dh = pick({1, 1, 2}), dw = rint(0, 3) ? dh : pick({1, 2});
    p.pt = rint(0, p.kh / 2);
    p.pb = rint(0, 3) ? p.pt : rint(0, p.kh / 2);
    p.pl = rint(0, p.kw / 2);
    p.pr = rint(0, 3) ? p.pl : rint(0, p.kw / 2);
    if (p.h + p.pt + p.pb < dh * (p.kh - 1) + 1 || p.w + p.pl + p.pr < dw * (p.kw - 1) + 1) continue;
    p.oh = (p.h + p.pt + p.pb - dh * (p.kh - 1) - 1) / p.sh + 1;
    p.ow = (p.w + p.pl + p.pr - dw * (p.kw - 1) - 1) / p.sw + 1;
    const int oc = pick({1, 8, 16, 24, 33, 64, 97});
    const int K = p.kh * p.kw * p.c;
    std::vector<float> x(static_cast<size_t>(p.n) * p.h * p.w * p.c), w(static_cast<size_t>(oc) * K), bias(oc);
    for (float& v : x) v = rfloat(-1.0f, 1.0f);
    for (float& v : w) v = rfloat(-1.0f, 1.0f);
    for (float& v : bias) v = rfloat(-0.5f, 0.5f);
    const Bf16Weights pw = pack_weights_bf16(oc, K, w.data(), K);
    const size_t M = static_cast<size_t>(p.n) * p.oh * p.ow;
    std::vector<float> want(M * oc), col(K);
    for (size_t m = 0; m < M; ++m) {
      const int ox = static_cast<int>(m % p.ow), oy = static_cast<int>((m / p.ow) % p.oh);
      const int n = static_cast<int>(m / (static_cast<size_t>(p.ow) * p.oh));
      for (int ky = 0; ky < p.kh; ++ky)
        for (int kx = 0; kx < p.kw; ++kx)
          for (int c = 0; c < p.c; ++c) {
            const int iy = oy * p.sh - p.pt + ky * dh, ix = ox * p.sw - p.pl + kx * dw;
            const bool in = iy >= 0 && iy < p.h && ix >= 0 && ix < p.w;
            col[(ky * p.kw + kx) * p.c + c] = in ? x[((static_cast<size_t>(n) * p.h + iy) * p.w + ix) * p.c + c] : 0.0f;
          }
      for (int o = 0; o < oc; ++o)
        want[m * oc + o] = bf16_dot(col.data(), w.data() + static_cast<size_t>(o) * K, 1, K, nullptr, &bias[o]);
    }
    for (const Bf16Path& path : bf16_paths()) {
      set_active_isa(path.isa);
      std::vector<float> got(M * oc, -7.0f);
      conv2d_bf16(x.data(), pw, nullptr, bias.data(), p, dh, dw, got.data(), path.emulated, 1 + (t & 1));
      size_t where = 0;
      const bool ok = same_bits(got, want, &where);
      report(ok, fmt("conv2d_bf16 %s: n%d %dx%dx%d -> %d k%dx%d s%d,%d d%d,%d pad %d,%d,%d,%d%s", path.name, p.n, p.h,
                     p.w, p.c, oc, p.kh, p.kw, p.sh, p.sw, dh, dw, p.pt, p.pl, p.pb, p.pr,
                     ok ? "" : fmt(": element %zu is %.9g, expected %.9g", where, got[where], want[where]).c_str()));
    }
  }
  set_active_isa(before);
}

// ---------------------------------------------------------------------------
// int8 float layers: a scalar model of the quantization and the integer GEMM.

struct ModelQuant {
  float scale = 1.0f, inv = 1.0f, zp = 0.0f;
};
ModelQuant model_quant(const float* x, size_t n) {
  float lo = 0.0f, hi = 0.0f;
  for (size_t i = 0; i < n; ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
  ModelQuant q;
  const float s = (hi - lo) / 255.0f;
  if (s > 0.0f) q.scale = s, q.inv = 1.0f / s;
  q.zp = std::min(255.0f, std::max(0.0f, std::nearbyint(-lo * q.inv)));
  return q;
}
int model_q(float x, const ModelQuant& q) {
  volatile float v = x * q.inv;
  v = v + q.zp;
  return static_cast<int>(std::lrint(std::min(255.0f, std::max(0.0f, static_cast<float>(v)))));
}
// Per-channel weights: (w_q, s_w) as pack_weights_int8 makes them.
void model_wq(const float* w, int K, const float* pm1, std::vector<int>& wq, float& sw) {
  wq.assign(K, 0);
  if (pm1) {
    sw = *pm1;
    for (int k = 0; k < K; ++k) wq[k] = w[k] < 0 ? -1 : 1;
    return;
  }
  float amax = 0.0f;
  for (int k = 0; k < K; ++k) amax = std::max(amax, std::fabs(w[k]));
  sw = amax > 0.0f ? amax / 127.0f : 1.0f;
  for (int k = 0; k < K; ++k) wq[k] = static_cast<int>(std::min(127.0f, std::max(-127.0f, std::nearbyint(w[k] / sw))));
}
float model_i8_out(const std::vector<int>& aq, const ModelQuant& q, const std::vector<int>& wq, float sw,
                   const float* bias) {
  int32_t acc = 0, wsum = 0;
  for (size_t k = 0; k < aq.size(); ++k) acc += aq[k] * wq[k], wsum += wq[k];
  const float y = static_cast<float>(acc - static_cast<int32_t>(q.zp) * wsum) * (q.scale * sw);
  return bias ? y + *bias : y;
}

struct I8Path {
  const char* name;
  Isa isa;
  bool emulated;
};
std::vector<I8Path> i8_paths() {
  std::vector<I8Path> v{{"int8_emulated", best_isa(), true}, {"int8 under portable", Isa::kPortable, false}};
  if (cpu_features().avx512vnni && isa_supported(Isa::kAvx512)) v.push_back({"int8 avx512vnni", Isa::kAvx512, false});
  if (isa_supported(Isa::kAmx))
    v.push_back({"int8 amx", Isa::kAmx, false});
  else if (static bool said = false; !said)
    said = true, std::printf("SKIP int8 amx: no AMX-INT8 this process may use (has: %s)\n", cpu_features_string().c_str());
  return v;
}

void test_gemm_int8(int cases) {
  const Isa before = active_isa();
  for (int t = 0; t < cases; ++t) {
    const int M = t % 3 == 0 ? rint(1, 7) : pick({5, 6, 7, 13, 96, 97, 200});
    const int N = pick({1, 3, 15, 16, 17, 31, 32, 33, 64, 100});
    const int K = pick({1, 2, 3, 4, 5, 15, 16, 17, 27, 147, 255, 256, 257, 600, 601});
    std::vector<float> a(static_cast<size_t>(M) * K), w(static_cast<size_t>(N) * K), bias(N), mult(N);
    const float shift = pick({0.0f, 0.3f, -0.4f, 2.0f});  // all-positive and all-negative rows too
    for (float& v : a) v = rint(0, 9) == 0 ? 0.0f : rfloat(-1.0f, 1.0f) + shift;
    const bool pm1 = rint(0, 3) == 0;
    for (float& v : w) v = pm1 ? (rint(0, 1) ? 1.0f : -1.0f) : rfloat(-1.0f, 1.0f) * (rint(0, 5) ? 1.0f : 0.0f);
    for (float& v : bias) v = rfloat(-0.5f, 0.5f);
    for (float& v : mult) v = rfloat(0.01f, 2.0f);
    const float* bp = rint(0, 2) ? bias.data() : nullptr;
    const float* sp = pm1 ? mult.data() : nullptr;
    const Int8Weights pw = pack_weights_int8(N, K, w.data(), K, sp);
    std::vector<float> want(static_cast<size_t>(M) * N);
    for (int m = 0; m < M; ++m) {
      const ModelQuant q = model_quant(a.data() + static_cast<size_t>(m) * K, K);
      std::vector<int> aq(K), wq;
      for (int k = 0; k < K; ++k) aq[k] = model_q(a[static_cast<size_t>(m) * K + k], q);
      for (int n = 0; n < N; ++n) {
        float sw;
        model_wq(w.data() + static_cast<size_t>(n) * K, K, sp ? sp + n : nullptr, wq, sw);
        want[static_cast<size_t>(m) * N + n] = model_i8_out(aq, q, wq, sw, bp ? bp + n : nullptr);
      }
    }
    for (const I8Path& path : i8_paths()) {
      set_active_isa(path.isa);
      std::vector<float> got(static_cast<size_t>(M) * N, -7.0f);
      gemm_int8(M, a.data(), K, pw, got.data(), N, bp, path.emulated, 1 + (t & 1));
      size_t where = 0;
      const bool ok = same_bits(got, want, &where);
      report(ok, fmt("gemm_int8 %s (%s): %dx%dx%d%s%s%s", path.name, i8gemm_kernel_name(path.emulated), M, N, K,
                     pm1 ? " +-1 weights" : "", bp ? " bias" : "",
                     ok ? "" : fmt(": element %zu is %.9g, expected %.9g", where, got[where], want[where]).c_str()));
    }
  }
  set_active_isa(before);
}

void test_conv2d_int8(int cases) {
  const Isa before = active_isa();
  for (int t = 0; t < cases; ++t) {
    PoolParams p{};
    p.n = pick({1, 2, 3});
    p.c = pick({1, 3, 4, 8, 17});
    p.h = rint(1, 12);
    p.w = rint(1, 12);
    p.kh = pick({1, 3, 5, 7});
    p.kw = rint(0, 3) ? p.kh : pick({1, 3});
    p.sh = pick({1, 2});
    p.sw = rint(0, 3) ? p.sh : pick({1, 2});
    const int dh = pick({1, 1, 2}), dw = rint(0, 3) ? dh : pick({1, 2});
    p.pt = rint(0, p.kh / 2);
    p.pb = rint(0, 3) ? p.pt : rint(0, p.kh / 2);
    p.pl = rint(0, p.kw / 2);
    p.pr = rint(0, 3) ? p.pl : rint(0, p.kw / 2);
    if (p.h + p.pt + p.pb < dh * (p.kh - 1) + 1 || p.w + p.pl + p.pr < dw * (p.kw - 1) + 1) continue;
    p.oh = (p.h + p.pt + p.pb - dh * (p.kh - 1) - 1) / p.sh + 1;
    p.ow = (p.w + p.pl + p.pr - dw * (p.kw - 1) - 1) / p.sw + 1;
    const int oc = pick({1, 8, 16, 24, 33, 64, 97});
    const int K = p.kh * p.kw * p.c;
    const size_t spix = static_cast<size_t>(p.h) * p.w * p.c;
    std::vector<float> x(p.n * spix), w(static_cast<size_t>(oc) * K), bias(oc);
    for (int n = 0; n < p.n; ++n) {  // samples with different ranges
      const float shift = pick({0.0f, 0.5f, -1.5f}), mag = pick({1.0f, 3.0f, 0.01f});
      for (size_t i = 0; i < spix; ++i) x[n * spix + i] = (rfloat(-1.0f, 1.0f) + shift) * mag;
    }
    for (float& v : w) v = rfloat(-1.0f, 1.0f);
    for (float& v : bias) v = rfloat(-0.5f, 0.5f);
    // both layouts: plain rows, and (where int8_conv_run allows) kernel rows read in place
    std::vector<Int8Weights> layouts{pack_weights_int8(oc, K, w.data(), K, nullptr)};
    if (const int run = int8_conv_run(p, dw)) layouts.push_back(pack_weights_int8(oc, K, w.data(), K, nullptr, run));
    const size_t M = static_cast<size_t>(p.n) * p.oh * p.ow;
    std::vector<float> want(M * oc);
    std::vector<std::vector<int>> wq(oc);
    std::vector<float> sw(oc);
    for (int o = 0; o < oc; ++o) model_wq(w.data() + static_cast<size_t>(o) * K, K, nullptr, wq[o], sw[o]);
    for (size_t m = 0; m < M; ++m) {
      const int ox = static_cast<int>(m % p.ow), oy = static_cast<int>((m / p.ow) % p.oh);
      const int n = static_cast<int>(m / (static_cast<size_t>(p.ow) * p.oh));
      const ModelQuant q = model_quant(x.data() + n * spix, spix);
      std::vector<int> aq(K);
      for (int ky = 0; ky < p.kh; ++ky)
        for (int kx = 0; kx < p.kw; ++kx)
          for (int c = 0; c < p.c; ++c) {
            const int iy = oy * p.sh - p.pt + ky * dh, ix = ox * p.sw - p.pl + kx * dw;
            const bool in = iy >= 0 && iy < p.h && ix >= 0 && ix < p.w;
            aq[(ky * p.kw + kx) * p.c + c] = model_q(in ? x[n * spix + (static_cast<size_t>(iy) * p.w + ix) * p.c + c] : 0.0f, q);
          }
      for (int o = 0; o < oc; ++o) want[m * oc + o] = model_i8_out(aq, q, wq[o], sw[o], &bias[o]);
    }
    for (const Int8Weights& pw : layouts)
      for (const I8Path& path : i8_paths()) {
        set_active_isa(path.isa);
        std::vector<float> got(M * oc, -7.0f);
        conv2d_int8(x.data(), pw, bias.data(), p, dh, dw, got.data(), path.emulated, 1 + (t & 1));
        size_t where = 0;
        const bool ok = same_bits(got, want, &where);
        report(ok, fmt("conv2d_int8 %s%s: n%d %dx%dx%d -> %d k%dx%d s%d,%d d%d,%d pad %d,%d,%d,%d%s", path.name,
                       pw.run ? " (kernel rows)" : "", p.n, p.h, p.w, p.c, oc, p.kh, p.kw, p.sh, p.sw, dh, dw, p.pt,
                       p.pl, p.pb, p.pr,
                       ok ? "" : fmt(": element %zu is %.9g, expected %.9g", where, got[where], want[where]).c_str()));
      }
  }
  set_active_isa(before);
}

}  // namespace

int main(int argc, char** argv) {
  int cases = 120;
  uint64_t seed = 20240601;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--cases" && i + 1 < argc) cases = std::atoi(argv[++i]);
    else if (a == "--seed" && i + 1 < argc) seed = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--quick") cases = 40;
    else if (a == "--verbose") g_verbose = true;
    else {
      std::printf("usage: %s [--cases N] [--seed S] [--quick] [--verbose]\n", argv[0]);
      return 2;
    }
  }
  g_rng.seed(seed);
  std::string names;
  for (Isa i : fast_isas()) names += std::string(names.empty() ? "" : ", ") + isa_name(i);
  std::printf("test_kernels: seed %llu, %d cases per kernel; paths: reference, %s (best: %s)\n",
              static_cast<unsigned long long>(seed), cases, names.c_str(), isa_name(best_isa()));
  const int before = g_passed + g_failed;
  test_bconv(cases);
  std::printf("bconv2d: %d checks\n", g_passed + g_failed - before);
  int mark = g_passed + g_failed;
  test_epilogue(cases * 50);
  test_pack(cases);
  std::printf("pack_rows_f32 + epilogue: %d checks\n", g_passed + g_failed - mark);
  mark = g_passed + g_failed;
  test_maxpool(cases);
  std::printf("maxpool_packed: %d checks\n", g_passed + g_failed - mark);
  mark = g_passed + g_failed;
  test_sgemm(cases);
  test_conv2d_f32(cases / 2);
  std::printf("sgemm + conv2d_f32: %d checks\n", g_passed + g_failed - mark);
  mark = g_passed + g_failed;
  test_bf16_convert();
  test_gemm_bf16(cases);
  test_conv2d_bf16(cases / 2);
  std::printf("bf16 convert + gemm_bf16 + conv2d_bf16 (%s): %d checks\n",
              cpu_features().avx512bf16 ? "avx512bf16 and emulation" : "emulation only: no AVX512_BF16",
              g_passed + g_failed - mark);
  mark = g_passed + g_failed;
  test_gemm_int8(cases);
  test_conv2d_int8(cases / 2);
  std::printf("gemm_int8 + conv2d_int8 (%s): %d checks\n",
              cpu_features().avx512vnni ? "avx512vnni and emulation" : "emulation only: no AVX512_VNNI",
              g_passed + g_failed - mark);
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed ? 1 : 0;
}
