// AMX-INT8 GEMM block kernel: C blocks of 32 rows x 32 columns in four int32
// tiles (tmm0-3), per 64 k two A tiles (16 rows x 64 u8, tmm4-5) and two B
// tiles (16 groups x 16 columns x 4 s8, tmm6-7: the packed panel's halves, read
// in place at a 128-byte stride), four TDPBUSD (16K products each). The sums
// are exact int32, as VPDPBUSD's, and the output stage is the VNNI kernel's
// (kernels/avx512/i8_epilogue_avx512.h), so the bits equal the other int8
// kernels' (kernels/i8gemm.h).
//
// The tile configuration is loaded once per call (LDTILECFG costs about as
// much as a 32x32x64 block here) and released at the end (TILERELEASE), so no
// tile state outlives a call: another library on the same thread may configure
// the tiles its own way between two calls. A block of 16 rows or fewer uses
// one A tile and two C tiles. The quantization and gather are the VNNI
// kernels'. Compiled with -mamx-tile -mamx-int8 (csrc/CMakeLists.txt),
// selected only on the amx path (dispatch.h), which needs cpu_features().amx_int8
// and the OS's permission for the tile data (cpu_features.cc).
#include <immintrin.h>

#include <cstring>

#include "kernels/avx512/i8_epilogue_avx512.h"
#include "kernels/i8gemm.h"

namespace onebit {
namespace {

// The 64-byte operand of LDTILECFG, palette 1 (Intel SDM vol. 2, LDTILECFG).
struct alignas(64) TileConfig {
  uint8_t palette_id;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};
static_assert(sizeof(TileConfig) == 64, "LDTILECFG reads 64 bytes");

// Every tile used is 16 rows x 64 bytes (the int32 C tiles: 16 x 16 sums).
// LDTILECFG through inline asm whose memory operand is the whole struct: GCC
// 12's _tile_loadconfig names only the first byte, and the optimizer then
// drops the stores of the rows and widths (seen: the tiles stayed unconfigured
// and TILELOADD raised #UD).
void configure_tiles() {
  TileConfig cfg;
  std::memset(&cfg, 0, sizeof cfg);
  cfg.palette_id = 1;
  for (int t = 0; t < 8; ++t) cfg.colsb[t] = 64, cfg.rows[t] = 16;
  __asm__ volatile("ldtilecfg %0" : : "m"(cfg));
}

// Rows [0, 32) x one panel; TWO: rows 16-31 too (else only rows 0-15 are computed).
template <bool TWO>
void block_32x32(int steps, const uint32_t* a, long lda, const uint32_t* bp, int32_t (*acc)[kI8NR]) {
  const long sa = lda * 4;  // A's row stride in bytes; B's is 32 words = 128 bytes
  _tile_zero(0);
  _tile_zero(1);
  if (TWO) {
    _tile_zero(2);
    _tile_zero(3);
  }
  for (int s = 0; s < steps; ++s) {
    const uint32_t* as = a + s * kI8KB;
    const uint32_t* bs = bp + static_cast<long>(s) * kI8KB * kI8NR;
    _tile_loadd(4, as, sa);
    _tile_loadd(6, bs, 128);
    _tile_loadd(7, bs + 16, 128);
    _tile_dpbusd(0, 4, 6);
    _tile_dpbusd(1, 4, 7);
    if (TWO) {
      _tile_loadd(5, as + 16 * lda, sa);
      _tile_dpbusd(2, 5, 6);
      _tile_dpbusd(3, 5, 7);
    }
  }
  _tile_stored(0, acc[0], 128);
  _tile_stored(1, acc[0] + 16, 128);
  if (TWO) {
    _tile_stored(2, acc[16], 128);
    _tile_stored(3, acc[16] + 16, 128);
  }
}

void i8gemm_block_amx(int m, int n, int kq, const uint32_t* a, long lda, const uint32_t* b, long ldb, float* c,
                      long ldc, const I8Epilogue& e) {
  if (m <= 0 || n <= 0) return;
  const int steps = (kq + kI8KB - 1) / kI8KB;
  alignas(64) int32_t acc[kI8RowAlign][kI8NR];
  configure_tiles();
  for (int j0 = 0; j0 < n; j0 += kI8NR) {
    const int nr = n - j0 < kI8NR ? n - j0 : kI8NR;
    const uint32_t* bp = b + (j0 / kI8NR) * ldb;
    const I8Epilogue ej{e.zp, e.sa, e.wsum + j0, e.sw + j0, e.bias ? e.bias + j0 : nullptr};
    const I8Columns cols = i8_columns(nr, ej);
    for (int i0 = 0; i0 < m; i0 += kI8RowAlign) {
      const int rows = m - i0 < kI8RowAlign ? m - i0 : kI8RowAlign;
      if (rows > 16)
        block_32x32<true>(steps, a + i0 * lda, lda, bp, acc);
      else
        block_32x32<false>(steps, a + i0 * lda, lda, bp, acc);
      for (int i = 0; i < rows; ++i)
        i8_store_row(cols, ej, i0 + i, ej.bias != nullptr, _mm512_load_si512(acc[i]),
                     _mm512_load_si512(acc[i] + 16), c + (i0 + i) * ldc + j0);
    }
  }
  _tile_release();
}

}  // namespace

const I8GemmConfig& i8gemm_config_amx() {
  const I8GemmConfig& vnni = i8gemm_config_avx512vnni();
  static const I8GemmConfig cfg{"i8gemm_32x32_amx", kI8RowAlign, nullptr, i8gemm_block_amx,
                                vnni.quantize, vnni.range, vnni.gather, nullptr};
  return cfg;
}

}  // namespace onebit
