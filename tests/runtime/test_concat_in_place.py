"""Concats written in place (engine/model.cc place_concat_inputs): the producers of a float
concat's inputs write straight into its buffer, at its pixel stride, and nested concats share
the outermost buffer. The results must be the bits of the copying engine (load option
``concat_in_place=False``) and match the numpy reference, under every instruction set and
float precision, and exactly the inputs that can be placed are.

The graph orders its nodes so that the channels right after each placed conv's slice are
written before that conv runs: a kernel writing past its own channels (a GEMM tile's padding
columns at the wider stride) would then corrupt a neighbour, not be overwritten later.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_engine_ops import RNG, G, _signs, conv_attrs, pool_attrs

from onebit import _C
from onebit.runtime import load
from onebit.runtime.reference import run_reference

C = 5  # input channels


def _bconv(g: G, bits: str, c_in: int, oc: int, activation: str | None = None) -> str:
    attrs = conv_attrs(k=3, in_channels=c_in, pad_value=0.0, output="float", groups=1)
    if activation:
        attrs["activation"] = activation
    return g.op(
        "bconv2d", bits, attrs=attrs,
        weight=g.t(_signs((oc, 3, 3, c_in)), packed=True),
        multiplier=g.t(RNG.uniform(0.5, 1.5, oc).astype(np.float32)),
        bias=g.t(RNG.standard_normal(oc).astype(np.float32)),
    )


def _conv(g: G, oc: int, k: int) -> str:
    return g.op(
        "conv2d", "input", attrs=conv_attrs(k=k, p=k // 2, groups=1),
        weight=g.t(RNG.standard_normal((oc, k, k, C)).astype(np.float32)),
        multiplier=g.t(RNG.uniform(0.5, 1.5, oc).astype(np.float32)),
        bias=g.t(RNG.standard_normal(oc).astype(np.float32)),
    )


def _sign(g: G, x: str, c: int) -> str:
    return g.op("sign", x, threshold=g.t((RNG.standard_normal(c) * 0.3).astype(np.float32)))


def dense_graph() -> tuple[G, str, dict[str, tuple[str, int]]]:
    """A DenseNet-like graph; returns it, its output and the expected placements
    (value -> (concat it is written into, first channel))."""
    g = G([1, C, 9, 9])
    m3 = g.op("maxpool", "input", attrs=pool_attrs(k=3, s=1, p=1))  # 5 channels
    c1 = _conv(g, 9, 1)   # pointwise: the GEMM straight on the input
    c3 = _conv(g, 12, 3)  # im2col
    b = _sign(g, "input", C)
    f1r = _bconv(g, b, C, 7, activation="relu")
    p = g.op("maxpool", "input", attrs=pool_attrs(k=3, s=1, p=1))
    m4 = g.op("maxpool", "input", attrs=pool_attrs(k=2, s=1, p=1))  # 10 x 10, cropped below
    m4 = g.op("maxpool", m4, attrs=pool_attrs(k=2, s=1, p=0))
    f1 = _bconv(g, b, C, 20)
    # p is placed in the last concat (outermost first), so here it is copied, read at that stride
    cat1 = g.op("concat", f1, m4, p)  # 30 channels; sign reads them at cat3's stride
    f2 = _bconv(g, _sign(g, cat1, 30), 30, 11)
    r = g.op("relu", "input")  # relu writes densely: copied by the concat
    cat2 = g.op("concat", cat1, f2, f1r, c3, c1, m3, r, "input")  # 30 + 11 + 7 + 12 + 9 + 5 + 5 + 5
    u = _conv(g, 4, 1)
    cat3 = g.op("concat", cat2, u, u)  # the same value twice: copied
    # affine may not run in place on the shared buffer
    a = g.op("affine", cat3, scale=g.t(RNG.uniform(-2, 2, 92).astype(np.float32)),
             shift=g.t(RNG.standard_normal(92).astype(np.float32)))
    a2 = g.op("relu", a)  # a is read again below, so a2 needs a block of cat3's size: not cat3's own yet,
    late = g.op("unpack", _sign(g, c1, 9))  # as c1, which lives there, is read here
    m2 = g.op("maxpool", "input", attrs=pool_attrs(k=3, s=1, p=1))
    # m2 has a consumer that reads densely; p is read strided; a is copied (affine writes densely)
    out = g.op("concat", a2, g.op("relu", m2), m2, p, late, a)
    placed = {f1: (cat3, 0), m4: (cat3, 20), cat1: (cat3, 0), f2: (cat3, 30), f1r: (cat3, 41),
              c3: (cat3, 48), c1: (cat3, 60), m3: (cat3, 69), cat2: (cat3, 0), p: (out, 102)}
    return g, out, placed


def _write(tmp_path, g: G, out: str, x: np.ndarray) -> tuple[str, np.ndarray]:
    meta = {"inputs": [{"name": "input"}], "outputs": [{"name": out}], "nodes": g.nodes}
    want = run_reference(meta, g.ref, x)
    path = tmp_path / "m.onebit"
    g.write(path, out, [1, *want.shape[1:]])
    return str(path), want


def _placements(m) -> dict[str, tuple[str, int]]:
    names = [s["output_name"] for s in m._steps]
    return {n: (r["written_into"], r["channel_offset"]) for n, r in zip(names, m.describe(), strict=True)
            if r["written_into"]}


@pytest.mark.parametrize("threads", [1, 2])
def test_in_place_concats_give_the_copying_engines_bits(threads, isa, tmp_path):
    g, out, placed = dense_graph()
    x = RNG.standard_normal((2, C, 9, 9)).astype(np.float32)
    path, want = _write(tmp_path, g, out, x)
    m = load(path, num_threads=threads)
    copying = load(path, num_threads=threads, concat_in_place=False)
    assert _placements(m) == placed
    assert _placements(copying) == {}
    got = m.run(x)
    np.testing.assert_array_equal(got.view(np.uint32), copying.run(x).view(np.uint32))
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)
    np.testing.assert_array_equal(m.run(x[:1]), got[:1])  # another batch size: another plan


def _native(name: str, feature: str):
    return pytest.param(name, marks=pytest.mark.skipif(
        not (_C.isa_supported("avx512") and feature in _C.cpu_features().split()),
        reason=f"CPU lacks {feature} (has: {_C.cpu_features()})"))


@pytest.mark.parametrize("precision", ["bf16_emulated", "int8_emulated", _native("bf16", "avx512bf16"),
                                       _native("int8", "avx512vnni")])
def test_in_place_concats_under_low_precision_float_layers(precision, tmp_path):
    """The bf16 and int8 conv drivers write their rows at the concat's stride too."""
    g, out, placed = dense_graph()
    x = RNG.standard_normal((2, C, 9, 9)).astype(np.float32)
    path, _ = _write(tmp_path, g, out, x)
    m = load(path, num_threads=2, float_precision=precision)
    assert _placements(m) == placed
    copying = load(path, num_threads=2, float_precision=precision, concat_in_place=False)
    np.testing.assert_array_equal(m.run(x).view(np.uint32), copying.run(x).view(np.uint32))


def test_densenet_concats_are_not_copied_and_need_less_memory(tmp_path):
    """binary_densenet28's dense blocks: every concat input lands in its block's last buffer."""
    torch = pytest.importorskip("torch")
    import onebit

    x = torch.randn(1, 3, 64, 64)
    path = tmp_path / "d.onebit"
    onebit.export(onebit.models.create("binary_densenet28").eval(), x, path)
    m, copying = load(path, num_threads=2), load(path, num_threads=2, concat_in_place=False)
    rows = m.describe()
    concats = [r for r in rows if r["op"] == "concat"]
    inner = {r["source"] for r in concats if r["written_into"]}
    assert len(inner) == len(concats) - 4  # all but the last concat of each of the 4 blocks
    bconvs = [r for r in rows if r["op"] == "bconv2d"]
    assert all(r["written_into"] for r in bconvs)
    assert m.memory_bytes(1) < copying.memory_bytes(1)
    np.testing.assert_array_equal(m.run(x.numpy()), copying.run(x.numpy()))
