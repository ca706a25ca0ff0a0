// Bit-packing of activations and binary weights.
//
// Convention (as in Larq Compute Engine): a set bit means -1, a clear bit +1,
// so packing a float is a sign test (x < 0 -> bit set; 0 and -0.0 -> +1).
// Channel c of a pixel lives in word c / 64, bit c % 64. Bits past the last
// channel are always 0 in activations, weights and padding rows, so they XOR
// to 0 and drop out of every popcount: channel counts need not be multiples
// of 64.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <vector>

namespace onebit {

inline int words_for(int channels) { return (channels + 63) / 64; }

// 64-byte aligned allocator so packed blocks start on cache lines.
template <class T>
struct AlignedAlloc {
  using value_type = T;
  AlignedAlloc() = default;
  template <class U>
  AlignedAlloc(const AlignedAlloc<U>&) {}
  T* allocate(size_t n) {
    size_t bytes = (n * sizeof(T) + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, bytes ? bytes : 64);
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t) { std::free(p); }
  template <class U>
  bool operator==(const AlignedAlloc<U>&) const { return true; }
  template <class U>
  bool operator!=(const AlignedAlloc<U>&) const { return false; }
};
template <class T>
using avector = std::vector<T, AlignedAlloc<T>>;

// The same, but resize() leaves new elements of trivial types uninitialized: for
// scratch that is written whole before it is read, where avector's zeroing is a
// serial memset on the hot path.
template <class T>
struct UninitAlloc : AlignedAlloc<T> {
  using value_type = T;
  template <class U>
  struct rebind {
    using other = UninitAlloc<U>;
  };
  UninitAlloc() = default;
  template <class U>
  UninitAlloc(const UninitAlloc<U>&) {}
  template <class U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... A>
  void construct(U* p, A&&... a) {
    ::new (static_cast<void*>(p)) U(static_cast<A&&>(a)...);
  }
};
template <class T>
using uvector = std::vector<T, UninitAlloc<T>>;

// rows x channels float/int8 -> rows x words_for(channels) words.
// Bit set iff x < thr[c] (thr may be null: 0), then xor word k of flip (null: none) into
// word k of each row (the sign op's flipped channels). Uses AVX-512, AVX2 or NEON when active.
// ldx: floats from one row of x to the next (0: channels; a slice of a wider value).
void pack_rows_f32(const float* x, size_t rows, int channels, const float* thr, uint64_t* out,
                   int nthreads, size_t ldx = 0, const uint64_t* flip = nullptr);
// Several signs of the same rows in one pass (the parts of a concat's signs,
// Model::run_sign_parts), over rows [r0, r1) of x (row r at x + r * ldx; the sets'
// out are for row 0, so threads share one array of sets). Set j compares the rows' channels with its thresholds as
// pack_rows_f32 does (bit set iff x < thr[c], xor flip) and puts channel c's bit at bit
// shift + c of row r's words from out + r * ldo on; it owns nbits bits from there (its
// channels and, for a concat's last input, the rest of the last word, written 0) and
// keeps every other bit of those words (another input's). The AVX-512 kernel holds up to
// 6 sets' thresholds of a word in registers over all rows, loading each row's values
// once for all of them. One thread (the caller splits the rows).
struct SignSet {
  const float* thr;      // [channels] (null: 0)
  const uint64_t* flip;  // [words_for(channels)], channel c at bit c (null: none)
  uint64_t* out;         // row 0's first word
  size_t ldo;            // words from one row to the next
  int shift;             // 0..63
  int nbits;             // >= channels
};
void pack_rows_f32_multi(const float* x, size_t r0, size_t r1, int channels, size_t ldx, const SignSet* sets, int n);
void pack_rows_f32_multi_avx512(const float* x, size_t r0, size_t r1, int channels, size_t ldx, const SignSet* sets,
                                int n);
void pack_rows_f32_multi_generic(const float* x, size_t r0, size_t r1, int channels, size_t ldx, const SignSet* sets,
                                 int n);
// The owned low `own` bits (1..64) of `bits` at bit `shift` of o[0] (and on into o[1]).
inline void put_bits(uint64_t* o, uint64_t bits, int shift, int own) {
  const uint64_t m = own >= 64 ? ~uint64_t{0} : (uint64_t{1} << own) - 1;
  bits &= m;
  if (shift == 0) {
    o[0] = (o[0] & ~m) | bits;
    return;
  }
  o[0] = (o[0] & ~(m << shift)) | (bits << shift);
  const uint64_t mh = m >> (64 - shift);
  if (mh) o[1] = (o[1] & ~mh) | (bits >> (64 - shift));
}
void pack_rows_i8(const int8_t* x, size_t rows, int channels, uint64_t* out, int nthreads);
// Portable versions (reference for the tests, fallback elsewhere).
void pack_rows_f32_portable(const float* x, size_t rows, int channels, const float* thr,
                            uint64_t* out, size_t ldx);
void pack_rows_f32_avx2(const float* x, size_t rows, int channels, const float* thr,
                        uint64_t* out, size_t ldx);
void pack_rows_f32_neon(const float* x, size_t rows, int channels, const float* thr,
                        uint64_t* out, size_t ldx);
// rows x words -> rows x channels of +-1.
void unpack_rows_f32(const uint64_t* p, size_t rows, int channels, float* out);
void unpack_rows_i8(const uint64_t* p, size_t rows, int channels, int8_t* out);

// Copies nbits bits from src (starting at bit src_off) to dst (at dst_off).
void copy_bits(const uint64_t* src, size_t src_off, uint64_t* dst, size_t dst_off, size_t nbits);

// One step of laying out a pixel for the bit-sliced grouped kernel: the lanes
// `mask` of word `dst` take the 64 input bits starting at bit `src`.
struct LaneMove {
  int dst;
  int64_t src;
  uint64_t mask;
};

// Binary filters in the micro-kernel layout.
struct PackedWeights {
  int oc = 0, kh = 0, kw = 0, cin_g = 0, groups = 1;
  int ocg = 0;      // output channels per group
  int cw = 0;       // words per tap = words_for(cin_g)
  int nblocks = 0;  // 32-channel blocks per group
  // [groups][nblocks][T * cw][32]: word k of channel j of a block at k*32 + j.
  avector<uint64_t> blocks;
  // [groups][nblocks][T][32]: sum of the +-1 weights of a tap (zero padding).
  avector<int32_t> wsum;
  // [oc][T][cw]: plain packed filters, for the reference kernel.
  std::vector<uint64_t> ohwi;
  // Grouped convs with few channels per group (bgconv_uses_lanes) use the
  // bit-sliced kernel (kernels/bgconv.h) instead of blocks/wsum, which stay empty:
  // [T * cin_g][words_for(oc)]: bit o of plane t * cin_g + c = filter o, tap t, channel c.
  avector<uint64_t> lanes;
  // [T][oc]: sum of the +-1 weights of a tap (zero padding).
  std::vector<int32_t> lane_wsum;
  // The input layout: lane o of plane c (word c * words_for(oc) + o / 64) is input
  // channel (o / ocg) * cin_g + c. Lanes of one word at the same distance from
  // their source move together (one funnel shift and mask): cin_g moves per word for
  // square groups (ocg == cin_g), up to 64 for a depth multiplier. Empty for depthwise
  // with one output per channel (the packed input is the layout).
  std::vector<LaneMove> lane_moves;
  int taps() const { return kh * kw; }
};

// Grouped convolutions with at most this many input channels per group use the
// bit-sliced lanes kernel: there the popcount GEMM would spend a 64-bit word
// per tap and a 32-channel block per group on a few bits.
constexpr int kBgconvMaxCinPerGroup = 8;
bool bgconv_uses_lanes(int groups, int cin_g);

// w: float32 OHWI, shape (oc, kh, kw, cin_g); groups divides oc.
PackedWeights pack_weights_ohwi(const float* w, int oc, int kh, int kw, int cin_g, int groups);
// Same from sign bits already packed per (o, kh, kw) row: words_for(cin_g) words each,
// bit set = -1, padding bits 0 (the .onebit file layout). Takes ownership of `words`.
PackedWeights pack_weights_ohwi_words(std::vector<uint64_t> words, int oc, int kh, int kw, int cin_g,
                                      int groups);

}  // namespace onebit
