// libFuzzer target for csrc/engine/json.cc (not part of the test suite):
//
//   clang++ -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -I csrc \
//     tests/csrc/fuzz_json.cc csrc/engine/json.cc -o fuzz_json
//   ./fuzz_json -max_total_time=60 -max_len=4096
//
// Any input must give a value or a ParseError within the input; a tree that
// parses is walked fully and copied, so ASan sees every node.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "engine/json.h"

namespace {

size_t walk(const onebit::json::Value& v) {
  size_t n = 1;
  switch (v.type()) {
    case onebit::json::Type::kArray:
      for (const auto& e : v.as_array()) n += walk(e);
      break;
    case onebit::json::Type::kObject:
      for (const auto& m : v.as_object()) {
        n += m.first.size() + walk(m.second);
        if (!v.find(m.first)) std::abort();  // every key is findable
      }
      break;
    case onebit::json::Type::kString: n += v.as_string().size(); break;
    case onebit::json::Type::kNumber:
      if (v.is_integer()) n += static_cast<size_t>(v.as_int() & 1);
      n += v.as_double() > 0;
      break;
    default: break;
  }
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Small limits so the fuzzer also reaches each limit's error path.
  onebit::json::Limits limits;
  limits.max_depth = 32;
  limits.max_string = 256;
  limits.max_elements = 512;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    onebit::json::Value v = onebit::json::parse(text, limits);
    onebit::json::Value copy = v;
    if (walk(copy) != walk(v)) std::abort();
  } catch (const onebit::json::ParseError& e) {
    if (e.offset > size) std::abort();
  }
  return 0;
}
