#include "engine/op.h"

#include "cpu_features.h"
#include "dispatch.h"
#include "pack/pack.h"

#include <cmath>
#include <cstring>
#include <stdexcept>

namespace onebit {

AttrSpec Int(const char* name, int64_t min, int64_t max, const char* doc) {
  AttrSpec s{name, AttrKind::kInt, true};
  s.min = min, s.max = max, s.doc = doc;
  return s;
}
AttrSpec Int(const char* name, int64_t min, int64_t max, int64_t def, const char* doc) {
  AttrSpec s = Int(name, min, max, doc);
  s.required = false, s.def_real = static_cast<double>(def);
  return s;
}
AttrSpec Ints(const char* name, int count, int64_t min, int64_t max, const char* doc) {
  AttrSpec s{name, AttrKind::kInts, true};
  s.min = min, s.max = max, s.count = count, s.doc = doc;
  return s;
}
AttrSpec Real(const char* name, const char* doc) {
  AttrSpec s{name, AttrKind::kReal, true};
  s.doc = doc;
  return s;
}
AttrSpec Real(const char* name, double def, const char* doc) {
  AttrSpec s = Real(name, doc);
  s.required = false, s.def_real = def;
  return s;
}
AttrSpec Bool(const char* name, bool def, const char* doc) {
  AttrSpec s{name, AttrKind::kBool, false};
  s.def_real = def ? 1 : 0, s.doc = doc;
  return s;
}
AttrSpec Enum(const char* name, const char* choices, const char* def, const char* doc) {
  AttrSpec s{name, AttrKind::kEnum, def == nullptr};
  s.choices = choices, s.def_enum = def ? def : "", s.doc = doc;
  return s;
}

namespace {

std::string node_where(const NodeDesc& node, size_t index) {
  std::string w = "node " + std::to_string(index) + " (" + node.op + " '" + node.output + "'";
  if (!node.source.empty() && node.source != node.output) w += " from module '" + node.source + "'";
  return w + ")";
}

bool enum_has(const char* choices, const std::string& v) {
  std::string_view c(choices);
  while (!c.empty()) {
    const size_t bar = c.find('|');
    if (c.substr(0, bar) == v) return true;
    if (bar == std::string_view::npos) break;
    c.remove_prefix(bar + 1);
  }
  return false;
}

const AttrSpec* spec_of(const OpDef& def, std::string_view name) {
  for (const AttrSpec& s : def.attrs)
    if (name == s.name) return &s;
  return nullptr;
}

}  // namespace

void check_node_schema(const OpDef& def, const NodeDesc& node, size_t index, const ModelFile& file) {
  auto fail = [&](const std::string& msg) { throw FormatError(node_where(node, index) + ": " + msg); };
  const int nin = static_cast<int>(node.inputs.size());
  if (nin < def.min_inputs || nin > def.max_inputs)
    fail("takes " + (def.min_inputs == def.max_inputs ? std::to_string(def.min_inputs)
                                                      : std::to_string(def.min_inputs) + " to " +
                                                            std::to_string(def.max_inputs)) +
         " inputs, has " + std::to_string(nin));
  if (node.attrs) {
    for (const auto& [name, v] : node.attrs->as_object()) {
      const AttrSpec* s = spec_of(def, name);
      if (!s) fail("unknown attribute '" + name + "'");
      const std::string what = "attribute '" + name + "'";
      auto in_range = [&](const json::Value& x) {
        if (!x.is_integer() || x.as_int() < s->min || x.as_int() > s->max)
          fail(what + " must be integers in [" + std::to_string(s->min) + ", " +
               std::to_string(s->max) + "]");
      };
      switch (s->kind) {
        case AttrKind::kInt: in_range(v); break;
        case AttrKind::kInts:
          if (!v.is_array() || static_cast<int>(v.size()) != s->count)
            fail(what + " must be a list of " + std::to_string(s->count) + " integers");
          for (const json::Value& x : v.as_array()) in_range(x);
          break;
        case AttrKind::kReal:
          if (!v.is_number() || !std::isfinite(v.as_double())) fail(what + " must be a finite number");
          break;
        case AttrKind::kBool:
          if (!v.is_bool()) fail(what + " must be true or false");
          break;
        case AttrKind::kEnum:
          if (!v.is_string() || !enum_has(s->choices, v.as_string()))
            fail(what + " must be one of " + s->choices);
          break;
      }
    }
  }
  for (const AttrSpec& s : def.attrs)
    if (s.required && !(node.attrs && node.attrs->find(s.name)))
      fail("lacks required attribute '" + std::string(s.name) + "'");
  for (const auto& [role, tensor] : node.params) {
    bool known = false;
    for (const ParamSpec& p : def.params) known |= role == p.role;
    if (!known) fail("unknown parameter '" + role + "'");
    (void)tensor;
  }
  for (const ParamSpec& p : def.params) {
    if (!p.required) continue;
    bool present = false;
    for (const auto& kv : node.params) present |= kv.first == p.role;
    if (!present) fail("lacks its '" + std::string(p.role) + "' tensor");
  }
  (void)file;
}

BuildCtx::BuildCtx(const ModelFile& file, const NodeDesc& node, size_t index, const OpDef& def,
                   std::vector<ValueInfo> inputs, FloatPrecision precision)
    : file_(file), node_(node), index_(index), def_(def), inputs_(std::move(inputs)), precision_(precision) {}

const char* float_precision_name(FloatPrecision p) {
  switch (p) {
    case FloatPrecision::kFp32: return "fp32";
    case FloatPrecision::kBf16: return "bf16";
    case FloatPrecision::kBf16Emulated: return "bf16_emulated";
    case FloatPrecision::kInt8: return "int8";
    case FloatPrecision::kInt8Emulated: return "int8_emulated";
  }
  return "unknown";
}

FloatPrecision parse_float_precision(const std::string& name) {
  if (name == "fp32") return FloatPrecision::kFp32;
  if (name == "bf16") return FloatPrecision::kBf16;
  if (name == "bf16_emulated") return FloatPrecision::kBf16Emulated;
  if (name == "int8") return FloatPrecision::kInt8;
  if (name == "int8_emulated") return FloatPrecision::kInt8Emulated;
  throw std::invalid_argument("unknown float_precision '" + name +
                              "': expected one of fp32, bf16, bf16_emulated, int8, int8_emulated");
}

void check_float_precision_supported(FloatPrecision p) {
  if (p != FloatPrecision::kBf16 && p != FloatPrecision::kInt8) return;
  const bool bf16 = p == FloatPrecision::kBf16;
  const std::string name = bf16 ? "bf16" : "int8";
  if (!(bf16 ? cpu_features().avx512bf16 : cpu_features().avx512vnni) || !isa_supported(Isa::kAvx512))
    throw std::invalid_argument(
        "float_precision '" + name + "' needs the CPU feature " +
        (bf16 ? "AVX512_BF16 (VDPBF16PS)" : "AVX512_VNNI (VPDPBUSD)") + " on the avx512 path, which this CPU lacks "
        "(it has: " + cpu_features_string() + "); '" + name + "_emulated' computes the same results in "
        "portable code (slower than fp32), 'fp32' is the default");
  if (active_simd_isa() != Isa::kAvx512)
    throw std::invalid_argument(
        "float_precision '" + name + "' runs " + (bf16 ? "AVX512-BF16" : "AVX512-VNNI") +
        " kernels, part of the avx512 path, but the instruction set in force is '" + isa_name(active_isa()) +
        "' (ONEBIT_ISA or set_isa); '" + name + "_emulated' computes the same results on any path");
}

void BuildCtx::fail(const std::string& msg) const {
  throw FormatError(node_where(node_, index_) + ": " + msg);
}

const json::Value* BuildCtx::attr(const char* name) const {
  return node_.attrs ? node_.attrs->find(name) : nullptr;
}

int64_t BuildCtx::attr_int(const char* name) const {
  const json::Value* v = attr(name);
  if (v) return v->as_int();
  const AttrSpec* s = spec_of(def_, name);
  return s ? static_cast<int64_t>(s->def_real) : 0;
}

std::vector<int64_t> BuildCtx::attr_ints(const char* name) const {
  std::vector<int64_t> out;
  if (const json::Value* v = attr(name))
    for (const json::Value& x : v->as_array()) out.push_back(x.as_int());
  return out;
}

double BuildCtx::attr_real(const char* name) const {
  const json::Value* v = attr(name);
  if (v) return v->as_double();
  const AttrSpec* s = spec_of(def_, name);
  return s ? s->def_real : 0;
}

bool BuildCtx::attr_bool(const char* name) const {
  const json::Value* v = attr(name);
  if (v) return v->as_bool();
  const AttrSpec* s = spec_of(def_, name);
  return s && s->def_real != 0;
}

std::string BuildCtx::attr_enum(const char* name) const {
  const json::Value* v = attr(name);
  if (v) return v->as_string();
  const AttrSpec* s = spec_of(def_, name);
  return s ? s->def_enum : "";
}

bool BuildCtx::has_param(const char* role) const {
  for (const auto& kv : node_.params)
    if (kv.first == role) return true;
  return false;
}

const TensorRef& BuildCtx::param(const char* role) const {
  for (const auto& kv : node_.params)
    if (kv.first == role) return file_.tensors.at(kv.second);
  fail("lacks its '" + std::string(role) + "' tensor");
}

namespace {
float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: normalize
      int e = -1;
      uint32_t m = man;
      do { ++e; m <<= 1; } while (!(m & 0x400));
      bits = sign | static_cast<uint32_t>(127 - 15 - e) << 23 | (m & 0x3ff) << 13;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | man << 13;
  } else {
    bits = sign | (exp + 127 - 15) << 23 | man << 13;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
}  // namespace

std::vector<float> BuildCtx::param_f32(const char* role, int64_t count) const {
  const TensorRef& t = param(role);
  if (t.logical_count() != count)
    fail("'" + std::string(role) + "' tensor has " + std::to_string(t.logical_count()) + " values, needs " +
         std::to_string(count));
  std::vector<float> out(static_cast<size_t>(count));
  if (t.packed_sign) {  // +-1 weights stored at 1 bit each (binary-weight layers)
    const int64_t c = t.channels, rows = count / c;
    unpack_rows_f32(reinterpret_cast<const uint64_t*>(t.data), static_cast<size_t>(rows), static_cast<int>(c),
                    out.data());
  } else if (t.dtype == TensorDType::kFloat32) {
    std::memcpy(out.data(), t.data, t.nbytes);
  } else if (t.dtype == TensorDType::kFloat16) {
    for (int64_t i = 0; i < count; ++i) {
      uint16_t h;
      std::memcpy(&h, t.data + 2 * i, 2);
      out[i] = half_to_float(h);
    }
  } else {
    fail("'" + std::string(role) + "' tensor must be float32 or float16, is " + dtype_name(t.dtype));
  }
  return out;
}

std::vector<int32_t> BuildCtx::param_i32(const char* role, int64_t count) const {
  const TensorRef& t = param(role);
  if (t.count != count)
    fail("'" + std::string(role) + "' tensor has " + std::to_string(t.count) + " values, needs " +
         std::to_string(count));
  if (t.dtype != TensorDType::kInt32)
    fail("'" + std::string(role) + "' tensor must be int32, is " + dtype_name(t.dtype));
  std::vector<int32_t> out(static_cast<size_t>(count));
  std::memcpy(out.data(), t.data, t.nbytes);
  return out;
}

void BuildCtx::require_input(size_t i, DType dtype, int rank) const {
  const ValueInfo& v = inputs_.at(i);
  const char* names[] = {"float", "binary"};
  if (v.dtype != dtype)
    fail("input " + std::to_string(i) + " must be " + names[static_cast<int>(dtype)] + ", is " +
         names[static_cast<int>(v.dtype)]);
  if (rank && v.rank != rank)
    fail("input " + std::to_string(i) + " must be " + std::to_string(rank) + "-D, is " +
         std::to_string(v.rank) + "-D");
}

void BuildCtx::check_output() const {
  if (out.h < 1 || out.w < 1 || out.c < 1) fail("output would be empty");
  if (out.h > kMaxSpatial || out.w > kMaxSpatial)
    fail("output is " + std::to_string(out.h) + " x " + std::to_string(out.w) +
         ", above the limit of " + std::to_string(kMaxSpatial));
  if (out.c > (out.rank == 2 ? (int64_t{1} << 28) : kMaxChannels))
    fail("output has " + std::to_string(out.c) + " channels, above the limit");
  if (out.sample_bytes() > kMaxSampleBytes)
    fail("output needs " + std::to_string(out.sample_bytes()) + " bytes per sample");
}

int64_t window_out(int64_t size, int64_t pad_a, int64_t pad_b, int64_t kernel, int64_t stride,
                   int64_t dilation) {
  const int64_t span = size + pad_a + pad_b - dilation * (kernel - 1) - 1;
  if (span < 0) return -1;
  return span / stride + 1;
}

}  // namespace onebit
