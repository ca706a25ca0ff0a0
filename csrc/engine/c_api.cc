// The C API (include/onebit.h) over onebit::Model: exceptions become return
// codes and a thread-local message.
#include <cstring>
#include <new>
#include <string>

#include "dispatch.h"
#include "engine/model.h"
#include "onebit.h"

struct onebit_model {
  std::unique_ptr<onebit::Model> impl;
};

namespace {

thread_local std::string g_error;
thread_local int g_code = ONEBIT_OK;

int set_error(int code, const char* msg) {
  g_code = code;
  g_error = msg;
  return code;
}

// Runs f, mapping every exception to a code; returns ONEBIT_OK or the code.
template <class F>
int guarded(F&& f) {
  try {
    f();
    g_code = ONEBIT_OK;
    g_error.clear();
    return ONEBIT_OK;
  } catch (const onebit::FormatError& e) {
    return set_error(ONEBIT_ERROR_FORMAT, e.what());
  } catch (const onebit::MemoryCapError& e) {
    return set_error(ONEBIT_ERROR_MEMORY, e.what());
  } catch (const onebit::InputError& e) {
    return set_error(ONEBIT_ERROR_INVALID_ARGUMENT, e.what());
  } catch (const std::bad_alloc&) {
    return set_error(ONEBIT_ERROR_MEMORY, "out of memory");
  } catch (const std::invalid_argument& e) {
    return set_error(ONEBIT_ERROR_INVALID_ARGUMENT, e.what());
  } catch (const std::exception& e) {
    return set_error(ONEBIT_ERROR_IO, e.what());
  } catch (...) {
    return set_error(ONEBIT_ERROR_INTERNAL, "unknown error");
  }
}

onebit::LoadOptions to_options(const onebit_load_options* o) {
  onebit::LoadOptions lo;
  if (!o) return lo;
  lo.num_threads = o->num_threads;
  if (o->memory_cap) lo.memory_cap = o->memory_cap;
  if (o->max_file_bytes) lo.max_file_bytes = o->max_file_bytes;
  lo.verify_checksum = o->verify_checksum != 0;
  if (o->float_precision && *o->float_precision) lo.float_precision = onebit::parse_float_precision(o->float_precision);
  return lo;
}

}  // namespace

extern "C" {

onebit_load_options onebit_default_load_options(void) {
  onebit_load_options o;
  o.num_threads = 0;
  o.memory_cap = onebit::kDefaultMemoryCap;
  o.max_file_bytes = onebit::kDefaultMaxFileBytes;
  o.verify_checksum = 1;
  o.float_precision = "fp32";
  return o;
}

onebit_model* onebit_model_load_ex(const char* path, const void* data, size_t size,
                                   const onebit_load_options* options) {
  onebit_model* out = nullptr;
  guarded([&] {
    if ((path == nullptr) == (data == nullptr))
      throw onebit::InputError("give either a path or a buffer");
    const onebit::LoadOptions lo = to_options(options);  // a bad float_precision: INVALID_ARGUMENT
    auto m = std::make_unique<onebit_model>();
    m->impl = path ? onebit::Model::load_path(path, lo) : onebit::Model::load_buffer(data, size, lo);
    out = m.release();
  });
  return out;
}

onebit_model* onebit_model_load(const char* path, int num_threads) {
  if (!path) {
    set_error(ONEBIT_ERROR_INVALID_ARGUMENT, "path is NULL");
    return nullptr;
  }
  onebit_load_options o = onebit_default_load_options();
  o.num_threads = num_threads;
  return onebit_model_load_ex(path, nullptr, 0, &o);
}

onebit_model* onebit_model_load_buffer(const void* data, size_t size, int num_threads) {
  if (!data) {
    set_error(ONEBIT_ERROR_INVALID_ARGUMENT, "data is NULL");
    return nullptr;
  }
  onebit_load_options o = onebit_default_load_options();
  o.num_threads = num_threads;
  return onebit_model_load_ex(nullptr, data, size, &o);
}

const char* onebit_last_error(void) { return g_error.c_str(); }
int onebit_last_error_code(void) { return g_code; }

int onebit_model_input_shape(const onebit_model* m, int64_t dims[4]) {
  return guarded([&] {
    if (!m || !dims) throw onebit::InputError("model or dims is NULL");
    const auto& s = m->impl->input_shape();
    dims[0] = s[0], dims[1] = s[1];
    dims[2] = s.size() == 4 ? s[2] : 1;
    dims[3] = s.size() == 4 ? s[3] : 1;
  });
}

int onebit_model_input_rank(const onebit_model* m) {
  return m ? static_cast<int>(m->impl->input_shape().size()) : 0;
}

int onebit_model_output_size(const onebit_model* m, int64_t batch, int64_t* n_floats) {
  return guarded([&] {
    if (!m || !n_floats) throw onebit::InputError("model or n_floats is NULL");
    if (batch < 1) throw onebit::InputError("batch must be >= 1");
    *n_floats = m->impl->output_floats(batch);
  });
}

int onebit_model_output_shape(const onebit_model* m, int64_t batch, int* rank, int64_t dims[4]) {
  return guarded([&] {
    if (!m || !rank || !dims) throw onebit::InputError("model, rank or dims is NULL");
    if (batch < 1) throw onebit::InputError("batch must be >= 1");
    const auto s = m->impl->output_shape_for(batch);
    *rank = static_cast<int>(s.size());
    for (int i = 0; i < 4; ++i) dims[i] = i < static_cast<int>(s.size()) ? s[i] : 1;
  });
}

int onebit_model_run(onebit_model* m, const float* input, int64_t batch, float* output) {
  return guarded([&] {
    if (!m) throw onebit::InputError("model is NULL");
    m->impl->run(input, batch, output);
  });
}

int onebit_model_step_count(const onebit_model* m) {
  return m ? static_cast<int>(m->impl->steps().size()) : 0;
}

const char* onebit_model_step_op(const onebit_model* m, int step) {
  if (!m || step < 0 || step >= static_cast<int>(m->impl->steps().size())) return "";
  return m->impl->steps()[step].op.c_str();
}

int onebit_model_run_profiled(onebit_model* m, const float* input, int64_t batch, float* output,
                              double* step_seconds) {
  return guarded([&] {
    if (!m || !step_seconds) throw onebit::InputError("model or step_seconds is NULL");
    m->impl->run(input, batch, output, step_seconds);
  });
}

const char* onebit_model_float_precision(const onebit_model* m) {
  return m ? onebit::float_precision_name(m->impl->float_precision()) : "";
}

void onebit_model_free(onebit_model* m) { delete m; }

const char* onebit_active_isa(void) {
  try {
    return onebit::isa_name(onebit::active_isa());
  } catch (const std::exception& e) {  // an invalid ONEBIT_ISA
    set_error(ONEBIT_ERROR_INVALID_ARGUMENT, e.what());
    return "invalid";
  }
}

}  // extern "C"
