// concat: along channels (DenseNet). All float -> float, all binary -> binary
// (bits copied), mixed -> float with binary inputs as +-1 (reference.py _op_concat).
#include <cstring>

#include "engine/ops/common.h"

namespace onebit::ops {
namespace {

class ConcatKernel final : public OpKernel {
 public:
  ConcatKernel(std::vector<ValueInfo> ins, ValueInfo out) : ins_(std::move(ins)), out_(out) {}
  void run(const RunArgs& a) const override {
    const size_t rows = rows_of(a.n, out_);
    for_row_chunks(rows, static_cast<size_t>(out_.row_elems()), a.nthreads,
                   [&](size_t r0, size_t r1) { copy_rows(a, r0, r1); });
  }
  // A float concat may itself be a slice of a wider one and read its inputs from
  // slices; an input the planner already placed in its own slice is not copied.
  bool strided_input(size_t) const override { return out_.dtype == DType::kF32; }
  bool strided_output() const override { return out_.dtype == DType::kF32; }

 private:
  void copy_rows(const RunArgs& a, size_t r0, size_t r1) const {
    if (out_.dtype == DType::kBits) {
      const size_t ow = static_cast<size_t>(out_.row_elems());
      auto* y = static_cast<uint64_t*>(a.out);
      std::memset(y + r0 * ow, 0, (r1 - r0) * ow * 8);
      size_t off = 0;
      for (size_t k = 0; k < ins_.size(); ++k) {
        const auto* x = static_cast<const uint64_t*>(a.in[k]);
        const size_t iw = static_cast<size_t>(ins_[k].row_elems()), c = static_cast<size_t>(ins_[k].c);
        if (off % 64 == 0 && c % 64 == 0) {  // whole words (DenseNet's 64-multiples): a row copy
          for (size_t r = r0; r < r1; ++r) std::memcpy(y + r * ow + off / 64, x + r * iw, iw * 8);
        } else {
          for (size_t r = r0; r < r1; ++r) copy_bits(x + r * iw, 0, y + r * ow, off, c);
        }
        off += c;
      }
      return;
    }
    const size_t ld = static_cast<size_t>(out_stride(a, out_));
    auto* y = static_cast<float*>(a.out);
    size_t off = 0;
    for (size_t k = 0; k < ins_.size(); ++k) {
      const size_t c = static_cast<size_t>(ins_[k].c);
      if (ins_[k].dtype == DType::kBits) {
        const size_t iw = static_cast<size_t>(ins_[k].row_elems());
        const auto* x = static_cast<const uint64_t*>(a.in[k]);
        for (size_t r = r0; r < r1; ++r) unpack_rows_f32(x + r * iw, 1, static_cast<int>(c), y + r * ld + off);
      } else if (a.in[k] != y + off) {  // else written in place by its producer
        const auto* x = static_cast<const float*>(a.in[k]);
        const size_t ild = static_cast<size_t>(in_stride(a, k, ins_[k]));
        for (size_t r = r0; r < r1; ++r) std::memcpy(y + r * ld + off, x + r * ild, c * sizeof(float));
      }
      off += c;
    }
  }

  std::vector<ValueInfo> ins_;
  ValueInfo out_;
};

std::unique_ptr<OpKernel> build(BuildCtx& ctx) {
  const ValueInfo& first = ctx.input(0);
  ValueInfo out = first;
  out.c = 0;
  bool all_bits = true;
  for (const ValueInfo& v : ctx.inputs()) {
    if (v.rank != first.rank || v.h != first.h || v.w != first.w)
      ctx.fail("inputs differ in shape other than channels");
    all_bits &= v.dtype == DType::kBits;
    out.c += v.c;
  }
  out.dtype = all_bits ? DType::kBits : DType::kF32;
  ctx.out = out;
  return std::make_unique<ConcatKernel>(ctx.inputs(), out);
}

}  // namespace

extern const OpDef kOpConcat = {
    "concat", "Concatenate along channels; binary if every input is binary, else float (+-1 for bits).",
    1, 4096, {}, {}, false, build};

}  // namespace onebit::ops
