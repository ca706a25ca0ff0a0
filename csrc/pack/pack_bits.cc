#include <algorithm>
#include <cstring>
#include <utility>

#include "dispatch.h"
#include "kernels/bgemm.h"
#include "pack/pack.h"
#include "runtime/threadpool.h"

namespace onebit {

void pack_rows_f32_portable(const float* x, size_t rows, int channels, const float* thr,
                            uint64_t* out, size_t ldx) {
  const int W = words_for(channels);
  for (size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    uint64_t* o = out + r * W;
    for (int wd = 0; wd < W; ++wd) {
      int c0 = wd * 64, c1 = c0 + 64 < channels ? c0 + 64 : channels;
      uint64_t word = 0;
      for (int c = c0; c < c1; ++c) {
        float t = thr ? thr[c] : 0.0f;
        word |= static_cast<uint64_t>(xr[c] < t) << (c - c0);
      }
      o[wd] = word;
    }
  }
}

namespace {
template <class F>
void split_rows(size_t rows, int nthreads, size_t min_rows, F&& f) {
  if (nthreads <= 0) nthreads = get_num_threads();
  int tasks = static_cast<int>(rows / (min_rows ? min_rows : 1));
  if (tasks > 4 * nthreads) tasks = 4 * nthreads;
  if (tasks <= 1 || nthreads == 1) {
    f(size_t{0}, rows);
    return;
  }
  parallel_for(tasks, nthreads, [&](int t) {
    size_t r0 = rows * t / tasks, r1 = rows * (t + 1) / tasks;
    f(r0, r1);
  });
}
}  // namespace

void pack_rows_f32(const float* x, size_t rows, int channels, const float* thr, uint64_t* out,
                   int nthreads, size_t ldx, const uint64_t* flip) {
  const Isa isa = active_simd_isa();
  const int W = words_for(channels);
  if (ldx == 0) ldx = static_cast<size_t>(channels);
  split_rows(rows, nthreads, 4096 / (channels + 1) + 1, [&](size_t r0, size_t r1) {
    if (isa == Isa::kAvx512) {
      // one set of the multi-sign kernel: its flip in the same pass, every bit of the words
      // its own (those past the channels 0); its thresholds held in registers over the rows
      // made it 2x faster than a row-by-row loop (64 channels, C++ loop, one thread)
      // (it goes word by word over its rows: blocks of ~32 KB of values keep a row in L1
      // for all its words)
      const SignSet set{thr, flip, out, static_cast<size_t>(W), 0, 64 * W};
      const size_t block = W == 1 ? r1 - r0 : std::max<size_t>(16, 8192 / static_cast<size_t>(channels));
      for (size_t b = r0; b < r1; b += block)
        pack_rows_f32_multi_avx512(x, b, std::min(r1, b + block), channels, ldx, &set, 1);
      return;
    }
    if (isa == Isa::kAvx2) {
      pack_rows_f32_avx2(x + r0 * ldx, r1 - r0, channels, thr, out + r0 * W, ldx);
    } else if (isa == Isa::kNeon) {
      pack_rows_f32_neon(x + r0 * ldx, r1 - r0, channels, thr, out + r0 * W, ldx);
    } else {
      pack_rows_f32_portable(x + r0 * ldx, r1 - r0, channels, thr, out + r0 * W, ldx);
    }
    if (flip)  // on the rows just packed, still in cache
      for (size_t r = r0; r < r1; ++r)
        for (int k = 0; k < W; ++k) out[r * W + k] ^= flip[k];
  });
}

void pack_rows_f32_multi(const float* x, size_t r0, size_t r1, int channels, size_t ldx, const SignSet* sets, int n) {
  if (active_simd_isa() == Isa::kAvx512) pack_rows_f32_multi_avx512(x, r0, r1, channels, ldx, sets, n);
  else pack_rows_f32_multi_generic(x, r0, r1, channels, ldx, sets, n);
}

// Each set by pack_rows_f32 into a block of rows, then put into its rows.
void pack_rows_f32_multi_generic(const float* x, size_t r0, size_t r1, int channels, size_t ldx, const SignSet* sets,
                                 int n) {
  const size_t W = static_cast<size_t>(words_for(channels)), block = std::max<size_t>(1, 2048 / W);
  std::vector<uint64_t> bits(std::min(block, r1 - r0) * W);
  for (size_t b0 = r0; b0 < r1; b0 += block) {
    const size_t nr = std::min(block, r1 - b0);
    for (int j = 0; j < n; ++j) {
      const SignSet& s = sets[j];
      pack_rows_f32(x + b0 * ldx, nr, channels, s.thr, bits.data(), 1, ldx, s.flip);
      const int words = words_for(s.nbits);
      for (size_t r = 0; r < nr; ++r) {
        uint64_t* o = s.out + (b0 + r) * s.ldo;
        for (int k = 0; k < words; ++k)
          put_bits(o + k, static_cast<size_t>(k) < W ? bits[r * W + k] : 0, s.shift, std::min(64, s.nbits - 64 * k));
      }
    }
  }
}

void pack_rows_i8(const int8_t* x, size_t rows, int channels, uint64_t* out, int nthreads) {
  const int W = words_for(channels);
  split_rows(rows, nthreads, 4096 / (channels + 1) + 1, [&](size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; ++r) {
      const int8_t* xr = x + r * channels;
      uint64_t* o = out + r * W;
      for (int wd = 0; wd < W; ++wd) {
        int c0 = wd * 64, c1 = c0 + 64 < channels ? c0 + 64 : channels;
        uint64_t word = 0;
        for (int c = c0; c < c1; ++c) word |= static_cast<uint64_t>(xr[c] < 0) << (c - c0);
        o[wd] = word;
      }
    }
  });
}

void unpack_rows_f32(const uint64_t* p, size_t rows, int channels, float* out) {
  const int W = words_for(channels);
  for (size_t r = 0; r < rows; ++r)
    for (int c = 0; c < channels; ++c)
      out[r * channels + c] = ((p[r * W + c / 64] >> (c % 64)) & 1) ? -1.0f : 1.0f;
}

void unpack_rows_i8(const uint64_t* p, size_t rows, int channels, int8_t* out) {
  const int W = words_for(channels);
  for (size_t r = 0; r < rows; ++r)
    for (int c = 0; c < channels; ++c)
      out[r * channels + c] = ((p[r * W + c / 64] >> (c % 64)) & 1) ? -1 : 1;
}

void copy_bits(const uint64_t* src, size_t src_off, uint64_t* dst, size_t dst_off,
               size_t nbits) {
  while (nbits > 0) {
    size_t sw = src_off / 64, sb = src_off % 64;
    size_t dw = dst_off / 64, db = dst_off % 64;
    size_t n = 64 - (sb > db ? sb : db);
    if (n > nbits) n = nbits;
    uint64_t mask = n == 64 ? ~uint64_t{0} : ((uint64_t{1} << n) - 1);
    uint64_t v = (src[sw] >> sb) & mask;
    dst[dw] = (dst[dw] & ~(mask << db)) | (v << db);
    src_off += n;
    dst_off += n;
    nbits -= n;
  }
}

bool bgconv_uses_lanes(int groups, int cin_g) {
  return groups > 1 && cin_g <= kBgconvMaxCinPerGroup;
}

PackedWeights pack_weights_ohwi(const float* w, int oc, int kh, int kw, int cin_g, int groups) {
  std::vector<uint64_t> words(static_cast<size_t>(oc) * kh * kw * words_for(cin_g), 0);
  pack_rows_f32_portable(w, static_cast<size_t>(oc) * kh * kw, cin_g, nullptr, words.data(), cin_g);
  return pack_weights_ohwi_words(std::move(words), oc, kh, kw, cin_g, groups);
}

PackedWeights pack_weights_ohwi_words(std::vector<uint64_t> words, int oc, int kh, int kw, int cin_g,
                                      int groups) {
  PackedWeights pw;
  pw.oc = oc;
  pw.kh = kh;
  pw.kw = kw;
  pw.cin_g = cin_g;
  pw.groups = groups;
  pw.ocg = oc / groups;
  pw.cw = words_for(cin_g);
  pw.nblocks = (pw.ocg + kNR - 1) / kNR;
  const int T = kh * kw, cw = pw.cw;
  pw.ohwi = std::move(words);
  if (bgconv_uses_lanes(groups, cin_g)) {
    const int wo = words_for(oc);
    pw.lanes.assign(static_cast<size_t>(T) * cin_g * wo, 0);
    pw.lane_wsum.assign(static_cast<size_t>(T) * oc, cin_g);
    for (int o = 0; o < oc; ++o)
      for (int t = 0; t < T; ++t) {
        const uint64_t* row = pw.ohwi.data() + (static_cast<size_t>(o) * T + t) * cw;
        for (int c = 0; c < cin_g; ++c)
          if ((row[c / 64] >> (c % 64)) & 1) {
            pw.lanes[(static_cast<size_t>(t) * cin_g + c) * wo + o / 64] |= uint64_t{1} << (o % 64);
            pw.lane_wsum[static_cast<size_t>(t) * oc + o] -= 2;
          }
      }
    if (!(cin_g == 1 && pw.ocg == 1)) {
      std::vector<std::pair<int64_t, int>> delta_lane;
      for (int c = 0; c < cin_g; ++c)
        for (int dw = 0; dw < wo; ++dw) {
          delta_lane.clear();
          for (int l = 0; l < 64 && dw * 64 + l < oc; ++l) {
            const int o = dw * 64 + l;
            delta_lane.emplace_back(int64_t{o / pw.ocg} * cin_g + c - o, l);
          }
          std::sort(delta_lane.begin(), delta_lane.end());
          for (size_t i = 0; i < delta_lane.size(); ++i) {
            if (i == 0 || delta_lane[i].first != delta_lane[i - 1].first)
              pw.lane_moves.push_back(LaneMove{c * wo + dw, int64_t{dw} * 64 + delta_lane[i].first, 0});
            pw.lane_moves.back().mask |= uint64_t{1} << delta_lane[i].second;
          }
        }
    }
    return pw;
  }
  const size_t block_words = static_cast<size_t>(T) * cw * kNR;
  pw.blocks.assign(static_cast<size_t>(groups) * pw.nblocks * block_words, 0);
  pw.wsum.assign(static_cast<size_t>(groups) * pw.nblocks * T * kNR, 0);
  for (int g = 0; g < groups; ++g) {
    for (int o = 0; o < pw.ocg; ++o) {
      const int oc_global = g * pw.ocg + o;
      const int b = o / kNR, j = o % kNR;
      uint64_t* blk = pw.blocks.data() + (static_cast<size_t>(g) * pw.nblocks + b) * block_words;
      int32_t* ws = pw.wsum.data() + (static_cast<size_t>(g) * pw.nblocks + b) * T * kNR;
      for (int t = 0; t < T; ++t) {
        int neg = 0;
        for (int c = 0; c < cw; ++c) {
          uint64_t word = pw.ohwi[(static_cast<size_t>(oc_global) * T + t) * cw + c];
          blk[(static_cast<size_t>(t) * cw + c) * kNR + j] = word;
          neg += __builtin_popcountll(word);
        }
        ws[t * kNR + j] = cin_g - 2 * neg;
      }
    }
  }
  return pw;
}

}  // namespace onebit
