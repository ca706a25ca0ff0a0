"""Binary convolution and GEMM: exact against PyTorch and against the reference kernel."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import signs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onebit import _C
from onebit.runtime import kernels as K


def torch_conv(x, w, stride, padding, dilation, pad_value, groups=1):
    """x NHWC, w OHWI (+-1 floats) -> NHWC float, with the layer's padding rule."""
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)
    wt = torch.from_numpy(w).permute(0, 3, 1, 2)
    t, b, l, r = padding
    if pad_value == 0:
        xt = F.pad(xt, (l, r, t, b), value=0.0)
    else:
        xt = F.pad(xt, (l, r, t, b), value=float(pad_value))
    y = F.conv2d(xt, wt, stride=stride, dilation=dilation, groups=groups)
    return y.permute(0, 2, 3, 1).contiguous().numpy()


# (n, h, w, cin, cout, k, stride, pad, dilation)
CASES = [
    (1, 5, 5, 3, 5, 3, 1, 1, 1),
    (2, 7, 6, 65, 40, 3, 2, 1, 1),
    (1, 8, 8, 130, 70, 3, 1, 1, 1),
    (1, 6, 6, 64, 64, 1, 1, 0, 1),
    (1, 9, 7, 10, 33, 3, 1, 2, 2),
    (3, 1, 1, 127, 31, 1, 1, 0, 1),
    (1, 1, 1, 63, 9, 3, 1, 1, 1),
    (1, 10, 9, 1, 1, 5, 2, 2, 1),
    (2, 6, 5, 200, 97, 2, 2, 1, 1),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c)))
@pytest.mark.parametrize("pad_value", [1, -1, 0])
def test_matches_torch_conv2d(isa, rng, case, pad_value):
    n, h, w, ci, co, k, s, p, d = case
    x, wt = signs(rng, (n, h, w, ci)), signs(rng, (co, k, k, ci))
    want = torch_conv(x, wt, s, (p, p, p, p), d, pad_value)
    got = K.bconv2d(K.pack_bits(x), K.pack_weights(wt), in_channels=ci, stride=s, padding=p,
                    dilation=d, pad_value=pad_value)
    np.testing.assert_array_equal(got, want)


def test_asymmetric_same_padding_and_oihw(isa, rng):
    x, w = signs(rng, (1, 8, 7, 70)), signs(rng, (20, 70, 3, 3))  # OIHW
    for pv in (1, -1, 0):
        got = K.bconv2d(K.pack_bits(x), K.pack_weights(w, layout="OIHW"), in_channels=70,
                        stride=2, padding="same", pad_value=pv)
        # TF 'same' for 8x7, k3 s2: rows pad (0, 1), cols (1, 1)
        want = torch_conv(x, np.ascontiguousarray(w.transpose(0, 2, 3, 1)), 2, (0, 1, 1, 1),
                          1, pv)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("groups,ci,co", [(2, 128, 64), (4, 40, 12), (3, 195, 96), (8, 64, 64)])
def test_groups(isa, rng, groups, ci, co):
    x, w = signs(rng, (2, 5, 5, ci)), signs(rng, (co, 3, 3, ci // groups))
    for pv in (1, 0):
        want = torch_conv(x, w, 1, (1, 1, 1, 1), 1, pv, groups=groups)
        pw = K.pack_weights(w, groups=groups)
        got = K.bconv2d(K.pack_bits(x), pw, in_channels=ci, padding=1, pad_value=pv,
                        groups=groups)
        np.testing.assert_array_equal(got, want)
        thr = rng.integers(-20, 20, co).astype(np.int32)
        bits = K.bconv2d(K.pack_bits(x), pw, in_channels=ci, padding=1, pad_value=pv,
                         threshold=thr)
        np.testing.assert_array_equal(bits, K.pack_bits(np.where(want < thr, -1.0, 1.0)
                                                        .astype(np.float32)))


# (groups, cin, cout, k, stride, pad, dilation): depthwise and few channels per group
# take the bit-sliced kernel (one output channel per bit lane), >8 per group the GEMM.
GROUPED = [
    (32, 32, 32, 3, 1, 1, 1),  # depthwise, one word
    (96, 96, 96, 3, 2, 1, 1),  # depthwise, 96 channels (not a word multiple)
    (3, 3, 3, 3, 1, 1, 1),
    (1, 1, 1, 3, 1, 1, 1),  # groups 1: the GEMM path, for comparison
    (65, 65, 130, 3, 1, 2, 2),  # depth multiplier 2
    (64, 192, 64, 3, 1, 1, 1),  # 3 in, 1 out per group
    (16, 128, 32, 5, 2, 2, 1),  # 8 in, 2 out per group
    (600, 600, 600, 3, 1, 1, 1),  # 10 words: the 8-word vectors and a tail
    (4, 128, 64, 3, 1, 1, 1),  # 32 per group: GEMM per group
    (7, 7, 7, 1, 1, 0, 1),  # 1x1, no padding: the packed input is read in place
]


@pytest.mark.parametrize("case", GROUPED, ids=lambda c: "x".join(map(str, c)))
@pytest.mark.parametrize("pad_value", [1, -1, 0])
def test_grouped_and_depthwise_match_torch(isa, rng, case, pad_value):
    groups, ci, co, k, s, p, d = case
    x, w = signs(rng, (2, 9, 8, ci)), signs(rng, (co, k, k, ci // groups))
    want = torch_conv(x, w, s, (p, p, p, p), d, pad_value, groups=groups)
    pw = K.pack_weights(w, groups=groups)
    xp = K.pack_bits(x)
    kw = dict(in_channels=ci, stride=s, padding=p, dilation=d, pad_value=pad_value, groups=groups)
    np.testing.assert_array_equal(K.bconv2d(xp, pw, **kw), want)
    thr = rng.integers(-(k * k * ci // groups) - 2, k * k * ci // groups + 3, co).astype(np.int32)
    flip = rng.integers(0, 2, co).astype(bool)
    bits = K.bconv2d(xp, pw, threshold=thr, flip=flip, **kw)
    want_bits = np.where(flip, want > thr, want < thr)
    np.testing.assert_array_equal(K.unpack_bits(bits, co), np.where(want_bits, -1.0, 1.0))
    words = bits.reshape(-1, bits.shape[-1])[:, -1]
    if co % 64:  # lanes past the last channel stay clear
        assert not np.any(words >> np.uint64(co % 64))


def _stage(rng, co, kind):
    if kind == "affine":
        return dict(multiplier=rng.standard_normal(co).astype(np.float32),
                    bias=rng.standard_normal(co).astype(np.float32))
    if kind == "relu":
        return dict(multiplier=rng.standard_normal(co).astype(np.float32),
                    bias=rng.standard_normal(co).astype(np.float32), activation="relu")
    if kind == "prelu":
        return dict(bias=rng.standard_normal(co).astype(np.float32), activation="prelu",
                    prelu_slope=rng.standard_normal(co).astype(np.float32))
    if kind == "bits":
        return dict(threshold=rng.integers(-30, 30, co).astype(np.int32),
                    flip=rng.integers(0, 2, co).astype(bool))
    return {}


def _reference(fn):
    before = _C.active_isa()
    _C.set_isa("reference")
    try:
        return fn()
    finally:
        _C.set_isa(before)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    n=st.integers(1, 2), h=st.integers(1, 9), w=st.integers(1, 9),
    ci=st.sampled_from([1, 3, 63, 64, 65, 127, 130]),
    co=st.sampled_from([1, 5, 31, 32, 33, 64, 70]),
    k=st.sampled_from([1, 2, 3, 5]), s=st.integers(1, 3), d=st.integers(1, 2),
    p=st.integers(0, 2), pad_value=st.sampled_from([1, -1, 0]),
    stage=st.sampled_from(["none", "affine", "relu", "prelu", "bits"]),
    seed=st.integers(0, 2**31),
)
def test_fast_paths_equal_reference(fast_isa, n, h, w, ci, co, k, s, d, p, pad_value, stage,
                                    seed):
    r = np.random.default_rng(seed)
    if h + 2 * p < d * (k - 1) + 1 or w + 2 * p < d * (k - 1) + 1:
        return
    x, wt = signs(r, (n, h, w, ci)), signs(r, (co, k, k, ci))
    xp, pw = K.pack_bits(x), K.pack_weights(wt)
    kw = dict(in_channels=ci, stride=s, padding=p, dilation=d, pad_value=pad_value,
              **_stage(r, co, stage))
    want = _reference(lambda: K.bconv2d(xp, pw, **kw))
    for threads in (1, 2):
        got = K.bconv2d(xp, pw, num_threads=threads, **kw)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    groups=st.sampled_from([1, 2, 3, 5, 8, 64]), cin_g=st.sampled_from([1, 2, 3, 8, 9]),
    mult=st.sampled_from([1, 2, 3]), h=st.integers(1, 8), w=st.integers(1, 8),
    k=st.sampled_from([1, 2, 3, 5]), s=st.integers(1, 3), d=st.integers(1, 2),
    p=st.integers(0, 2), pad_value=st.sampled_from([1, -1, 0]),
    stage=st.sampled_from(["none", "affine", "relu", "prelu", "bits"]),
    seed=st.integers(0, 2**31),
)
def test_grouped_fast_paths_equal_reference(fast_isa, groups, cin_g, mult, h, w, k, s, d, p,
                                            pad_value, stage, seed):
    if h + 2 * p < d * (k - 1) + 1 or w + 2 * p < d * (k - 1) + 1 or p > d * (k - 1):
        return
    r = np.random.default_rng(seed)
    ci, co = groups * cin_g, groups * mult
    x, wt = signs(r, (2, h, w, ci)), signs(r, (co, k, k, cin_g))
    xp, pw = K.pack_bits(x), K.pack_weights(wt, groups=groups)
    kw = dict(in_channels=ci, stride=s, padding=p, dilation=d, pad_value=pad_value,
              **_stage(r, co, stage))
    want = _reference(lambda: K.bconv2d(xp, pw, **kw))
    for threads in (1, 2):
        got = K.bconv2d(xp, pw, num_threads=threads, **kw)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_fold_threshold_is_exact(isa, rng):
    co = 96
    x, w = signs(rng, (1, 6, 6, 75)), signs(rng, (co, 3, 3, 75))
    xp, pw = K.pack_bits(x), K.pack_weights(w)
    dot = K.bconv2d(xp, pw, in_channels=75, padding=1).astype(np.float64)
    mult = rng.standard_normal(co)
    mult[:8] = 0.0
    mult[8:40] *= -1
    bias = rng.integers(-40, 40, co) * np.abs(mult) + rng.choice([0.0, 0.5], co)  # ties too
    bias[:4] = -1.0
    thr, flip = K.fold_threshold(mult, bias)
    bits = K.bconv2d(xp, pw, in_channels=75, padding=1, threshold=thr, flip=flip)
    want = np.where(mult * dot + bias < 0, -1.0, 1.0).astype(np.float32)
    np.testing.assert_array_equal(K.unpack_bits(bits, co), want)


@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (7, 33, 65), (13, 64, 512), (6, 100, 130)])
def test_bgemm(isa, rng, m, n, k):
    a, w = signs(rng, (m, k)), signs(rng, (n, k))
    pw = K.pack_weights(w)
    got = K.bgemm(K.pack_bits(a), pw, k)
    np.testing.assert_array_equal(got, a @ w.T)
    thr = rng.integers(-5, 5, n).astype(np.int32)
    bits = K.bgemm(K.pack_bits(a), pw, k, threshold=thr)
    np.testing.assert_array_equal(K.unpack_bits(bits, n), np.where(a @ w.T < thr, -1.0, 1.0))


def test_threads_agree_and_out_param(rng):
    x, w = signs(rng, (2, 20, 20, 100)), signs(rng, (96, 3, 3, 100))
    xp, pw = K.pack_bits(x), K.pack_weights(w)
    y1 = K.bconv2d(xp, pw, in_channels=100, padding=1, pad_value=0, num_threads=1)
    out = np.empty_like(y1)
    y2 = K.bconv2d(xp, pw, in_channels=100, padding=1, pad_value=0, num_threads=2, out=out)
    assert y2 is out
    np.testing.assert_array_equal(y1, y2)
    K.set_num_threads(2)
    assert K.get_num_threads() == 2
    np.testing.assert_array_equal(K.bconv2d(xp, pw, in_channels=100, padding=1, pad_value=0), y1)
    K.set_num_threads(None)
    assert K.get_num_threads() >= 1


def test_bgemm_large_weights_panel_path(fast_isa, rng):
    """Filters over 512 KB switch the driver to block-outer order over tile panels."""
    m, n, k = 45, 2100, 2050
    a, w = signs(rng, (m, k)), signs(rng, (n, k))
    got = K.bgemm(K.pack_bits(a), K.pack_weights(w), k, num_threads=2)
    np.testing.assert_array_equal(got, a @ w.T)


_FORKED: dict = {}


def test_threads_work_after_fork(rng):
    """A forked child (DataLoader-style) gets a fresh pool instead of deadlocking."""
    import multiprocessing as mp

    x, w = signs(rng, (1, 12, 12, 64)), signs(rng, (64, 3, 3, 64))
    _FORKED["args"] = (K.pack_bits(x), K.pack_weights(w))  # inherited by the fork
    want = _conv_two_threads()  # the parent's pool is up and has a worker
    with mp.get_context("fork").Pool(1) as p:
        got = p.apply_async(_conv_two_threads).get(timeout=60)
    np.testing.assert_array_equal(got, want)


def _conv_two_threads():
    xp, pw = _FORKED["args"]
    return K.bconv2d(xp, pw, in_channels=64, padding=1, num_threads=2)
