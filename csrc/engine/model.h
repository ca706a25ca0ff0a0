// A loaded model: the validated graph with prepared kernels, memory plans per
// batch size, and a pool of execution contexts.
//
// Thread-safety: run() may be called on one Model from any number of threads
// at once. Weights and kernels are immutable after load; each call takes its
// own execution context (activation arena) from a pool; plans are built once
// per batch size under a lock and then shared read-only. (Kernels parallelize
// through one process-wide thread pool; concurrent calls share it.)
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/model_file.h"
#include "engine/op.h"

namespace onebit {

// Activation memory of one call (all planned values plus the largest kernel
// scratch) may not exceed this unless the loader says otherwise.
constexpr uint64_t kDefaultMemoryCap = uint64_t{4} << 30;

struct LoadOptions {
  int num_threads = 0;                 // <= 0: the engine default (ONEBIT_NUM_THREADS or all CPUs)
  uint64_t memory_cap = kDefaultMemoryCap;
  uint64_t max_file_bytes = kDefaultMaxFileBytes;
  bool verify_checksum = true;
  FloatPrecision float_precision = FloatPrecision::kFp32;  // float conv2d / dense layers
  // Producers write a float concat's inputs straight into its buffer (Model::
  // place_concat_inputs); false copies them, with the same results (to measure it).
  bool concat_in_place = true;
  // A float maxpool whose input only a conv2d before it produces and reads is computed
  // by that conv's step (Model::fuse_conv_maxpool); false runs it as its own step,
  // with the same results (to measure it).
  bool fuse_conv_maxpool = true;
  // A sign whose input only the float-output bconv2d before it produces is computed by
  // that conv's step (Model::fuse_bconv_sign); false runs it as its own step, with the
  // same results (to measure it).
  bool fuse_bconv_sign = true;
  // A float-output bconv2d writes its output over its residual input's buffer when
  // nothing reads the residual afterwards (OpKernel::overwrites_input): the residual
  // stream of a binary ResNet then stays in one buffer, which fits L2 where two did
  // not; false gives each output a block of its own, with the same results (to measure it).
  bool residual_in_place = true;
  // A sign of a float concat written in place (Model::place_concat_inputs), whose
  // inputs start on 64-channel words, is computed in parts: the step that produces
  // each input also writes that input's bits of the sign, from the values it has just
  // written (Model::fuse_concat_sign); false runs the sign as its own step, which
  // re-reads every channel so far, with the same bits (to measure it).
  bool fuse_concat_sign = true;
};

struct StepInfo {
  std::string op, output, source, output_attr;
  std::string precision;  // float layers: the precision they run in; else empty
  ValueInfo value;  // per sample
  // The concat output whose buffer holds this output, written in place (its
  // channels from `channel_offset` on); empty when the output has its own buffer.
  std::string written_into;
  int64_t channel_offset = 0;
  // A maxpool or sign computed by the conv2d / bconv2d step that produces its input:
  // that step's output name; a sign of a concat computed in parts: the outputs of the
  // steps that compute them, comma-separated; empty otherwise.
  std::string computed_by;
};

class Model {
 public:
  static std::unique_ptr<Model> load_path(const std::string& path, const LoadOptions& opts);
  static std::unique_ptr<Model> load_buffer(const void* data, size_t size, const LoadOptions& opts);
  ~Model();

  // As exported: (N, C, H, W) or (N, C) with the export batch.
  const std::vector<int64_t>& input_shape() const { return file_->input.shape; }
  const std::vector<int64_t>& output_shape() const { return file_->output.shape; }
  int64_t input_floats(int64_t batch) const;
  int64_t output_floats(int64_t batch) const;
  // Output shape for a batch, in the layout run() writes (NCHW or NC).
  std::vector<int64_t> output_shape_for(int64_t batch) const;
  int num_threads() const { return num_threads_; }
  // The load option float_precision (which the float conv2d / dense layers
  // follow; depthwise convolutions stay fp32, see StepInfo::precision).
  FloatPrecision float_precision() const { return float_precision_; }

  // input: `batch` samples, NCHW (NC) float32; output: output_floats(batch) floats.
  // step_seconds (optional, steps().size() entries) accumulates time per step.
  void run(const float* input, int64_t batch, float* output, double* step_seconds = nullptr) const;

  // Bytes of one call's activation arena for a batch (planned values + scratch).
  uint64_t memory_bytes(int64_t batch) const;
  const std::vector<StepInfo>& steps() const { return info_; }
  const std::string& meta_json() const { return file_->meta_json; }

 private:
  struct Step;
  struct Plan;
  struct Context;
  Model() = default;
  void build(std::unique_ptr<ModelFile> file, const LoadOptions& opts);
  std::shared_ptr<const Plan> plan_for(int64_t batch) const;
  void place_concat_inputs(const std::vector<ValueInfo>& values, bool enabled);
  void fuse_conv_maxpool(bool enabled);
  void fuse_bconv_sign(bool enabled);
  void fuse_concat_sign(bool enabled);
  struct SignPart;
  void run_sign_parts(const Step& s, uint8_t* arena, const Plan& plan, int64_t batch) const;
  bool grouped(int v) const { return slot_[v].root != v || has_members_[v]; }
  std::unique_ptr<Context> acquire() const;
  void release(std::unique_ptr<Context> ctx) const;

  std::unique_ptr<ModelFile> file_;
  std::vector<std::unique_ptr<Step>> steps_;
  std::vector<StepInfo> info_;
  ValueInfo input_info_, output_info_;
  int output_value_ = 0;
  // Per value: the value whose buffer holds it and its first channel there
  // (root == itself: its own buffer), from place_concat_inputs.
  struct Slot {
    int root;
    int64_t off;
  };
  std::vector<Slot> slot_;
  std::vector<bool> has_members_;  // some other value lives in this one's buffer
  std::vector<int> group_last_;    // per root with members: the last step using any of them
  // Per step: the values whose blocks are taken before it runs, ahead of their own step
  // (the bits of a sign computed in parts, written from the first part's step on).
  std::vector<std::vector<int>> born_before_;
  int num_threads_ = 1;
  FloatPrecision float_precision_ = FloatPrecision::kFp32;
  uint64_t memory_cap_ = kDefaultMemoryCap;
  bool residual_in_place_ = true;  // LoadOptions::residual_in_place
  mutable std::mutex mu_;
  mutable std::map<int64_t, std::shared_ptr<const Plan>> plans_;
  mutable std::vector<std::unique_ptr<Context>> idle_;
};

}  // namespace onebit
