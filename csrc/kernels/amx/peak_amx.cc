// AMX-INT8 peak loop (benchmarks/kernels.py): TDPBUSD on tiles that stay
// loaded, four independent 16x16 int32 accumulators, no memory traffic.
// Compiled with -mamx-tile -mamx-int8; called only where isa_supported(amx).
#include <immintrin.h>

#include <chrono>
#include <cstdint>
#include <cstring>

#include "kernels/peak.h"

namespace onebit {
namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct alignas(64) TileConfig {
  uint8_t palette_id, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

}  // namespace

double peak_int8_macs_amx(double seconds) {
  TileConfig cfg;
  std::memset(&cfg, 0, sizeof cfg);
  cfg.palette_id = 1;
  for (int t = 0; t < 8; ++t) cfg.colsb[t] = 64, cfg.rows[t] = 16;
  __asm__ volatile("ldtilecfg %0" : : "m"(cfg));  // the whole struct (see i8gemm_32x32_amx.cc)
  alignas(64) static uint8_t a[1024], b[1024];
  std::memset(a, 1, sizeof a);
  std::memset(b, 1, sizeof b);
  _tile_loadd(4, a, 64);
  _tile_loadd(5, a, 64);
  _tile_loadd(6, b, 64);
  _tile_loadd(7, b, 64);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  constexpr long kIters = 20000;
  double t0 = now(), t1 = t0, best = 0;
  while (t1 - t0 < seconds) {
    const double s = now();
    for (long i = 0; i < kIters; ++i) {
      _tile_dpbusd(0, 4, 6);
      _tile_dpbusd(1, 4, 7);
      _tile_dpbusd(2, 5, 6);
      _tile_dpbusd(3, 5, 7);
    }
    t1 = now();
    const double rate = static_cast<double>(kIters) * 4 * 16 * 16 * 64 / (t1 - s);
    if (rate > best) best = rate;
  }
  _tile_release();
  return best;
}

}  // namespace onebit
