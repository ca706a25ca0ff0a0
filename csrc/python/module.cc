// Python bindings of onebit's compute engine (onebit._C).
//
// Everything here works on numpy buffers; the engine never links PyTorch.
// The friendly API with full argument checking is onebit.runtime.kernels;
// these entry points re-check every size they rely on, so a wrong call
// raises ValueError/TypeError instead of touching memory out of bounds.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

#include "cpu_features.h"
#include "dispatch.h"
#include "kernels/peak.h"
#include "ops/bconv2d.h"
#include "ops/float_ops.h"
#include "pack/pack.h"
#include "runtime/threadpool.h"

namespace nb = nanobind;
using namespace onebit;

void bind_engine(nb::module_& m);  // python/engine.cc

template <class T>
using In = nb::ndarray<const T, nb::c_contig, nb::device::cpu>;
template <class T>
using Out = nb::ndarray<T, nb::c_contig, nb::device::cpu>;

namespace {

void require(bool ok, const std::string& msg) {
  if (!ok) throw std::invalid_argument(msg);
}

template <class A>
void require_size(const A& a, size_t n, const char* what) {
  require(a.size() == n, std::string(what) + ": expected " + std::to_string(n) +
                             " elements, got " + std::to_string(a.size()));
}

template <class T>
const T* opt_ptr(const std::optional<In<T>>& a, size_t n, const char* what) {
  if (!a) return nullptr;
  require_size(*a, n, what);
  return a->data();
}

Act parse_act(const std::string& s) {
  if (s.empty() || s == "none") return Act::kNone;
  if (s == "relu") return Act::kRelu;
  if (s == "prelu") return Act::kPrelu;
  throw std::invalid_argument("activation must be None, 'relu' or 'prelu', got '" + s + "'");
}

int out_size(int in, int pa, int pb, int k, int s, int d) {
  return (in + pa + pb - d * (k - 1) - 1) / s + 1;
}

}  // namespace

NB_MODULE(_C, m) {
  m.doc() = "onebit compute engine: bit-packed XNOR-popcount kernels over numpy buffers";
  bind_engine(m);

  m.def("cpu_features", &cpu_features_string,
        "Instruction-set extensions of this CPU that the OS enables.");
  m.def("active_isa", [] { return std::string(isa_name(active_isa())); },
        "Instruction set the kernels use now (ONEBIT_ISA overrides the best one).");
  m.def("best_isa", [] { return std::string(isa_name(best_isa())); },
        "Best instruction set this CPU supports.");
  m.def("isa_supported", [](const std::string& name) { return isa_supported(parse_isa(name)); },
        nb::arg("name"));
  m.def("set_isa", [](const std::string& name) { set_active_isa(parse_isa(name)); },
        nb::arg("name"), "Force an instruction set for this process (raises if unsupported).");
  m.def("popcount64", [](uint64_t x) { return static_cast<int>(__builtin_popcountll(x)); },
        nb::arg("x"), "Number of set bits of a 64-bit word (build smoke test).");
  m.def("kernel_names", [] {
    nb::dict d;
    d["isa"] = isa_name(active_isa());
    d["bgemm"] = bgemm_kernel_name();
    d["bgconv"] = bgconv_kernel_name();
    d["sgemm"] = sgemm_kernel_name();
    d["bf16gemm"] = bf16gemm_kernel_name(false);
    d["i8gemm"] = i8gemm_kernel_name(false);
    d["pack"] = active_simd_isa() == Isa::kAvx512 ? "pack_f32_avx512"
                : active_simd_isa() == Isa::kAvx2   ? "pack_f32_avx2"
                : active_simd_isa() == Isa::kNeon   ? "pack_f32_64_neon"
                                               : "pack_f32_portable";
    return d;
  }, "Micro-kernels chosen for the active instruction set.");
  m.def("get_num_threads", &get_num_threads);
  m.def("set_num_threads", &set_num_threads, nb::arg("n"));
  // The peak loops of the active path (avx512 or avx2; 0 elsewhere): what
  // benchmarks/kernels.py reports the kernels' share of.
  m.def("peak_binary_macs", [](double s) {
    const Isa isa = active_simd_isa();
    nb::gil_scoped_release g;
    if (isa == Isa::kAvx512) return peak_binary_macs_avx512(s);
    if (isa == Isa::kAvx2) return peak_binary_macs_avx2(s);
    return 0.0;
  }, nb::arg("seconds") = 0.3);
  m.def("peak_fp32_fmas", [](double s) {
    const Isa isa = active_simd_isa();
    nb::gil_scoped_release g;
    if (isa == Isa::kAvx512) return peak_fp32_fmas_avx512(s);
    if (isa == Isa::kAvx2) return peak_fp32_fmas_avx2(s);
    return 0.0;
  }, nb::arg("seconds") = 0.3);
  m.def("peak_int_macs_avx2", [](double s) {
    double m16 = 0, m8 = 0;
    if (isa_supported(Isa::kAvx2)) {
      nb::gil_scoped_release g;
      peak_int_macs_avx2(s, &m16, &m8);
    }
    return std::make_tuple(m16, m8);
  }, nb::arg("seconds") = 0.3,
     "(int16 vpmaddwd, u8 x s8 vpmaddubsw) MACs/s on AVX2; (0, 0) without AVX2.");
  m.def("peak_int8_macs_vnni", [](double s) {
    if (!isa_supported(Isa::kAvx512) || !cpu_features().avx512vnni) return 0.0;
    nb::gil_scoped_release g;
    return peak_int8_macs_avx512vnni(s);
  }, nb::arg("seconds") = 0.3, "AVX512-VNNI VPDPBUSD u8 x s8 MACs/s on registers; 0 without AVX512-VNNI.");
  m.def("peak_int8_macs_amx", [](double s) {
    if (!isa_supported(Isa::kAmx)) return 0.0;
    nb::gil_scoped_release g;
    return peak_int8_macs_amx(s);
  }, nb::arg("seconds") = 0.3, "AMX-INT8 TDPBUSD u8 x s8 MACs/s on register-resident tiles; 0 without AMX.");

  // ---- packing -------------------------------------------------------------
  m.def("pack_f32", [](In<float> x, int channels, std::optional<In<float>> thr,
                       Out<uint64_t> out, int nthreads) {
    require(channels > 0, "channels must be positive");
    require(x.size() % channels == 0, "input size is not a multiple of channels");
    const size_t rows = x.size() / channels;
    require_size(out, rows * words_for(channels), "out");
    const float* t = opt_ptr(thr, channels, "threshold");
    nb::gil_scoped_release g;
    pack_rows_f32(x.data(), rows, channels, t, out.data(), nthreads);
  }, nb::arg("x"), nb::arg("channels"), nb::arg("thr").none(), nb::arg("out"),
     nb::arg("num_threads") = 0);
  m.def("pack_f32_portable", [](In<float> x, int channels, Out<uint64_t> out) {
    require(channels > 0 && x.size() % channels == 0, "bad channels");
    const size_t rows = x.size() / channels;
    require_size(out, rows * words_for(channels), "out");
    pack_rows_f32_portable(x.data(), rows, channels, nullptr, out.data(), channels);
  });
  m.def("pack_i8", [](In<int8_t> x, int channels, Out<uint64_t> out, int nthreads) {
    require(channels > 0 && x.size() % channels == 0, "input size is not a multiple of channels");
    const size_t rows = x.size() / channels;
    require_size(out, rows * words_for(channels), "out");
    nb::gil_scoped_release g;
    pack_rows_i8(x.data(), rows, channels, out.data(), nthreads);
  }, nb::arg("x"), nb::arg("channels"), nb::arg("out"), nb::arg("num_threads") = 0);
  m.def("unpack_f32", [](In<uint64_t> p, int channels, Out<float> out) {
    require(channels > 0 && p.size() % words_for(channels) == 0, "packed size mismatch");
    const size_t rows = p.size() / words_for(channels);
    require_size(out, rows * channels, "out");
    unpack_rows_f32(p.data(), rows, channels, out.data());
  });
  m.def("unpack_i8", [](In<uint64_t> p, int channels, Out<int8_t> out) {
    require(channels > 0 && p.size() % words_for(channels) == 0, "packed size mismatch");
    const size_t rows = p.size() / words_for(channels);
    require_size(out, rows * channels, "out");
    unpack_rows_i8(p.data(), rows, channels, out.data());
  });

  // ---- binary weights ------------------------------------------------------
  nb::class_<PackedWeights>(m, "PackedWeights",
                            "Binary filters packed for the micro-kernels (opaque).")
      .def_ro("out_channels", &PackedWeights::oc)
      .def_ro("kernel_h", &PackedWeights::kh)
      .def_ro("kernel_w", &PackedWeights::kw)
      .def_ro("in_channels_per_group", &PackedWeights::cin_g)
      .def_ro("groups", &PackedWeights::groups)
      .def_prop_ro("nbytes", [](const PackedWeights& w) {
        return w.blocks.size() * 8 + w.wsum.size() * 4 + w.ohwi.size() * 8 + w.lanes.size() * 8 +
               w.lane_wsum.size() * 4 + w.lane_moves.size() * sizeof(LaneMove);
      })
      .def("__repr__", [](const PackedWeights& w) {
        return "PackedWeights(out_channels=" + std::to_string(w.oc) + ", kernel=(" +
               std::to_string(w.kh) + ", " + std::to_string(w.kw) +
               "), in_channels_per_group=" + std::to_string(w.cin_g) +
               ", groups=" + std::to_string(w.groups) + ")";
      });
  m.def("pack_weights_ohwi", [](In<float> w, int groups) {
    require(w.ndim() == 4, "weights must be 4-D OHWI");
    const int oc = static_cast<int>(w.shape(0)), kh = static_cast<int>(w.shape(1)),
              kw = static_cast<int>(w.shape(2)), ci = static_cast<int>(w.shape(3));
    require(oc > 0 && kh > 0 && kw > 0 && ci > 0, "weights must not be empty");
    require(groups > 0 && oc % groups == 0, "groups must divide out_channels");
    nb::gil_scoped_release g;
    return pack_weights_ohwi(w.data(), oc, kh, kw, ci, groups);
  }, nb::arg("w"), nb::arg("groups") = 1);
  m.def("pack_weights_bits", [](In<uint64_t> bits, int cin_g, int groups) {
    require(bits.ndim() == 4, "packed weights must be 4-D (O, kh, kw, words)");
    const int oc = static_cast<int>(bits.shape(0)), kh = static_cast<int>(bits.shape(1)),
              kw = static_cast<int>(bits.shape(2)), cw = static_cast<int>(bits.shape(3));
    require(oc > 0 && kh > 0 && kw > 0 && cin_g > 0, "weights must not be empty");
    require(cw == words_for(cin_g), "packed weights have " + std::to_string(cw) +
                                        " words per row, " + std::to_string(cin_g) +
                                        " channels need " + std::to_string(words_for(cin_g)));
    require(groups > 0 && oc % groups == 0, "groups must divide out_channels");
    const size_t rows = static_cast<size_t>(oc) * kh * kw;
    const uint64_t* src = bits.data();
    const int tail = cin_g % 64;
    if (tail) {
      const uint64_t pad_mask = ~((uint64_t{1} << tail) - 1);
      for (size_t r = 0; r < rows; ++r)
        require((src[r * cw + cw - 1] & pad_mask) == 0,
                "packed weights have padding bits set past channel " + std::to_string(cin_g));
    }
    std::vector<uint64_t> words(src, src + rows * cw);
    nb::gil_scoped_release g;
    return pack_weights_ohwi_words(std::move(words), oc, kh, kw, cin_g, groups);
  }, nb::arg("bits"), nb::arg("in_channels_per_group"), nb::arg("groups") = 1);

  // ---- binary conv ---------------------------------------------------------
  m.def("bconv2d", [](In<uint64_t> x, const PackedWeights& w, int in_channels,
                      std::tuple<int, int> stride, std::tuple<int, int, int, int> padding,
                      std::tuple<int, int> dilation, int pad_value, bool bits_out,
                      const std::string& act, std::optional<In<float>> mult,
                      std::optional<In<float>> bias, std::optional<In<float>> slope,
                      std::optional<In<int32_t>> thr, std::optional<In<uint8_t>> flip,
                      nb::ndarray<nb::c_contig, nb::device::cpu> out, int nthreads) {
    require(x.ndim() == 4, "input must be packed NHWC (4-D)");
    ConvParams p;
    p.n = static_cast<int>(x.shape(0));
    p.h = static_cast<int>(x.shape(1));
    p.w = static_cast<int>(x.shape(2));
    p.cin = in_channels;
    require(p.n > 0 && p.h > 0 && p.w > 0, "input must not be empty");
    require(in_channels > 0 && static_cast<int>(x.shape(3)) == words_for(in_channels),
            "packed input has " + std::to_string(x.shape(3)) + " words per pixel, " +
                std::to_string(in_channels) + " channels need " +
                std::to_string(words_for(in_channels)));
    p.groups = w.groups;
    require(in_channels == w.cin_g * w.groups,
            "in_channels " + std::to_string(in_channels) + " != weights' " +
                std::to_string(w.cin_g) + " x groups " + std::to_string(w.groups));
    p.kh = w.kh;
    p.kw = w.kw;
    p.oc = w.oc;
    // Dot products stay exact in float32 (the output stage relies on it).
    require(static_cast<int64_t>(w.kh) * w.kw * w.cin_g < (int64_t{1} << 24),
            "kernel_h * kernel_w * in_channels_per_group must be below 2^24");
    std::tie(p.sh, p.sw) = stride;
    std::tie(p.pt, p.pb, p.pl, p.pr) = padding;
    std::tie(p.dh, p.dw) = dilation;
    require(p.sh > 0 && p.sw > 0 && p.dh > 0 && p.dw > 0, "stride and dilation must be >= 1");
    require(p.pt >= 0 && p.pb >= 0 && p.pl >= 0 && p.pr >= 0, "padding must be >= 0");
    require(pad_value == 0 || pad_value == 1 || pad_value == -1, "pad_value must be +1, -1 or 0");
    p.pad = static_cast<PadValue>(pad_value);
    p.oh = out_size(p.h, p.pt, p.pb, p.kh, p.sh, p.dh);
    p.ow = out_size(p.w, p.pl, p.pr, p.kw, p.sw, p.dw);
    require(p.h + p.pt + p.pb >= p.dh * (p.kh - 1) + 1 && p.w + p.pl + p.pr >= p.dw * (p.kw - 1) + 1,
            "kernel (with dilation) is larger than the padded input");
    OutputStage os;
    os.kind = bits_out ? OutKind::kBits : OutKind::kFloat;
    os.act = parse_act(act);
    os.mult = opt_ptr(mult, p.oc, "multiplier");
    os.bias = opt_ptr(bias, p.oc, "bias");
    os.slope = opt_ptr(slope, p.oc, "prelu_slope");
    os.thr = opt_ptr(thr, p.oc, "threshold");
    os.flip = opt_ptr(flip, p.oc, "flip");
    require(os.act != Act::kPrelu || os.slope, "prelu needs prelu_slope");
    const size_t M = static_cast<size_t>(p.n) * p.oh * p.ow;
    if (bits_out) {
      require(out.dtype() == nb::dtype<uint64_t>(), "out must be uint64 for packed output");
      require_size(out, M * words_for(p.oc), "out");
    } else {
      require(out.dtype() == nb::dtype<float>(), "out must be float32");
      require_size(out, M * p.oc, "out");
    }
    nb::gil_scoped_release g;
    bconv2d(x.data(), w, p, os, out.data(), nthreads);
  }, nb::arg("x").noconvert(), nb::arg("w"), nb::arg("in_channels"), nb::arg("stride"), nb::arg("padding"),
     nb::arg("dilation"), nb::arg("pad_value"), nb::arg("bits_out"), nb::arg("activation"),
     nb::arg("multiplier").none(), nb::arg("bias").none(), nb::arg("slope").none(),
     nb::arg("threshold").none(), nb::arg("flip").none(), nb::arg("out"),
     nb::arg("num_threads") = 0);

  // ---- float ops ------------------------------------------------------------
  m.def("dense_f32", [](In<float> x, In<float> w, std::optional<In<float>> bias,
                        const std::string& act, std::optional<In<float>> slope, Out<float> out,
                        int nthreads) {
    require(x.ndim() == 2 && w.ndim() == 2, "dense: x must be (N, K), w (out, K)");
    const int M = static_cast<int>(x.shape(0)), K = static_cast<int>(x.shape(1));
    const int N = static_cast<int>(w.shape(0));
    require(static_cast<int>(w.shape(1)) == K, "dense: w has " + std::to_string(w.shape(1)) +
                                                   " inputs, x has " + std::to_string(K));
    require_size(out, static_cast<size_t>(M) * N, "out");
    const Act a = parse_act(act);
    const float* b = opt_ptr(bias, N, "bias");
    const float* s = opt_ptr(slope, N, "prelu_slope");
    require(a != Act::kPrelu || s, "prelu needs prelu_slope");
    nb::gil_scoped_release g;
    sgemm(M, N, K, x.data(), K, w.data(), 1, K, out.data(), N, b, a, s, nthreads);
  });
  m.def("conv2d_f32", [](In<float> x, In<float> w, std::optional<In<float>> bias,
                         std::tuple<int, int> stride, std::tuple<int, int, int, int> padding,
                         std::tuple<int, int> dilation, const std::string& act,
                         std::optional<In<float>> slope, Out<float> out, int nthreads) {
    require(x.ndim() == 4 && w.ndim() == 4, "conv2d_f32: x must be NHWC, w OHWI");
    PoolParams p;
    p.n = static_cast<int>(x.shape(0));
    p.h = static_cast<int>(x.shape(1));
    p.w = static_cast<int>(x.shape(2));
    p.c = static_cast<int>(x.shape(3));
    const int oc = static_cast<int>(w.shape(0));
    p.kh = static_cast<int>(w.shape(1));
    p.kw = static_cast<int>(w.shape(2));
    require(static_cast<int>(w.shape(3)) == p.c, "conv2d_f32: weights have " +
                                                     std::to_string(w.shape(3)) +
                                                     " input channels, x has " +
                                                     std::to_string(p.c));
    int dh, dw;
    std::tie(p.sh, p.sw) = stride;
    std::tie(p.pt, p.pb, p.pl, p.pr) = padding;
    std::tie(dh, dw) = dilation;
    require(p.sh > 0 && p.sw > 0 && dh > 0 && dw > 0, "stride and dilation must be >= 1");
    require(p.pt >= 0 && p.pb >= 0 && p.pl >= 0 && p.pr >= 0, "padding must be >= 0");
    require(p.h + p.pt + p.pb >= dh * (p.kh - 1) + 1 && p.w + p.pl + p.pr >= dw * (p.kw - 1) + 1,
            "kernel (with dilation) is larger than the padded input");
    p.oh = out_size(p.h, p.pt, p.pb, p.kh, p.sh, dh);
    p.ow = out_size(p.w, p.pl, p.pr, p.kw, p.sw, dw);
    require_size(out, static_cast<size_t>(p.n) * p.oh * p.ow * oc, "out");
    const Act a = parse_act(act);
    const float* b = opt_ptr(bias, oc, "bias");
    const float* s = opt_ptr(slope, oc, "prelu_slope");
    require(a != Act::kPrelu || s, "prelu needs prelu_slope");
    nb::gil_scoped_release g;
    conv2d_f32(x.data(), w.data(), b, p, oc, dh, dw, a, s, out.data(), nthreads);
  });

  m.def("depthwise_conv2d_f32", [](In<float> x, In<float> w, std::optional<In<float>> bias,
                                   std::tuple<int, int> stride,
                                   std::tuple<int, int, int, int> padding,
                                   std::tuple<int, int> dilation, const std::string& act,
                                   std::optional<In<float>> slope, Out<float> out, int nthreads) {
    require(x.ndim() == 4 && w.ndim() == 3, "depthwise_conv2d_f32: x must be NHWC, w (kh, kw, C)");
    PoolParams p;
    p.n = static_cast<int>(x.shape(0));
    p.h = static_cast<int>(x.shape(1));
    p.w = static_cast<int>(x.shape(2));
    p.c = static_cast<int>(x.shape(3));
    p.kh = static_cast<int>(w.shape(0));
    p.kw = static_cast<int>(w.shape(1));
    require(static_cast<int>(w.shape(2)) == p.c, "depthwise_conv2d_f32: weights have " +
                                                     std::to_string(w.shape(2)) +
                                                     " channels, x has " + std::to_string(p.c));
    int dh, dw;
    std::tie(p.sh, p.sw) = stride;
    std::tie(p.pt, p.pb, p.pl, p.pr) = padding;
    std::tie(dh, dw) = dilation;
    require(p.sh > 0 && p.sw > 0 && dh > 0 && dw > 0, "stride and dilation must be >= 1");
    require(p.pt >= 0 && p.pb >= 0 && p.pl >= 0 && p.pr >= 0, "padding must be >= 0");
    require(p.h + p.pt + p.pb >= dh * (p.kh - 1) + 1 && p.w + p.pl + p.pr >= dw * (p.kw - 1) + 1,
            "kernel (with dilation) is larger than the padded input");
    p.oh = out_size(p.h, p.pt, p.pb, p.kh, p.sh, dh);
    p.ow = out_size(p.w, p.pl, p.pr, p.kw, p.sw, dw);
    require_size(out, static_cast<size_t>(p.n) * p.oh * p.ow * p.c, "out");
    const Act a = parse_act(act);
    const float* b = opt_ptr(bias, p.c, "bias");
    const float* s = opt_ptr(slope, p.c, "prelu_slope");
    require(a != Act::kPrelu || s, "prelu needs prelu_slope");
    nb::gil_scoped_release g;
    depthwise_conv2d_f32(x.data(), w.data(), b, p, dh, dw, a, s, out.data(), nthreads);
  });

  auto pool_params = [](size_t ndim, const int64_t* shape, int channels,
                        std::tuple<int, int> kernel, std::tuple<int, int> stride,
                        std::tuple<int, int, int, int> padding) {
    require(ndim == 4, "pooling input must be 4-D NHWC");
    PoolParams p;
    p.n = static_cast<int>(shape[0]);
    p.h = static_cast<int>(shape[1]);
    p.w = static_cast<int>(shape[2]);
    p.c = channels;
    std::tie(p.kh, p.kw) = kernel;
    std::tie(p.sh, p.sw) = stride;
    std::tie(p.pt, p.pb, p.pl, p.pr) = padding;
    require(p.kh > 0 && p.kw > 0 && p.sh > 0 && p.sw > 0, "kernel and stride must be >= 1");
    require(p.pt >= 0 && p.pb >= 0 && p.pl >= 0 && p.pr >= 0, "padding must be >= 0");
    require(2 * p.pt <= p.kh && 2 * p.pb <= p.kh && 2 * p.pl <= p.kw && 2 * p.pr <= p.kw,
            "padding must be at most half the kernel size");
    require(p.h + p.pt + p.pb >= p.kh && p.w + p.pl + p.pr >= p.kw,
            "pooling window is larger than the padded input");
    p.oh = out_size(p.h, p.pt, p.pb, p.kh, p.sh, 1);
    p.ow = out_size(p.w, p.pl, p.pr, p.kw, p.sw, 1);
    return p;
  };
  m.def("maxpool_packed", [pool_params](In<uint64_t> x, int channels, std::tuple<int, int> k,
                                        std::tuple<int, int> s,
                                        std::tuple<int, int, int, int> pad, Out<uint64_t> out,
                                        int nthreads) {
    PoolParams p = pool_params(x.ndim(), x.shape_ptr(), channels, k, s, pad);
    require(channels > 0 && static_cast<int>(x.shape(3)) == words_for(channels),
            "packed input words per pixel do not match channels");
    require_size(out, static_cast<size_t>(p.n) * p.oh * p.ow * words_for(channels), "out");
    nb::gil_scoped_release g;
    maxpool_packed(x.data(), p, out.data(), nthreads);
  });
  m.def("maxpool_f32", [pool_params](In<float> x, std::tuple<int, int> k, std::tuple<int, int> s,
                                     std::tuple<int, int, int, int> pad, Out<float> out,
                                     int nthreads) {
    require(x.ndim() == 4, "pooling input must be 4-D NHWC");
    PoolParams p = pool_params(x.ndim(), x.shape_ptr(), static_cast<int>(x.shape(3)), k, s, pad);
    require_size(out, static_cast<size_t>(p.n) * p.oh * p.ow * p.c, "out");
    nb::gil_scoped_release g;
    maxpool_f32(x.data(), p, out.data(), nthreads);
  });
  m.def("avgpool_f32", [pool_params](In<float> x, std::tuple<int, int> k, std::tuple<int, int> s,
                                     std::tuple<int, int, int, int> pad, bool include_pad,
                                     Out<float> out, int nthreads) {
    require(x.ndim() == 4, "pooling input must be 4-D NHWC");
    PoolParams p = pool_params(x.ndim(), x.shape_ptr(), static_cast<int>(x.shape(3)), k, s, pad);
    require_size(out, static_cast<size_t>(p.n) * p.oh * p.ow * p.c, "out");
    nb::gil_scoped_release g;
    avgpool_f32(x.data(), p, include_pad, out.data(), nthreads);
  });
}
