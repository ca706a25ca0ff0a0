// onebit-run: load a .onebit file, run it on random or given input, print the
// outputs and latency percentiles. Only the C API is used: this program is also
// the example of linking libonebit from a C++ application with no Python.
//
//   onebit-run model.onebit [--input FILE.f32] [--batch N] [--threads T] [--runs R] [--warmup W]
//                           [--print K] [--output OUT.f32] [--profile P] [--precision fp32|bf16|int8|bf16_emulated|int8_emulated]
//
// FILE.f32 holds raw little-endian float32 NCHW input (batch x C x H x W);
// --output writes every output value the same way (raw float32, the layout
// onebit_model_run writes); --profile sets the number of profiled passes
// (default max(5, R / 5); 0 skips the per-op table); --precision is the load
// option float_precision (onebit.h).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "onebit.h"

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: onebit-run MODEL.onebit [--input FILE.f32] [--batch N] [--threads T] "
               "[--runs R] [--warmup W] [--print K] [--output OUT.f32] [--profile P] "
               "[--precision fp32|bf16|int8|bf16_emulated|int8_emulated]\n");
  return 2;
}

bool parse_int(const char* s, long long lo, long long hi, long long* out) {
  char* end = nullptr;
  const long long v = std::strtoll(s, &end, 10);
  if (!*s || *end || v < lo || v > hi) return false;
  *out = v;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  const char* path = argv[1];
  std::string input_path, output_path, precision = "fp32";
  long long batch = 1, threads = 1, runs = 50, warmup = 5, print = 10, profile = -1;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return usage();
    const char* v = argv[++i];
    bool ok = true;
    if (a == "--input") input_path = v;
    else if (a == "--batch") ok = parse_int(v, 1, 1 << 20, &batch);
    else if (a == "--threads") ok = parse_int(v, 1, 1024, &threads);
    else if (a == "--runs") ok = parse_int(v, 1, 1000000, &runs);
    else if (a == "--warmup") ok = parse_int(v, 0, 1000000, &warmup);
    else if (a == "--print") ok = parse_int(v, 0, 1 << 30, &print);
    else if (a == "--output") output_path = v;
    else if (a == "--profile") ok = parse_int(v, 0, 1000000, &profile);
    else if (a == "--precision") precision = v;
    else return usage();
    if (!ok) {
      std::fprintf(stderr, "onebit-run: bad value for %s: %s\n", a.c_str(), v);
      return 2;
    }
  }
  onebit_load_options opts = onebit_default_load_options();
  opts.num_threads = static_cast<int>(threads);
  opts.float_precision = precision.c_str();
  onebit_model* m = onebit_model_load_ex(path, nullptr, 0, &opts);
  if (!m) {
    std::fprintf(stderr, "onebit-run: %s\n", onebit_last_error());
    return 1;
  }
  int64_t dims[4], n_out = 0;
  onebit_model_input_shape(m, dims);
  const int rank = onebit_model_input_rank(m);
  int64_t per_sample = dims[1] * (rank == 4 ? dims[2] * dims[3] : 1);
  std::vector<float> x(static_cast<size_t>(batch * per_sample));
  if (!input_path.empty()) {
    std::ifstream f(input_path, std::ios::binary | std::ios::ate);
    if (!f) {
      std::fprintf(stderr, "onebit-run: cannot read %s\n", input_path.c_str());
      return 1;
    }
    const auto size = static_cast<long long>(f.tellg());
    if (size != static_cast<long long>(x.size() * sizeof(float))) {
      std::fprintf(stderr, "onebit-run: %s has %lld bytes, batch %lld needs %zu\n", input_path.c_str(),
                   size, batch, x.size() * sizeof(float));
      return 1;
    }
    f.seekg(0);
    f.read(reinterpret_cast<char*>(x.data()), size);
  } else {
    std::mt19937 rng(0);
    std::normal_distribution<float> nd;
    for (float& v : x) v = nd(rng);
  }
  if (onebit_model_output_size(m, batch, &n_out) != ONEBIT_OK) {
    std::fprintf(stderr, "onebit-run: %s\n", onebit_last_error());
    return 1;
  }
  std::vector<float> y(static_cast<size_t>(n_out));
  std::vector<double> ms;
  for (long long r = 0; r < warmup + runs; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    if (onebit_model_run(m, x.data(), batch, y.data()) != ONEBIT_OK) {
      std::fprintf(stderr, "onebit-run: %s\n", onebit_last_error());
      onebit_model_free(m);
      return 1;
    }
    const double t = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (r >= warmup) ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  auto pct = [&](double p) { return ms[static_cast<size_t>(p * (ms.size() - 1) + 0.5)]; };
  std::printf("model %s: input (%lld", path, batch);
  for (int i = 1; i < rank; ++i) std::printf(", %lld", static_cast<long long>(dims[i]));
  std::printf("), %lld outputs, isa %s, float layers %s, %lld thread(s)\n", static_cast<long long>(n_out),
              onebit_active_isa(), onebit_model_float_precision(m), threads);
  std::printf("latency ms over %lld runs: p50 %.4f  p90 %.4f  p99 %.4f  min %.4f\n", runs, pct(0.5), pct(0.9),
              pct(0.99), ms.front());
  // Where the time goes: a profiled pass per op type, and what the call costs beyond its ops.
  const int steps = onebit_model_step_count(m);
  std::vector<double> sec(static_cast<size_t>(steps), 0.0);
  const long long prof_runs = profile >= 0 ? profile : std::max<long long>(5, runs / 5);
  for (long long r = 0; r < prof_runs; ++r) onebit_model_run_profiled(m, x.data(), batch, y.data(), sec.data());
  std::vector<std::pair<std::string, double>> by_op;
  double op_total = 0;
  for (int i = 0; i < steps; ++i) {
    const std::string op = onebit_model_step_op(m, i);
    auto it = std::find_if(by_op.begin(), by_op.end(), [&](const auto& kv) { return kv.first == op; });
    if (it == by_op.end()) by_op.emplace_back(op, sec[i]);
    else it->second += sec[i];
    op_total += sec[i];
  }
  std::sort(by_op.begin(), by_op.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  if (prof_runs > 0) {
    const double op_ms = op_total / prof_runs * 1e3;
    std::printf("ops %.4f ms per call; engine overhead outside the ops %.2f us per call\n", op_ms,
                std::max(0.0, pct(0.5) - op_ms) * 1e3);
    for (const auto& [op, t] : by_op) std::printf("  %-16s %5.1f%%\n", op.c_str(), op_total > 0 ? 100 * t / op_total : 0.0);
  }
  std::printf("output:");
  for (long long i = 0; i < std::min<long long>(print, n_out); ++i) std::printf(" %.9g", y[i]);
  std::printf("\n");
  onebit_model_free(m);
  if (!output_path.empty()) {
    std::ofstream f(output_path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(y.data()), static_cast<std::streamsize>(y.size() * sizeof(float)));
    if (!f) {
      std::fprintf(stderr, "onebit-run: cannot write %s\n", output_path.c_str());
      return 1;
    }
  }
  return 0;
}
