// Tang et al.'s residual binarization (onebit.quantizers.residual_sign) as the
// engine computes it: r_1 = x, a_i = mean |r_i|, s_i = sign(r_i) (sign(0) = +1),
// r_{i+1} = r_i - a_i * s_i, x_hat = sum_i a_i * s_i. Shared by the residual_sign
// op (x_hat as floats) and the binary layers' residual_bits input (the planes
// s_i as packed bits, each through the binary kernel). reference.py
// _residual_scales is the numpy definition.
#pragma once
#include <cstdint>

namespace onebit::ops {

// Where the means a_i are taken (quantizers.residual_sign's `scale`):
// kChannel: per channel over every sample and pixel of the batch (the rule the
// zoo's recipes train with; the scales depend on the whole batch);
// kSample: one scale per sample over all its pixels and channels.
enum class ResidualScale { kChannel, kSample };

// `samples` samples of `rows` pixels of `c` float channels, `bits` planes.
struct ResidualShape {
  int64_t samples = 1, rows = 1, c = 1;
  int bits = 1;
  ResidualScale scale = ResidualScale::kSample;
  // Number of scales: [samples][bits] for kSample, [bits][c] for kChannel.
  int64_t scale_count() const { return scale == ResidualScale::kSample ? samples * bits : bits * c; }
};

// Sample rule only: the scales ([samples][bits]) and the sign planes, packed as
// [samples][bits][rows][words_for(c)] (bit set = -1), i.e. `samples * bits`
// images of `rows` pixels, plane i of sample n at image n * bits + i. r is
// scratch of samples * rows * c floats.
void residual_planes(const float* x, const ResidualShape& s, float* a, uint64_t* planes, float* r,
                     int nthreads);

// Either rule: y = sum_i a_i s_i, accumulated as training does (y may be x);
// the scales go to a. r is scratch of samples * rows * c floats.
void residual_floats(const float* x, const ResidualShape& s, float* a, float* y, float* r, int nthreads);

}  // namespace onebit::ops
