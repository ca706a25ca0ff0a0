// Reading a .onebit file: header, checksum, JSON description, tensor table.
// Layout and rules: src/onebit/runtime/format.py and docs/deployment.md. Every
// field is checked here before anything else reads it; ops check their own
// attributes and parameter shapes when the graph is built (engine/graph.cc).
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/json.h"
#include "pack/pack.h"

namespace onebit {

constexpr uint32_t kFormatVersion = 1;
// A file larger than this is refused before it is read (the memory cap for
// weights); overridable at load.
constexpr uint64_t kDefaultMaxFileBytes = uint64_t{2} << 30;

enum class TensorDType : uint8_t { kFloat32, kFloat16, kUint64, kInt32, kUint8, kInt8 };
size_t dtype_size(TensorDType t);
const char* dtype_name(TensorDType t);

struct TensorRef {
  std::string name;
  TensorDType dtype = TensorDType::kFloat32;
  std::vector<int64_t> shape;
  int64_t count = 0;              // elements
  const uint8_t* data = nullptr;  // 64-byte aligned, inside the file buffer
  size_t nbytes = 0;
  bool packed_sign = false;       // "encodings": {"packed_sign", channels}
  int64_t channels = 0;           // of a packed_sign tensor
  // The shape it stands for: a packed_sign tensor's last dim is its channels.
  std::vector<int64_t> logical_shape() const {
    std::vector<int64_t> s = shape;
    if (packed_sign) s.back() = channels;
    return s;
  }
  int64_t logical_count() const {
    int64_t n = 1;
    for (int64_t d : logical_shape()) n *= d;
    return n;
  }
};

struct NodeDesc {
  std::string op;
  std::vector<std::string> inputs;
  std::string output;
  const json::Value* attrs = nullptr;              // an object (possibly empty)
  std::vector<std::pair<std::string, std::string>> params;  // role -> tensor name
  std::string source;
};

struct IoDesc {
  std::string name;
  std::vector<int64_t> shape;  // NCHW or NC, batch first (as exported)
};

struct ModelFile {
  avector<uint8_t> bytes;  // the whole file, 64-byte aligned
  json::Value meta;
  std::string meta_json;   // the JSON text (for metadata the engine does not use)
  std::map<std::string, TensorRef> tensors;
  std::vector<NodeDesc> nodes;
  IoDesc input, output;
};

struct ReadOptions {
  bool verify_checksum = true;
  uint64_t max_file_bytes = kDefaultMaxFileBytes;
};

// Parses and validates; throws FormatError with a message naming the problem.
std::unique_ptr<ModelFile> read_model_buffer(const void* data, size_t size, const ReadOptions& opts);
std::unique_ptr<ModelFile> read_model_path(const std::string& path, const ReadOptions& opts);

}  // namespace onebit
