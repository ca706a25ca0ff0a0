// The engine's op registry: every op is defined once, in its own file under
// engine/ops/, by an OpDef: its attribute schema with ranges, its parameter
// tensors, its input count, whether it may run in place, and a build function
// that validates a node against its inputs, infers the output and prepares the
// kernel (weights re-packed once). The exporter can only emit ops listed here
// (onebit.runtime.ops() shows this table), and docs/deployment.md is written
// from it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/errors.h"
#include "engine/json.h"
#include "engine/model_file.h"

namespace onebit {

struct PoolParams;  // ops/float_ops.h

// Limits every value obeys (checked at load, in 64-bit arithmetic). They are far
// beyond any real network and keep all kernel geometry inside int32.
constexpr int64_t kMaxSpatial = 16384;       // H, W of any value
constexpr int64_t kMaxChannels = 1 << 20;    // C of any value
constexpr int64_t kMaxKernel = 64;           // kernel size, stride, dilation
constexpr int64_t kMaxSampleBytes = int64_t{1} << 32;  // one sample of one value

enum class DType : uint8_t { kF32 = 0, kBits = 1 };

// The load option float_precision: what the float conv2d and dense layers
// compute in (the file does not say; the caller of load chooses).
// * kFp32: fp32 (the default).
// * kBf16: inputs and weights rounded to bfloat16, products summed in fp32 by
//   AVX512-BF16 (VDPBF16PS); needs that CPU feature and the avx512 path.
// * kBf16Emulated: the same arithmetic in portable C++, the same bits, any CPU.
// * kInt8: weights quantized per output channel (symmetric int8) at load, the
//   input per sample (u8 with a zero point) on each call, integer products
//   summed exactly by AVX512-VNNI (VPDPBUSD); needs that feature and the avx512
//   path (kernels/i8gemm.h).
// * kInt8Emulated: the same arithmetic in portable C++, the same bits, any CPU.
// Depthwise float convolutions stay fp32 in every mode (they are no GEMM).
enum class FloatPrecision : uint8_t { kFp32 = 0, kBf16 = 1, kBf16Emulated = 2, kInt8 = 3, kInt8Emulated = 4 };

const char* float_precision_name(FloatPrecision p);
// Parses "fp32", "bf16", "bf16_emulated", "int8", "int8_emulated"; throws
// std::invalid_argument naming the choices.
FloatPrecision parse_float_precision(const std::string& name);
// Throws std::invalid_argument naming what is missing when this process cannot
// run p (kBf16 / kInt8: the CPU lacks AVX512_BF16 / AVX512_VNNI, or the
// instruction set in force is not avx512).
void check_float_precision_supported(FloatPrecision p);

// A value's per-sample shape: rank 4 is NHWC, rank 2 is (N, C). For kBits,
// c counts channels and each pixel stores words_for(c) uint64 words.
struct ValueInfo {
  DType dtype = DType::kF32;
  int rank = 4;
  int64_t h = 1, w = 1, c = 1;
  int64_t row_elems() const { return dtype == DType::kBits ? (c + 63) / 64 : c; }
  int64_t elem_bytes() const { return dtype == DType::kBits ? 8 : 4; }
  int64_t sample_elems() const { return h * w * row_elems(); }
  int64_t sample_bytes() const { return sample_elems() * elem_bytes(); }
};

enum class AttrKind { kInt, kInts, kReal, kBool, kEnum };

struct AttrSpec {
  const char* name;
  AttrKind kind;
  bool required;
  int64_t min = 0, max = 0;    // kInt, kInts: every element in [min, max]
  int count = 0;               // kInts: exact length
  const char* choices = "";    // kEnum: '|'-separated
  double def_real = 0;         // default of an optional kInt/kReal/kBool (as a number)
  const char* def_enum = "";   // default of an optional kEnum
  const char* doc = "";
};

// Schema builders: Int("groups", 1, kMaxChannels, /*default*/ 1, "doc").
AttrSpec Int(const char* name, int64_t min, int64_t max, const char* doc);
AttrSpec Int(const char* name, int64_t min, int64_t max, int64_t def, const char* doc);
AttrSpec Ints(const char* name, int count, int64_t min, int64_t max, const char* doc);
AttrSpec Real(const char* name, const char* doc);
AttrSpec Real(const char* name, double def, const char* doc);
AttrSpec Bool(const char* name, bool def, const char* doc);
AttrSpec Enum(const char* name, const char* choices, const char* def, const char* doc);

struct ParamSpec {
  const char* role;
  bool required;
  const char* doc;
};

// What a kernel gets per call. Buffers are the call's own (an execution
// context), so kernels are const and shared by all threads.
//
// A float value may live in a channel slice of a wider value's buffer (a concat
// written in place: the planner lets the producers of its inputs write straight
// into their slices). Its pixels are then `ld` floats apart instead of c. The
// planner does that only where the kernel says it honours the stride
// (OpKernel::strided_input / strided_output); every other kernel sees dense values.
struct RunArgs {
  int64_t n;                  // batch
  const void* const* in;      // one pointer per input value
  void* out;
  int nthreads;
  const int64_t* in_ld = nullptr;  // per input: floats from one pixel to the next (null: all dense)
  int64_t out_ld = 0;              // the same for the output (0: dense)
  // The next step fused into this one (a float max-pool, Model::fuse_conv_maxpool, or
  // a sign, Model::fuse_bconv_sign): its output, which the step writes besides its
  // own; null: none.
  void* next_out = nullptr;
  int64_t next_out_ld = 0;  // its pixel stride (0: dense)
};

// A sign op's comparison (sign.cc), for the step that may compute it: bit c set iff
// x[c] < thr[c], then xor bit c of flip (null: none). Pointers into the sign kernel.
struct SignSpec {
  int64_t c;
  const float* thr;     // [c]
  const uint64_t* flip;  // [words_for(c)] or null
};

// The pixel stride of input k (of shape v) in a call: its row_elems when dense.
inline int64_t in_stride(const RunArgs& a, size_t k, const ValueInfo& v) {
  return a.in_ld && a.in_ld[k] ? a.in_ld[k] : v.row_elems();
}
inline int64_t out_stride(const RunArgs& a, const ValueInfo& v) { return a.out_ld ? a.out_ld : v.row_elems(); }

class OpKernel {
 public:
  virtual ~OpKernel() = default;
  virtual void run(const RunArgs& a) const = 0;
  // Bytes the kernel allocates for itself during a call of batch n on up to
  // nthreads threads (counted against the memory cap together with the planned
  // values): per-thread scratch counts once per thread that can hold it.
  virtual int64_t transient_bytes(int64_t n, int nthreads) const { (void)n, (void)nthreads; return 0; }
  // Whether run() reads input k / writes the output at the pixel stride of
  // RunArgs (float values only). Fixed at build: the plan is made once per batch
  // size and must hold under every instruction set.
  virtual bool strided_input(size_t k) const { (void)k; return false; }
  virtual bool strided_output() const { return false; }
  // A float max-pool's window (n unset): the model may fuse it into the step that
  // produces its input. Null: not a float max-pool.
  virtual const PoolParams* float_maxpool() const { return nullptr; }
  // Asked at build: whether run() will also compute the max-pool `pool` of its
  // output into RunArgs::next_out (the same values as a separate maxpool step).
  virtual bool fuse_maxpool(const PoolParams& pool) { (void)pool; return false; }
  // A sign of float activations: the model may fuse it into the step that produces its
  // input. Null: not a sign.
  virtual const SignSpec* float_sign() const { return nullptr; }
  // Asked at build: whether run() will also write the sign `s` of its float output
  // into RunArgs::next_out (the same bits as a separate sign step).
  virtual bool fuse_sign(const SignSpec& s) { (void)s; return false; }
  // Whether run() is also correct when its output shares input k's buffer, for an op
  // whose OpDef is not inplace as a whole (a bconv2d's residual: Model's
  // residual_in_place). The planner then lets the output take that block when input k
  // dies at this step and has the output's size.
  virtual bool overwrites_input(size_t k) const { (void)k; return false; }
};

class BuildCtx;

struct OpDef {
  const char* name;
  const char* doc;
  int min_inputs, max_inputs;
  std::vector<AttrSpec> attrs;
  std::vector<ParamSpec> params;
  // The output may share the buffer of an input that is not used afterwards
  // (the kernel must then be correct with out == in).
  bool inplace;
  // Validate the node (attributes are schema-checked before), set ctx.out and
  // return the prepared kernel. Every problem is ctx.fail(...).
  std::unique_ptr<OpKernel> (*build)(BuildCtx& ctx);
};

const std::vector<const OpDef*>& op_registry();
const OpDef* find_op(std::string_view name);

// The view of one node an OpDef's build works with.
class BuildCtx {
 public:
  BuildCtx(const ModelFile& file, const NodeDesc& node, size_t index, const OpDef& def,
           std::vector<ValueInfo> inputs, FloatPrecision precision = FloatPrecision::kFp32);

  const std::vector<ValueInfo>& inputs() const { return inputs_; }
  const ValueInfo& input(size_t i = 0) const { return inputs_.at(i); }
  ValueInfo out;  // set by build
  // The float precision the model was loaded with (float conv2d / dense follow it).
  FloatPrecision float_precision() const { return precision_; }
  // Set by build for a float layer: the precision it runs in ("fp32", "bf16",
  // ...); empty for ops without float GEMMs.
  std::string precision;

  int64_t attr_int(const char* name) const;
  std::vector<int64_t> attr_ints(const char* name) const;
  double attr_real(const char* name) const;
  bool attr_bool(const char* name) const;
  std::string attr_enum(const char* name) const;

  bool has_param(const char* role) const;
  const TensorRef& param(const char* role) const;
  // Float parameters (float32 or float16 in the file) with exactly `count`
  // elements, as float32.
  std::vector<float> param_f32(const char* role, int64_t count) const;
  std::vector<int32_t> param_i32(const char* role, int64_t count) const;

  // Requires the input to be f32 / bits / of a rank; fails naming the input.
  void require_input(size_t i, DType dtype, int rank) const;
  // Checks an inferred output against the value limits.
  void check_output() const;

  [[noreturn]] void fail(const std::string& msg) const;

 private:
  const ModelFile& file_;
  const NodeDesc& node_;
  size_t index_;
  const OpDef& def_;
  std::vector<ValueInfo> inputs_;
  FloatPrecision precision_;
  const json::Value* attr(const char* name) const;
};

// Schema check of a node's attributes and parameter roles (unknown names,
// types, ranges, lengths, required ones present), before build.
void check_node_schema(const OpDef& def, const NodeDesc& node, size_t index, const ModelFile& file);

// Output size of a convolution / pooling window along one axis, or -1 when the
// (dilated) window does not fit the padded input. 64-bit, overflow-free for
// values within the limits above.
int64_t window_out(int64_t size, int64_t pad_a, int64_t pad_b, int64_t kernel, int64_t stride,
                   int64_t dilation);

}  // namespace onebit
