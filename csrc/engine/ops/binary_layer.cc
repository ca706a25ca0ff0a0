#include "engine/ops/binary_layer.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>

#include "engine/ops/residual.h"
#include "runtime/threadpool.h"

namespace onebit::ops {

OutputStage BinaryLayer::stage() const {
  OutputStage os;
  os.kind = bits_out ? OutKind::kBits : OutKind::kFloat;
  os.act = Act::kNone;
  if (bits_out) {
    os.thr = thr.data();
    os.flip = flip.data();
  } else {
    os.mult = mult.data();
    os.bias = bias.data();
  }
  return os;
}

std::vector<AttrSpec> binary_output_attrs() {
  return {Int("in_channels", 1, int64_t{1} << 28, "input channels (features for bdense)"),
          Enum("output", "float|binary", "float",
               "float: multiplier * dot + bias; binary: bits from integer thresholds"),
          Int("residual_bits", 1, 8, 1,
              "1: packed +-1 input; k > 1: float input split into k residual sign planes, one "
              "scale per sample, y = multiplier * sum_i a_i dot_i + bias")};
}

ResidualInput read_residual_input(const BuildCtx& ctx, int rank) {
  ResidualInput r;
  r.bits = static_cast<int>(ctx.attr_int("residual_bits"));
  if (r.bits == 1) {
    ctx.require_input(0, DType::kBits, rank);
    return r;
  }
  ctx.require_input(0, DType::kF32, rank);
  if (ctx.attr_enum("output") != "float")
    ctx.fail("residual_bits > 1 sums scaled plane results in float: output must be float");
  const ValueInfo& in = ctx.input();
  r.rows_in = in.h * in.w, r.c = in.c;
  // the planes are bits images of one sample each: their bytes obey the value limit
  if (r.bits * r.rows_in * words_for(static_cast<int>(r.c)) * 8 > kMaxSampleBytes)
    ctx.fail("residual planes of one sample exceed " + std::to_string(kMaxSampleBytes) + " bytes");
  return r;
}

int64_t residual_input_bytes(const ResidualInput& r, int64_t oc, int64_t n, int nthreads) {
  if (r.bits == 1) return 0;
  const int64_t images = n * r.bits;
  return images * r.rows_in * words_for(static_cast<int>(r.c)) * 8  // planes
         + images * r.rows_out * oc * 4                              // dot products
         + images * 4                                                // scales
         + n * r.rows_in * r.c * 4  // the residual while the planes are made (freed before the dots)
         + int64_t{std::max(nthreads, 1)} * oc * 8;  // each epilogue task's double sums
}

void run_residual_input(const ResidualInput& r, const BinaryLayer& L, const float* x, int64_t n,
                        float* y, int nthreads, const BinaryRun& run) {
  ResidualShape s;
  s.samples = n, s.rows = r.rows_in, s.c = r.c, s.bits = r.bits, s.scale = ResidualScale::kSample;
  std::vector<float> a(static_cast<size_t>(s.scale_count()));
  const int64_t images = n * r.bits, oc = L.w.oc;
  avector<uint64_t> planes(static_cast<size_t>(images * r.rows_in * words_for(static_cast<int>(r.c))));
  {
    std::vector<float> resid(static_cast<size_t>(n * r.rows_in * r.c));
    residual_planes(x, s, a.data(), planes.data(), resid.data(), nthreads);
  }
  // raw dot products of every plane image, written in full by the kernel (no zero fill)
  std::unique_ptr<float[]> dots(new float[static_cast<size_t>(images * r.rows_out * oc)]);
  run(planes.data(), images, dots.get());
  const int64_t pixels = n * r.rows_out;
  const int64_t block = 64;
  parallel_for(static_cast<int>((pixels + block - 1) / block), nthreads, [&](int t) {
    const int64_t p0 = int64_t{t} * block, p1 = std::min(pixels, p0 + block);
    std::vector<double> acc(static_cast<size_t>(oc));
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t ns = p / r.rows_out, pix = p % r.rows_out;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int i = 0; i < r.bits; ++i) {  // a_i * dot_i is exact in double (24 + 24 bits)
        const double a_i = static_cast<double>(a[ns * r.bits + i]);
        const float* d = dots.get() + ((ns * r.bits + i) * r.rows_out + pix) * oc;
        for (int64_t o = 0; o < oc; ++o) acc[o] += a_i * static_cast<double>(d[o]);
      }
      float* yp = y + p * oc;
      for (int64_t o = 0; o < oc; ++o)
        yp[o] = static_cast<float>(acc[o] * static_cast<double>(L.mult[o]) + static_cast<double>(L.bias[o]));
    }
  });
}

std::vector<ParamSpec> binary_layer_params() {
  return {{"weight", true, "packed_sign [O, kh, kw, words] ([O, words] for bdense) or float OHWI"},
          {"multiplier", false, "float [O] (float output)"},
          {"bias", false, "float [O] (float output)"},
          {"threshold", false, "int32 [O] (binary output): +1 iff direction * (dot - threshold) >= 0"},
          {"direction", false, "int32 [O] (binary output), +1 or -1"}};
}

BinaryLayer read_binary_layer(const BuildCtx& ctx, int64_t in_channels, int64_t kh, int64_t kw,
                              int64_t groups, bool dense) {
  BinaryLayer L;
  if (groups < 1 || in_channels % groups) ctx.fail("groups must divide in_channels");
  const int64_t cin_g = in_channels / groups;
  if (kh * kw * cin_g >= (int64_t{1} << 24))
    ctx.fail("kernel_h * kernel_w * in_channels_per_group must be below 2^24 (exact float32 dots)");
  const TensorRef& t = ctx.param("weight");
  const size_t rank = dense ? 2 : 4;
  if (t.shape.size() != rank)
    ctx.fail("weight must be " + std::to_string(rank) + "-D, is " + std::to_string(t.shape.size()) + "-D");
  const int64_t oc = t.shape[0];
  if (oc < 1 || oc > kMaxChannels) ctx.fail("weight has " + std::to_string(oc) + " filters");
  if (oc % groups) ctx.fail("groups must divide the output channels");
  if (!dense && (t.shape[1] != kh || t.shape[2] != kw))
    ctx.fail("weight kernel " + std::to_string(t.shape[1]) + " x " + std::to_string(t.shape[2]) +
             " does not match the kernel attribute");
  if (t.packed_sign) {
    if (t.channels != cin_g)
      ctx.fail("packed weight holds " + std::to_string(t.channels) + " channels per filter, needs " +
               std::to_string(cin_g));
    const int64_t cw = words_for(static_cast<int>(cin_g));
    const size_t rows = static_cast<size_t>(oc * kh * kw);
    std::vector<uint64_t> words(rows * cw);
    std::memcpy(words.data(), t.data, words.size() * 8);
    if (const int tail = static_cast<int>(cin_g % 64)) {
      const uint64_t pad_mask = ~((uint64_t{1} << tail) - 1);
      for (size_t r = 0; r < rows; ++r)
        if (words[r * cw + cw - 1] & pad_mask)
          ctx.fail("packed weight has padding bits set past channel " + std::to_string(cin_g));
    }
    L.w = pack_weights_ohwi_words(std::move(words), static_cast<int>(oc), static_cast<int>(kh),
                                  static_cast<int>(kw), static_cast<int>(cin_g), static_cast<int>(groups));
  } else {
    if (t.shape.back() != cin_g)
      ctx.fail("weight has " + std::to_string(t.shape.back()) + " inputs per filter, needs " +
               std::to_string(cin_g));
    const std::vector<float> w = ctx.param_f32("weight", oc * kh * kw * cin_g);
    L.w = pack_weights_ohwi(w.data(), static_cast<int>(oc), static_cast<int>(kh), static_cast<int>(kw),
                            static_cast<int>(cin_g), static_cast<int>(groups));
  }
  L.bits_out = ctx.attr_enum("output") == "binary";
  if (L.bits_out) {
    L.thr = ctx.param_i32("threshold", oc);
    const std::vector<int32_t> dir = ctx.param_i32("direction", oc);
    L.flip.resize(static_cast<size_t>(oc));
    for (int64_t c = 0; c < oc; ++c) L.flip[c] = dir[c] < 0;
  } else {
    L.mult = ctx.param_f32("multiplier", oc);
    L.bias = ctx.param_f32("bias", oc);
  }
  return L;
}

}  // namespace onebit::ops
