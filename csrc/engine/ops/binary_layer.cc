#include "engine/ops/binary_layer.h"

#include <cstring>
#include <string>

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
               "float: multiplier * dot + bias; binary: bits from integer thresholds")};
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
