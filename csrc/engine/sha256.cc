#include "engine/sha256.h"

#include <cstring>

namespace onebit {
namespace {

constexpr uint32_t kRound[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

// Compilers turn these into single rotate / load+bswap instructions.
inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

inline uint32_t load_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

inline void store_be32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

// One round, with the eight working variables renamed by the caller instead
// of shifted (the classic unrolling: no register moves per round). Ch and Maj
// are written in their equivalent forms with one operation fewer each.
#define ONEBIT_SHA256_ROUND(a, b, c, d, e, f, g, h, k, w)                       \
  do {                                                                          \
    uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) +                \
                  (g ^ (e & (f ^ g))) + (k) + (w);                             \
    uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) +                    \
                  ((a & b) | (c & (a | b)));                                \
    d += t1;                                                                    \
    h = t1 + t2;                                                                \
  } while (0)

// The message schedule in a 16-word ring: W[t] for t >= 16 overwrites W[t-16].
#define ONEBIT_SHA256_EXPAND(w, t)                                                          \
  (w[(t) & 15] += (rotr(w[((t) - 2) & 15], 17) ^ rotr(w[((t) - 2) & 15], 19) ^             \
                   (w[((t) - 2) & 15] >> 10)) +                                            \
                  w[((t) - 7) & 15] +                                                      \
                  (rotr(w[((t) - 15) & 15], 7) ^ rotr(w[((t) - 15) & 15], 18) ^            \
                   (w[((t) - 15) & 15] >> 3)))

void compress(uint32_t state[8], const uint8_t* block, size_t nblocks) {
  for (; nblocks; --nblocks, block += 64) {
    uint32_t w[16];
    for (int t = 0; t < 16; ++t) w[t] = load_be32(block + 4 * t);
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
    for (int t = 0; t < 16; t += 8) {
      ONEBIT_SHA256_ROUND(a, b, c, d, e, f, g, h, kRound[t + 0], w[t + 0]);
      ONEBIT_SHA256_ROUND(h, a, b, c, d, e, f, g, kRound[t + 1], w[t + 1]);
      ONEBIT_SHA256_ROUND(g, h, a, b, c, d, e, f, kRound[t + 2], w[t + 2]);
      ONEBIT_SHA256_ROUND(f, g, h, a, b, c, d, e, kRound[t + 3], w[t + 3]);
      ONEBIT_SHA256_ROUND(e, f, g, h, a, b, c, d, kRound[t + 4], w[t + 4]);
      ONEBIT_SHA256_ROUND(d, e, f, g, h, a, b, c, kRound[t + 5], w[t + 5]);
      ONEBIT_SHA256_ROUND(c, d, e, f, g, h, a, b, kRound[t + 6], w[t + 6]);
      ONEBIT_SHA256_ROUND(b, c, d, e, f, g, h, a, kRound[t + 7], w[t + 7]);
    }
    for (int t = 16; t < 64; t += 8) {
      ONEBIT_SHA256_ROUND(a, b, c, d, e, f, g, h, kRound[t + 0], ONEBIT_SHA256_EXPAND(w, t + 0));
      ONEBIT_SHA256_ROUND(h, a, b, c, d, e, f, g, kRound[t + 1], ONEBIT_SHA256_EXPAND(w, t + 1));
      ONEBIT_SHA256_ROUND(g, h, a, b, c, d, e, f, kRound[t + 2], ONEBIT_SHA256_EXPAND(w, t + 2));
      ONEBIT_SHA256_ROUND(f, g, h, a, b, c, d, e, kRound[t + 3], ONEBIT_SHA256_EXPAND(w, t + 3));
      ONEBIT_SHA256_ROUND(e, f, g, h, a, b, c, d, kRound[t + 4], ONEBIT_SHA256_EXPAND(w, t + 4));
      ONEBIT_SHA256_ROUND(d, e, f, g, h, a, b, c, kRound[t + 5], ONEBIT_SHA256_EXPAND(w, t + 5));
      ONEBIT_SHA256_ROUND(c, d, e, f, g, h, a, b, kRound[t + 6], ONEBIT_SHA256_EXPAND(w, t + 6));
      ONEBIT_SHA256_ROUND(b, c, d, e, f, g, h, a, kRound[t + 7], ONEBIT_SHA256_EXPAND(w, t + 7));
    }
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
    state[4] += e;
    state[5] += f;
    state[6] += g;
    state[7] += h;
  }
}

#undef ONEBIT_SHA256_ROUND
#undef ONEBIT_SHA256_EXPAND

}  // namespace

std::array<uint8_t, 32> sha256(const void* data, size_t n) {
  uint32_t state[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                       0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  const uint8_t* p = static_cast<const uint8_t*>(data);
  const size_t full = n / 64;
  if (full) compress(state, p, full);

  // Padding: the tail, 0x80, zeros, then the length in bits (64-bit big
  // endian) ending a block: one block if the tail leaves 8 bytes, else two.
  uint8_t last[128] = {};
  const size_t tail = n % 64;
  if (tail) std::memcpy(last, p + full * 64, tail);
  last[tail] = 0x80;
  const size_t padded = tail < 56 ? 64 : 128;
  const uint64_t bits = static_cast<uint64_t>(n) << 3;
  for (size_t k = 0; k < 8; ++k) last[padded - 1 - k] = static_cast<uint8_t>(bits >> (8 * k));
  compress(state, last, padded / 64);

  std::array<uint8_t, 32> digest;
  for (int k = 0; k < 8; ++k) store_be32(digest.data() + 4 * k, state[k]);
  return digest;
}

}  // namespace onebit
