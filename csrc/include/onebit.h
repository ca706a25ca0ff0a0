/* onebit: run binarized neural networks exported to .onebit files.
 *
 * Plain C ABI (usable from C, C++, Rust, Go, ...). Every function that can fail
 * returns 0 on success and a non-zero ONEBIT_ERROR_* code otherwise (NULL for
 * the loaders), with a message for the calling thread in onebit_last_error().
 * Nothing aborts or prints.
 *
 * Thread-safety: a loaded model may be run from any number of threads at once
 * (each call uses its own activation memory). Loading and freeing are not
 * synchronized with running: do not free a model another thread is running.
 *
 *   onebit_model* m = onebit_model_load("model.onebit", 1);
 *   if (!m) { fprintf(stderr, "%s\n", onebit_last_error()); return 1; }
 *   int64_t dims[4], n;
 *   onebit_model_input_shape(m, dims);          // N, C, H, W of the export
 *   onebit_model_output_size(m, 1, &n);         // floats per batch of 1
 *   ... onebit_model_run(m, input, 1, output) ...
 *   onebit_model_free(m);
 */
#ifndef ONEBIT_H_
#define ONEBIT_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ONEBIT_VERSION "0.1.0"

#define ONEBIT_OK 0
#define ONEBIT_ERROR_INVALID_ARGUMENT 1 /* a NULL pointer, a bad batch size */
#define ONEBIT_ERROR_FORMAT 2           /* the file is truncated, corrupted or inconsistent */
#define ONEBIT_ERROR_MEMORY 3           /* over the memory cap, or out of memory */
#define ONEBIT_ERROR_IO 4               /* the file cannot be read */
#define ONEBIT_ERROR_INTERNAL 5

typedef struct onebit_model onebit_model;

typedef struct onebit_load_options {
  int num_threads;         /* <= 0: ONEBIT_NUM_THREADS or every CPU the process may use
                              (helper threads: ONEBIT_PIN_THREADS, docs/deployment.md) */
  uint64_t memory_cap;     /* activation bytes of one call; 0: the default (4 GiB) */
  uint64_t max_file_bytes; /* larger files are refused unread; 0: the default (2 GiB) */
  int verify_checksum;     /* nonzero: check the file's SHA-256 (the default) */
  /* What the float conv2d and dense layers compute in (NULL or "": "fp32"):
   *   "fp32"           the default; results do not depend on this option's existence.
   *   "bf16"           inputs and weights rounded to bfloat16 (round to nearest even),
   *                    products summed in fp32 by AVX512-BF16 (VDPBF16PS); weights are
   *                    converted once at load. Needs a CPU with AVX512_BF16 and the avx512
   *                    instruction set in force (not ONEBIT_ISA=avx2/portable): otherwise
   *                    the load fails with ONEBIT_ERROR_INVALID_ARGUMENT naming what is missing.
   *   "bf16_emulated"  the same arithmetic in portable C++ (the same bits), on any CPU.
   *   "int8"           weights quantized per output channel (symmetric int8) at load, each
   *                    call's input per sample (u8 with a zero point), the integer products
   *                    summed exactly by AVX512-VNNI (VPDPBUSD); needs AVX512_VNNI and the
   *                    avx512 path, as bf16 does. Layers with more than 32768 inputs per
   *                    output stay fp32.
   *   "int8_emulated"  the same in portable C++ (the same bits), on any CPU.
   * Depthwise float convolutions stay fp32. Any other string: ONEBIT_ERROR_INVALID_ARGUMENT.
   * The string is read during the load only. */
  const char* float_precision;
} onebit_load_options;

/* Defaults for onebit_model_load_ex (float_precision "fp32"). Start from these and
 * set fields: the struct may gain fields in later versions. */
onebit_load_options onebit_default_load_options(void);

/* Load and validate a model; NULL on error. num_threads <= 0: the default. */
onebit_model* onebit_model_load(const char* path, int num_threads);
onebit_model* onebit_model_load_buffer(const void* data, size_t size, int num_threads);
/* path or (data, size): exactly one of them. options may be NULL. */
onebit_model* onebit_model_load_ex(const char* path, const void* data, size_t size,
                                   const onebit_load_options* options);

/* The calling thread's last error message ("" if none) and code. */
const char* onebit_last_error(void);
int onebit_last_error_code(void);

/* The input shape as exported: N, C, H, W (H = W = 1 for a 2-D input). */
int onebit_model_input_shape(const onebit_model* m, int64_t dims[4]);
/* 4 for an image input (NCHW), 2 for a feature vector (NC). */
int onebit_model_input_rank(const onebit_model* m);
/* Floats the output of a batch holds (batch * classes for a classifier). */
int onebit_model_output_size(const onebit_model* m, int64_t batch, int64_t* n_floats);
/* Output shape for a batch: rank (2 or 4) into *rank, dims in NCHW / NC order. */
int onebit_model_output_shape(const onebit_model* m, int64_t batch, int* rank, int64_t dims[4]);

/* input: batch x C x H x W floats (NCHW, as PyTorch); output: onebit_model_output_size floats. */
int onebit_model_run(onebit_model* m, const float* input, int64_t batch, float* output);

/* Profiling: the model's steps (engine ops, in execution order), each step's op
 * name, and a run that adds each step's seconds to step_seconds[0 .. steps-1]. */
int onebit_model_step_count(const onebit_model* m);
const char* onebit_model_step_op(const onebit_model* m, int step);
int onebit_model_run_profiled(onebit_model* m, const float* input, int64_t batch, float* output,
                              double* step_seconds);

/* The float_precision the model was loaded with ("fp32", "bf16", "bf16_emulated", "int8",
 * "int8_emulated"); a static string. "" for NULL. */
const char* onebit_model_float_precision(const onebit_model* m);

void onebit_model_free(onebit_model* m);

/* The instruction set the kernels use ("avx512", "avx2", "portable", "reference"). */
const char* onebit_active_isa(void);

#ifdef __cplusplus
}
#endif
#endif /* ONEBIT_H_ */
