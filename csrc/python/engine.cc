// Python binding of the model engine (engine/model.h): onebit.runtime.load()
// wraps _C.Engine. Load errors raise _C.EngineFormatError (a ValueError that
// onebit.runtime turns into ModelFormatError), input errors ValueError, the
// memory cap _C.MemoryCapError. run() releases the GIL: threads run in parallel.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/unique_ptr.h>
#include <nanobind/stl/vector.h>

#include "engine/model.h"

namespace nb = nanobind;
using namespace onebit;

namespace {

const char* dtype_str(DType d) { return d == DType::kBits ? "uint64" : "float32"; }

nb::dict attr_dict(const AttrSpec& s) {
  static const char* kinds[] = {"int", "ints", "real", "bool", "enum"};
  nb::dict d;
  d["kind"] = kinds[static_cast<int>(s.kind)];
  d["required"] = s.required;
  if (s.kind == AttrKind::kInt || s.kind == AttrKind::kInts) {
    d["min"] = s.min;
    d["max"] = s.max;
  }
  if (s.kind == AttrKind::kInts) d["count"] = s.count;
  if (s.kind == AttrKind::kEnum) d["choices"] = std::string(s.choices);
  if (!s.required) {
    if (s.kind == AttrKind::kEnum) d["default"] = std::string(s.def_enum);
    else if (s.kind == AttrKind::kBool) d["default"] = s.def_real != 0;
    else if (s.kind == AttrKind::kInt) d["default"] = static_cast<int64_t>(s.def_real);
    else d["default"] = s.def_real;
  }
  d["doc"] = s.doc;
  return d;
}

}  // namespace

void bind_engine(nb::module_& m) {
  nb::exception<FormatError>(m, "EngineFormatError", PyExc_ValueError);
  nb::exception<MemoryCapError>(m, "MemoryCapError", PyExc_MemoryError);
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const InputError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

  m.def("ops", [] {
    nb::dict all;
    for (const OpDef* d : op_registry()) {
      nb::dict op, attrs;
      for (const AttrSpec& s : d->attrs) attrs[s.name] = attr_dict(s);
      nb::dict params;
      for (const ParamSpec& p : d->params) {
        nb::dict pd;
        pd["required"] = p.required;
        pd["doc"] = p.doc;
        params[p.role] = pd;
      }
      op["doc"] = d->doc;
      op["inputs"] = nb::make_tuple(d->min_inputs, d->max_inputs);
      op["attrs"] = attrs;
      op["params"] = params;
      op["inplace"] = d->inplace;
      all[d->name] = op;
    }
    return all;
  }, "The engine's op registry: name -> {doc, inputs (min, max), attrs schema, params, inplace}.");

  nb::class_<Model>(m, "Engine", "A loaded, validated .onebit model (see onebit.runtime.Model).")
      .def_static("load", [](const std::string& path, int num_threads, uint64_t memory_cap,
                             uint64_t max_file_bytes, bool verify_checksum, const std::string& float_precision,
                             bool concat_in_place, bool fuse_conv_maxpool, bool fuse_bconv_sign,
                             bool residual_in_place, bool fuse_concat_sign) {
        LoadOptions o{num_threads, memory_cap, max_file_bytes, verify_checksum,
                      parse_float_precision(float_precision), concat_in_place, fuse_conv_maxpool,
                      fuse_bconv_sign, residual_in_place, fuse_concat_sign};
        nb::gil_scoped_release g;
        return Model::load_path(path, o);
      }, nb::arg("path"), nb::arg("num_threads") = 0, nb::arg("memory_cap") = kDefaultMemoryCap,
         nb::arg("max_file_bytes") = kDefaultMaxFileBytes, nb::arg("verify_checksum") = true,
         nb::arg("float_precision") = "fp32", nb::arg("concat_in_place") = true,
         nb::arg("fuse_conv_maxpool") = true, nb::arg("fuse_bconv_sign") = true,
         nb::arg("residual_in_place") = true, nb::arg("fuse_concat_sign") = true)
      .def_static("load_bytes", [](nb::bytes data, int num_threads, uint64_t memory_cap,
                                   uint64_t max_file_bytes, bool verify_checksum, const std::string& float_precision,
                             bool concat_in_place, bool fuse_conv_maxpool, bool fuse_bconv_sign,
                             bool residual_in_place, bool fuse_concat_sign) {
        LoadOptions o{num_threads, memory_cap, max_file_bytes, verify_checksum,
                      parse_float_precision(float_precision), concat_in_place, fuse_conv_maxpool,
                      fuse_bconv_sign, residual_in_place, fuse_concat_sign};
        return Model::load_buffer(data.c_str(), data.size(), o);
      }, nb::arg("data"), nb::arg("num_threads") = 0, nb::arg("memory_cap") = kDefaultMemoryCap,
         nb::arg("max_file_bytes") = kDefaultMaxFileBytes, nb::arg("verify_checksum") = true,
         nb::arg("float_precision") = "fp32", nb::arg("concat_in_place") = true,
         nb::arg("fuse_conv_maxpool") = true, nb::arg("fuse_bconv_sign") = true,
         nb::arg("residual_in_place") = true, nb::arg("fuse_concat_sign") = true)
      .def_prop_ro("input_shape", [](const Model& e) { return e.input_shape(); })
      .def_prop_ro("output_shape", [](const Model& e) { return e.output_shape(); })
      .def_prop_ro("num_threads", &Model::num_threads)
      .def_prop_ro("float_precision", [](const Model& e) { return std::string(float_precision_name(e.float_precision())); })
      .def_prop_ro("meta_json", [](const Model& e) { return e.meta_json(); })
      .def("output_shape_for", &Model::output_shape_for, nb::arg("batch"))
      .def("memory_bytes", &Model::memory_bytes, nb::arg("batch") = 1)
      .def("run", [](const Model& e, nb::ndarray<const float, nb::c_contig, nb::device::cpu> x,
                     nb::ndarray<float, nb::c_contig, nb::device::cpu> out,
                     std::optional<nb::ndarray<double, nb::c_contig, nb::device::cpu>> step_seconds) {
        const auto& want = e.input_shape();
        if (x.ndim() != want.size() || x.shape(0) < 1)
          throw InputError("input must be " + std::to_string(want.size()) + "-D with a batch >= 1");
        for (size_t i = 1; i < want.size(); ++i)
          if (static_cast<int64_t>(x.shape(i)) != want[i]) throw InputError("input has the wrong shape");
        const int64_t batch = static_cast<int64_t>(x.shape(0));
        if (static_cast<int64_t>(out.size()) != e.output_floats(batch))
          throw InputError("output buffer has the wrong size");
        double* prof = nullptr;
        if (step_seconds) {
          if (step_seconds->size() != e.steps().size()) throw InputError("step_seconds has the wrong size");
          prof = step_seconds->data();
        }
        nb::gil_scoped_release g;
        e.run(x.data(), batch, out.data(), prof);
      }, nb::arg("x"), nb::arg("out"), nb::arg("step_seconds") = nb::none())
      .def("steps", [](const Model& e) {
        nb::list rows;
        for (const StepInfo& s : e.steps()) {
          nb::dict r;
          r["op"] = s.op;
          r["output_name"] = s.output;
          r["source"] = s.source;
          r["output"] = s.output_attr;
          if (s.value.rank == 4) r["shape"] = nb::make_tuple(1, s.value.h, s.value.w, s.value.row_elems());
          else r["shape"] = nb::make_tuple(1, s.value.row_elems());
          r["channels"] = s.value.c;
          r["dtype"] = dtype_str(s.value.dtype);
          r["precision"] = s.precision;
          r["written_into"] = s.written_into;
          r["computed_by"] = s.computed_by;
          r["channel_offset"] = s.channel_offset;
          rows.append(r);
        }
        return rows;
      });
}
