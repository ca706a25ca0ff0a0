"""Per-element ops run on a binary conv's output tiles (engine/model.cc fuse_conv_tails).

A float-output bconv2d whose output goes only through a chain of per-element ops (affine,
prelu, relu, clip, scale: ReActNet's RPReLU is affine -> prelu -> affine) runs them as it
writes each tile. The results must be the bits of the engine running them as their own
steps (load option ``fuse_conv_tails=False``) and match the numpy reference, under every
instruction set, on every path of the conv (the tiled GEMM, the bit-sliced depthwise
kernel, k-bit residual inputs, a strided output into a concat), and exactly the ops that
can be fused are.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_engine_ops import RNG, G, _signs, conv_attrs

from onebit.runtime import load
from onebit.runtime.reference import run_reference

C = 6


def _bconv(g: G, x: str, oc: int, *extra: str, groups: int = 1, **attrs) -> str:
    b = x if attrs.pop("float_input", False) else g.op("sign", x, threshold=g.t(np.zeros(C, np.float32)))
    a = conv_attrs(k=3, in_channels=C, pad_value=0.0, output="float", groups=groups, **attrs)
    return g.op(
        "bconv2d", b, *extra, attrs=a,
        weight=g.t(_signs((oc, 3, 3, C // groups)), packed=True),
        multiplier=g.t(RNG.uniform(0.5, 1.5, oc).astype(np.float32)),
        bias=g.t(RNG.standard_normal(oc).astype(np.float32)),
    )


def _affine(g: G, x: str, c: int) -> str:
    return g.op("affine", x, scale=g.t(RNG.uniform(-2, 2, c).astype(np.float32)),
                shift=g.t(RNG.standard_normal(c).astype(np.float32)))


def _rprelu(g: G, x: str, c: int) -> str:
    """ReActNet's RPReLU: shift in, PReLU, shift out."""
    y = g.op("prelu", _affine(g, x, c), slope=g.t(RNG.uniform(0, 0.5, c).astype(np.float32)))
    return _affine(g, y, c)


def tails_graph() -> tuple[G, str, dict[str, str]]:
    """Returns the graph, its output and the expected fused_into (op output -> conv output)."""
    g = G([1, C, 7, 7])
    fused: dict[str, str] = {}

    def chain(conv: str, n: int) -> str:
        y = conv
        for _ in range(n):
            y = _rprelu(g, y, C)
        for node in g.nodes[-3 * n:]:
            fused[node["outputs"][0]] = conv
        return y

    a = chain(_bconv(g, "input", C, "input"), 1)  # the tiled kernel, after its fused residual add
    d = chain(_bconv(g, a, C, groups=C), 1)  # depthwise: the bit-sliced kernel, then one pass
    r = chain(_bconv(g, d, C, residual_bits=2, float_input=True), 2)  # k-bit residual planes
    t = _bconv(g, r, C)
    s = _affine(g, t, C)  # read twice below: the chain stops before the relu
    fused[s] = t
    u = g.op("relu", s)
    b5 = _bconv(g, r, C)
    cl = g.op("clip", b5, attrs={"min": -1.0, "max": 2.0})
    sc = g.op("scale", cl, attrs={"value": 0.5})  # written into the concat's slice, strided
    fused[cl] = fused[sc] = b5
    out = g.op("concat", u, s, sc)
    return g, out, fused


def sc_name(g: G) -> str:
    """The output of the graph's scale op (the last chain, placed in the concat)."""
    return next(n["outputs"][0] for n in g.nodes if n["op"] == "scale")


def _write(tmp_path, g: G, out: str, x: np.ndarray) -> tuple[str, np.ndarray]:
    meta = {"inputs": [{"name": "input"}], "outputs": [{"name": out}], "nodes": g.nodes}
    want = run_reference(meta, g.ref, x)
    path = tmp_path / "m.onebit"
    g.write(path, out, [1, *want.shape[1:]])
    return str(path), want


def _fused(m) -> dict[str, str]:
    names = [s["output_name"] for s in m._steps]
    return {n: r["fused_into"] for n, r in zip(names, m.describe(), strict=True) if r["fused_into"]}


@pytest.mark.parametrize("threads", [1, 2])
def test_conv_tails_give_the_bits_of_separate_steps(threads, isa, tmp_path):
    g, out, fused = tails_graph()
    x = RNG.standard_normal((2, C, 7, 7)).astype(np.float32)
    path, want = _write(tmp_path, g, out, x)
    m = load(path, num_threads=threads)
    separate = load(path, num_threads=threads, fuse_conv_tails=False)
    assert _fused(m) == fused
    assert _fused(separate) == {}
    got = m.run(x)
    np.testing.assert_array_equal(got.view(np.uint32), separate.run(x).view(np.uint32))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(m.run(x[1:]), got[1:])  # another batch size: another plan
    names = [s["output_name"] for s in m._steps]
    assert m.describe()[names.index(sc_name(g))]["written_into"] == out


def test_a_chain_ends_at_the_model_output_and_is_profiled_in_the_conv(tmp_path):
    g = G([1, C, 7, 7])
    conv = _bconv(g, "input", C)
    out = _rprelu(g, conv, C)
    x = RNG.standard_normal((1, C, 7, 7)).astype(np.float32)
    path, want = _write(tmp_path, g, out, x)
    m = load(path)
    assert set(_fused(m).values()) == {conv} and len(_fused(m)) == 3
    separate = load(path, fuse_conv_tails=False)
    np.testing.assert_array_equal(m.run(x).view(np.uint32), separate.run(x).view(np.uint32))
    m.run(x, profile=True)
    times = m.layer_times
    assert times.get(1, 0) > 0 and all(times.get(i, 0) == 0 for i in (2, 3, 4))  # sign, bconv2d, the chain
