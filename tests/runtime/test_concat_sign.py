"""A sign of a concat written in place, computed in parts (engine/model.cc fuse_concat_sign):
DenseNet's layers each binarize all features so far with thresholds of their own; the step
that produces each input of the concat writes that input's words of every such sign
(pack_rows_f32_multi: up to 6 threshold sets a pass in the AVX-512 kernel). The bits must be
those of the separate sign step (load option ``fuse_concat_sign=False``) and of the numpy
reference under every instruction set, thread count and batch size, with flipped channels,
values on their thresholds, a channel tail, more consumers than one pass holds, and inputs
that start and end inside a 64-channel word.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_engine_ops import RNG, G, _signs, assert_same_bits_from_threads, conv_attrs

from onebit.runtime import load
from onebit.runtime.reference import run_reference

C_IN = 3
HW = 7


def _sign(g: G, x: str, c: int) -> str:
    thr = (RNG.standard_normal(c) * 0.3).astype(np.float32)
    thr[::4] = 0.0
    return g.op("sign", x, threshold=g.t(thr), flip=g.t((RNG.random(c) < 0.3).astype(np.float32)))


def _dense_block(tmp_path, stem: int, growth: list[int]):
    """stem conv -> for each layer: sign(features) -> bconv -> features = concat(features, new).

    The output holds the last features and, unpacked, the bits of the first and last signs."""
    g = G([1, C_IN, HW, HW])
    feats = g.op("conv2d", "input", attrs=conv_attrs(k=3, p=1, groups=1),
                 weight=g.t(RNG.standard_normal((stem, 3, 3, C_IN)).astype(np.float32)),
                 multiplier=g.t(np.ones(stem, np.float32)), bias=g.t(np.zeros(stem, np.float32)))  # fmt: skip
    c, signs = stem, []
    for k in growth:
        b = _sign(g, feats, c)
        signs.append(b)
        attrs = conv_attrs(k=3, in_channels=c, pad_value=0.0, output="float", groups=1)
        new = g.op("bconv2d", b, attrs=attrs,
                   weight=g.t(_signs((k, 3, 3, c)), packed=True),
                   multiplier=g.t(RNG.uniform(0.05, 0.2, k).astype(np.float32)),
                   bias=g.t(RNG.standard_normal(k).astype(np.float32)))  # fmt: skip
        feats = g.op("concat", feats, new)
        c += k
    out = g.op("concat", feats, g.op("unpack", signs[0]), g.op("unpack", signs[-1]))
    meta = {"inputs": [{"name": "input"}], "outputs": [{"name": out}], "nodes": g.nodes}
    x = RNG.standard_normal((3, C_IN, HW, HW)).astype(np.float32)
    x[:, :, 1, 2] = 0.0
    want = run_reference(meta, g.ref, x)
    g.write(tmp_path / "m.onebit", out, [1, *want.shape[1:]])
    return tmp_path / "m.onebit", x, want


# (stem channels, growth per layer, signs computed in parts: all but the first, which reads
# the stem's output, not a concat): inputs on the 64-channel grid (64 + 64s), a channel tail
# on the last input (40), 8 layers (the stem's part has 7 sets: a pass of 6, then 1),
# two-word inputs, and inputs off the grid, whose bits share words with their neighbours'
# (37 + 40 + 24 + 64: words split 37/27, 13/24/27; 100 + 28: the last word with the padding).
# Also a 48-channel input whose last 64-bit word ends in a tail (64 + 48) and a 32-channel
# one that owns half of the sign's padding word (64 + 64 + 32).
CASES = [(64, [64, 64, 64], 2), (128, [64, 40, 64], 2), (64, [64] * 8, 7), (128, [128, 64], 1),
         (37, [40, 24, 64], 2), (100, [28, 64], 1), (64, [48, 64], 1), (64, [64, 32, 64], 2)]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"stem{c[0]}-{'-'.join(map(str, c[1]))}")
@pytest.mark.parametrize("threads", [1, 2])
def test_sign_in_parts_equals_the_sign_step_and_reference(case, threads, isa, tmp_path):
    stem, growth, in_parts = case
    path, x, want = _dense_block(tmp_path, stem, growth)
    parts = load(path, num_threads=threads)
    step = load(path, num_threads=threads, fuse_concat_sign=False)
    by = [d["computed_by"] for d in parts.describe() if d["op"] == "sign"]
    assert sum(1 for b in by if b) == in_parts, by
    assert all(d["computed_by"] == "" for d in step.describe() if d["op"] == "sign")
    for n in (1, 3):
        got = parts.run(x[:n])
        np.testing.assert_array_equal(got.view(np.uint32), step.run(x[:n]).view(np.uint32))
        np.testing.assert_allclose(got, want[:n], rtol=1e-5, atol=1e-5)
    if in_parts:
        parts.layer_times.clear()
        parts.run(x, profile=True)
        idx = [d["index"] for d in parts.describe() if d["op"] == "sign" and d["computed_by"]]
        assert all(parts.layer_times.get(i, 0.0) == 0.0 for i in idx)  # their time is in the producers'


def test_no_parts_when_the_concat_copies(tmp_path):
    path, x, _ = _dense_block(tmp_path, 64, [64, 64])
    m = load(path, concat_in_place=False)
    assert all(d["computed_by"] == "" for d in m.describe() if d["op"] == "sign")
    np.testing.assert_array_equal(m.run(x).view(np.uint32), load(path).run(x).view(np.uint32))


def test_zoo_densenet_same_bits(tmp_path):
    import torch

    from onebit import export
    from onebit.models import create

    torch.manual_seed(0)
    export(create("binary_densenet28").eval(), torch.randn(1, 3, 32, 32), tmp_path / "m.onebit")
    x = RNG.standard_normal((2, 3, 32, 32)).astype(np.float32)
    for threads in (1, 2):
        m = load(tmp_path / "m.onebit", num_threads=threads)
        # all but each block's first sign, which reads the transition's output, not a concat
        assert sum(1 for d in m.describe() if d["op"] == "sign" and d["computed_by"]) == 19
        step = load(tmp_path / "m.onebit", num_threads=threads, fuse_concat_sign=False)
        np.testing.assert_array_equal(m.run(x).view(np.uint32), step.run(x).view(np.uint32))


@pytest.mark.parametrize("engine_threads", [1, 2])
def test_sign_in_parts_shared_by_many_threads(engine_threads, tmp_path):
    # 8 Python threads call one model: each call's bits live in its own arena.
    path, _, _ = _dense_block(tmp_path, 64, [64, 64, 64])
    m = load(path, num_threads=engine_threads)
    one = load(path, num_threads=1, fuse_concat_sign=False)
    inputs = [RNG.standard_normal((1 + i % 3, C_IN, HW, HW)).astype(np.float32) for i in range(24)]
    expected = [one.run(x) for x in inputs]
    assert_same_bits_from_threads(m, inputs, expected)
