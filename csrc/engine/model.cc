#include "engine/model.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <new>
#include <string_view>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "pack/pack.h"
#include "runtime/threadpool.h"

namespace onebit {

struct Model::Step {
  const OpDef* def;
  std::unique_ptr<OpKernel> kernel;
  std::vector<int> inputs;  // value indices (0 = the model input, i + 1 = step i's output)
  int output;
  std::vector<int64_t> in_ld;  // RunArgs::in_ld (empty: all inputs dense)
  int64_t out_ld = 0;
  bool computes_next = false;     // this step also computes the next step's output (a maxpool's, a sign's)
  bool computed_by_prev = false;  // this step is done by the step before it
  bool computed_in_parts = false;  // a sign of a concat, done by the steps producing its inputs
  std::vector<SignPart> parts_after;  // bits of later signs from this step's output, written after it
};

// The bits of one input of a concat for a sign of that concat (Model::fuse_concat_sign).
struct Model::SignPart {
  int sign_step;
  int64_t channel;          // the input's first channel in the sign's input
  int nbits;                // the bits it owns from there (SignSet::nbits)
  avector<uint64_t> flip;   // the sign's flip of the input's channels, from bit 0 (empty: none)
};

struct Model::Plan {
  int64_t batch;
  std::vector<uint64_t> offset;  // per value, bytes into the arena
  uint64_t bytes;
};

struct Model::Context {
  avector<uint8_t> arena;
  std::vector<const void*> ins;
};

namespace {
constexpr int64_t kMaxBatch = int64_t{1} << 24;
constexpr size_t kMaxPlans = 32;  // cached batch sizes (plans are small; this bounds a hostile caller)

uint64_t align64(uint64_t n) { return (n + 63) / 64 * 64; }

std::string mib(uint64_t bytes) {
  return std::to_string(bytes) + " bytes (" + std::to_string(bytes >> 20) + " MiB)";
}
}  // namespace

Model::~Model() = default;

std::unique_ptr<Model> Model::load_path(const std::string& path, const LoadOptions& opts) {
  ReadOptions ro{opts.verify_checksum, opts.max_file_bytes};
  std::unique_ptr<Model> m(new Model());
  m->build(read_model_path(path, ro), opts);
  return m;
}

std::unique_ptr<Model> Model::load_buffer(const void* data, size_t size, const LoadOptions& opts) {
  ReadOptions ro{opts.verify_checksum, opts.max_file_bytes};
  std::unique_ptr<Model> m(new Model());
  m->build(read_model_buffer(data, size, ro), opts);
  return m;
}

void Model::build(std::unique_ptr<ModelFile> file, const LoadOptions& opts) {
  file_ = std::move(file);
  num_threads_ = opts.num_threads > 0 ? std::min(opts.num_threads, 1024) : get_num_threads();
  memory_cap_ = opts.memory_cap;
  residual_in_place_ = opts.residual_in_place;
  check_float_precision_supported(opts.float_precision);
  float_precision_ = opts.float_precision;
  const auto& in = file_->input.shape;
  if (in.size() == 4) {
    if (in[1] > kMaxChannels) throw FormatError("input has " + std::to_string(in[1]) + " channels, above the limit");
    input_info_ = ValueInfo{DType::kF32, 4, in[2], in[3], in[1]};
  } else {
    input_info_ = ValueInfo{DType::kF32, 2, 1, 1, in[1]};
  }
  std::map<std::string, int> index{{file_->input.name, 0}};
  std::vector<ValueInfo> values{input_info_};
  for (size_t i = 0; i < file_->nodes.size(); ++i) {
    const NodeDesc& node = file_->nodes[i];
    const OpDef* def = find_op(node.op);
    if (!def)
      throw FormatError("node " + std::to_string(i) + ": unknown op '" + node.op +
                        "' (file made by a newer onebit?)");
    check_node_schema(*def, node, i, *file_);
    auto step = std::make_unique<Step>();
    step->def = def;
    std::vector<ValueInfo> ins;
    for (const std::string& name : node.inputs) {
      const int v = index.at(name);  // defined before: checked by the file reader
      step->inputs.push_back(v);
      ins.push_back(values[v]);
    }
    BuildCtx ctx(*file_, node, i, *def, std::move(ins), float_precision_);
    step->kernel = def->build(ctx);
    ctx.check_output();
    step->output = static_cast<int>(values.size());
    index.emplace(node.output, step->output);
    values.push_back(ctx.out);
    StepInfo si{node.op, node.output, node.source, "", ctx.precision, ctx.out};
    if (node.attrs)
      if (const json::Value* o = node.attrs->find("output"); o && o->is_string()) si.output_attr = o->as_string();
    info_.push_back(std::move(si));
    steps_.push_back(std::move(step));
  }
  const int out = index.at(file_->output.name);
  output_info_ = values[out];
  if (output_info_.dtype != DType::kF32) throw FormatError("the output '" + file_->output.name + "' is binary, not float");
  // The recorded output shape must be what the graph computes.
  const auto& os = file_->output.shape;
  const bool match = output_info_.rank == 2
                         ? os.size() == 2 && os[1] == output_info_.c
                         : os.size() == 4 && os[1] == output_info_.c && os[2] == output_info_.h &&
                               os[3] == output_info_.w;
  if (!match) throw FormatError("the recorded output shape does not match what the graph computes");
  output_value_ = out;
  place_concat_inputs(values, opts.concat_in_place);
  fuse_conv_maxpool(opts.fuse_conv_maxpool);
  fuse_bconv_sign(opts.fuse_bconv_sign);
  fuse_concat_sign(opts.fuse_concat_sign);
  plan_for(1);  // the memory cap holds for one sample at least
}

// A stem's conv2d -> maxpool: the pool re-read the conv's whole output (3.2 MB for a
// 112x112x64 stem, from L3) after the conv had written it. When the maxpool is the
// next step and the only reader of a conv2d's dense float output (not the model's
// output, not placed in a concat; the pool's own output may be, as in DenseNet), the conv's step also
// computes the pool (OpKernel::fuse_maxpool) and the maxpool step does nothing. The
// planner keeps the conv's inputs until the pool's output is placed, since the conv
// step writes both.
void Model::fuse_conv_maxpool(bool enabled) {
  if (!enabled) return;
  std::vector<int> uses(steps_.size() + 1, 0);
  for (const auto& s : steps_)
    for (int v : s->inputs) ++uses[v];
  for (size_t i = 0; i + 1 < steps_.size(); ++i) {
    Step& conv = *steps_[i];
    Step& pool = *steps_[i + 1];
    if (std::string_view(conv.def->name) != "conv2d" || conv.computes_next || conv.computed_by_prev) continue;
    const PoolParams* pp = pool.kernel->float_maxpool();
    if (!pp || pool.inputs.size() != 1 || pool.inputs[0] != conv.output || uses[conv.output] != 1) continue;
    if (conv.output == output_value_ || grouped(conv.output) || conv.out_ld) continue;
    if (!conv.kernel->fuse_maxpool(*pp)) continue;
    conv.computes_next = pool.computed_by_prev = true;
    info_[i + 1].computed_by = info_[i].output;
  }
}

// A float-output bconv2d -> sign (every block of the binary ResNets: the block's output
// goes on to the next residual add and, binarized, to the next conv): the sign re-read
// the whole float output after the conv had written it. When the sign is the next step
// and reads only that output, the bconv's step writes the bits too, from the values in
// its registers (OpKernel::fuse_sign) and the sign step does nothing. The float output
// stays as it was, for its other readers.
void Model::fuse_bconv_sign(bool enabled) {
  if (!enabled) return;
  for (size_t i = 0; i + 1 < steps_.size(); ++i) {
    Step& conv = *steps_[i];
    Step& sign = *steps_[i + 1];
    if (std::string_view(conv.def->name) != "bconv2d" || conv.computes_next || conv.computed_by_prev) continue;
    const SignSpec* spec = sign.kernel->float_sign();
    if (!spec || sign.inputs.size() != 1 || sign.inputs[0] != conv.output || sign.out_ld) continue;
    if (!conv.kernel->fuse_sign(*spec)) continue;
    conv.computes_next = sign.computed_by_prev = true;
    info_[i + 1].computed_by = info_[i].output;
  }
}

// DenseNet's layers each binarize all the features so far, sign(concat(features, new)),
// with thresholds of their own (each layer's BatchNorm): the sign re-read every channel
// (16.9 MB over the 6 layers of binary_densenet28's first block, from L3). When the
// concat is written in place, the step that produces each of its inputs also writes
// that input's bits of every such sign, from the rows it has just written
// (Model::run_sign_parts; an input off the 64-channel grid merges its bits into the
// words it shares with its neighbours), and the sign step does nothing. The sign's
// bits get their block before its first part's step.
void Model::fuse_concat_sign(bool enabled) {
  born_before_.assign(steps_.size(), {});
  if (!enabled) return;
  const auto is_concat = [&](int v) { return v > 0 && std::string_view(steps_[v - 1]->def->name) == "concat"; };
  for (size_t i = 0; i < steps_.size(); ++i) {
    Step& sign = *steps_[i];
    const SignSpec* spec = sign.kernel->float_sign();
    if (!spec || sign.computed_by_prev || sign.inputs.size() != 1) continue;
    const int v = sign.inputs[0];
    if (!is_concat(v) || !grouped(v)) continue;
    // The concat's leaves (nested concats opened), each placed in the shared buffer.
    std::vector<int> leaves, todo{v};
    bool ok = true;
    while (ok && !todo.empty()) {
      const int c = todo.back();
      todo.pop_back();
      const auto& ins = steps_[c - 1]->inputs;
      for (auto it = ins.rbegin(); it != ins.rend(); ++it) {
        if (*it == 0 || slot_[*it].root != slot_[v].root) ok = false;  // copied by the concat
        else if (is_concat(*it)) todo.push_back(*it);
        else leaves.push_back(*it);
      }
    }
    if (!ok || leaves.empty()) continue;
    for (int leaf : leaves) ok &= steps_[leaf - 1]->out_ld > 0;  // written into the shared buffer
    if (!ok) continue;
    const int64_t c_all = info_[v - 1].value.c, w_all = words_for(static_cast<int>(c_all));
    std::string by;
    int first = static_cast<int>(i);
    for (int leaf : leaves) {
      SignPart part{static_cast<int>(i), slot_[leaf].off - slot_[v].off, 0, {}};
      const int64_t c = info_[leaf - 1].value.c;
      // the last input also owns the rest of the sign's last word (its padding, 0)
      part.nbits = static_cast<int>(part.channel + c == c_all ? w_all * 64 - part.channel : c);
      if (spec->flip) {  // the flip bits of [channel, channel + c), from bit 0
        part.flip.assign(static_cast<size_t>(words_for(static_cast<int>(c))), 0);
        for (int64_t k = 0; k < c; ++k) {
          const int64_t b = part.channel + k;
          part.flip[k / 64] |= ((spec->flip[b / 64] >> (b % 64)) & 1) << (k % 64);
        }
      }
      steps_[leaf - 1]->parts_after.push_back(std::move(part));
      first = std::min(first, leaf - 1);
      by += (by.empty() ? "" : ",") + info_[leaf - 1].output;
    }
    born_before_[first].push_back(sign.output);
    sign.computed_in_parts = true;
    info_[i].computed_by = by;
  }
}

// After step s: its output's bits of each sign in s.parts_after, all of them in one pass
// over the rows (pack_rows_f32_multi), the rows shared out to the threads.
void Model::run_sign_parts(const Step& s, uint8_t* arena, const Plan& plan, int64_t batch) const {
  const ValueInfo& vi = info_[s.output - 1].value;
  const auto* x = reinterpret_cast<const float*>(arena + plan.offset[s.output]);
  const size_t ld = static_cast<size_t>(s.out_ld), rows = static_cast<size_t>(batch * vi.h * vi.w);
  const size_t n = s.parts_after.size();
  std::vector<SignSet> sets(n);
  for (size_t j = 0; j < n; ++j) {
    const SignPart& p = s.parts_after[j];
    const Step& sign = *steps_[p.sign_step];
    const SignSpec& spec = *sign.kernel->float_sign();
    const size_t ws = static_cast<size_t>(words_for(static_cast<int>(spec.c)));
    sets[j] = SignSet{spec.thr + p.channel, p.flip.empty() ? nullptr : p.flip.data(),
                      reinterpret_cast<uint64_t*>(arena + plan.offset[sign.output]) + p.channel / 64, ws,
                      static_cast<int>(p.channel % 64), p.nbits};
  }
  const int tasks = static_cast<int>(std::min<size_t>((rows + 255) / 256, 4 * static_cast<size_t>(num_threads_)));
  parallel_for(tasks, num_threads_, [&](int t) {
    pack_rows_f32_multi(x, rows * t / tasks, rows * (t + 1) / tasks, static_cast<int>(vi.c), ld, sets.data(),
                        static_cast<int>(n));
  });
}

// DenseNet grows its features by concat(features, new): copied, each layer
// re-reads and re-writes all channels so far (2.8 of binary_densenet28's 15 ms).
// Instead the concat's output buffer is given to its inputs: each input's
// producer writes its channels straight into its slice (pixels at the concat's
// stride), the concat then copies only what could not be placed, and nested
// concats (features_k = concat(features_k-1, new_k)) all share the outermost
// buffer. An input is placed when it is a float value its producer can write
// strided and every other consumer can read strided, used once by the concat,
// not already placed elsewhere, and neither the model input nor its output.
// The planner then keeps the shared buffer alive from its first member's
// producer to its last member's last use, and no member runs in place.
void Model::place_concat_inputs(const std::vector<ValueInfo>& values, bool enabled) {
  const int nvalues = static_cast<int>(values.size());
  slot_.resize(nvalues);
  for (int v = 0; v < nvalues; ++v) slot_[v] = Slot{v, 0};
  has_members_.assign(nvalues, false);
  group_last_.assign(nvalues, -1);
  std::vector<std::vector<std::pair<int, size_t>>> uses(nvalues);  // (step, input position)
  for (size_t i = 0; i < steps_.size(); ++i)
    for (size_t k = 0; k < steps_[i]->inputs.size(); ++k) uses[steps_[i]->inputs[k]].emplace_back(static_cast<int>(i), k);
  auto placeable = [&](int v, int step, size_t pos) {
    if (v == 0 || v == output_value_ || slot_[v].root != v || has_members_[v]) return false;
    if (values[v].dtype != DType::kF32 || !steps_[v - 1]->kernel->strided_output()) return false;
    for (const auto& [j, k] : uses[v]) {
      if (j == step && k == pos) continue;
      if (j == step) return false;  // the same value twice in one concat
      if (!steps_[j]->kernel->strided_input(k)) return false;
    }
    return true;
  };
  // Outermost first: a concat placed into a later one passes that buffer on to its inputs.
  for (int i = enabled ? static_cast<int>(steps_.size()) - 1 : -1; i >= 0; --i) {
    const Step& s = *steps_[i];
    if (std::string_view(s.def->name) != "concat" || values[s.output].dtype != DType::kF32) continue;
    const int root = slot_[s.output].root;
    int64_t off = slot_[s.output].off;
    for (size_t k = 0; k < s.inputs.size(); ++k) {
      const int v = s.inputs[k];
      if (placeable(v, i, k)) {
        slot_[v] = Slot{root, off};
        has_members_[root] = true;
      }
      off += values[v].c;
    }
  }
  std::vector<int> last_use(nvalues, -1);
  for (size_t i = 0; i < steps_.size(); ++i)
    for (int v : steps_[i]->inputs) last_use[v] = static_cast<int>(i);
  last_use[output_value_] = static_cast<int>(steps_.size());
  for (int v = 1; v < nvalues; ++v) {
    const int root = slot_[v].root;
    if (root == v) continue;
    group_last_[root] = std::max({group_last_[root], last_use[v], last_use[root]});
    StepInfo& si = info_[v - 1];
    si.written_into = info_[root - 1].output;
    si.channel_offset = slot_[v].off;
  }
  const auto ld = [&](int v) { return slot_[v].root == v ? int64_t{0} : values[slot_[v].root].c; };
  for (auto& step : steps_) {
    step->out_ld = ld(step->output);
    bool any = false;
    for (int v : step->inputs) any |= ld(v) != 0;
    if (any)
      for (int v : step->inputs) step->in_ld.push_back(ld(v));
  }
}

int64_t Model::input_floats(int64_t batch) const { return batch * input_info_.sample_elems(); }
int64_t Model::output_floats(int64_t batch) const { return batch * output_info_.sample_elems(); }

std::vector<int64_t> Model::output_shape_for(int64_t batch) const {
  if (output_info_.rank == 2) return {batch, output_info_.c};
  return {batch, output_info_.c, output_info_.h, output_info_.w};
}

std::shared_ptr<const Model::Plan> Model::plan_for(int64_t batch) const {
  if (batch < 1 || batch > kMaxBatch)
    throw InputError("batch must be in [1, " + std::to_string(kMaxBatch) + "], got " + std::to_string(batch));
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = plans_.find(batch);
    if (it != plans_.end()) return it->second;
  }
  // Greedy liveness planning: a value's block returns to the free list after its
  // last use; a later value takes the smallest free block that fits, or the block
  // of an input dying at an in-place op when the sizes match.
  const int nvalues = static_cast<int>(steps_.size()) + 1;
  std::vector<int> last_use(nvalues, -1);
  for (size_t i = 0; i < steps_.size(); ++i)
    for (int v : steps_[i]->inputs) last_use[v] = static_cast<int>(i);
  last_use[output_value_] = static_cast<int>(steps_.size());

  auto plan = std::make_shared<Plan>();
  plan->batch = batch;
  plan->offset.assign(nvalues, 0);
  struct Block { uint64_t off, size; };
  std::vector<Block> free_blocks;
  std::vector<int> block_of(nvalues, -1);
  std::vector<bool> early(nvalues, false);  // given its block before its own step (born_before_)
  std::vector<Block> blocks;
  auto value_bytes = [&](int v) {
    const ValueInfo& info = v == 0 ? input_info_ : info_[v - 1].value;
    return static_cast<uint64_t>(batch) * static_cast<uint64_t>(info.sample_bytes());
  };
  uint64_t total = align64(value_bytes(0)), scratch = 0;
  plan->offset[0] = 0;  // the input keeps its own block
  auto take_block = [&](uint64_t nbytes) {
    int best = -1;
    for (size_t f = 0; f < free_blocks.size(); ++f)
      if (free_blocks[f].size >= nbytes && (best < 0 || free_blocks[f].size < free_blocks[best].size))
        best = static_cast<int>(f);
    if (best >= 0) {
      blocks.push_back(free_blocks[best]);
      free_blocks.erase(free_blocks.begin() + best);
    } else {
      blocks.push_back(Block{total, align64(std::max<uint64_t>(nbytes, 64))});
      total += blocks.back().size;
    }
    return static_cast<int>(blocks.size()) - 1;
  };
  for (size_t i = 0; i < steps_.size(); ++i) {
    const Step& s = *steps_[i];
    for (int v : born_before_[i]) {  // ahead of its own step (a sign computed in parts)
      block_of[v] = take_block(value_bytes(v));
      plan->offset[v] = blocks[block_of[v]].off;
      early[v] = true;
    }
    if (early[s.output]) {  // its block taken above, at an earlier step
    } else if (grouped(s.output)) {  // a concat written in place: the shared block, taken by its first member
      const int root = slot_[s.output].root;
      if (block_of[root] < 0) block_of[root] = take_block(value_bytes(root));
      plan->offset[s.output] = blocks[block_of[root]].off + static_cast<uint64_t>(slot_[s.output].off) * 4;
    } else {
      const uint64_t nbytes = value_bytes(s.output);
      int reuse = -1;
      for (size_t k = 0; k < s.inputs.size() && reuse < 0; ++k) {
        const int v = s.inputs[k];
        if (!s.def->inplace && !(residual_in_place_ && s.kernel->overwrites_input(k))) continue;
        if (v != 0 && !grouped(v) && block_of[v] >= 0 && last_use[v] == static_cast<int>(i) &&
            value_bytes(v) == nbytes)
          reuse = v;
      }
      int b;
      if (reuse >= 0) {
        b = block_of[reuse];
        block_of[reuse] = -1;
      } else {
        b = take_block(nbytes);
      }
      block_of[s.output] = b;
      plan->offset[s.output] = blocks[b].off;
    }
    scratch = std::max<uint64_t>(scratch, static_cast<uint64_t>(s.kernel->transient_bytes(batch, num_threads_)));
    if (total + scratch > memory_cap_)
      throw MemoryCapError("batch " + std::to_string(batch) + " needs " + mib(total + scratch) +
                           " of activation memory at node " + std::to_string(i) + " (" + s.def->name + " '" +
                           info_[i].output + "'), above the memory cap of " + mib(memory_cap_) +
                           " (raise it at load: memory_cap)");
    // A step that also computes the next step's output (a fused max-pool) keeps its
    // inputs until that output has its block: the step reads them while writing it.
    const auto free_dead = [&](const Step& st, int at) {
      for (int v : st.inputs) {
        const int owner = grouped(v) ? slot_[v].root : v;
        const int last = grouped(v) ? group_last_[owner] : last_use[v];
        if (v != 0 && last == at && block_of[owner] >= 0) {
          free_blocks.push_back(blocks[block_of[owner]]);
          block_of[owner] = -1;
        }
      }
    };
    if (s.computes_next) continue;
    free_dead(s, static_cast<int>(i));
    if (s.computed_by_prev) free_dead(*steps_[i - 1], static_cast<int>(i) - 1);
  }
  plan->bytes = total;
  std::lock_guard<std::mutex> lock(mu_);
  if (plans_.size() >= kMaxPlans) plans_.erase(plans_.begin());
  return plans_.emplace(batch, std::move(plan)).first->second;
}

uint64_t Model::memory_bytes(int64_t batch) const { return plan_for(batch)->bytes; }

std::unique_ptr<Model::Context> Model::acquire() const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
  }
  return std::make_unique<Context>();
}

void Model::release(std::unique_ptr<Context> ctx) const {
  std::lock_guard<std::mutex> lock(mu_);
  idle_.push_back(std::move(ctx));
}

namespace {

// One sample's NCHW -> NHWC copy of pixels [p0, p1). The pixel loop writes
// contiguously; with the channel count a constant (the RGB inputs of every zoo model)
// the compiler unrolls it. (Channel by channel, writing every c-th float, it cost 2.7%
// of binary_resnet_e18 at 224x224x3.)
template <int C>
void nchw_to_nhwc_c(const float* src, float* dst, int64_t hw, int64_t p0, int64_t p1) {
  for (int64_t p = p0; p < p1; ++p)
    for (int ch = 0; ch < C; ++ch) dst[p * C + ch] = src[ch * hw + p];
}

// RGB: 4 pixels per step, three planes interleaved with SSE shuffles (x86-64
// baseline); 0.04 -> ~0.01 ms at 224x224 (from cache).
void nchw_to_nhwc_3(const float* src, float* dst, int64_t hw, int64_t p0, int64_t p1) {
  int64_t p = p0;
#if defined(__SSE2__)
  const float *r = src, *g = src + hw, *b = src + 2 * hw;
  for (; p + 4 <= p1; p += 4) {
    const __m128 a = _mm_loadu_ps(r + p), bb = _mm_loadu_ps(g + p), c = _mm_loadu_ps(b + p);
    const __m128 t0 = _mm_unpacklo_ps(a, bb);  // a0 b0 a1 b1
    const __m128 t1 = _mm_unpackhi_ps(a, bb);  // a2 b2 a3 b3
    const __m128 u = _mm_shuffle_ps(c, t0, _MM_SHUFFLE(3, 2, 0, 0));   // c0 c0 a1 b1
    const __m128 w = _mm_shuffle_ps(t0, c, _MM_SHUFFLE(1, 1, 3, 3));   // b1 b1 c1 c1
    const __m128 z = _mm_shuffle_ps(c, t1, _MM_SHUFFLE(3, 2, 2, 2));   // c2 c2 a3 b3
    const __m128 y = _mm_shuffle_ps(t1, c, _MM_SHUFFLE(3, 3, 3, 3));   // b3 b3 c3 c3
    float* d = dst + p * 3;
    _mm_storeu_ps(d, _mm_shuffle_ps(t0, u, _MM_SHUFFLE(2, 0, 1, 0)));      // a0 b0 c0 a1
    _mm_storeu_ps(d + 4, _mm_shuffle_ps(w, t1, _MM_SHUFFLE(1, 0, 2, 0)));  // b1 c1 a2 b2
    _mm_storeu_ps(d + 8, _mm_shuffle_ps(z, y, _MM_SHUFFLE(2, 0, 2, 0)));   // c2 a3 b3 c3
  }
#endif
  nchw_to_nhwc_c<3>(src, dst, hw, p, p1);
}

void nchw_to_nhwc(const float* src, float* dst, int64_t c, int64_t hw, int64_t p0, int64_t p1) {
  switch (c) {
    case 1: std::memcpy(dst + p0, src + p0, static_cast<size_t>(p1 - p0) * sizeof(float)); return;
    case 3: nchw_to_nhwc_3(src, dst, hw, p0, p1); return;
    case 4: nchw_to_nhwc_c<4>(src, dst, hw, p0, p1); return;
    default: break;
  }
  constexpr int64_t kBlock = 64;  // pixels per block: c source runs stay in L1
  for (int64_t b0 = p0; b0 < p1; b0 += kBlock) {
    const int64_t b1 = std::min(p1, b0 + kBlock);
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t p = b0; p < b1; ++p) dst[p * c + ch] = src[ch * hw + p];
  }
}

// The batch's NCHW -> NHWC copy, one contiguous run of pixels per thread: it came from
// the caller's memory (often out of cache) on one thread while the others waited, ~0.1 ms
// of binary_resnet_e18 at 224x224 on an Ice Lake core; the pixels a thread copies are the
// rows it computes first in the stem (the thread pool's ranges).
void input_to_nhwc(const float* src, float* dst, int64_t batch, int64_t c, int64_t hw, int nthreads) {
  const int64_t total = batch * hw;
  if (nthreads <= 0) nthreads = get_num_threads();
  const int parts = total * c < (int64_t{1} << 16) ? 1 : static_cast<int>(std::min<int64_t>(nthreads, total));
  parallel_for(parts, nthreads, [&](int t) {
    const int64_t q0 = total * t / parts, q1 = total * (t + 1) / parts;
    for (int64_t s = q0 / hw; s * hw < q1; ++s) {
      const int64_t p0 = std::max(q0 - s * hw, int64_t{0}), p1 = std::min(q1 - s * hw, hw);
      nchw_to_nhwc(src + s * c * hw, dst + s * hw * c, c, hw, p0, p1);
    }
  });
}

}  // namespace

void Model::run(const float* input, int64_t batch, float* output, double* step_seconds) const {
  if (!input || !output) throw InputError("input and output must not be null");
  std::shared_ptr<const Plan> plan = plan_for(batch);
  struct Guard {
    const Model* m;
    std::unique_ptr<Context> c;
    ~Guard() { if (c) m->release(std::move(c)); }
  } g{this, acquire()};
  Context& ctx = *g.c;
  if (ctx.arena.size() < plan->bytes) {
    ctx.arena = avector<uint8_t>();  // free first: the old arena is not needed
    ctx.arena.resize(plan->bytes);
  }
  uint8_t* arena = ctx.arena.data();
  const ValueInfo& vi = input_info_;
  float* x = reinterpret_cast<float*>(arena + plan->offset[0]);
  if (vi.rank == 4) {  // NCHW -> NHWC
    input_to_nhwc(input, x, batch, vi.c, vi.h * vi.w, num_threads_);
  } else {
    std::memcpy(x, input, static_cast<size_t>(batch * vi.c) * sizeof(float));
  }
  // Times are added to step_seconds[i] (null: not timed).
  const auto timed = [&](size_t i, const auto& fn) {
    if (!step_seconds) return fn();
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    step_seconds[i] += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  for (size_t i = 0; i < steps_.size(); ++i) {
    const Step& s = *steps_[i];
    // Skipped: written by the step before (its time is in that step's) or in parts by earlier steps.
    if (!s.computed_by_prev && !s.computed_in_parts) {
      ctx.ins.resize(s.inputs.size());
      for (size_t k = 0; k < s.inputs.size(); ++k) ctx.ins[k] = arena + plan->offset[s.inputs[k]];
      RunArgs a{batch, ctx.ins.data(), arena + plan->offset[s.output], num_threads_,
                s.in_ld.empty() ? nullptr : s.in_ld.data(), s.out_ld};
      if (s.computes_next) {
        a.next_out = arena + plan->offset[steps_[i + 1]->output];
        a.next_out_ld = steps_[i + 1]->out_ld;
      }
      timed(i, [&] { s.kernel->run(a); });
    }
    // Once the output is written (by this step or the one before): its bits of later signs.
    if (!s.parts_after.empty()) timed(s.computed_by_prev ? i - 1 : i, [&] { run_sign_parts(s, arena, *plan, batch); });
  }
  const float* y = reinterpret_cast<const float*>(arena + plan->offset[output_value_]);
  const ValueInfo& vo = output_info_;
  if (vo.rank == 4) {  // NHWC -> NCHW
    const int64_t c = vo.c, hw = vo.h * vo.w;
    for (int64_t s = 0; s < batch; ++s)
      for (int64_t ch = 0; ch < c; ++ch)
        for (int64_t p = 0; p < hw; ++p) output[(s * c + ch) * hw + p] = y[(s * hw + p) * c + ch];
  } else {
    std::memcpy(output, y, static_cast<size_t>(batch * vo.c) * sizeof(float));
  }
}

}  // namespace onebit
