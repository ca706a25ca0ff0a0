// Structure-aware fuzzer for the .onebit loader and run() (csrc/engine/).
//
// Inputs are .onebit files. The mutator parses one (header, JSON graph, data
// section), changes the JSON tree and the blobs the way a hostile or broken
// exporter would, re-serializes the JSON, lays the file out again with a
// correct header and a re-computed SHA-256, and hands it to
// onebit_model_load_ex (memory cap 256 MiB; one case in four with a reduced
// float_precision: bf16 / int8, emulated or, where the CPU and the path in force
// have them, native); a model that loads is run on
// batch 1 and batch 2 with random input. The engine must never crash, hang
// or trip a sanitizer, and every failure must be a clean error: load fails
// with ONEBIT_ERROR_FORMAT or ONEBIT_ERROR_MEMORY and a non-empty message.
//
// Two builds of this file:
//
// * libFuzzer (clang): LLVMFuzzerTestOneInput loads the bytes it is given;
//   LLVMFuzzerCustomMutator applies the structured mutations below (and
//   sometimes libFuzzer's byte mutations to the JSON text or the blobs).
//     cmake -S . -B build/libfuzzer -DCMAKE_CXX_COMPILER=clang++ -DONEBIT_PYTHON=OFF \
//       -DONEBIT_BUILD_TESTS=ON -DONEBIT_LIBFUZZER=ON \
//       -DONEBIT_EXTRA_FLAGS="-fsanitize=address,undefined,fuzzer-no-link;-fno-sanitize-recover=all"
//     build/libfuzzer/csrc/fuzz_engine_libfuzzer corpus/ tests/csrc/corpus/seeds -timeout=10
//   (benchmarks/fuzz_engine.sh does this.)
//
// * -DONEBIT_FUZZ_STANDALONE (any compiler; the csrc/CMakeLists.txt target
//   fuzz_engine): a main() with these modes
//     fuzz_engine [--cases N] [--time S] [--seed K] [--out DIR] FILES/DIRS...
//         N mutations of the given seeds (a pool of mutants that loaded is
//         mutated further), stopping after S seconds.
//     fuzz_engine --check [--expect expected.json] FILES/DIRS...
//         each file as a regression case: listed in expected.json as
//         {"expect": "format", "match": "..."} (a FormatError whose message
//         contains match), {"expect": "memory"} (the memory cap refuses it, at
//         load or at the run of "batch"), or {"expect": "clean"}; optional
//         "threads", "cap_mib", "batch" (an extra run). An unlisted file must
//         load and run.
//     fuzz_engine --type-sweep [--sweep-limit N] FILES...
//         every value of each file's JSON tree replaced by junk of each type.
//   Prints "N passed, M failed" last; exit status 1 on any failure. Failing
//   inputs are written to DIR (default .) as fail-<kind>-<hash>.onebit, also
//   when a sanitizer kills the process (death callback) or a case hangs
//   (watchdog: --hang-abort seconds, default 20).
//
// Failure criteria (each a "failure" with a reproducer):
// * a sanitizer report or crash (the process dies; reproducer crash-*.onebit);
// * a load or run failure with an empty onebit_last_error(), or a load failure
//   whose code is not FORMAT/MEMORY, or a run failure other than MEMORY (an
//   escaped std::out_of_range / json::TypeError surfaces as code IO/INTERNAL);
// * a case (load + both runs) over 1 s of CPU time per thread it used, or 10 s of
//   wall time: a hang (the machine running the fuzzer is shared; see kHangSeconds);
// * memory: under AddressSanitizer the allocator hooks track live heap bytes;
//   a case whose peak exceeds baseline + memory_cap + 64 x file size + 64 MiB
//   fails ("alloc"). Single allocations above the same bound for the largest
//   file the mutator makes (2 MiB: 448 MiB) abort in the allocator itself
//   (__asan_default_options: max_allocation_size_mb=448,
//   allocator_may_return_null=0), so a 320 GB zero-fill cannot even start.
// * the C API's shape queries disagree with each other.
// Batch consistency (sample 0 of the batch-2 output vs the batch-1 output,
// bitwise, NaN = NaN) is counted and reported; with --strict-batch it fails.

#include <onebit.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cpu_features.h"
#include "dispatch.h"
#include "engine/json.h"
#include "engine/model_file.h"
#include "engine/op.h"
#include "engine/sha256.h"

#if defined(__SANITIZE_ADDRESS__)
#define FZ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FZ_ASAN 1
#endif
#endif

#ifdef FZ_ASAN
extern "C" {
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void*, size_t),
                                              void (*free_hook)(const volatile void*));
size_t __sanitizer_get_allocated_size(const volatile void* p);
void __sanitizer_set_death_callback(void (*callback)(void));
// Defaults; ASAN_OPTIONS given at run time override them.
const char* __asan_default_options() {
  return "max_allocation_size_mb=448:allocator_may_return_null=0:detect_leaks=1:"
         "abort_on_error=1:print_summary=1";
}
}
#endif

#ifndef ONEBIT_FUZZ_STANDALONE
extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);
#endif

namespace {

constexpr uint64_t kMemoryCap = uint64_t{256} << 20;
uint64_t g_cap = kMemoryCap;  // per regression case: expected.json "cap_mib"
int64_t g_extra_batch = 0;    // per regression case: "batch", a run at this batch too
constexpr size_t kMaxFile = size_t{2} << 20;  // the mutator makes no larger files
// A hang: a case (load + two runs) over 1 s of CPU time per thread (the process's CPU time
// divided by the threads the case ran on), or over 10 s of wall time (the machine is shared:
// wall time alone measures the neighbours); the watchdog aborts at --hang-abort (20 s).
constexpr double kHangSeconds = 1.0, kHangWallSeconds = 10.0;
// Inputs above this many floats per sample (3 x 64 x 64) are loaded and planned but not run:
// the engine has no compute budget, and a 200 x 200 input to a ResNet under the naive
// reference kernel and AddressSanitizer takes seconds of honest work, not a hang.
constexpr int64_t kMaxRunFloats = int64_t{1} << 20;
// Likewise for the estimated work of one sample (computed_output_shape): above kReferenceWork
// the naive reference kernel is swapped for the best one, above kMaxWork nothing runs.
// Calibrated on the -O1 ASan + UBSan build (about 3e-8 s per unit on the reference kernel, 3e-9 on
// the others); under libFuzzer the coverage instrumentation and its comparison tracing
// (__sanitizer_cov_trace_cmp8 in every kernel loop) make the engine 5-10x slower, so it scales
// them by g_work_scale = 0.1 (--work-scale sets it in the standalone driver).
constexpr double kReferenceWork = 1.5e7, kMaxWork = 6e7;
double g_work_scale = 1.0;

// ---------------------------------------------------------------------------------------------
// Random numbers (splitmix64).

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull) {}
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t below(uint64_t n) { return n ? next() % n : 0; }
  int64_t range(int64_t lo, int64_t hi) { return lo + static_cast<int64_t>(below(static_cast<uint64_t>(hi - lo + 1))); }
  bool chance(int percent) { return below(100) < static_cast<uint64_t>(percent); }
  double unit() { return static_cast<double>(next() >> 11) / 9007199254740992.0; }
  template <class T>
  T& pick(std::vector<T>& v) { return v[below(v.size())]; }
};

// Saturating arithmetic on numbers read from a mutated file (the fuzzer runs under UBSan too).
int64_t sat_add(int64_t a, int64_t b) {
  int64_t r;
  return __builtin_add_overflow(a, b, &r) ? (b > 0 ? INT64_MAX : INT64_MIN) : r;
}
int64_t sat_mul(int64_t a, int64_t b) {
  int64_t r;
  return __builtin_mul_overflow(a, b, &r) ? ((a < 0) != (b < 0) ? INT64_MIN : INT64_MAX) : r;
}

// ---------------------------------------------------------------------------------------------
// A mutable JSON tree (the engine's json::Value is immutable) and its writer. Numbers keep
// their text, so a mutation can write any number JSON allows (2^63, 1e308, -0.0, 1e400).

struct J {
  enum Type { kNull, kBool, kNum, kStr, kArr, kObj } t = kNull;
  bool b = false;
  std::string s;  // kNum: the number as written; kStr: the string
  std::vector<J> a;
  std::vector<std::pair<std::string, J>> o;

  static J num(const std::string& text) { J j; j.t = kNum; j.s = text; return j; }
  static J num(int64_t v) { return num(std::to_string(v)); }
  static J str(const std::string& v) { J j; j.t = kStr; j.s = v; return j; }
  static J boolean(bool v) { J j; j.t = kBool; j.b = v; return j; }
  static J arr() { J j; j.t = kArr; return j; }
  static J obj() { J j; j.t = kObj; return j; }

  J* find(const std::string& key) {
    if (t != kObj) return nullptr;
    for (auto& kv : o)
      if (kv.first == key) return &kv.second;
    return nullptr;
  }
  J& set(const std::string& key, J v) {
    if (t != kObj) *this = obj();
    if (J* p = find(key)) return *p = std::move(v);
    o.emplace_back(key, std::move(v));
    return o.back().second;
  }
  bool erase(const std::string& key) {
    for (size_t i = 0; i < o.size(); ++i)
      if (o[i].first == key) {
        o.erase(o.begin() + static_cast<long>(i));
        return true;
      }
    return false;
  }
  // A plain integer within int64 (what the engine reads as an integer, in the usual spelling).
  bool int64(int64_t& v) const {
    if (t != kNum || s.empty() || s.size() > 20) return false;
    size_t i = s[0] == '-' ? 1 : 0;
    if (i == s.size()) return false;
    for (size_t k = i; k < s.size(); ++k)
      if (s[k] < '0' || s[k] > '9') return false;
    errno = 0;
    char* end = nullptr;
    const long long x = std::strtoll(s.c_str(), &end, 10);
    if (errno || *end) return false;
    v = x;
    return true;
  }
  const std::string* string() const { return t == kStr ? &s : nullptr; }
};

J from_value(const onebit::json::Value& v) {
  using onebit::json::Type;
  switch (v.type()) {
    case Type::kNull: return J();
    case Type::kBool: return J::boolean(v.as_bool());
    case Type::kNumber: {
      if (v.is_integer()) return J::num(v.as_int());
      char buf[40];
      std::snprintf(buf, sizeof buf, "%.17g", v.as_double());
      std::string s = buf;
      if (s.find_first_of(".eE") == std::string::npos) s += ".0";
      return J::num(s);
    }
    case Type::kString: return J::str(v.as_string());
    case Type::kArray: {
      J j = J::arr();
      for (const auto& e : v.as_array()) j.a.push_back(from_value(e));
      return j;
    }
    case Type::kObject: {
      J j = J::obj();
      for (const auto& kv : v.as_object()) j.o.emplace_back(kv.first, from_value(kv.second));
      return j;
    }
  }
  return J();
}

void write_string(std::string& out, const std::string& s) {
  out += '"';
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);  // bytes >= 0x80 as they are (a mutation may make invalid UTF-8)
    }
  }
  out += '"';
}

void write_json(std::string& out, const J& j) {
  switch (j.t) {
    case J::kNull: out += "null"; break;
    case J::kBool: out += j.b ? "true" : "false"; break;
    case J::kNum: out += j.s; break;
    case J::kStr: write_string(out, j.s); break;
    case J::kArr:
      out += '[';
      for (size_t i = 0; i < j.a.size(); ++i) {
        if (i) out += ',';
        write_json(out, j.a[i]);
      }
      out += ']';
      break;
    case J::kObj:
      out += '{';
      for (size_t i = 0; i < j.o.size(); ++i) {
        if (i) out += ',';
        write_string(out, j.o[i].first);
        out += ':';
        write_json(out, j.o[i].second);
      }
      out += '}';
      break;
  }
}

// Every value of the tree, depth first (the root first); parent pointers stay valid while the
// tree is not changed.
void collect(J& j, std::vector<J*>& out) {
  out.push_back(&j);
  if (j.t == J::kArr)
    for (J& e : j.a) collect(e, out);
  if (j.t == J::kObj)
    for (auto& kv : j.o) collect(kv.second, out);
}

// ---------------------------------------------------------------------------------------------
// The file: header + JSON + data section + SHA-256 (src/onebit/runtime/format.py).

uint64_t rd64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
void wr64(std::string& s, size_t off, uint64_t v) { std::memcpy(&s[off], &v, 8); }
void wr32(std::string& s, size_t off, uint32_t v) { std::memcpy(&s[off], &v, 4); }

struct Doc {
  J meta;
  std::string data;  // the data section
};

bool parse_doc(const uint8_t* p, size_t n, Doc& d) {
  if (n < 96 || std::memcmp(p, "\x89ONEBIT\n", 8) != 0) return false;
  const uint64_t js_off = rd64(p + 16), js_len = rd64(p + 24), data_off = rd64(p + 32), data_len = rd64(p + 40);
  if (js_off != 64 || js_len > n || data_off > n || data_len > n - data_off || js_off + js_len > n) return false;
  try {
    d.meta = from_value(onebit::json::parse(std::string_view(reinterpret_cast<const char*>(p) + 64, js_len)));
  } catch (const std::exception&) {
    return false;
  }
  d.data.assign(reinterpret_cast<const char*>(p) + data_off, data_len);
  return true;
}

std::string add_digest(std::string body) {
  const auto dig = onebit::sha256(body.data(), body.size());
  body.append(reinterpret_cast<const char*>(dig.data()), dig.size());
  return body;
}

// A file around a JSON text and a data section: correct header, correct checksum.
std::string lay_out(const std::string& js, const std::string& data) {
  const size_t data_off = (64 + js.size() + 63) / 64 * 64;
  std::string body(data_off, '\0');
  std::memcpy(&body[0], "\x89ONEBIT\n", 8);
  wr32(body, 8, 1);
  wr32(body, 12, 0);
  wr64(body, 16, 64);
  wr64(body, 24, js.size());
  wr64(body, 32, data_off);
  wr64(body, 40, data.size());
  std::memcpy(&body[64], js.data(), js.size());
  body += data;
  return add_digest(std::move(body));
}

std::string serialize(const Doc& d) {
  std::string js;
  write_json(js, d.meta);
  return lay_out(js, d.data);
}

// ---------------------------------------------------------------------------------------------
// Mutations.

const char* const kInteresting[] = {
    "0", "-1", "1", "2", "3", "4", "7", "8", "31", "32", "33", "63", "64", "65", "127", "128", "255", "256",
    "600", "1000", "4095", "4096", "4097", "12000", "16383", "16384", "16385", "65535", "65536", "100000",
    "1000000", "1048575", "1048576", "1048577", "16777216", "268435455", "268435456", "268435457",
    "536870912", "1000000000", "2147483647", "2147483648", "-2147483648", "-2147483649", "4294967295",
    "4294967296", "9007199254740993", "4611686018427387904", "9223372036854775807", "9223372036854775808",
    "-9223372036854775808", "-9223372036854775809", "18446744073709551615", "18446744073709551616",
    "1e308", "-1e308", "1e-320", "4.9e-324", "1e400", "-0", "-0.0", "0.0", "0.5", "-0.5", "1.5", "2.5",
    "3.0", "1e2", "1E1", "64e0", "1.0000000000000002", "0.9999999999999999", "340282346638528859811704183484516925440",
    "1e39", "65504", "65520", "1e-45", "nan-not-json"};

const char* const kKeys[] = {"kernel", "stride", "padding", "dilation", "groups", "in_channels", "pad_value",
                             "output", "ceil_mode", "count_include_pad", "min", "max", "value",
                             "binary_weight", "threshold", "flip", "mask", "weight", "multiplier", "bias",
                             "direction", "slope", "scale", "shift", "op", "inputs", "outputs", "attrs",
                             "params", "source", "name", "shape", "dtype", "offset", "nbytes", "encoding",
                             "channels", "nodes", "tensors", "encodings", "format_version", ""};

const char* const kDtypes[] = {"float32", "float16", "uint64", "int32", "uint8", "int8", "float64", "bool", ""};

J junk(Rng& r, int depth = 0) {
  switch (r.below(depth > 2 ? 6 : 9)) {
    case 0: return J();
    case 1: return J::boolean(r.chance(50));
    case 2: return J::num(kInteresting[r.below(std::size(kInteresting) - 1)]);  // not the non-JSON last one
    case 3: return J::str(std::to_string(r.range(-2, 70)));
    case 4: return J::str(r.chance(50) ? "" : kKeys[r.below(std::size(kKeys))]);
    case 5: return J::num(std::to_string(r.range(0, 9)) + "." + std::to_string(r.range(1, 9)));
    case 6: {
      J a = J::arr();
      for (int n = static_cast<int>(r.below(4)); n > 0; --n) a.a.push_back(junk(r, depth + 1));
      return a;
    }
    case 7: {
      J o = J::obj();
      for (int n = static_cast<int>(r.below(3)); n > 0; --n) o.set(kKeys[r.below(std::size(kKeys))], junk(r, depth + 1));
      return o;
    }
    default: {  // nested junk
      J a = J::arr();
      J inner = J::arr();
      inner.a.push_back(junk(r, depth + 1));
      a.a.push_back(std::move(inner));
      return a;
    }
  }
}

std::string number_text(Rng& r, int64_t old) {
  switch (r.below(6)) {
    case 0: return std::to_string(sat_add(old, 1));
    case 1: return std::to_string(sat_add(old, -1));
    case 2: return std::to_string(sat_mul(old, 2));
    case 3: return std::to_string(old / 2);
    case 4: return std::to_string(sat_mul(old, -1));
    default: return kInteresting[r.below(std::size(kInteresting) - (r.chance(2) ? 0 : 1))];
  }
}

struct Graph {  // views into a Doc's meta (valid until the tree changes shape)
  J* nodes = nullptr;
  J* tensors = nullptr;
  J* encodings = nullptr;
  J* inputs = nullptr;
  J* outputs = nullptr;
  explicit Graph(Doc& d) {
    nodes = d.meta.find("nodes");
    tensors = d.meta.find("tensors");
    encodings = d.meta.find("encodings");
    inputs = d.meta.find("inputs");
    outputs = d.meta.find("outputs");
    if (nodes && nodes->t != J::kArr) nodes = nullptr;
    if (tensors && tensors->t != J::kObj) tensors = nullptr;
    if (encodings && encodings->t != J::kObj) encodings = nullptr;
  }
  std::vector<J*> node_list() const {
    std::vector<J*> v;
    if (nodes)
      for (J& n : nodes->a)
        if (n.t == J::kObj) v.push_back(&n);
    return v;
  }
  std::string input_name() const {
    if (inputs && inputs->t == J::kArr && !inputs->a.empty())
      if (J* n = inputs->a[0].find("name"); n && n->string()) return n->s;
    return "input";
  }
  J* input_shape() const {
    if (inputs && inputs->t == J::kArr && !inputs->a.empty())
      if (J* s = inputs->a[0].find("shape"); s && s->t == J::kArr) return s;
    return nullptr;
  }
  // Value names defined before node k (all of them for k < 0).
  std::vector<std::string> values_before(long k) const {
    std::vector<std::string> v{input_name()};
    if (!nodes) return v;
    for (long i = 0; i < static_cast<long>(nodes->a.size()) && (k < 0 || i < k); ++i)
      if (J* o = nodes->a[i].find("outputs"); o && o->t == J::kArr && !o->a.empty() && o->a[0].string())
        v.push_back(o->a[0].s);
    return v;
  }
  std::vector<std::string> tensor_names() const {
    std::vector<std::string> v;
    if (tensors)
      for (auto& kv : tensors->o) v.push_back(kv.first);
    return v;
  }
};

const onebit::OpDef* def_of(J& node) {
  J* op = node.find("op");
  return op && op->string() ? onebit::find_op(op->s) : nullptr;
}

// An attribute value the op's schema accepts (mostly), near its boundaries sometimes.
J attr_value(Rng& r, const onebit::AttrSpec& s) {
  using onebit::AttrKind;
  auto one = [&](int64_t lo, int64_t hi) -> J {
    const int c = static_cast<int>(r.below(10));
    if (c == 0) return J::num(lo);
    if (c == 1) return J::num(hi);
    if (c == 2) return J::num(r.chance(50) ? lo - 1 : hi + 1);
    const int64_t small_hi = std::min<int64_t>(hi, lo + 5);
    return J::num(r.range(lo, small_hi));
  };
  switch (s.kind) {
    case AttrKind::kInt: return one(s.min, s.max);
    case AttrKind::kInts: {
      J a = J::arr();
      const int n = r.chance(90) ? s.count : static_cast<int>(r.below(6));
      for (int i = 0; i < n; ++i) a.a.push_back(one(s.min, s.max));
      return a;
    }
    case AttrKind::kReal: {
      const char* reals[] = {"0.0", "1.0", "-1.0", "0.5", "-2.5", "1e30", "-1e30", "1e-30", "3", "-0.0"};
      return J::num(reals[r.below(std::size(reals))]);
    }
    case AttrKind::kBool: return J::boolean(r.chance(50));
    case AttrKind::kEnum: {
      std::vector<std::string> ch;
      std::string c = s.choices;
      size_t p = 0;
      while (true) {
        const size_t bar = c.find('|', p);
        ch.push_back(c.substr(p, bar == std::string::npos ? std::string::npos : bar - p));
        if (bar == std::string::npos) break;
        p = bar + 1;
      }
      return J::str(r.chance(95) ? r.pick(ch) : "bogus");
    }
  }
  return J();
}

int64_t words_for(int64_t c) { return c > (int64_t{1} << 40) ? c / 64 : (c + 63) / 64; }


size_t dtype_bytes(const std::string& d) {
  if (d == "float32" || d == "int32") return 4;
  if (d == "float16") return 2;
  if (d == "uint64") return 8;
  if (d == "uint8" || d == "int8") return 1;
  return 0;
}

void set_shape(J& spec, const std::vector<int64_t>& shape) {
  J a = J::arr();
  for (int64_t x : shape) a.a.push_back(J::num(x));
  spec.set("shape", std::move(a));
}

bool shape_of(J& spec, std::vector<int64_t>& shape) {
  J* s = spec.find("shape");
  if (!s || s->t != J::kArr) return false;
  shape.clear();
  for (J& d : s->a) {
    int64_t x;
    if (!d.int64(x)) return false;
    shape.push_back(x);
  }
  return true;
}

J* tensor_of(Graph& g, J& node, const char* role) {
  J* p = node.find("params");
  if (!p || !g.tensors) return nullptr;
  J* name = p->find(role);
  return name && name->string() ? g.tensors->find(name->s) : nullptr;
}

void set_packed_channels(Graph& g, J& node, const char* role, int64_t channels) {
  J* p = node.find("params");
  J* name = p ? p->find(role) : nullptr;
  if (!name || !name->string() || !g.encodings) return;
  J enc = J::obj();
  enc.set("encoding", J::str("packed_sign"));
  enc.set("channels", J::num(channels));
  g.encodings->set(name->s, std::move(enc));
}

std::vector<std::string>& pad_values() {
  static std::vector<std::string> v{"1.0", "-1.0", "0.0", "1", "-1", "0"};
  return v;
}

// Consistent new geometry for a windowed node (conv, pool, xnor_k): kernel, stride, dilation,
// padding (within the pad rule mostly), groups; the weight tensor reshaped to match (the blobs
// are re-laid afterwards). This reaches the kernels with odd geometries instead of stopping
// at a shape check.
bool mutate_geometry(Doc& d, Rng& r) {
  Graph g(d);
  std::vector<J*> cands;
  for (J* n : g.node_list())
    if (const onebit::OpDef* def = def_of(*n))
      for (const auto& a : def->attrs)
        if (std::string(a.name) == "kernel") {
          cands.push_back(n);
          break;
        }
  if (cands.empty()) return false;
  J& n = *r.pick(cands);
  const std::string op = n.find("op")->s;
  J& attrs = n.find("attrs") && n.find("attrs")->t == J::kObj ? *n.find("attrs") : n.set("attrs", J::obj());
  const bool conv = op == "bconv2d" || op == "conv2d" || op == "xnor_k";
  // mostly small windows that run; sometimes the schema's extremes (kernel, stride, dilation 64,
  // padding up to the dilated extent: the padded copy meets the memory cap)
  const bool extreme = r.chance(8);
  const int64_t top = extreme ? onebit::kMaxKernel : 4;
  const int64_t kh = r.range(1, r.chance(10) ? 9 : top), kw = r.chance(50) ? kh : r.range(1, top);
  const int64_t sh = r.range(1, extreme ? top : 3), sw = r.chance(70) ? sh : r.range(1, extreme ? top : 3);
  const int64_t dh = conv ? r.range(1, extreme ? top : 3) : 1;
  const int64_t dw = conv ? (r.chance(70) ? dh : r.range(1, extreme ? top : 3)) : 1;
  auto pad = [&](int64_t k, int64_t dil) {
    const int64_t lim = conv ? dil * (k - 1) : k / 2;
    return r.chance(95) ? r.range(0, lim) : lim + 1;
  };
  J k = J::arr(), s = J::arr(), p = J::arr(), dl = J::arr();
  k.a = {J::num(kh), J::num(kw)};
  s.a = {J::num(sh), J::num(sw)};
  dl.a = {J::num(dh), J::num(dw)};
  p.a = {J::num(pad(kw, dw)), J::num(pad(kw, dw)), J::num(pad(kh, dh)), J::num(pad(kh, dh))};
  attrs.set("kernel", std::move(k));
  attrs.set("stride", std::move(s));
  attrs.set("padding", std::move(p));
  if (conv) attrs.set("dilation", std::move(dl));
  if (!conv) {
    attrs.set("ceil_mode", J::boolean(r.chance(50)));
    if (op == "avgpool") attrs.set("count_include_pad", J::boolean(r.chance(50)));
    return true;
  }
  if (op == "xnor_k") return true;
  J* w = tensor_of(g, n, "weight");
  std::vector<int64_t> ws;
  if (!w || !shape_of(*w, ws) || ws.size() != 4) return true;
  int64_t groups = 1;
  if (J* gj = attrs.find("groups")) gj->int64(groups);
  if (groups < 1) groups = 1;
  int64_t cin = 0;
  if (op == "bconv2d") {
    if (J* c = attrs.find("in_channels"); !c || !c->int64(cin)) return true;
    if (r.chance(30)) attrs.set("pad_value", J::num(r.pick(pad_values())));
  } else {
    J* enc = g.encodings ? g.encodings->find(n.find("params")->find("weight")->s) : nullptr;
    int64_t per = ws[3];
    if (enc) {
      if (J* c = enc->find("channels")) c->int64(per);
    }
    cin = per * groups;
  }
  if (cin < 1 || cin > 4096) return true;
  std::vector<int64_t> divs;
  for (int64_t q = 1; q <= cin; ++q)
    if (cin % q == 0 && ws[0] % q == 0) divs.push_back(q);
  groups = r.chance(60) ? groups : r.pick(divs);
  attrs.set("groups", J::num(groups));
  const int64_t cg = cin / groups;
  const bool packed = op == "bconv2d" || (g.encodings && n.find("params")->find("weight")->string() &&
                                          g.encodings->find(n.find("params")->find("weight")->s));
  set_shape(*w, {ws[0], kh, kw, packed ? words_for(cg) : cg});
  if (packed) set_packed_channels(g, n, "weight", cg);
  return true;
}

// Re-lays the data section after the tensor table changed: each tensor whose dtype and shape
// make sense gets a blob of exactly its size (old bytes first, then random ones) at a new
// aligned offset, so a grown or reshaped tensor reaches the op's own checks. Packed sign
// tensors get their padding bits cleared (mostly): set bits are tested separately.
void relayout(Doc& d, Rng& r, bool clear_padding) {
  Graph g(d);
  if (!g.tensors) return;
  std::string out;
  for (auto& [name, spec] : g.tensors->o) {
    if (spec.t != J::kObj) continue;
    J* dt = spec.find("dtype");
    std::vector<int64_t> shape;
    if (!dt || !dt->string() || !shape_of(spec, shape)) continue;
    const size_t es = dtype_bytes(dt->s);
    if (!es) continue;
    uint64_t count = 1;
    bool ok = true;
    for (int64_t x : shape) {
      if (x < 0 || (x && count > (uint64_t{1} << 40) / static_cast<uint64_t>(x))) ok = false;
      count *= static_cast<uint64_t>(std::max<int64_t>(x, 0));
    }
    if (!ok || count * es > kMaxFile / 2 || out.size() + count * es > kMaxFile / 2) continue;
    const size_t nbytes = static_cast<size_t>(count * es);
    std::string blob(nbytes, '\0');
    int64_t off = 0, old_n = 0;
    J* oj = spec.find("offset");
    J* nj = spec.find("nbytes");
    if (oj && nj && oj->int64(off) && nj->int64(old_n) && off >= 0 && old_n >= 0 &&
        static_cast<uint64_t>(off) < d.data.size()) {
      const size_t avail = std::min<size_t>(d.data.size() - static_cast<size_t>(off), static_cast<size_t>(old_n));
      std::memcpy(&blob[0], d.data.data() + off, std::min(avail, nbytes));
      for (size_t i = std::min(avail, nbytes); i < nbytes; ++i) blob[i] = static_cast<char>(r.next());
    } else {
      for (size_t i = 0; i < nbytes; ++i) blob[i] = static_cast<char>(r.next());
    }
    if (dt->s == "float32") {  // random floats as numbers, not bit noise (NaN-free mostly)
      for (size_t i = (old_n > 0 ? static_cast<size_t>(std::min<int64_t>(old_n, static_cast<int64_t>(nbytes))) : 0) / 4;
           i < nbytes / 4; ++i) {
        const float f = static_cast<float>(r.unit() * 2 - 1);
        std::memcpy(&blob[i * 4], &f, 4);
      }
    }
    if (clear_padding && dt->s == "uint64" && g.encodings && !shape.empty())
      if (J* enc = g.encodings->find(name); enc && enc->t == J::kObj) {
        int64_t ch = 0;
        J* cj = enc->find("channels");
        if (cj && cj->int64(ch) && ch > 0 && shape.back() == words_for(ch) && ch % 64) {
          const uint64_t mask = (uint64_t{1} << (ch % 64)) - 1;
          const size_t cw = static_cast<size_t>(shape.back()), rows = count / cw;
          for (size_t q = 0; q < rows; ++q) {
            uint64_t w;
            std::memcpy(&w, &blob[(q * cw + cw - 1) * 8], 8);
            w &= mask;
            std::memcpy(&blob[(q * cw + cw - 1) * 8], &w, 8);
          }
        }
      }
    if (dt->s == "int32" && name.find("direction") != std::string::npos) {
      for (size_t i = 0; i < nbytes / 4; ++i) {
        const int32_t v = r.chance(50) ? 1 : -1;
        std::memcpy(&blob[i * 4], &v, 4);
      }
    }
    spec.set("offset", J::num(static_cast<int64_t>(out.size())));
    spec.set("nbytes", J::num(static_cast<int64_t>(nbytes)));
    out += blob;
    out.resize((out.size() + 63) / 64 * 64, '\0');
  }
  d.data = std::move(out);
}

struct Mutation {
  const char* name;
  bool (*fn)(Doc&, Rng&);
  int weight;
  bool relayout;  // re-lay the blobs afterwards (the table changed)
};

// A random value of the tree, biased towards the parts the engine reads.
J* random_value(Doc& d, Rng& r, J::Type want = J::kNull, bool typed = false) {
  Graph g(d);
  J* root = &d.meta;
  const int where = static_cast<int>(r.below(10));
  if (where < 5 && g.nodes && !g.nodes->a.empty()) root = &r.pick(g.nodes->a);
  else if (where < 7 && g.tensors && !g.tensors->o.empty()) root = &r.pick(g.tensors->o).second;
  else if (where < 8 && g.inputs) root = g.inputs;
  else if (where < 9 && g.encodings && !g.encodings->o.empty()) root = &r.pick(g.encodings->o).second;
  std::vector<J*> all;
  collect(*root, all);
  if (typed) {
    std::vector<J*> t;
    for (J* j : all)
      if (j->t == want) t.push_back(j);
    if (t.empty()) return nullptr;
    return r.pick(t);
  }
  return r.pick(all);
}

bool m_number(Doc& d, Rng& r) {
  J* j = random_value(d, r, J::kNum, true);
  if (!j) return false;
  int64_t old = 0;
  j->int64(old);
  j->s = number_text(r, old);
  if (j->s == "nan-not-json" && !r.chance(10)) j->s = "0";
  return true;
}

bool m_type_swap(Doc& d, Rng& r) {
  J* j = random_value(d, r);
  if (!j || j == &d.meta) return false;
  *j = junk(r);
  return true;
}

bool m_delete_key(Doc& d, Rng& r) {
  J* j = random_value(d, r, J::kObj, true);
  if (!j || j->o.empty()) return false;
  j->o.erase(j->o.begin() + static_cast<long>(r.below(j->o.size())));
  return true;
}

bool m_duplicate_key(Doc& d, Rng& r) {  // the strict parser refuses duplicate keys
  J* j = random_value(d, r, J::kObj, true);
  if (!j || j->o.empty()) return false;
  j->o.push_back(r.pick(j->o));
  return true;
}

bool m_add_key(Doc& d, Rng& r) {
  J* j = random_value(d, r, J::kObj, true);
  if (!j) return false;
  j->set(kKeys[r.below(std::size(kKeys))], junk(r));
  return true;
}

bool m_array_edit(Doc& d, Rng& r) {  // grow / shrink / duplicate elements of an array
  J* j = random_value(d, r, J::kArr, true);
  if (!j) return false;
  switch (r.below(4)) {
    case 0:
      if (j->a.empty()) return false;
      j->a.erase(j->a.begin() + static_cast<long>(r.below(j->a.size())));
      break;
    case 1:
      if (j->a.empty()) j->a.push_back(junk(r));
      else j->a.push_back(r.pick(j->a));
      break;
    case 2: j->a.insert(j->a.begin() + static_cast<long>(r.below(j->a.size() + 1)), junk(r)); break;
    default: j->a.clear(); break;
  }
  return true;
}

bool m_rename_output(Doc& d, Rng& r) {
  Graph g(d);
  auto nodes = g.node_list();
  if (nodes.empty()) return false;
  J& n = *r.pick(nodes);
  auto vals = g.values_before(-1);
  std::string name;
  switch (r.below(4)) {
    case 0: name = g.input_name(); break;
    case 1: name = r.pick(vals); break;
    case 2: name = ""; break;
    default: name = "renamed" + std::to_string(r.below(100)); break;
  }
  J outs = J::arr();
  outs.a.push_back(J::str(name));
  if (r.chance(5)) outs.a.push_back(J::str("second"));
  n.set("outputs", std::move(outs));
  return true;
}

bool m_rewire(Doc& d, Rng& r) {
  Graph g(d);
  if (!g.nodes || g.nodes->a.empty()) return false;
  const long k = static_cast<long>(r.below(g.nodes->a.size()));
  J& n = g.nodes->a[k];
  if (n.t != J::kObj) return false;
  auto before = g.values_before(k), all = g.values_before(-1);
  J* ins = n.find("inputs");
  if (!ins || ins->t != J::kArr) ins = &n.set("inputs", J::arr());
  const int c = static_cast<int>(r.below(10));
  if (c < 5 && !ins->a.empty()) {
    r.pick(ins->a) = J::str(r.pick(before));  // another earlier value: shape and dtype mismatches
  } else if (c < 6 && !ins->a.empty()) {
    r.pick(ins->a) = J::str(r.pick(all));  // possibly later: a read before definition / a cycle
  } else if (c < 8) {
    ins->a.push_back(J::str(r.pick(before)));
  } else if (!ins->a.empty()) {
    ins->a.erase(ins->a.begin() + static_cast<long>(r.below(ins->a.size())));
  } else {
    return false;
  }
  return true;
}

bool m_op_swap(Doc& d, Rng& r) {
  Graph g(d);
  auto nodes = g.node_list();
  if (nodes.empty()) return false;
  const auto& reg = onebit::op_registry();
  J& n = *r.pick(nodes);
  n.set("op", J::str(r.chance(95) ? reg[r.below(reg.size())]->name : (r.chance(50) ? "conv3d" : "")));
  return true;
}

bool m_attr_schema(Doc& d, Rng& r) {  // an attribute the op knows, near its limits
  Graph g(d);
  std::vector<J*> nodes;
  for (J* n : g.node_list())
    if (const onebit::OpDef* def = def_of(*n); def && !def->attrs.empty()) nodes.push_back(n);
  if (nodes.empty()) return false;
  J& n = *r.pick(nodes);
  const onebit::OpDef* def = def_of(n);
  const onebit::AttrSpec& s = def->attrs[r.below(def->attrs.size())];
  J* attrs = n.find("attrs");
  if (!attrs || attrs->t != J::kObj) attrs = &n.set("attrs", J::obj());
  if (r.chance(10)) attrs->erase(s.name);
  else attrs->set(s.name, attr_value(r, s));
  return true;
}

bool m_shape(Doc& d, Rng& r) {  // a tensor's or the input's shape grows, shrinks, changes rank
  Graph g(d);
  J* shape = nullptr;
  bool input = false;
  if (r.chance(30) || !g.tensors || g.tensors->o.empty()) {
    shape = g.input_shape();
    input = true;
  } else {
    J& spec = r.pick(g.tensors->o).second;
    shape = spec.find("shape");
  }
  if (!shape || shape->t != J::kArr) return false;
  std::vector<int64_t> dims;
  for (J& x : shape->a) {
    int64_t v;
    if (!x.int64(v)) return false;
    dims.push_back(v);
  }
  const int c = static_cast<int>(r.below(10));
  if (c < 6 && !dims.empty()) {
    int64_t& x = dims[r.below(dims.size())];
    const int how = static_cast<int>(r.below(6));
    if (input && how < 4) x = r.range(1, r.chance(90) ? 40 : 300);  // a small new input size: runs
    else if (how == 4) x = sat_mul(x, 2);
    else x = std::max<int64_t>(x / 2, r.chance(90) ? 1 : 0);
  } else if (c < 8) {
    dims.push_back(r.chance(70) ? 1 : r.range(0, 70));
  } else if (!dims.empty()) {
    dims.pop_back();
  } else {
    return false;
  }
  shape->a.clear();
  for (int64_t x : dims) shape->a.push_back(J::num(x));
  return true;
}

bool m_dtype(Doc& d, Rng& r) {
  Graph g(d);
  if (!g.tensors || g.tensors->o.empty()) return false;
  J& spec = r.pick(g.tensors->o).second;
  if (spec.t != J::kObj) return false;
  spec.set("dtype", J::str(kDtypes[r.below(std::size(kDtypes))]));
  return true;
}

bool m_params(Doc& d, Rng& r) {  // a parameter role pointing at another (wrong) tensor
  Graph g(d);
  auto names = g.tensor_names();
  std::vector<J*> nodes;
  for (J* n : g.node_list())
    if (J* p = n->find("params"); p && p->t == J::kObj && !p->o.empty()) nodes.push_back(n);
  if (nodes.empty() || names.empty()) return false;
  J& p = *r.pick(nodes)->find("params");
  if (r.chance(15)) {
    p.o.erase(p.o.begin() + static_cast<long>(r.below(p.o.size())));
  } else if (r.chance(15)) {
    const char* roles[] = {"weight", "multiplier", "bias", "threshold", "direction", "flip", "mask",
                           "slope", "scale", "shift", "bogus"};
    p.set(roles[r.below(std::size(roles))], J::str(r.pick(names)));
  } else {
    r.pick(p.o).second = J::str(r.chance(95) ? r.pick(names) : "missing");
  }
  return true;
}

bool m_encoding(Doc& d, Rng& r) {
  Graph g(d);
  if (!g.encodings) return false;
  auto names = g.tensor_names();
  if (r.chance(30) && !names.empty()) {  // a new encoding on any tensor
    J e = J::obj();
    e.set("encoding", J::str(r.chance(80) ? "packed_sign" : (r.chance(50) ? "fp16" : "zip")));
    e.set("channels", J::num(r.range(0, 130)));
    g.encodings->set(r.pick(names), std::move(e));
    return true;
  }
  if (g.encodings->o.empty()) return false;
  J& e = r.pick(g.encodings->o).second;
  if (e.t != J::kObj) return false;
  if (J* c = e.find("channels"); c && r.chance(70)) {
    int64_t v = 0;
    c->int64(v);
    *c = J::num(number_text(r, v));
  } else {
    e.set("encoding", J::str(r.chance(50) ? "fp16" : "packed_sign"));
  }
  return true;
}

bool m_add_node(Doc& d, Rng& r) {
  Graph g(d);
  if (!g.nodes) return false;
  const auto& reg = onebit::op_registry();
  const onebit::OpDef* def = reg[r.below(reg.size())];
  const long at = static_cast<long>(r.below(g.nodes->a.size() + 1));
  auto before = g.values_before(at);
  J n = J::obj();
  n.set("op", J::str(def->name));
  J ins = J::arr();
  const int max_in = std::min(def->max_inputs, 4);
  const int nin = def->min_inputs + static_cast<int>(r.below(static_cast<uint64_t>(max_in - def->min_inputs + 1)));
  for (int i = 0; i < nin; ++i)
    ins.a.push_back(J::str(r.chance(60) ? before.back() : r.pick(before)));
  n.set("inputs", std::move(ins));
  static int counter = 0;
  const std::string out = "fz" + std::to_string(++counter % 1000);
  J outs = J::arr();
  outs.a.push_back(J::str(out));
  n.set("outputs", std::move(outs));
  // attrs and params: copied from a node of the same op when there is one, else from the schema
  std::vector<J*> same;
  for (J* m : g.node_list())
    if (def_of(*m) == def) same.push_back(m);
  if (!same.empty() && r.chance(70)) {
    J& m = *r.pick(same);
    if (J* a = m.find("attrs")) n.set("attrs", *a);
    if (J* p = m.find("params")) n.set("params", *p);
  } else {
    J attrs = J::obj();
    for (const auto& s : def->attrs)
      if (s.required || r.chance(40)) attrs.set(s.name, attr_value(r, s));
    n.set("attrs", std::move(attrs));
    J params = J::obj();
    auto names = g.tensor_names();
    for (const auto& p : def->params)
      if ((p.required || r.chance(30)) && !names.empty()) params.set(p.role, J::str(r.pick(names)));
    n.set("params", std::move(params));
  }
  g.nodes->a.insert(g.nodes->a.begin() + at, std::move(n));
  if (r.chance(50) && g.outputs && g.outputs->t == J::kArr && !g.outputs->a.empty() &&
      g.outputs->a[0].t == J::kObj)
    g.outputs->a[0].set("name", J::str(out));  // the oracle fixes the recorded output shape
  return true;
}

bool m_node_list(Doc& d, Rng& r) {  // delete / duplicate / swap / move nodes
  Graph g(d);
  if (!g.nodes || g.nodes->a.empty()) return false;
  auto& a = g.nodes->a;
  const size_t i = r.below(a.size()), j = r.below(a.size());
  switch (r.below(4)) {
    case 0: a.erase(a.begin() + static_cast<long>(i)); break;
    case 1: a.insert(a.begin() + static_cast<long>(j), a[i]); break;
    case 2: std::swap(a[i], a[j]); break;
    default: {
      J n = a[i];
      a.erase(a.begin() + static_cast<long>(i));
      a.insert(a.begin() + static_cast<long>(std::min(j, a.size())), std::move(n));
    }
  }
  return true;
}

bool m_output(Doc& d, Rng& r) {  // the graph output becomes another value (the oracle fixes its shape)
  Graph g(d);
  if (!g.outputs || g.outputs->t != J::kArr || g.outputs->a.empty() || g.outputs->a[0].t != J::kObj) return false;
  auto vals = g.values_before(-1);
  g.outputs->a[0].set("name", J::str(r.pick(vals)));
  return true;
}

bool m_geometry(Doc& d, Rng& r) { return mutate_geometry(d, r); }

bool m_input_geometry(Doc& d, Rng& r) {  // a new input size (and the conv geometry it meets)
  Graph g(d);
  J* s = g.input_shape();
  if (!s || s->a.size() != 4) return false;
  if (r.chance(8)) {  // big: loads only, or meets the memory cap at load
    s->a[2] = J::num(r.range(1000, onebit::kMaxSpatial));
    s->a[3] = J::num(r.chance(50) ? s->a[2].s : std::to_string(r.range(1, onebit::kMaxSpatial)));
    if (r.chance(30)) s->a[1] = J::num(r.range(1, 1 << 20));
    return true;
  }
  s->a[2] = J::num(r.range(1, r.chance(90) ? 40 : 200));
  s->a[3] = J::num(r.chance(60) ? s->a[2].s : std::to_string(r.range(1, 40)));
  if (r.chance(20)) s->a[0] = J::num(r.chance(50) ? "-1" : std::to_string(r.range(1, 4)));
  return true;
}

bool m_blob_bits(Doc& d, Rng& r) {
  if (d.data.empty()) return false;
  for (int n = static_cast<int>(r.range(1, 16)); n > 0; --n)
    d.data[r.below(d.data.size())] ^= static_cast<char>(1u << r.below(8));
  if (r.chance(20)) {  // special floats over a stretch of a float blob
    const float specials[] = {NAN, INFINITY, -INFINITY, -0.0f, 1e38f, -1e38f, 1e-45f, 0.0f};
    size_t at = r.below(d.data.size() / 4) * 4;
    for (int k = 0; k < 8 && at + 4 <= d.data.size(); ++k, at += 4)
      std::memcpy(&d.data[at], &specials[r.below(8)], 4);
  }
  return true;
}

bool m_blob_size(Doc& d, Rng& r) {  // truncate or extend the data section (tensors end up outside)
  if (r.chance(60) && !d.data.empty()) d.data.resize(r.below(d.data.size()));
  else d.data.append(static_cast<size_t>(r.range(1, 4096)), static_cast<char>(r.next()));
  return true;
}

bool m_padding_bits(Doc& d, Rng& r) {  // set a padding bit in a packed weight
  Graph g(d);
  if (!g.encodings || !g.tensors) return false;
  std::vector<std::pair<J*, int64_t>> cand;
  for (auto& [name, e] : g.encodings->o) {
    int64_t ch;
    J* c = e.find("channels");
    J* t = g.tensors->find(name);
    if (c && t && c->int64(ch) && ch > 0 && ch % 64) cand.emplace_back(t, ch);
  }
  if (cand.empty()) return false;
  auto [t, ch] = r.pick(cand);
  int64_t off, nb;
  std::vector<int64_t> shape;
  if (!t->find("offset") || !t->find("nbytes") || !t->find("offset")->int64(off) || !t->find("nbytes")->int64(nb) ||
      !shape_of(*t, shape) || shape.empty() || shape.back() < 1 || nb < 8 || shape.back() > nb / 8 || off < 0 ||
      off > (int64_t{1} << 40))
    return false;
  const int64_t rows = nb / 8 / shape.back();
  const int64_t row = static_cast<int64_t>(r.below(static_cast<uint64_t>(std::max<int64_t>(rows, 1))));
  const int64_t word_at = off + (row * shape.back() + shape.back() - 1) * 8;
  if (word_at < 0 || static_cast<uint64_t>(word_at) + 8 > d.data.size()) return false;
  uint64_t w;
  std::memcpy(&w, &d.data[word_at], 8);
  w |= uint64_t{1} << r.range(ch % 64, 63);
  std::memcpy(&d.data[word_at], &w, 8);
  return true;
}

bool m_tensor_table(Doc& d, Rng& r) {  // offsets / nbytes that lie
  Graph g(d);
  if (!g.tensors || g.tensors->o.empty()) return false;
  J& spec = r.pick(g.tensors->o).second;
  if (spec.t != J::kObj) return false;
  const char* key = r.chance(50) ? "offset" : "nbytes";
  int64_t v = 0;
  if (J* j = spec.find(key)) j->int64(v);
  const int64_t size = static_cast<int64_t>(d.data.size());
  const int64_t choices[] = {size, size - 64, size + 64, sat_add(v, 64), sat_add(v, -64), sat_add(v, 1), 0,
                             int64_t{1} << 62};
  spec.set(key, J::num(choices[r.below(std::size(choices))]));
  return true;
}

bool m_concat_fanin(Doc& d, Rng& r) {  // a concat of many copies of a value
  Graph g(d);
  if (!g.nodes) return false;
  const long at = static_cast<long>(r.below(g.nodes->a.size() + 1));
  auto before = g.values_before(at);
  J n = J::obj();
  n.set("op", J::str("concat"));
  J ins = J::arr();
  const int64_t count = r.chance(50) ? r.range(2, 64) : (r.chance(50) ? 4096 : r.range(4000, 5000));
  const std::string v = r.pick(before);
  for (int64_t i = 0; i < count; ++i) ins.a.push_back(J::str(r.chance(95) ? v : r.pick(before)));
  n.set("inputs", std::move(ins));
  J outs = J::arr();
  outs.a.push_back(J::str("fzcat"));
  n.set("outputs", std::move(outs));
  g.nodes->a.insert(g.nodes->a.begin() + at, std::move(n));
  return true;
}

const Mutation kMutations[] = {
    {"number", m_number, 14, false},          {"type_swap", m_type_swap, 6, false},
    {"delete_key", m_delete_key, 4, false},   {"duplicate_key", m_duplicate_key, 1, false},
    {"add_key", m_add_key, 3, false},         {"array_edit", m_array_edit, 4, false},
    {"rename_output", m_rename_output, 3, false}, {"rewire", m_rewire, 6, false},
    {"op_swap", m_op_swap, 5, false},         {"attr_schema", m_attr_schema, 12, false},
    {"shape", m_shape, 8, true},              {"dtype", m_dtype, 2, true},
    {"params", m_params, 4, false},           {"encoding", m_encoding, 3, true},
    {"add_node", m_add_node, 8, false},       {"node_list", m_node_list, 4, false},
    {"output", m_output, 4, false},           {"geometry", m_geometry, 14, true},
    {"input_geometry", m_input_geometry, 8, false}, {"blob_bits", m_blob_bits, 5, false},
    {"blob_size", m_blob_size, 2, false},     {"padding_bits", m_padding_bits, 2, false},
    {"tensor_table", m_tensor_table, 3, false}, {"concat_fanin", m_concat_fanin, 1, false},
};
constexpr size_t kNumMutations = std::size(kMutations);

// Applies 1-4 mutations (names into `applied`), sometimes re-lays the blobs, and serializes; a
// few files get byte-level damage in the JSON text or the header (checksum recomputed, or not).
std::string mutate(Doc d, Rng& r, std::string* applied, std::vector<uint64_t>* hits) {
  int total = 0;
  for (const auto& m : kMutations) total += m.weight;
  bool need_relayout = false;
  const int n = 1 + static_cast<int>(r.below(r.chance(30) ? 4 : 2));
  for (int i = 0; i < n; ++i) {
    int w = static_cast<int>(r.below(static_cast<uint64_t>(total)));
    size_t k = 0;
    while (w >= kMutations[k].weight) w -= kMutations[k++].weight;
    if (kMutations[k].fn(d, r)) {
      need_relayout |= kMutations[k].relayout;
      if (applied) *applied += std::string(applied->empty() ? "" : "+") + kMutations[k].name;
      if (hits) (*hits)[k]++;
    }
  }
  if (need_relayout ? r.chance(85) : r.chance(5)) relayout(d, r, r.chance(95));
  std::string js;
  write_json(js, d.meta);
  if (r.chance(3) && !js.empty()) {  // text-level damage: the parser's error paths
    const char alphabet[] = "{}[],:\"\\0123456789.eE-+ntfu\x01\xff";
    for (int k = static_cast<int>(r.range(1, 4)); k > 0; --k) {
      const size_t at = r.below(js.size());
      switch (r.below(3)) {
        case 0: js[at] = alphabet[r.below(sizeof alphabet - 1)]; break;
        case 1: js.erase(at, 1); break;
        default: js.insert(at, 1, alphabet[r.below(sizeof alphabet - 1)]);
      }
      if (js.empty()) break;
    }
    if (applied) *applied += "+json_text";
  }
  std::string file = lay_out(js, d.data);
  if (r.chance(2)) {  // header damage
    const size_t at = 8 + r.below(56);
    file[at] = static_cast<char>(r.next());
    if (r.chance(80)) file = add_digest(file.substr(0, file.size() - 32));
    if (applied) *applied += "+header";
  } else if (r.chance(4)) {  // raw damage anywhere, checksum left wrong (run_case then loads it
    for (int k = static_cast<int>(r.range(1, 8)); k > 0; --k)  // again with verify_checksum = 0)
      file[r.below(file.size())] ^= static_cast<char>(1u << r.below(8));
    if (applied) *applied += "+raw";
  }
  if (file.size() > kMaxFile) file = lay_out("{}", "");
  return file;
}

// ---------------------------------------------------------------------------------------------
// Output-shape oracle: a mutant whose graph computes another output shape than the one recorded
// fails at the very end of the load. The engine's own build path (op registry, schema check,
// each op's build) tells the computed shape, the recorded one is patched and the load retried,
// so geometry mutations reach run().

// Also estimates the work of one sample: per node, its output elements times the weights
// feeding each (kernel taps x input channels per group for convs, the input features for dense
// layers, the window for pools), in multiply-adds (binary ones counted like float ones: the
// reference kernel goes bit by bit).
bool computed_output_shape(const std::string& file, std::vector<int64_t>& shape, double* work = nullptr,
                           bool verify = true) {
  try {
    onebit::ReadOptions ro;
    ro.verify_checksum = verify;
    auto mf = onebit::read_model_buffer(file.data(), file.size(), ro);
    const auto& in = mf->input.shape;
    onebit::ValueInfo vi;
    if (in.size() == 4) vi = onebit::ValueInfo{onebit::DType::kF32, 4, in[2], in[3], in[1]};
    else vi = onebit::ValueInfo{onebit::DType::kF32, 2, 1, 1, in[1]};
    std::map<std::string, onebit::ValueInfo> values{{mf->input.name, vi}};
    double w = 0;
    for (size_t i = 0; i < mf->nodes.size(); ++i) {
      const onebit::NodeDesc& node = mf->nodes[i];
      const onebit::OpDef* def = onebit::find_op(node.op);
      if (!def) return false;
      onebit::check_node_schema(*def, node, i, *mf);
      std::vector<onebit::ValueInfo> ins;
      for (const auto& name : node.inputs) ins.push_back(values.at(name));
      onebit::BuildCtx ctx(*mf, node, i, *def, ins);
      def->build(ctx);
      ctx.check_output();
      values[node.output] = ctx.out;
      const double out_elems = static_cast<double>(ctx.out.h) * ctx.out.w * ctx.out.c;
      double per = 1;
      if (ctx.has_param("weight")) {
        const auto& t = ctx.param("weight");
        per = static_cast<double>(t.logical_count()) / std::max<int64_t>(ctx.out.c, 1);
        if (node.op == "conv2d" || node.op == "dense") {  // the float GEMM computes 16 columns at a time
          const int64_t groups = node.op == "conv2d" ? std::max<int64_t>(ctx.attr_int("groups"), 1) : 1;
          const double og = static_cast<double>(std::max<int64_t>(ctx.out.c / groups, 1));
          per *= std::ceil(og / 16) * 16 / og;
        }
      } else if (node.attrs && node.attrs->find("kernel")) {
        const auto k = ctx.attr_ints("kernel");
        per = static_cast<double>(k[0] * k[1]);
        if (node.op == "xnor_k") per += static_cast<double>(ins[0].c);
      }
      for (const auto& v : ins) per = std::max(per, 1.0 + static_cast<double>(v.c) / std::max<int64_t>(ctx.out.c, 1));
      // residual sign planes: the binary layer runs once per plane, and making the planes (and
      // residual_sign's floats) walks the residual chain, up to bits steps per plane and element
      double chain = 0;
      if (node.op == "bconv2d" || node.op == "bdense" || node.op == "residual_sign") {
        const double bits = static_cast<double>(ctx.attr_int(node.op == "residual_sign" ? "bits" : "residual_bits"));
        if (node.op != "residual_sign") per *= bits;
        if (bits > 1) chain = static_cast<double>(ins[0].h) * ins[0].w * ins[0].c * bits * (bits + 2);
      }
      // + memory traffic: writing an element costs several multiply-adds under AddressSanitizer
      w += out_elems * (per + 8) + chain;
    }
    if (work) *work = w;
    const onebit::ValueInfo& out = values.at(mf->output.name);
    if (out.dtype != onebit::DType::kF32) return false;
    const int64_t batch = mf->output.shape.empty() ? 1 : mf->output.shape[0];
    shape = out.rank == 2 ? std::vector<int64_t>{batch, out.c} : std::vector<int64_t>{batch, out.c, out.h, out.w};
    return true;
  } catch (...) {
    return false;
  }
}

bool patch_output_shape(std::string& file) {
  std::vector<int64_t> shape;
  Doc d;
  if (!computed_output_shape(file, shape) ||
      !parse_doc(reinterpret_cast<const uint8_t*>(file.data()), file.size(), d))
    return false;
  Graph g(d);
  if (!g.outputs || g.outputs->t != J::kArr || g.outputs->a.empty() || g.outputs->a[0].t != J::kObj) return false;
  if (shape[0] == 0) shape[0] = 1;
  set_shape(g.outputs->a[0], shape);
  file = serialize(d);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Allocation tracking (AddressSanitizer's hooks), reproducers on death, hang watchdog.

std::atomic<int64_t> g_live{0}, g_peak{0};
#ifdef FZ_ASAN
void on_malloc(const volatile void*, size_t n) {
  const int64_t v = g_live.fetch_add(static_cast<int64_t>(n), std::memory_order_relaxed) + static_cast<int64_t>(n);
  int64_t p = g_peak.load(std::memory_order_relaxed);
  while (v > p && !g_peak.compare_exchange_weak(p, v, std::memory_order_relaxed)) {
  }
}
void on_free(const volatile void* ptr) {
  if (ptr) g_live.fetch_sub(static_cast<int64_t>(__sanitizer_get_allocated_size(ptr)), std::memory_order_relaxed);
}
#endif

const char* g_cur_data = nullptr;  // the case being run, for the death callback and the watchdog
size_t g_cur_size = 0;
std::atomic<int64_t> g_case_start_ns{0};
char g_crash_path[4096] = "";

int64_t cpu_ns() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void write_file_raw(const char* path, const char* data, size_t n) {
  const int fd = ::open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return;
  while (n) {
    const ssize_t w = ::write(fd, data, n);
    if (w <= 0) break;
    data += w;
    n -= static_cast<size_t>(w);
  }
  ::close(fd);
}

void on_death() {
  if (g_cur_data && g_crash_path[0]) {
    write_file_raw(g_crash_path, g_cur_data, g_cur_size);
    const char msg[] = "fuzz_engine: the failing input was written to ";
    (void)!::write(2, msg, sizeof msg - 1);
    (void)!::write(2, g_crash_path, std::strlen(g_crash_path));
    (void)!::write(2, "\n", 1);
  }
}

uint64_t fnv(const void* p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<const uint8_t*>(p)[i]) * 1099511628211ull;
  return h;
}

std::string g_out_dir = ".";
bool g_abort_on_failure = false;  // libFuzzer: a failure must be a crash it records
bool g_strict_batch = false;
bool g_quiet = false;
int g_fixed_isa = -1;  // --isa: every case under this instruction set
int g_threads = 0;     // --threads: every case with this many threads (else 1, or 2 in 12%)
bool g_check_oracle = false;  // --oracle: --check fixes the recorded output shape (as fuzzing does)

// ---------------------------------------------------------------------------------------------
// Running one case.

struct Stats {
  uint64_t cases = 0, loaded = 0, ran = 0, run_mem = 0, failures = 0, hangs = 0, alloc_fail = 0,
           batch_mismatch = 0, oracle = 0, not_run_big = 0, unverified = 0, odd_batch = 0;
  uint64_t load_code[8] = {};
  int64_t peak_alloc = 0;
  double max_secs = 0, total_secs = 0, max_wall = 0;
  std::map<std::string, uint64_t> messages;
  std::vector<uint64_t> mutation_hits = std::vector<uint64_t>(kNumMutations, 0);
};

// "node 12 (bconv2d 'x:3'): attribute 'padding' ..." -> "bconv2d: attribute 'padding' ..." with
// numbers dropped: a coarse name for the check that answered.
std::string message_class(const std::string& m) {
  std::string s = m;
  if (s.rfind("node ", 0) == 0) {
    const size_t p = s.find(" (");
    const size_t sp = p == std::string::npos ? p : s.find_first_of(" )", p + 2);
    const size_t close = s.find("): ");
    if (p != std::string::npos && close != std::string::npos && sp != std::string::npos)
      s = s.substr(p + 2, sp - p - 2) + ": " + s.substr(close + 3);
  }
  std::string out;
  for (char c : s) {
    if (std::isdigit(static_cast<unsigned char>(c))) {
      if (out.empty() || out.back() != '#') out += '#';
      continue;
    }
    out += c;
  }
  return out.substr(0, 90);
}

void fail(Stats& st, const std::string& kind, const std::string& detail, const std::string& file) {
  st.failures++;
  char name[64];
  std::snprintf(name, sizeof name, "fail-%s-%016" PRIx64 ".onebit", kind.c_str(), fnv(file.data(), file.size()));
  const std::string path = g_out_dir + "/" + name;
  if (!g_abort_on_failure) write_file_raw(path.c_str(), file.data(), file.size());
  std::fprintf(stderr, "FAIL %s: %s (input: %s)\n", kind.c_str(), detail.c_str(),
               g_abort_on_failure ? "libFuzzer's crash file" : path.c_str());
  if (g_abort_on_failure) std::abort();
}

struct CaseResult {
  int load_code = -1;  // ONEBIT_OK when it loaded
  std::string message;
  bool ran = false;
  double secs = 0;  // CPU
  double wall = 0;
  double work = 0;  // estimated multiply-adds of one sample (loaded models)
  int64_t peak = 0;  // heap bytes at the peak, above the case's start (AddressSanitizer builds)
  int extra_rc = -1;  // the run at g_extra_batch
};

void fill_input(std::vector<float>& x, Rng& r) {
  const bool special = r.chance(10);
  for (float& v : x) {
    v = static_cast<float>(r.unit() * 4 - 2);
    if (special && r.chance(5)) {
      const float s[] = {NAN, INFINITY, -INFINITY, -0.0f, 0.0f, 3e38f, -3e38f, 1e-45f};
      v = s[r.below(8)];
    }
  }
}

bool same_floats(const float* a, const float* b, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (!(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i]))) ||
        (a[i] == 0 && std::signbit(a[i]) != std::signbit(b[i])))
      return false;
  return true;
}

// Loads (and runs) one file; every rule of the file comment is checked here.
CaseResult run_case(const std::string& file, Stats& st, Rng& r, bool allow_oracle, bool verify = true) {
  CaseResult res;
  g_cur_data = file.data();
  g_cur_size = file.size();
  if (!g_abort_on_failure)
    std::snprintf(g_crash_path, sizeof g_crash_path, "%s/crash-%016" PRIx64 ".onebit", g_out_dir.c_str(),
                  fnv(file.data(), file.size()));
  st.cases++;
  static const std::vector<onebit::Isa> isas = [] {
    std::vector<onebit::Isa> v;
    for (auto i : {onebit::Isa::kReference, onebit::Isa::kPortable, onebit::Isa::kAvx2, onebit::Isa::kAvx512,
                   onebit::Isa::kAmx})
      if (onebit::isa_supported(i)) v.push_back(i);
    return v;
  }();
  onebit::set_active_isa(g_fixed_isa >= 0 ? static_cast<onebit::Isa>(g_fixed_isa)
                         : r.chance(40) ? onebit::best_isa() : isas[r.below(isas.size())]);
  onebit_load_options o = onebit_default_load_options();
  o.memory_cap = g_cap;
  o.num_threads = g_threads > 0 ? g_threads : r.chance(12) ? 2 : 1;
  o.verify_checksum = verify ? 1 : 0;
  // The float layers' precision is the caller's choice, not the file's: every mode must
  // refuse the same files as cleanly.
  static const char* const kPrecisions[] = {"bf16_emulated", "int8_emulated", "bf16", "int8"};
  if (r.chance(25)) {
    size_t pick = r.below(4);
    const bool avx512 = onebit::active_simd_isa() == onebit::Isa::kAvx512;  // amx included
    if (pick == 2 && !(avx512 && onebit::cpu_features().avx512bf16)) pick = 0;
    if (pick == 3 && !(avx512 && onebit::cpu_features().avx512vnni)) pick = 1;
    o.float_precision = kPrecisions[pick];
  }

  const int64_t base = g_live.load();
  g_peak.store(base);
  const int64_t t0 = now_ns(), c0 = cpu_ns();
  g_case_start_ns.store(t0);
  int64_t excluded_ns = 0, excluded_cpu = 0;
  onebit_model* m = onebit_model_load_ex(nullptr, file.data(), file.size(), &o);
  std::string fail_kind, fail_detail;
  if (!m) {
    res.load_code = onebit_last_error_code();
    res.message = onebit_last_error();
    st.load_code[res.load_code >= 0 && res.load_code < 8 ? res.load_code : 7]++;
    st.messages[message_class(res.message)]++;
    if (res.message.empty()) fail_kind = "empty-error", fail_detail = "load failed without a message";
    else if (res.load_code != ONEBIT_ERROR_FORMAT && res.load_code != ONEBIT_ERROR_MEMORY)
      fail_kind = "error-code", fail_detail = "load failed with code " + std::to_string(res.load_code) + ": " + res.message;
  } else {
    res.load_code = ONEBIT_OK;
    st.loaded++;
    int64_t dims[4] = {0, 0, 0, 0}, n1 = 0, n2 = 0, od[4];
    int orank = 0;
    if (onebit_model_input_shape(m, dims) != 0 || onebit_model_output_size(m, 1, &n1) != 0 ||
        onebit_model_output_size(m, 2, &n2) != 0 || onebit_model_output_shape(m, 1, &orank, od) != 0 ||
        n2 != 2 * n1 || n1 != od[0] * od[1] * od[2] * od[3] || od[0] != 1)
      fail_kind = "api", fail_detail = std::string("shape queries disagree: ") + onebit_last_error();
    const int64_t per = dims[1] * dims[2] * dims[3];
    // The work of one sample decides whether (and under which ISA) it runs; the estimate (a
    // second build) is the fuzzer's time, not the engine's.
    const int64_t te = now_ns(), tc = cpu_ns();
    std::vector<int64_t> shape;
    double work = 0;
    const bool known = computed_output_shape(file, shape, &work, verify);
    excluded_ns += now_ns() - te;
    excluded_cpu += cpu_ns() - tc;
    res.work = work;
    if (g_fixed_isa < 0 && onebit::active_isa() == onebit::Isa::kReference && work > kReferenceWork * g_work_scale)
      onebit::set_active_isa(onebit::best_isa());
    const bool run = per <= kMaxRunFloats && (!known || work <= kMaxWork * g_work_scale);
    if (fail_kind.empty() && !run) st.not_run_big++;
    if (fail_kind.empty() && run) {
      std::vector<float> x(static_cast<size_t>(2 * per)), y1(static_cast<size_t>(n1)), y2(static_cast<size_t>(n2));
      fill_input(x, r);
      // API misuse is refused cleanly
      if (onebit_model_run(m, x.data(), 0, y1.data()) != ONEBIT_ERROR_INVALID_ARGUMENT ||
          onebit_model_run(m, nullptr, 1, y1.data()) != ONEBIT_ERROR_INVALID_ARGUMENT)
        fail_kind = "api", fail_detail = "a bad batch or a null input was not refused";
      const int rc1 = onebit_model_run(m, x.data(), 1, y1.data());
      const std::string e1 = onebit_last_error();
      const int rc2 = onebit_model_run(m, x.data(), 2, y2.data());
      const std::string e2 = onebit_last_error();
      for (auto [rc, e] : {std::pair<int, std::string>{rc1, e1}, {rc2, e2}}) {
        if (rc == ONEBIT_OK) continue;
        if (rc == ONEBIT_ERROR_MEMORY && !e.empty()) {
          st.run_mem++;
          continue;
        }
        if (fail_kind.empty()) fail_kind = "run", fail_detail = "run failed with code " + std::to_string(rc) + ": '" + e + "'";
      }
      if (rc1 == ONEBIT_OK && rc2 == ONEBIT_OK && work * 7 <= kMaxWork * g_work_scale && r.chance(10)) {
        // an odd batch: the kernels' row tiles end mid-sample
        const int64_t b = r.range(3, 7);
        std::vector<float> xb(static_cast<size_t>(b * per)), yb(static_cast<size_t>(b * n1));
        fill_input(xb, r);
        const int rc = onebit_model_run(m, xb.data(), b, yb.data());
        st.odd_batch++;
        if (rc != ONEBIT_OK && !(rc == ONEBIT_ERROR_MEMORY && *onebit_last_error()) && fail_kind.empty())
          fail_kind = "run", fail_detail = "batch " + std::to_string(b) + " failed with code " + std::to_string(rc) +
                                           ": '" + onebit_last_error() + "'";
      }
      if (g_extra_batch > 0) {
        std::vector<float> xb(static_cast<size_t>(g_extra_batch * per)), yb(static_cast<size_t>(g_extra_batch * n1));
        fill_input(xb, r);
        res.extra_rc = onebit_model_run(m, xb.data(), g_extra_batch, yb.data());
        const std::string e = onebit_last_error();
        if (res.extra_rc != ONEBIT_OK && !(res.extra_rc == ONEBIT_ERROR_MEMORY && !e.empty()) && fail_kind.empty())
          fail_kind = "run", fail_detail = "batch " + std::to_string(g_extra_batch) + " failed with code " +
                                           std::to_string(res.extra_rc) + ": '" + e + "'";
        if (res.extra_rc == ONEBIT_ERROR_MEMORY) res.message = e;
      }
      if (rc1 == ONEBIT_OK && rc2 == ONEBIT_OK) {
        st.ran++;
        res.ran = true;
        if (!same_floats(y1.data(), y2.data(), y1.size())) {
          if (++st.batch_mismatch <= 20 && !g_abort_on_failure) {
            char name[64];
            std::snprintf(name, sizeof name, "/batch-%016" PRIx64 ".onebit", fnv(file.data(), file.size()));
            write_file_raw((g_out_dir + name).c_str(), file.data(), file.size());
          }
          if (g_strict_batch && fail_kind.empty())
            fail_kind = "batch", fail_detail = "sample 0 differs between batch 1 and batch 2";
        }
      }
    }
    onebit_model_free(m);
  }
  const int64_t t1 = now_ns();
  g_case_start_ns.store(0);
  res.wall = (t1 - t0 - excluded_ns) * 1e-9;
  res.secs = (cpu_ns() - c0 - excluded_cpu) * 1e-9;
  st.max_wall = std::max(st.max_wall, res.wall);
  st.total_secs += res.secs;
  st.max_secs = std::max(st.max_secs, res.secs);
  const int64_t peak = g_peak.load() - base;
  st.peak_alloc = std::max(st.peak_alloc, peak);
  res.peak = peak;
  const int64_t limit = static_cast<int64_t>(g_cap) + 64 * static_cast<int64_t>(file.size()) + (int64_t{64} << 20);
  if (fail_kind.empty() && (res.secs / o.num_threads > kHangSeconds || res.wall > kHangWallSeconds)) {
    st.hangs++;
    fail_kind = "hang", fail_detail = "case took " + std::to_string(res.secs) + " s of CPU time, " +
                                       std::to_string(res.wall) + " s of wall time";
  }
  if (fail_kind.empty() && peak > limit) {
    st.alloc_fail++;
    fail_kind = "alloc", fail_detail = "peak heap " + std::to_string(peak >> 20) + " MiB above the bound of " +
                                        std::to_string(limit >> 20) + " MiB";
  }
  if (!fail_kind.empty()) fail(st, fail_kind, fail_detail, file);
  if (fail_kind.empty() && verify && res.message.rfind("checksum mismatch", 0) == 0) {
    st.unverified++;  // the damaged bytes themselves, past the checksum
    return run_case(file, st, r, false, false);
  }
  if (fail_kind.empty() && allow_oracle && !m && res.message.find("recorded output shape") != std::string::npos) {
    std::string fixed = file;
    if (patch_output_shape(fixed)) {
      st.oracle++;
      return run_case(fixed, st, r, false);
    }
  }
  g_cur_data = nullptr;
  return res;
}

void install_guards() {
#ifdef FZ_ASAN
  __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free);
  __sanitizer_set_death_callback(on_death);
#endif
  std::set_terminate([] {
    std::fprintf(stderr, "fuzz_engine: std::terminate (an exception escaped the C API?)\n");
    on_death();
    std::abort();
  });
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// libFuzzer entry points.

#ifndef ONEBIT_FUZZ_STANDALONE

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_abort_on_failure = true;
  g_work_scale = 0.1;
  install_guards();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Stats st;
  Rng r(fnv(data, size));
  run_case(std::string(reinterpret_cast<const char*>(data), size), st, r, true);
  return 0;
}

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned seed) {
  Rng r(seed);
  Doc d;
  if (!parse_doc(data, size, d)) return LLVMFuzzerMutate(data, size, max_size);
  std::string out;
  if (r.chance(8)) {  // libFuzzer's own byte mutations on a blob, then a correct file again
    if (!d.data.empty()) {
      std::string blob = d.data;
      blob.resize(std::max(blob.size(), size_t{64}) * 2);
      const size_t n = LLVMFuzzerMutate(reinterpret_cast<uint8_t*>(&blob[0]), d.data.size(), blob.size());
      blob.resize(n);
      d.data = blob;
    }
    out = serialize(d);
  } else if (r.chance(5)) {  // ... or on the JSON text
    std::string js;
    write_json(js, d.meta);
    js.resize(js.size() * 2 + 64);
    const size_t n = LLVMFuzzerMutate(reinterpret_cast<uint8_t*>(&js[0]), js.size() / 2 - 32, js.size());
    js.resize(n);
    out = lay_out(js, d.data);
  } else {
    out = mutate(std::move(d), r, nullptr, nullptr);
  }
  if (out.size() > max_size) return LLVMFuzzerMutate(data, size, max_size);
  std::memcpy(data, out.data(), out.size());
  return out.size();
}

#else  // ONEBIT_FUZZ_STANDALONE

// ---------------------------------------------------------------------------------------------
// The standalone driver.

namespace {

bool read_file(const std::string& path, std::string& out) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  char buf[1 << 16];
  size_t n;
  out.clear();
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  std::fclose(f);
  return true;
}

std::vector<std::string> expand(const std::vector<std::string>& args) {
  std::vector<std::string> files;
  for (const auto& a : args) {
    struct stat sb;
    if (::stat(a.c_str(), &sb) == 0 && S_ISDIR(sb.st_mode)) {
      std::vector<std::string> in_dir;
      if (DIR* dir = ::opendir(a.c_str())) {
        while (dirent* e = ::readdir(dir)) {
          const std::string n = e->d_name;
          if (n.size() > 7 && n.substr(n.size() - 7) == ".onebit") in_dir.push_back(a + "/" + n);
        }
        ::closedir(dir);
      }
      std::sort(in_dir.begin(), in_dir.end());
      files.insert(files.end(), in_dir.begin(), in_dir.end());
    } else {
      files.push_back(a);
    }
  }
  return files;
}

std::string basename_of(const std::string& p) {
  const size_t s = p.find_last_of('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}

void print_stats(const Stats& st, double wall, bool histogram) {
  std::printf("cases %" PRIu64 " in %.1f s (%.0f/s): loaded %" PRIu64 ", ran %" PRIu64
              " (batch 1 and 2), run over the memory cap %" PRIu64 ", loads with a fixed output shape %" PRIu64
              ", too big to run %" PRIu64 ", also run at batch 3-7 %" PRIu64 ", damaged files loaded unverified %" PRIu64
              "\n",
              st.cases, wall, st.cases / std::max(wall, 1e-9), st.loaded, st.ran, st.run_mem, st.oracle,
              st.not_run_big, st.odd_batch, st.unverified);
  std::printf("load errors: format %" PRIu64 ", memory %" PRIu64 ", other %" PRIu64 "\n",
              st.load_code[ONEBIT_ERROR_FORMAT], st.load_code[ONEBIT_ERROR_MEMORY],
              st.load_code[1] + st.load_code[4] + st.load_code[5] + st.load_code[6] + st.load_code[7]);
  std::printf("slowest case %.3f s CPU (%.3f s wall), mean %.4f s; hangs (> %.0f s CPU or %.0f s wall) %" PRIu64
              "; peak heap of a case %.1f MiB%s; batch-1/batch-2 mismatches %" PRIu64 "\n",
              st.max_secs, st.max_wall, st.total_secs / std::max<uint64_t>(st.cases, 1), kHangSeconds,
              kHangWallSeconds, st.hangs,
              st.peak_alloc / 1048576.0,
#ifdef FZ_ASAN
              "",
#else
              " (not tracked: no AddressSanitizer)",
#endif
              st.batch_mismatch);
  if (histogram) {
    std::vector<std::pair<uint64_t, std::string>> v;
    for (const auto& kv : st.messages) v.emplace_back(kv.second, kv.first);
    std::sort(v.rbegin(), v.rend());
    std::printf("distinct error classes: %zu; most frequent:\n", v.size());
    for (size_t i = 0; i < v.size() && i < 40; ++i) std::printf("  %8" PRIu64 "  %s\n", v[i].first, v[i].second.c_str());
    std::printf("mutations applied:");
    for (size_t k = 0; k < kNumMutations; ++k) std::printf(" %s=%" PRIu64, kMutations[k].name, st.mutation_hits[k]);
    std::printf("\n");
  }
}

int check_mode(const std::vector<std::string>& files, const std::string& expect_path) {
  struct Expect {
    std::string want, match;
    int threads = 0;
    uint64_t cap = kMemoryCap;
    int64_t batch = 0;
  };
  std::map<std::string, Expect> expect;  // basename -> what the engine must answer
  if (!expect_path.empty()) {
    std::string text;
    if (!read_file(expect_path, text)) {
      std::fprintf(stderr, "cannot read %s\n", expect_path.c_str());
      return 2;
    }
    const auto doc = onebit::json::parse(text);
    for (const auto& [name, e] : doc.as_object()) {
      const auto* x = e.find("expect");
      const auto* mt = e.find("match");
      Expect ex{x ? x->as_string() : "format", mt ? mt->as_string() : ""};
      if (const auto* t = e.find("threads")) ex.threads = static_cast<int>(t->as_int());
      if (const auto* c = e.find("cap_mib")) ex.cap = static_cast<uint64_t>(c->as_int()) << 20;
      if (const auto* b = e.find("batch")) ex.batch = b->as_int();
      expect[name] = ex;
    }
  }
  Stats st;
  Rng r(1);
  int passed = 0, failed = 0;
  for (const auto& path : files) {
    std::string file;
    if (!read_file(path, file)) {
      std::printf("%s: cannot read\n", path.c_str());
      ++failed;
      continue;
    }
    const auto it = expect.find(basename_of(path));
    const Expect ex = it == expect.end() ? Expect{"ok", ""} : it->second;
    const std::string& want = ex.want;
    const std::string& match = ex.match;
    const uint64_t f0 = st.failures;
    const int threads = g_threads;
    g_threads = ex.threads ? ex.threads : threads;
    g_cap = ex.cap;
    g_extra_batch = ex.batch;
    const CaseResult res = run_case(file, st, r, g_check_oracle);
    g_threads = threads;
    g_cap = kMemoryCap;
    g_extra_batch = 0;
    std::string why;
    if (st.failures != f0) why = "fuzz rule broken (see FAIL above)";
    else if (want == "format" && res.load_code != ONEBIT_ERROR_FORMAT)
      why = "expected a FormatError, got code " + std::to_string(res.load_code);
    else if (want == "format" && res.message.find(match) == std::string::npos)
      why = "message lacks '" + match + "'";
    else if (want == "memory" && res.load_code != ONEBIT_ERROR_MEMORY && res.extra_rc != ONEBIT_ERROR_MEMORY)
      why = "expected the memory cap to refuse it, got load code " + std::to_string(res.load_code) +
            (ex.batch ? ", batch " + std::to_string(ex.batch) + " run code " + std::to_string(res.extra_rc) : "");
    else if (want == "memory" && res.message.find(match) == std::string::npos)
      why = "message lacks '" + match + "'";
    else if (want == "ok" && !(res.load_code == ONEBIT_OK && res.ran))
      why = "expected to load and run, got code " + std::to_string(res.load_code) + " " + res.message;
    std::printf("%s %s: %s %.3f s (%.3f s wall, work %.3g, peak heap %.1f MiB, %s)%s%s\n",
                why.empty() ? "ok  " : "FAIL", basename_of(path).c_str(), want.c_str(), res.secs, res.wall,
                res.work, res.peak / 1048576.0, onebit_active_isa(), res.message.empty() ? "" : ": ", res.message.substr(0, 160).c_str());
    if (!why.empty()) std::printf("     -> %s\n", why.c_str());
    (why.empty() ? passed : failed)++;
  }
  for (const auto& kv : expect) {
    bool seen = false;
    for (const auto& p : files) seen |= basename_of(p) == kv.first;
    if (!seen) {
      std::printf("FAIL %s: listed in %s but not given\n", kv.first.c_str(), expect_path.c_str());
      ++failed;
    }
  }
  std::printf("slowest %.3f s CPU (%.3f s wall), peak heap %.1f MiB\n", st.max_secs, st.max_wall,
              st.peak_alloc / 1048576.0);
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}

int sweep_mode(const std::vector<std::string>& files, uint64_t limit) {
  Stats st;
  Rng r(2);
  const auto t0 = std::chrono::steady_clock::now();
  for (const auto& path : files) {
    std::string file;
    Doc d;
    if (!read_file(path, file) || !parse_doc(reinterpret_cast<const uint8_t*>(file.data()), file.size(), d)) {
      std::printf("FAIL %s: not a .onebit file\n", path.c_str());
      st.failures++;
      continue;
    }
    std::vector<J*> all;
    collect(d.meta, all);
    const size_t nvalues = all.size();
    const J kinds[] = {J::str("3"), J::num("3.5"), J::boolean(true), J(), J::num("9223372036854775808"),
                       J::num("-1"), J::str(""), J::arr(), J::obj(),
                       [] {
                         J a = J::arr(), b = J::arr(), o = J::obj();
                         o.set("a", J::num(1));
                         b.a.push_back(o);
                         a.a.push_back(b);
                         return a;
                       }()};
    uint64_t n = 0;
    for (size_t i = 1; i < nvalues && n < limit; ++i)
      for (const J& k : kinds) {
        Doc c = d;
        std::vector<J*> v;
        collect(c.meta, v);
        *v[i] = k;
        run_case(serialize(c), st, r, false);
        if (++n >= limit) break;
      }
    std::printf("%s: %zu JSON values, %" PRIu64 " replacements\n", basename_of(path).c_str(), nvalues, n);
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  print_stats(st, wall, false);
  std::printf("%" PRIu64 " passed, %" PRIu64 " failed\n", st.cases - st.failures, st.failures);
  return st.failures ? 1 : 0;
}

int fuzz_mode(const std::vector<std::string>& files, uint64_t cases, double seconds, uint64_t seed) {
  std::vector<Doc> seeds;
  for (const auto& path : files) {
    std::string file;
    Doc d;
    if (read_file(path, file) && parse_doc(reinterpret_cast<const uint8_t*>(file.data()), file.size(), d))
      seeds.push_back(std::move(d));
    else
      std::fprintf(stderr, "skipping %s: not a .onebit file\n", path.c_str());
  }
  if (seeds.empty()) {
    std::fprintf(stderr, "no seeds\n");
    return 2;
  }
  Stats st;
  std::vector<Doc> pool;  // mutants that loaded: mutated further
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  double next_report = 30;
  uint64_t i = 0;
  for (; i < cases && elapsed() < seconds; ++i) {
    Rng r(seed * 1000003 + i);
    const Doc& parent = (!pool.empty() && r.chance(40)) ? pool[r.below(pool.size())] : seeds[r.below(seeds.size())];
    std::string applied;
    const std::string file = mutate(parent, r, &applied, &st.mutation_hits);
    const uint64_t f0 = st.failures;
    const CaseResult res = run_case(file, st, r, true);
    if (st.failures != f0) std::fprintf(stderr, "  (case %" PRIu64 ", mutations %s)\n", i, applied.c_str());
    if (res.load_code == ONEBIT_OK) {
      Doc d;
      if (parse_doc(reinterpret_cast<const uint8_t*>(file.data()), file.size(), d)) {
        if (pool.size() < 512) pool.push_back(std::move(d));
        else pool[r.below(pool.size())] = std::move(d);
      }
    }
    if (!g_quiet && elapsed() > next_report) {
      next_report += 30;
      std::printf("... %" PRIu64 " cases, %.0f s, %" PRIu64 " failures\n", st.cases, elapsed(), st.failures);
      std::fflush(stdout);
    }
  }
  print_stats(st, elapsed(), true);
  std::printf("%" PRIu64 " passed, %" PRIu64 " failed\n", st.cases - st.failures, st.failures);
  return st.failures ? 1 : 0;
}

void watchdog(double abort_after) {
  std::thread([abort_after] {
    while (true) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      const int64_t s = g_case_start_ns.load();
      if (s && (now_ns() - s) * 1e-9 > abort_after) {
        std::fprintf(stderr, "FAIL hang: a case has run for over %.0f s; aborting\n", abort_after);
        if (g_cur_data) {
          char path[4200];
          std::snprintf(path, sizeof path, "%s/fail-hang-%016" PRIx64 ".onebit", g_out_dir.c_str(),
                        fnv(g_cur_data, g_cur_size));
          write_file_raw(path, g_cur_data, g_cur_size);
          std::fprintf(stderr, "fuzz_engine: the hanging input was written to %s\n", path);
        }
        std::fflush(stdout);
        std::_Exit(3);
      }
    }
  }).detach();
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> paths;
  std::string mode = "fuzz", expect;
  uint64_t cases = 1000, seed = 1, sweep_limit = UINT64_MAX;
  double seconds = 1e18, hang_abort = 20;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--cases") cases = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--time") seconds = std::atof(next().c_str());
    else if (a == "--seed") seed = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--out") g_out_dir = next();
    else if (a == "--hang-abort") hang_abort = std::atof(next().c_str());
    else if (a == "--check") mode = "check";
    else if (a == "--expect") expect = next();
    else if (a == "--type-sweep") mode = "sweep";
    else if (a == "--sweep-limit") sweep_limit = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--strict-batch") g_strict_batch = true;
    else if (a == "--quiet") g_quiet = true;
    else if (a == "--threads") g_threads = std::atoi(next().c_str());
    else if (a == "--oracle") g_check_oracle = true;
    else if (a == "--work-scale") g_work_scale = std::atof(next().c_str());
    else if (a == "--isa") g_fixed_isa = static_cast<int>(onebit::parse_isa(next()));
    else if (a == "-h" || a == "--help") {
      std::printf("see the comment at the top of tests/csrc/fuzz_engine.cc\n");
      return 0;
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    } else {
      paths.push_back(a);
    }
  }
  ::mkdir(g_out_dir.c_str(), 0755);
  install_guards();
  watchdog(hang_abort);
  const auto files = expand(paths);
  std::printf("fuzz_engine: %s, %zu files, ISA %s, memory cap %" PRIu64 " MiB%s\n", mode.c_str(), files.size(),
              onebit_active_isa(), kMemoryCap >> 20,
#ifdef FZ_ASAN
              ", AddressSanitizer allocation tracking"
#else
              ""
#endif
  );
  std::fflush(stdout);
  int rc;
  if (mode == "check") rc = check_mode(files, expect);
  else if (mode == "sweep") rc = sweep_mode(files, sweep_limit);
  else rc = fuzz_mode(files, cases, seconds, seed);
  std::fflush(stdout);
  return rc;
}

#endif  // ONEBIT_FUZZ_STANDALONE
