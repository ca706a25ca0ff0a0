"""A sign computed by the float-output bconv2d step that produces its input (engine/model.cc
fuse_bconv_sign): the AVX-512 GEMM kernel writes the bits from the values it stores, the other
kernels pack the finished output in the same step. The bits and the float output must be those
of the unfused engine (load option ``fuse_bconv_sign=False``) and of the numpy reference, under
every instruction set and thread count, with thresholds, flipped channels, channel tails and an
odd number of 32-channel blocks, after every fused post-op.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_engine_ops import RNG, G, _signs, assert_same_bits_from_threads, conv_attrs

from onebit.runtime import load
from onebit.runtime.reference import run_reference

C = 64
HW = 11


def _block(g: G, oc: int, post: str, groups: int = 1, pad_value: float = -1.0) -> str:
    """sign -> a float bconv2d with the post-op `post` (its output then read twice)."""
    b = g.op("sign", "input", threshold=g.t(np.zeros(C, np.float32)))
    act = "relu" if post in ("relu", "residual_relu", "post_affine") else None
    attrs = conv_attrs(k=3, s=1, p=1, in_channels=C, pad_value=pad_value, output="float", groups=groups)
    if act:
        attrs["activation"] = act
    params = {
        "weight": g.t(_signs((oc, 3, 3, C // groups)), packed=True),
        "multiplier": g.t(RNG.uniform(0.5, 1.5, oc).astype(np.float32)),
        "bias": g.t(RNG.standard_normal(oc).astype(np.float32)),
    }
    if post == "post_affine":
        params["post_scale"] = g.t(RNG.uniform(-2, 2, oc).astype(np.float32))
        params["post_shift"] = g.t(RNG.standard_normal(oc).astype(np.float32))
    residual = ["input"] if post in ("residual_relu", "post_affine") else []
    return g.op("bconv2d", b, *residual, attrs=attrs, **params)


def _model(tmp_path, oc: int, post: str, groups: int = 1, pad_value: float = -1.0, flip: bool = True):
    g = G([1, C, HW, HW])
    y = _block(g, oc, post, groups, pad_value)
    thr = RNG.standard_normal(oc).astype(np.float32) * 0.5
    thr[::5] = 0.0
    params = {"threshold": g.t(thr)}
    if flip:
        params["flip"] = g.t((RNG.random(oc) < 0.4).astype(np.float32))
    bits = g.op("sign", y, **params)
    # A binary conv reads the bits as whole words (bits past oc must be 0); unpack shows
    # them one by one; y is the float output the conv kept.
    attrs = conv_attrs(k=1, s=1, p=0, in_channels=oc, pad_value=1.0, output="float")
    z = g.op("bconv2d", bits, attrs=attrs, weight=g.t(_signs((16, 1, 1, oc)), packed=True),
             multiplier=g.t(np.ones(16, np.float32)), bias=g.t(np.zeros(16, np.float32)))
    out = g.op("concat", g.op("unpack", bits), z, y)
    meta = {"inputs": [{"name": "input"}], "outputs": [{"name": out}], "nodes": g.nodes}
    x = RNG.standard_normal((3, C, HW, HW)).astype(np.float32)
    x[:, :, 2, 3] = 0.0  # values on a zero threshold
    want = run_reference(meta, g.ref, x)
    g.write(tmp_path / "m.onebit", out, [1, *want.shape[1:]])
    return tmp_path / "m.onebit", x, want, y


# (output channels, post-op, groups, pad value): channel tails (37), an odd number of
# 32-channel blocks (96), each fused post-op; grouped convs take the pass after the conv
CASES = [
    (64, "none", 1, -1.0), (37, "relu", 1, 1.0), (96, "none", 1, 0.0), (64, "residual_relu", 1, -1.0),
    (64, "post_affine", 1, 0.0), (64, "none", 2, -1.0), (64, "relu", 64, 1.0),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"oc{c[0]}-{c[1]}-g{c[2]}-pad{c[3]:+.0f}")
@pytest.mark.parametrize("threads", [1, 2])
def test_fused_sign_equals_unfused_and_reference(case, threads, isa, tmp_path):
    oc, post, groups, pad_value = case
    path, x, want, y = _model(tmp_path, oc, post, groups, pad_value)
    fused = load(path, num_threads=threads)
    plain = load(path, num_threads=threads, fuse_bconv_sign=False)
    signs = [d for d in fused.describe() if d["op"] == "sign"]
    assert [d["computed_by"] for d in signs] == ["", y]  # the second sign, by the conv's step
    assert all(d["computed_by"] == "" for d in plain.describe())
    got = fused.run(x)
    np.testing.assert_array_equal(got.view(np.uint32), plain.run(x).view(np.uint32))
    np.testing.assert_array_equal(got[:, :oc + 16], want[:, :oc + 16])  # the bits and their dots: exact
    np.testing.assert_allclose(got[:, oc + 16:], want[:, oc + 16:], rtol=1e-5, atol=1e-5)
    fused.run(x, profile=True)
    assert fused.layer_times.get(signs[1]["index"], 0.0) == 0.0  # its time is in the conv's step


def test_sign_of_a_bits_output_or_of_another_value_stays_a_step(tmp_path):
    # Only a sign that reads the float output of the bconv2d right before it is fused.
    g = G([1, C, HW, HW])
    y = _block(g, 64, "none")
    r = g.op("relu", y)
    bits = g.op("sign", r, threshold=g.t(np.zeros(64, np.float32)))
    g.write(tmp_path / "m.onebit", g.op("unpack", bits), [1, 64, HW, HW])
    assert all(d["computed_by"] == "" for d in load(tmp_path / "m.onebit").describe())


def test_zoo_blocks_fused_with_the_same_bits(tmp_path):
    import torch

    from onebit import export
    from onebit.models import create

    torch.manual_seed(0)
    export(create("binary_resnet_e18").eval(), torch.randn(1, 3, 64, 64), tmp_path / "m.onebit")
    x = RNG.standard_normal((2, 3, 64, 64)).astype(np.float32)
    for threads in (1, 2):
        m = load(tmp_path / "m.onebit", num_threads=threads)
        fused = [d for d in m.describe() if d["op"] == "sign" and d["computed_by"]]
        assert len(fused) >= 12  # each block's sign after the first stage's first
        np.testing.assert_array_equal(m.run(x), load(tmp_path / "m.onebit", num_threads=threads,
                                                     fuse_bconv_sign=False).run(x))


@pytest.mark.parametrize("engine_threads", [1, 2])
def test_fused_sign_shared_by_many_threads(engine_threads, tmp_path):
    # 8 Python threads call one model whose bconv2d writes the next sign's bits (the row
    # pointers of the bits are per call and per task): every output is the
    # single-threaded one, bit for bit, at batch sizes 1-3.
    path, _, _, _ = _model(tmp_path, 96, "relu", pad_value=0.0)
    m = load(path, num_threads=engine_threads)
    one = load(path, num_threads=1, fuse_bconv_sign=False)
    inputs = [RNG.standard_normal((1 + i % 3, C, HW, HW)).astype(np.float32) for i in range(24)]
    expected = [one.run(x) for x in inputs]
    assert_same_bits_from_threads(m, inputs, expected)
