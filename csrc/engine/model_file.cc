#include "engine/model_file.h"

#include <cstring>
#include <fstream>
#include <set>

#include "engine/errors.h"
#include "engine/sha256.h"

namespace onebit {
namespace {

constexpr char kMagic[8] = {'\x89', 'O', 'N', 'E', 'B', 'I', 'T', '\n'};
constexpr size_t kHeader = 64, kDigest = 32, kAlign = 64;
constexpr int64_t kMaxDim = int64_t{1} << 31;

[[noreturn]] void fail(const std::string& msg) { throw FormatError(msg); }

uint32_t u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;  // the format is little-endian, as is every CPU the engine builds for
}
uint64_t u64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

const json::Value& member(const json::Value& obj, const char* key, const std::string& where) {
  const json::Value* v = obj.find(key);
  if (!v) fail(where + " lacks '" + key + "'");
  return *v;
}

const std::string& string_of(const json::Value& v, const std::string& what) {
  if (!v.is_string()) fail(what + " must be a string");
  return v.as_string();
}

int64_t int_of(const json::Value& v, const std::string& what, int64_t lo, int64_t hi) {
  if (!v.is_integer()) fail(what + " must be an integer");
  const int64_t x = v.as_int();
  if (x < lo || x > hi)
    fail(what + " is " + std::to_string(x) + ", outside [" + std::to_string(lo) + ", " +
         std::to_string(hi) + "]");
  return x;
}

TensorDType parse_dtype(const std::string& s, const std::string& what) {
  if (s == "float32") return TensorDType::kFloat32;
  if (s == "float16") return TensorDType::kFloat16;
  if (s == "uint64") return TensorDType::kUint64;
  if (s == "int32") return TensorDType::kInt32;
  if (s == "uint8") return TensorDType::kUint8;
  if (s == "int8") return TensorDType::kInt8;
  fail(what + ": unknown dtype '" + s + "'");
}

IoDesc parse_io(const json::Value& list, const char* key) {
  if (!list.is_array() || list.size() != 1)
    fail(std::string("the engine runs models with one input and one output ('") + key +
         "' must list exactly one)");
  const json::Value& spec = list.as_array()[0];
  const std::string where = std::string(key) + "[0]";
  if (!spec.is_object()) fail(where + " must be an object");
  IoDesc io;
  io.name = string_of(member(spec, "name", where), where + ".name");
  const json::Value& shape = member(spec, "shape", where);
  if (!shape.is_array() || (shape.size() != 2 && shape.size() != 4))
    fail(where + ".shape must be [N, C] or [N, C, H, W]");
  const auto& dims = shape.as_array();
  for (size_t i = 0; i < dims.size(); ++i) {
    // Batch may be recorded as -1; C, H, W are bounded so that every value stays small.
    const int64_t lo = i == 0 ? -1 : 1;
    const int64_t hi = i == 0 ? kMaxDim : i == 1 ? (int64_t{1} << 28) : 16384;
    io.shape.push_back(int_of(dims[i], where + ".shape[" + std::to_string(i) + "]", lo, hi));
  }
  if (io.shape[0] == 0) fail(where + ".shape[0] (batch) must not be 0");
  return io;
}

}  // namespace

size_t dtype_size(TensorDType t) {
  switch (t) {
    case TensorDType::kFloat32: case TensorDType::kInt32: return 4;
    case TensorDType::kFloat16: return 2;
    case TensorDType::kUint64: return 8;
    default: return 1;
  }
}

const char* dtype_name(TensorDType t) {
  switch (t) {
    case TensorDType::kFloat32: return "float32";
    case TensorDType::kFloat16: return "float16";
    case TensorDType::kUint64: return "uint64";
    case TensorDType::kInt32: return "int32";
    case TensorDType::kUint8: return "uint8";
    default: return "int8";
  }
}

namespace {

void check_size(uint64_t size, const ReadOptions& opts) {
  if (size < kHeader + kDigest)
    fail("file is truncated (" + std::to_string(size) + " bytes, smaller than any .onebit file)");
  if (size > opts.max_file_bytes)
    fail("file is " + std::to_string(size) + " bytes, above the limit of " +
         std::to_string(opts.max_file_bytes) + " (raise max_file_bytes to load it)");
}

// Validates mf->bytes (the whole file, already in place) and fills in the rest.
std::unique_ptr<ModelFile> parse(std::unique_ptr<ModelFile> mf, const ReadOptions& opts);

}  // namespace

std::unique_ptr<ModelFile> read_model_buffer(const void* data, size_t size, const ReadOptions& opts) {
  if (!data && size) fail("no data");
  check_size(size, opts);
  auto mf = std::make_unique<ModelFile>();
  mf->bytes.assign(static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + size);
  return parse(std::move(mf), opts);
}

namespace {

std::unique_ptr<ModelFile> parse(std::unique_ptr<ModelFile> mf, const ReadOptions& opts) {
  const size_t size = mf->bytes.size();
  const uint8_t* b = mf->bytes.data();
  if (std::memcmp(b, kMagic, 8) != 0) fail("not a .onebit file (bad magic bytes)");
  const uint32_t version = u32(b + 8);
  if (version != kFormatVersion)
    fail("format version " + std::to_string(version) +
         " is not supported by this onebit (reads version 1); re-export the model or upgrade onebit");
  const uint64_t js_off = u64(b + 16), js_len = u64(b + 24), data_off = u64(b + 32),
                 data_len = u64(b + 40);
  // All in 64-bit with explicit bounds, so no sum below can wrap.
  if (js_off != kHeader || js_len > size || data_off > size || data_len > size ||
      data_off % kAlign || data_off < js_off + js_len)
    fail("corrupted header (section offsets are inconsistent)");
  const uint64_t expected = data_off + data_len + kDigest;
  if (expected != size)
    fail(std::string("file is ") + (size < expected ? "truncated" : "has trailing bytes") + ": " +
         std::to_string(size) + " bytes, header says " + std::to_string(expected));
  if (opts.verify_checksum) {
    const auto digest = sha256(b, size - kDigest);
    if (std::memcmp(digest.data(), b + size - kDigest, kDigest) != 0)
      fail("checksum mismatch: the file is corrupted");
  }
  mf->meta_json.assign(reinterpret_cast<const char*>(b + js_off), js_len);
  try {
    mf->meta = json::parse(mf->meta_json);
  } catch (const json::ParseError& e) {
    fail(std::string("graph description is not valid JSON (") + e.what() + ")");
  }
  const json::Value& meta = mf->meta;
  if (!meta.is_object()) fail("graph description is not a JSON object");
  const json::Value& nodes = member(meta, "nodes", "graph description");
  const json::Value& tensors = member(meta, "tensors", "graph description");
  if (!nodes.is_array()) fail("graph description: 'nodes' must be a list");
  if (!tensors.is_object()) fail("graph description: 'tensors' must be an object");
  mf->input = parse_io(member(meta, "inputs", "graph description"), "inputs");
  mf->output = parse_io(member(meta, "outputs", "graph description"), "outputs");

  // Tensors: every blob inside the data section, its size matching dtype x shape.
  const uint8_t* blob_base = b + data_off;
  for (const auto& [name, spec] : tensors.as_object()) {
    const std::string where = "tensor '" + name + "'";
    if (!spec.is_object()) fail(where + " must be an object");
    TensorRef t;
    t.name = name;
    t.dtype = parse_dtype(string_of(member(spec, "dtype", where), where + ".dtype"), where);
    const json::Value& shape = member(spec, "shape", where);
    if (!shape.is_array() || shape.size() > 8) fail(where + ".shape must be a list of at most 8 dims");
    int64_t count = 1;
    for (const json::Value& d : shape.as_array()) {
      const int64_t x = int_of(d, where + ".shape", 0, kMaxDim);
      t.shape.push_back(x);
      if (x && count > (int64_t{1} << 40) / x) fail(where + " has too many elements");
      count *= x;
    }
    t.count = count;
    const uint64_t off = static_cast<uint64_t>(int_of(member(spec, "offset", where), where + ".offset", 0,
                                                      int64_t{1} << 62));
    const uint64_t nbytes = static_cast<uint64_t>(
        int_of(member(spec, "nbytes", where), where + ".nbytes", 0, int64_t{1} << 62));
    if (nbytes != static_cast<uint64_t>(count) * dtype_size(t.dtype))
      fail(where + ": " + std::to_string(nbytes) + " bytes do not hold " + std::to_string(count) +
           " " + dtype_name(t.dtype) + " values");
    if (off % kAlign) fail(where + ": offset " + std::to_string(off) + " is not 64-byte aligned");
    if (off > data_len || nbytes > data_len - off)
      fail(where + ": bytes [" + std::to_string(off) + ", " + std::to_string(off + nbytes) +
           ") lie outside the data section (" + std::to_string(data_len) + " bytes)");
    t.data = blob_base + off;
    t.nbytes = nbytes;
    mf->tensors.emplace(name, std::move(t));
  }
  if (const json::Value* enc = meta.find("encodings")) {
    if (!enc->is_object()) fail("'encodings' must be an object");
    for (const auto& [name, spec] : enc->as_object()) {
      const std::string where = "encoding of tensor '" + name + "'";
      auto it = mf->tensors.find(name);
      if (it == mf->tensors.end()) fail(where + ": no such tensor");
      if (!spec.is_object()) fail(where + " must be an object");
      const std::string& kind = string_of(member(spec, "encoding", where), where + ".encoding");
      TensorRef& t = it->second;
      if (kind == "packed_sign") {
        const int64_t ch = int_of(member(spec, "channels", where), where + ".channels", 1, kMaxDim - 1);
        if (t.dtype != TensorDType::kUint64 || t.shape.empty() || t.shape.back() != (ch + 63) / 64)
          fail(where + ": a packed_sign tensor of " + std::to_string(ch) +
               " channels must be uint64 with " + std::to_string((ch + 63) / 64) + " words last");
        t.packed_sign = true;
        t.channels = ch;
      } else if (kind == "fp16") {
        if (t.dtype != TensorDType::kFloat16) fail(where + ": an fp16 tensor must be float16");
      } else {
        fail(where + ": unknown encoding '" + kind + "'");
      }
    }
  }

  // Nodes: each reads only values defined before it, each value is defined once.
  std::set<std::string> defined{mf->input.name};
  size_t i = 0;
  for (const json::Value& n : nodes.as_array()) {
    const std::string where = "node " + std::to_string(i);
    if (!n.is_object()) fail(where + " is not an object");
    NodeDesc d;
    d.op = string_of(member(n, "op", where), where + ".op");
    const std::string wop = where + " (" + d.op + ")";
    const json::Value& ins = member(n, "inputs", wop);
    const json::Value& outs = member(n, "outputs", wop);
    if (!ins.is_array() || !outs.is_array() || outs.size() != 1)
      fail(wop + " must have a list of inputs and exactly one output");
    for (const json::Value& v : ins.as_array()) {
      const std::string& name = string_of(v, wop + " input name");
      if (!defined.count(name)) fail(wop + " reads '" + name + "' before it is defined");
      d.inputs.push_back(name);
    }
    d.output = string_of(outs.as_array()[0], wop + " output name");
    if (!defined.insert(d.output).second)
      fail(wop + " redefines value '" + d.output + "' (every value is defined exactly once)");
    if (const json::Value* a = n.find("attrs")) {
      if (!a->is_object()) fail(wop + ": 'attrs' must be an object");
      d.attrs = a;
    }
    if (const json::Value* p = n.find("params")) {
      if (!p->is_object()) fail(wop + ": 'params' must be an object");
      for (const auto& [role, tname] : p->as_object()) {
        const std::string& t = string_of(tname, wop + " param '" + role + "'");
        if (!mf->tensors.count(t)) fail(wop + " uses missing tensor '" + t + "'");
        d.params.emplace_back(role, t);
      }
    }
    if (const json::Value* s = n.find("source"); s && s->is_string()) d.source = s->as_string();
    mf->nodes.push_back(std::move(d));
    ++i;
  }
  if (!defined.count(mf->output.name)) fail("output '" + mf->output.name + "' is never computed");
  if (mf->output.name == mf->input.name) fail("the output is the input (the graph computes nothing)");
  return mf;
}

}  // namespace

std::unique_ptr<ModelFile> read_model_path(const std::string& path, const ReadOptions& opts) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw std::runtime_error("model file not found or unreadable: " + path);
  const std::streamoff size = f.tellg();
  if (size < 0) throw std::runtime_error("cannot read " + path);
  check_size(static_cast<uint64_t>(size), opts);
  // Read straight into the aligned buffer the tensors are used from (no second copy).
  auto mf = std::make_unique<ModelFile>();
  mf->bytes.resize(static_cast<size_t>(size));
  f.seekg(0);
  if (!f.read(reinterpret_cast<char*>(mf->bytes.data()), size)) throw std::runtime_error("cannot read " + path);
  return parse(std::move(mf), opts);
}

}  // namespace onebit
