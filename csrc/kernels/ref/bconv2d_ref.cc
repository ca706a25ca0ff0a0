// Reference binary convolution: one channel at a time, +-1 arithmetic.
#include <climits>
#include <vector>

#include "ops/bconv2d.h"

namespace onebit {

namespace {
inline int bit_at(const uint64_t* row, int c) { return (row[c / 64] >> (c % 64)) & 1; }
}  // namespace

void bconv2d_reference(const uint64_t* x, const PackedWeights& w, const ConvParams& p,
                       const OutputStage& os, void* out, size_t ldo) {
  if (ldo == 0) ldo = static_cast<size_t>(p.oc);
  const int T = p.kh * p.kw, cwin = words_for(p.cin), cw = w.cw;
  const int ocg = p.oc / p.groups, cing = p.cin / p.groups;
  const int nb = (p.oc + kNR - 1) / kNR, ocpad = nb * kNR, wout = words_for(p.oc);
  std::vector<float> mult(ocpad, 1.0f), bias(ocpad, 0.0f), slope(ocpad, 0.25f);
  std::vector<int32_t> thr(ocpad, INT_MIN);
  std::vector<uint32_t> flip(nb, 0);
  for (int c = 0; c < p.oc; ++c) {
    if (os.mult) mult[c] = os.mult[c];
    if (os.bias) bias[c] = os.bias[c];
    if (os.slope) slope[c] = os.slope[c];
    int f = os.flip ? (os.flip[c] != 0) : 0;
    int t = os.thr ? os.thr[c] : 0;
    // dot > t  <=>  !(dot < t + 1)
    thr[c] = f ? (t == INT_MAX ? INT_MAX : t + 1) : t;
    flip[c / kNR] |= static_cast<uint32_t>(f) << (c % kNR);
  }
  std::vector<int32_t> dot(ocpad, 0);
  for (int n = 0; n < p.n; ++n)
    for (int oy = 0; oy < p.oh; ++oy)
      for (int ox = 0; ox < p.ow; ++ox) {
        for (int o = 0; o < p.oc; ++o) {
          const int g = o / ocg;
          int acc = 0;
          for (int ky = 0; ky < p.kh; ++ky)
            for (int kx = 0; kx < p.kw; ++kx) {
              const int iy = oy * p.sh - p.pt + ky * p.dh;
              const int ix = ox * p.sw - p.pl + kx * p.dw;
              const bool inside = iy >= 0 && iy < p.h && ix >= 0 && ix < p.w;
              if (!inside && p.pad == PadValue::kZero) continue;
              const uint64_t* xr =
                  inside ? x + ((static_cast<size_t>(n) * p.h + iy) * p.w + ix) * cwin : nullptr;
              const uint64_t* wr = w.ohwi.data() + (static_cast<size_t>(o) * T + ky * p.kw + kx) * cw;
              for (int c = 0; c < cing; ++c) {
                int xb = inside ? bit_at(xr, g * cing + c) : (p.pad == PadValue::kMinusOne);
                int wb = bit_at(wr, c);
                acc += (xb ^ wb) ? -1 : 1;
              }
            }
          dot[o] = acc;
        }
        const size_t pix = (static_cast<size_t>(n) * p.oh + oy) * p.ow + ox;
        for (int b = 0; b < nb; ++b) {
          BgemmEpilogue ep{os.kind, os.act, 0, p.oc - b * kNR < kNR ? p.oc - b * kNR : kNR,
                           mult.data() + b * kNR, bias.data() + b * kNR, slope.data() + b * kNR,
                           thr.data() + b * kNR, flip[b]};
          // k_bits = 0 and dot passed directly: the scalar stage takes dot values.
          void* o = os.kind == OutKind::kFloat
                        ? static_cast<void*>(static_cast<float*>(out) + pix * ldo + b * kNR)
                        : static_cast<void*>(reinterpret_cast<uint32_t*>(
                              static_cast<uint64_t*>(out) + pix * wout) + b);
          bgemm_epilogue_scalar(dot.data() + b * kNR, ep, o);
        }
        if (os.kind == OutKind::kBits && (nb & 1))
          reinterpret_cast<uint32_t*>(static_cast<uint64_t*>(out) + pix * wout)[nb] = 0;
      }
}

}  // namespace onebit
