"""A float-output bconv2d writes its output over its residual input's buffer when nothing
reads the residual afterwards (engine/model.cc plan_for, load option ``residual_in_place``):
the AVX-512 GEMM kernel adds each residual value in its registers before it stores over it;
every other kernel (reference, portable, AVX2, grouped and bit-sliced convs) adds a copy made
before the conv. The results must be those of separate buffers (``residual_in_place=False``)
and of the numpy reference, bit for bit, under every instruction set and thread count, for
each fused post-op, channel tails, a fused sign and a residual still read after the conv.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_engine_ops import RNG, G, _signs, assert_same_bits_from_threads, conv_attrs

from onebit.runtime import load
from onebit.runtime.reference import run_reference

HW = 9


def _conv(g: G, r: str, c: int, post: str, groups: int) -> str:
    """sign(r) -> bconv2d(+ r) with the post-op `post`: r is its residual."""
    b = g.op("sign", r, threshold=g.t(RNG.standard_normal(c).astype(np.float32) * 0.3))
    attrs = conv_attrs(k=3, s=1, p=1, in_channels=c, pad_value=0.0, output="float", groups=groups)
    if post in ("relu", "post_affine"):
        attrs["activation"] = "relu"
    params = {
        "weight": g.t(_signs((c, 3, 3, c // groups)), packed=True),
        "multiplier": g.t(RNG.uniform(0.05, 0.15, c).astype(np.float32)),
        "bias": g.t(RNG.standard_normal(c).astype(np.float32)),
    }
    if post == "post_affine":
        params["post_scale"] = g.t(RNG.uniform(-2, 2, c).astype(np.float32))
        params["post_shift"] = g.t(RNG.standard_normal(c).astype(np.float32))
    return g.op("bconv2d", b, r, attrs=attrs, **params)


def _model(tmp_path, c: int, post: str, groups: int = 1, keep: bool = False):
    """affine -> three residual blocks; `keep`: the first block's residual is also read at the end."""
    g = G([1, c, HW, HW])
    r0 = g.op("affine", "input", scale=g.t(RNG.uniform(0.5, 2, c).astype(np.float32)),
              shift=g.t(RNG.standard_normal(c).astype(np.float32)))  # fmt: skip
    r = r0
    for _ in range(3):
        r = _conv(g, r, c, post, groups)
    out = g.op("concat", r, r0) if keep else r
    meta = {"inputs": [{"name": "input"}], "outputs": [{"name": out}], "nodes": g.nodes}
    x = RNG.standard_normal((2, c, HW, HW)).astype(np.float32)
    want = run_reference(meta, g.ref, x)
    g.write(tmp_path / "m.onebit", out, [1, *want.shape[1:]])
    return tmp_path / "m.onebit", x, want


# (channels, post-op, groups): plain add, add + relu, relu then the per-channel affine before
# the add, a channel tail (37), an odd number of 32-channel blocks (96), a grouped conv (the
# per-group path) and a depthwise one (the bit-sliced kernel)
CASES = [(64, "none", 1), (64, "relu", 1), (64, "post_affine", 1), (37, "relu", 1), (96, "none", 1),
         (64, "relu", 2), (64, "none", 64)]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"c{c[0]}-{c[1]}-g{c[2]}")
@pytest.mark.parametrize("threads", [1, 2])
def test_output_over_the_residual_equals_separate_buffers_and_reference(case, threads, isa, tmp_path):
    c, post, groups = case
    path, x, want = _model(tmp_path, c, post, groups)
    over = load(path, num_threads=threads)
    apart = load(path, num_threads=threads, residual_in_place=False)
    # the blocks' outputs take their residuals' buffers: one block for the stream, not two
    assert over.memory_bytes(2) < apart.memory_bytes(2)
    got = over.run(x)
    np.testing.assert_array_equal(got.view(np.uint32), apart.run(x).view(np.uint32))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(over.run(x).view(np.uint32), got.view(np.uint32))  # the plan reused


def test_a_residual_read_later_keeps_its_buffer(isa, tmp_path):
    # r0 is read again by the final concat: the first block must not write over it.
    path, x, want = _model(tmp_path, 64, "relu", keep=True)
    got = load(path, num_threads=2).run(x)
    apart = load(path, num_threads=2, residual_in_place=False).run(x)
    np.testing.assert_array_equal(got.view(np.uint32), apart.view(np.uint32))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_zoo_resnets_same_bits_in_less_memory(tmp_path):
    import torch

    from onebit import export
    from onebit.models import create

    torch.manual_seed(0)
    x = RNG.standard_normal((2, 3, 64, 64)).astype(np.float32)
    for name in ("binary_resnet_e18", "birealnet18"):
        export(create(name).eval(), torch.randn(1, 3, 64, 64), tmp_path / f"{name}.onebit")
        for threads in (1, 2):
            over = load(tmp_path / f"{name}.onebit", num_threads=threads)
            apart = load(tmp_path / f"{name}.onebit", num_threads=threads, residual_in_place=False)
            assert over.memory_bytes(2) < apart.memory_bytes(2), name
            np.testing.assert_array_equal(over.run(x).view(np.uint32), apart.run(x).view(np.uint32))


@pytest.mark.parametrize("engine_threads", [1, 2])
def test_output_over_the_residual_shared_by_many_threads(engine_threads, tmp_path):
    # 8 Python threads call one model: each call has its own activation memory, so the
    # in-place residual of one call never meets another's (batch sizes 1-3).
    path, _, _ = _model(tmp_path, 96, "relu")
    m = load(path, num_threads=engine_threads)
    one = load(path, num_threads=1, residual_in_place=False)
    inputs = [RNG.standard_normal((1 + i % 3, 96, HW, HW)).astype(np.float32) for i in range(24)]
    expected = [one.run(x) for x in inputs]
    assert_same_bits_from_threads(m, inputs, expected)
