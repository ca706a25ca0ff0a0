#include "engine/ops/common.h"

#include <cstring>
#include <string>

namespace onebit::ops {

std::vector<AttrSpec> window_attrs(bool dilation) {
  std::vector<AttrSpec> a = {
      Ints("kernel", 2, 1, kMaxKernel, "window height and width"),
      Ints("stride", 2, 1, kMaxKernel, "stride along height and width"),
      Ints("padding", 4, 0, kMaxKernel * kMaxKernel, "(left, right, top, bottom)"),
  };
  if (dilation) a.push_back(Ints("dilation", 2, 1, kMaxKernel, "dilation along height and width"));
  return a;
}

AttrSpec activation_attr() {
  return Enum("activation", "none|relu", "none",
              "applied last, after the residual input (if any) is added: relu as the relu op");
}

std::vector<ParamSpec> post_affine_params() {
  return {{"post_scale", false, "float [O] (float output): y = activation(conv) * post_scale + post_shift"},
          {"post_shift", false, "float [O], with post_scale; then the residual input is added"}};
}

FusedEpilogue read_fused_epilogue(const BuildCtx& ctx, const ValueInfo& out) {
  FusedEpilogue e;
  e.act = ctx.attr_enum("activation") == "relu" ? Act::kRelu : Act::kNone;
  e.residual = ctx.inputs().size() > 1;
  const bool affine = ctx.has_param("post_scale") || ctx.has_param("post_shift");
  if ((e.residual || e.act != Act::kNone || affine) && out.dtype != DType::kF32)
    ctx.fail("a residual input, an activation or post_scale / post_shift needs a float output");
  if (affine) {
    if (!ctx.has_param("post_scale") || !ctx.has_param("post_shift"))
      ctx.fail("post_scale and post_shift come together");
    e.post_scale = ctx.param_f32("post_scale", out.c);
    e.post_shift = ctx.param_f32("post_shift", out.c);
  }
  if (e.residual) {
    ctx.require_input(1, DType::kF32, out.rank);
    const ValueInfo& r = ctx.input(1);
    if (r.h != out.h || r.w != out.w || r.c != out.c)
      ctx.fail("residual input is " + std::to_string(r.h) + " x " + std::to_string(r.w) + " x " +
               std::to_string(r.c) + ", the output " + std::to_string(out.h) + " x " +
               std::to_string(out.w) + " x " + std::to_string(out.c));
  }
  return e;
}

Window read_window(const BuildCtx& ctx, const ValueInfo& in, PadRule rule, bool has_dilation,
                   bool ceil_mode) {
  Window g;
  const auto k = ctx.attr_ints("kernel"), s = ctx.attr_ints("stride"), p = ctx.attr_ints("padding");
  g.kh = k[0], g.kw = k[1], g.sh = s[0], g.sw = s[1];
  g.pl = p[0], g.pr = p[1], g.pt = p[2], g.pb = p[3];
  if (has_dilation) {
    const auto d = ctx.attr_ints("dilation");
    if (!d.empty()) g.dh = d[0], g.dw = d[1];
  }
  if (in.rank != 4) ctx.fail("input must be 4-D (N, H, W, C)");
  const int64_t ext_h = g.dh * (g.kh - 1) + 1, ext_w = g.dw * (g.kw - 1) + 1;
  if (rule == PadRule::kConv) {
    if (g.pt > ext_h - 1 || g.pb > ext_h - 1 || g.pl > ext_w - 1 || g.pr > ext_w - 1)
      ctx.fail("padding (" + std::to_string(g.pl) + ", " + std::to_string(g.pr) + ", " +
               std::to_string(g.pt) + ", " + std::to_string(g.pb) +
               ") exceeds the dilated kernel extent " + std::to_string(ext_h) + " x " +
               std::to_string(ext_w));
  } else {
    if (2 * g.pt > g.kh || 2 * g.pb > g.kh || 2 * g.pl > g.kw || 2 * g.pr > g.kw)
      ctx.fail("pooling padding must be at most half the kernel size");
  }
  g.oh = window_out(in.h, g.pt, g.pb, g.kh, g.sh, g.dh);
  g.ow = window_out(in.w, g.pl, g.pr, g.kw, g.sw, g.dw);
  if (g.oh < 1 || g.ow < 1)
    ctx.fail("window " + std::to_string(ext_h) + " x " + std::to_string(ext_w) +
             " is larger than the padded input " + std::to_string(in.h + g.pt + g.pb) + " x " +
             std::to_string(in.w + g.pl + g.pr));
  if (ceil_mode) {  // torch: ceil the division, but the last window must start inside input or left pad
    auto ceil_out = [](int64_t n, int64_t k, int64_t st, int64_t p0, int64_t p1) {
      const int64_t span = n + p0 + p1 - k;
      int64_t out = (span + st - 1) / st + 1;
      if ((out - 1) * st >= n + p0) --out;
      return out;
    };
    g.oh = ceil_out(in.h, g.kh, g.sh, g.pt, g.pb);
    g.ow = ceil_out(in.w, g.kw, g.sw, g.pl, g.pr);
  }
  return g;
}

std::vector<uint8_t> param_flags(const BuildCtx& ctx, const char* role, int64_t count) {
  const TensorRef& t = ctx.param(role);
  if (t.count != count)
    ctx.fail("'" + std::string(role) + "' tensor has " + std::to_string(t.count) + " values, needs " +
             std::to_string(count));
  std::vector<uint8_t> f(static_cast<size_t>(count));
  const size_t sz = dtype_size(t.dtype);
  for (int64_t i = 0; i < count; ++i) {
    bool any = false;
    for (size_t b = 0; b < sz; ++b) any |= t.data[i * sz + b] != 0;
    // -0.0 as a flag is "false" in numpy's astype(bool): ignore the float sign bit
    if (t.dtype == TensorDType::kFloat32) {
      uint32_t v;
      std::memcpy(&v, t.data + i * 4, 4);
      any = (v & 0x7fffffffu) != 0;
    } else if (t.dtype == TensorDType::kFloat16) {
      uint16_t v;
      std::memcpy(&v, t.data + i * 2, 2);
      any = (v & 0x7fffu) != 0;
    }
    f[i] = any;
  }
  return f;
}

avector<uint64_t> word_mask(const std::vector<uint8_t>& flags) {
  avector<uint64_t> m(words_for(static_cast<int>(flags.size())), 0);
  for (size_t c = 0; c < flags.size(); ++c)
    if (flags[c]) m[c / 64] |= uint64_t{1} << (c % 64);
  return m;
}

float pairwise_sum_f32(const float* a, int64_t n) {
  if (n < 8) {
    float res = 0.f;
    for (int64_t i = 0; i < n; ++i) res += a[i];
    return res;
  }
  if (n <= 128) {
    float r[8];
    for (int j = 0; j < 8; ++j) r[j] = a[j];
    int64_t i = 8;
    for (; i < n - (n % 8); i += 8)
      for (int j = 0; j < 8; ++j) r[j] += a[i + j];
    float res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  int64_t n2 = n / 2;
  n2 -= n2 % 8;
  return pairwise_sum_f32(a, n2) + pairwise_sum_f32(a + n2, n - n2);
}

}  // namespace onebit::ops

namespace onebit::ops {

PoolParams window_params(const ValueInfo& in, const Window& g) {
  PoolParams p{};
  p.n = 1, p.h = static_cast<int>(in.h), p.w = static_cast<int>(in.w), p.c = static_cast<int>(in.c);
  p.kh = static_cast<int>(g.kh), p.kw = static_cast<int>(g.kw);
  p.sh = static_cast<int>(g.sh), p.sw = static_cast<int>(g.sw);
  p.pt = static_cast<int>(g.pt), p.pl = static_cast<int>(g.pl);
  p.pb = static_cast<int>(g.pb), p.pr = static_cast<int>(g.pr);
  p.oh = static_cast<int>(g.oh), p.ow = static_cast<int>(g.ow);
  return p;
}

PoolParams pool_params(const BuildCtx& ctx, const ValueInfo& in, bool ceil_mode, Window* window) {
  const Window g = read_window(ctx, in, PadRule::kPool, false, ceil_mode);
  PoolParams p = window_params(in, g);
  if (ceil_mode) {
    const int64_t extra_b = (g.oh - 1) * g.sh + g.kh - (in.h + g.pt + g.pb);
    const int64_t extra_r = (g.ow - 1) * g.sw + g.kw - (in.w + g.pl + g.pr);
    if (extra_b > 0) p.pb += static_cast<int>(extra_b);
    if (extra_r > 0) p.pr += static_cast<int>(extra_r);
  }
  if (window) *window = g;
  return p;
}

std::vector<AttrSpec> pool_attrs(bool average) {
  std::vector<AttrSpec> a = window_attrs(false);
  a.push_back(Bool("ceil_mode", false, "torch's ceil_mode"));
  if (average) a.push_back(Bool("count_include_pad", true, "padded positions count in the mean"));
  return a;
}

}  // namespace onebit::ops
