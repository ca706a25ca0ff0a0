"""Float helpers around the binary layers, against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import signs

from onebit.runtime import kernels as K


def nchw(x):
    return torch.from_numpy(x).permute(0, 3, 1, 2)


def nhwc(t):
    return t.permute(0, 2, 3, 1).contiguous().numpy()


@pytest.mark.parametrize("case", [(1, 3, 16, 3, 2, 1, 1), (2, 5, 7, 3, 1, 1, 2),
                                  (1, 32, 33, 1, 1, 0, 1), (1, 3, 70, 7, 2, 3, 1)])
def test_conv2d_f32(isa, rng, case):
    n, ci, co, k, s, p, d = case
    x = rng.standard_normal((n, 13, 11, ci)).astype(np.float32)
    w = rng.standard_normal((co, ci, k, k)).astype(np.float32)
    b = rng.standard_normal(co).astype(np.float32)
    want = nhwc(F.relu(F.conv2d(nchw(x), torch.from_numpy(w), torch.from_numpy(b), stride=s,
                                padding=p, dilation=d)))
    got = K.conv2d_f32(x, w, b, stride=s, padding=p, dilation=d, layout="OIHW",
                       activation="relu")
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def _im2col(x, kh, kw, s, pad, d):
    """(n*oh*ow, kh*kw*C) patches of NHWC ``x`` in OHWI order, zero padding (t, b, l, r)."""
    xp = np.pad(x, ((0, 0), (pad[0], pad[1]), (pad[2], pad[3]), (0, 0)))
    n, hp, wp, c = xp.shape
    oh = (hp - d[0] * (kh - 1) - 1) // s[0] + 1
    ow = (wp - d[1] * (kw - 1) - 1) // s[1] + 1
    taps = [xp[:, ky * d[0] : ky * d[0] + s[0] * (oh - 1) + 1 : s[0],
               kx * d[1] : kx * d[1] + s[1] * (ow - 1) + 1 : s[1]]
            for ky in range(kh) for kx in range(kw)]
    return np.stack(taps, axis=3).reshape(n * oh * ow, kh * kw * c), (n, oh, ow)


# (n, h, w, c, oc, k, stride, padding (t, b, l, r), dilation): the 7x7 RGB stem and
# the 3x3/2 one (kernel rows read in place), asymmetric padding, dilation along y
# only (in place) and along x (im2col), K = 252 (the last in place) and 261 (im2col,
# two K blocks), output widths that are no multiple of the tile, oc tails.
@pytest.mark.parametrize("case", [
    (1, 37, 41, 3, 64, 7, 2, (3, 3, 3, 3), (1, 1)),
    (2, 20, 19, 3, 16, 3, 2, (1, 1, 1, 1), (1, 1)),
    (1, 15, 23, 5, 40, 3, 1, (0, 2, 1, 0), (2, 1)),
    (1, 15, 23, 5, 40, 3, 1, (1, 1, 2, 2), (1, 2)),
    (1, 9, 13, 28, 33, 3, 1, (1, 1, 1, 1), (1, 1)),
    (1, 9, 13, 29, 33, 3, 1, (1, 1, 1, 1), (1, 1)),
])
@pytest.mark.parametrize("threads", [1, 2])
def test_conv2d_f32_equals_gemm_of_its_im2col_bit_for_bit(isa, rng, case, threads):
    """The conv reads its kernel rows in place where it can; the sums must be the GEMM's."""
    n, h, w_, c, oc, k, s, pad, d = case
    x = rng.standard_normal((n, h, w_, c)).astype(np.float32)
    w = rng.standard_normal((oc, k, k, c)).astype(np.float32)
    b = rng.standard_normal(oc).astype(np.float32)
    cols, (n, oh, ow) = _im2col(x, k, k, (s, s), pad, d)
    want = K.dense_f32(cols, w.reshape(oc, -1), b, activation="relu", num_threads=1)
    got = K.conv2d_f32(x, w, b, stride=s, padding=pad, dilation=d, activation="relu",
                       num_threads=threads)
    assert got.shape == (n, oh, ow, oc)
    np.testing.assert_array_equal(got.reshape(-1, oc), want)


@pytest.mark.parametrize("groups,ci,co,k,s,p", [(16, 16, 16, 3, 2, 1), (5, 5, 5, 3, 1, 1),
                                               (3, 12, 6, 3, 1, 0), (2, 8, 8, 5, 2, 2)])
def test_grouped_and_depthwise_conv2d_f32(isa, rng, groups, ci, co, k, s, p):
    x = rng.standard_normal((2, 11, 10, ci)).astype(np.float32)
    w = rng.standard_normal((co, ci // groups, k, k)).astype(np.float32)
    b = rng.standard_normal(co).astype(np.float32)
    want = nhwc(F.conv2d(nchw(x), torch.from_numpy(w), torch.from_numpy(b), stride=s, padding=p,
                         groups=groups))
    got = K.conv2d_f32(x, w, b, stride=s, padding=p, groups=groups, layout="OIHW")
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


# (h, w, C, k, stride, padding (t, b, l, r), dilation): windows inside the input (tap offsets
# precomputed) and across its border (taps checked), channel blocks of 64, 16 and 1.
@pytest.mark.parametrize("case", [
    (13, 11, 16, 3, 2, (1, 1, 1, 1), (1, 1)),
    (12, 15, 86, 3, 1, (0, 2, 1, 0), (2, 1)),
    (9, 10, 5, 5, 2, (2, 2, 2, 2), (1, 2)),
])
@pytest.mark.parametrize("threads", [1, 2])
def test_depthwise_conv2d_f32_sums_taps_in_order_bit_for_bit(isa, rng, case, threads):
    """bias, then + x * w per tap inside the input in (ky, kx) order, each op rounded in fp32:
    the same bits wherever the window lies (the engine's goldens depend on it)."""
    h, w_, c, k, s, pad, d = case
    x = rng.standard_normal((2, h, w_, c)).astype(np.float32)
    w = rng.standard_normal((c, k, k, 1)).astype(np.float32)
    b = rng.standard_normal(c).astype(np.float32)
    got = K.conv2d_f32(x, w, b, stride=s, padding=pad, dilation=d, groups=c, num_threads=threads)
    n, oh, ow, _ = got.shape
    want = np.empty_like(got)
    for oy in range(oh):
        for ox in range(ow):
            acc = np.broadcast_to(b, (n, c)).copy()
            for ky in range(k):
                iy = oy * s - pad[0] + ky * d[0]
                for kx in range(k):
                    ix = ox * s - pad[2] + kx * d[1]
                    if 0 <= iy < h and 0 <= ix < w_:
                        acc = acc + x[:, iy, ix, :] * w[:, ky, kx, 0]  # float32: each op rounded
            want[:, oy, ox, :] = acc
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def _gemm_in_order(x, w, bias, act, slope, fused, kc=256):
    """x (M, K) @ w.T in the engine's order, each op rounded to fp32: each output summed
    k ascending from zero in blocks of ``kc`` (``fused``: one rounding per multiply-add, as
    an FMA; the product is exact in float64, so only a float64 sum that lands on a float32
    tie could differ, odds ~2^-29 an op), block sums added in turn, then + bias (none: +0,
    and nothing at all with no activation either), then the activation."""
    m, k = x.shape
    total = None
    for k0 in range(0, k, kc):
        acc = np.zeros((m, w.shape[0]), np.float32)
        for j in range(k0, min(k, k0 + kc)):
            prod = x[:, j, None].astype(np.float64) * w[None, :, j].astype(np.float64)
            if fused:
                acc = (acc.astype(np.float64) + prod).astype(np.float32)
            else:
                acc = acc + prod.astype(np.float32)
        total = acc if total is None else total + acc
    if bias is None and act is None:
        return total
    total = total + (bias if bias is not None else np.float32(0))
    if act == "relu":
        total = np.where(total < 0, np.float32(0), total)
    elif act == "prelu":
        total = np.where(total < 0, total * slope, total)
    return total.astype(np.float32)


# (M, K, N, activation, bias): the 1x1 convs' and batched dense layers' GEMM, whose
# kernel takes two 32-column panels a tile on AVX-512: K past one block of 256 (3 blocks
# with K = 513), an odd panel count (N = 160: two pairs and one panel; 97: a 1-column
# tail), rows no multiple of the 6-row tile, no bias with and without an activation.
@pytest.mark.parametrize("case", [
    (126, 300, 97, "relu", True),
    (5, 513, 64, "prelu", True),
    (50, 64, 160, None, False),
    (7, 256, 33, "relu", False),
    (49, 40, 512, None, True),
])
@pytest.mark.parametrize("threads", [1, 2])
def test_float_gemm_sums_in_order_bit_for_bit(fast_isa, rng, case, threads):
    """Pairs of panels, k blocks and the fused output stage must give the bits of one
    fixed order, whatever the thread count (which groups the panels differently)."""
    m, k, n, act, with_bias = case
    x = rng.standard_normal((m, k)).astype(np.float32)
    x[0, :] = 0.0  # a row of zeros: with no bias its outputs stay +0 (and -0 stays -0 below)
    w = rng.standard_normal((n, k)).astype(np.float32)
    w[:, 0] = -0.0
    b = rng.standard_normal(n).astype(np.float32) if with_bias else None
    slope = rng.uniform(0, 0.5, n).astype(np.float32)
    # the portable kernel multiplies and adds with two roundings (no FMA in its build)
    want = _gemm_in_order(x, w, b, act, slope, fused=fast_isa != "portable")
    got = K.dense_f32(x, w, b, activation=act, prelu_slope=slope if act == "prelu" else None,
                      num_threads=threads)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    # the same GEMM as a 1x1 conv (NHWC: the rows are pixels)
    conv = K.conv2d_f32(x.reshape(1, 1, m, k), w.reshape(n, 1, 1, k), b, activation=act,
                        prelu_slope=slope if act == "prelu" else None, num_threads=threads)
    np.testing.assert_array_equal(conv.reshape(m, n).view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("m,k,n", [(1, 512, 1000), (5, 300, 37), (64, 1, 3)])
def test_dense_f32(isa, rng, m, k, n):
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.standard_normal((n, k)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    slope = rng.uniform(0, 0.5, n).astype(np.float32)
    want = F.prelu(torch.from_numpy(x @ w.T + b), torch.from_numpy(slope)).numpy()
    got = K.dense_f32(x, w, b, activation="prelu", prelu_slope=slope)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1), (3, 1, 1)])
def test_pools(isa, rng, k, s, p):
    x = rng.standard_normal((2, 9, 8, 70)).astype(np.float32)
    np.testing.assert_array_equal(K.maxpool_f32(x, k, s, p),
                                  nhwc(F.max_pool2d(nchw(x), k, s, p)))
    for inc in (True, False):
        np.testing.assert_allclose(K.avgpool_f32(x, k, s, p, count_include_pad=inc),
                                   nhwc(F.avg_pool2d(nchw(x), k, s, p, count_include_pad=inc)),
                                   rtol=1e-5, atol=1e-6)
    xs = signs(rng, (2, 9, 8, 130))
    got = K.maxpool_packed(K.pack_bits(xs), 130, k, s, p)
    np.testing.assert_array_equal(K.unpack_bits(got, 130), nhwc(F.max_pool2d(nchw(xs), k, s, p)))


@pytest.mark.parametrize("c", [1, 15, 16, 64, 70, 130, 200])
def test_float_pools_every_block_width_nan_inf_and_summation_order(isa, rng, c):
    """The pooling kernels go through channels 64, then 16, then 1 at a time: every width
    is torch's max_pool2d exactly, NaN and infinities included, and avgpool is the
    float32 sum in row-major window order scaled by 1 / count, bit for bit."""
    x = rng.standard_normal((2, 7, 9, c)).astype(np.float32)
    x[0, 1, 2, ::3] = np.nan
    x[0, 4, :, 1::4] = -np.inf
    x[1, 5, 5, ::5] = np.inf
    x[1, 2, :, 2::7] = np.nan
    np.testing.assert_array_equal(K.maxpool_f32(x, 3, 2, 1), nhwc(F.max_pool2d(nchw(x), 3, 2, 1)))
    neg = np.full((1, 4, 4, c), -np.inf, np.float32)
    np.testing.assert_array_equal(K.maxpool_f32(neg, 2, 2, 0), np.full((1, 2, 2, c), -np.inf, np.float32))

    y = rng.standard_normal((1, 6, 7, c)).astype(np.float32) * np.float32(1e3)
    got = K.avgpool_f32(y, 3, 2, 1, count_include_pad=True)
    want = np.empty_like(got)
    for oy in range(got.shape[1]):
        for ox in range(got.shape[2]):
            acc = np.zeros(c, np.float32)
            for iy in range(max(0, 2 * oy - 1), min(6, 2 * oy + 2)):
                for ix in range(max(0, 2 * ox - 1), min(7, 2 * ox + 2)):
                    acc = acc + y[0, iy, ix]  # float32, in this order
            want[0, oy, ox] = acc * (np.float32(1) / np.float32(9))
    np.testing.assert_array_equal(got, want)


def test_elementwise_helpers(rng):
    x = rng.standard_normal((2, 3, 3, 5)).astype(np.float32)
    sc, sh = rng.standard_normal(5), rng.standard_normal(5)
    np.testing.assert_allclose(K.batchnorm_f32(x, sc, sh), x * sc.astype(np.float32) +
                               sh.astype(np.float32), rtol=1e-6)
    sl = rng.standard_normal(5).astype(np.float32)
    np.testing.assert_allclose(K.prelu_f32(x, sl), np.where(x < 0, x * sl, x))
    g, z, b = (rng.standard_normal(5).astype(np.float32) for _ in range(3))
    y = x - g
    np.testing.assert_allclose(K.rprelu_f32(x, g, z, b), np.where(y < 0, y * b, y) + z,
                               rtol=1e-6)
