"""A float maxpool computed by the conv2d step that produces its input (engine/model.cc
fuse_conv_maxpool; ops/float_ops.cc RowPooler): the fp32 and int8 kernel-row paths pool each
row of the pool's output as soon as its window's conv rows are done, the rows whose windows
straddle two tasks after; bf16 and the int8 emulation pool after the conv. The results must be the bits of
the unfused engine (load option ``fuse_conv_maxpool=False``) and match the numpy reference,
under every instruction set, precision, batch and thread count, and exactly the pools that
may be fused are.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_engine_ops import RNG, G, assert_same_bits_from_threads, conv_attrs, pool_attrs

from onebit import _C
from onebit.runtime import load
from onebit.runtime.reference import run_reference

HAS_VNNI = "avx512vnni" in _C.cpu_features().split() and _C.isa_supported("avx512")
#: "int8": the AVX512-VNNI kernel-row path, where each pooled row is computed in the conv's tasks
INT8 = pytest.param("int8", marks=pytest.mark.skipif(
    not HAS_VNNI, reason=f"CPU lacks AVX512_VNNI (has: {_C.cpu_features()}): the int8 kernel cannot run"))

C = 3


def _conv(g: G, x: str, oc: int, k: int, s: int, act: str | None = "relu", pad: int | None = None) -> str:
    attrs = conv_attrs(k=k, s=s, p=k // 2 if pad is None else pad, groups=1)
    if act:
        attrs["activation"] = act
    return g.op(
        "conv2d", x, attrs=attrs,
        weight=g.t(RNG.standard_normal((oc, k, k, C)).astype(np.float32)),
        multiplier=g.t(RNG.uniform(0.5, 1.5, oc).astype(np.float32)),
        bias=g.t(RNG.standard_normal(oc).astype(np.float32)),
    )


def _write(g: G, out: str, path, hw: int) -> np.ndarray:
    meta = {"inputs": [{"name": "input"}], "outputs": [{"name": out}], "nodes": g.nodes}
    x = RNG.standard_normal((3, C, hw, hw)).astype(np.float32)
    want = run_reference(meta, g.ref, x)
    g.write(path, out, [1, *want.shape[1:]])
    return x, want


# (conv kernel, conv stride, pool kernel, stride, padding, ceil_mode): the 7x7/2 + 3x3/2 stem,
# a 2x2/1 pool with windows of two rows, a 3x3/1 one of three, an odd size with ceil_mode
POOLS = [(7, 2, 3, 2, 1, False), (3, 1, 2, 1, 0, False), (3, 1, 3, 1, 1, False), (5, 2, 3, 2, 0, True)]


def _geo_id(g: tuple) -> str:
    return f"conv{g[0]}s{g[1]}-pool{g[2]}s{g[3]}p{g[4]}" + ("-ceil" if g[5] else "")


def _check_fused_pool(geo, threads: int, precision: str, tmp_path) -> None:
    k, s, pk, ps, pp, ceil = geo
    g = G([1, C, 23, 23])
    conv = _conv(g, "input", 37, k, s)  # 37 filters: a panel's tail
    out = g.op("maxpool", conv, attrs=pool_attrs(k=pk, s=ps, p=pp, ceil=ceil))
    x, want = _write(g, out, tmp_path / "m.onebit", 23)
    fused = load(tmp_path / "m.onebit", num_threads=threads, float_precision=precision)
    plain = load(tmp_path / "m.onebit", num_threads=threads, float_precision=precision,
                 fuse_conv_maxpool=False)
    assert [d["computed_by"] for d in fused.describe()] == ["", "v1"]  # the conv step's output
    assert [d["computed_by"] for d in plain.describe()] == ["", ""]
    got = fused.run(x)
    np.testing.assert_array_equal(got, plain.run(x))
    if precision == "fp32":
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)
    fused.run(x, profile=True)
    assert fused.layer_times.get(1, 0.0) == 0.0  # the pool's time is in the conv's step


@pytest.mark.parametrize("geo", POOLS, ids=_geo_id)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("precision", ["fp32", "int8_emulated", "bf16_emulated"])
def test_fused_pool_equals_unfused_and_reference(geo, threads, precision, isa, tmp_path):
    _check_fused_pool(geo, threads, precision, tmp_path)


@pytest.mark.parametrize("geo", POOLS, ids=_geo_id)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("precision", [INT8])
def test_fused_pool_on_the_vnni_kernel_rows(geo, threads, precision, tmp_path):
    # the int8 kernel-row path, which pools in the conv's tasks (the avx512 path only)
    before = _C.active_isa()
    _C.set_isa("avx512")
    try:
        _check_fused_pool(geo, threads, precision, tmp_path)
    finally:
        _C.set_isa(before)


def test_pool_that_is_not_the_only_reader_stays_a_step(tmp_path):
    g = G([1, C, 16, 16])
    conv = _conv(g, "input", 8, 3, 1)
    pooled = g.op("maxpool", conv, attrs=pool_attrs(k=2, s=1, p=0))
    relu = g.op("relu", conv)  # a second reader of the conv's output
    out = g.op("concat", pooled, g.op("maxpool", relu, attrs=pool_attrs(k=2, s=1, p=0)))
    x, want = _write(g, out, tmp_path / "m.onebit", 16)
    m = load(tmp_path / "m.onebit", num_threads=2)
    assert all(d["computed_by"] == "" for d in m.describe())
    np.testing.assert_allclose(m.run(x), want, rtol=2e-5, atol=2e-5)


def test_pool_written_into_a_concat_is_fused(tmp_path):
    # DenseNet's stem: the pool's output is the first slice of the blocks' concat.
    g = G([1, C, 20, 20])
    p1 = g.op("maxpool", _conv(g, "input", 16, 7, 2), attrs=pool_attrs(k=3, s=2, p=1))
    p2 = g.op("maxpool", _conv(g, "input", 9, 3, 2), attrs=pool_attrs(k=3, s=2, p=1))
    out = g.op("relu", g.op("concat", p1, p2))
    x, want = _write(g, out, tmp_path / "m.onebit", 20)
    for threads in (1, 2):
        m = load(tmp_path / "m.onebit", num_threads=threads)
        rows = m.describe()
        assert [(r["computed_by"], r["written_into"], r["channel_offset"]) for r in rows[:4]] == [
            ("", "", 0), ("v1", "v5", 0), ("", "", 0), ("v3", "v5", 16)]
        got = m.run(x)
        np.testing.assert_array_equal(got, load(tmp_path / "m.onebit", num_threads=threads,
                                                fuse_conv_maxpool=False).run(x))
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("name", ["binary_resnet_e18", "binary_densenet28"])
def test_zoo_stems_fused_with_the_same_bits(name, tmp_path):
    import torch

    from onebit import export
    from onebit.models import create

    torch.manual_seed(0)
    export(create(name).eval(), torch.randn(1, 3, 32, 32), tmp_path / "m.onebit")
    x = RNG.standard_normal((2, 3, 32, 32)).astype(np.float32)
    for threads in (1, 2):
        m = load(tmp_path / "m.onebit", num_threads=threads)
        assert [d["index"] for d in m.describe() if d["op"] == "maxpool" and d["computed_by"]] == [1]
        np.testing.assert_array_equal(m.run(x), load(tmp_path / "m.onebit", num_threads=threads,
                                                     fuse_conv_maxpool=False).run(x))


def test_pool_output_does_not_take_the_conv_inputs_block(tmp_path):
    # relu -> conv (no padding: it reads the relu's block itself) -> maxpool with a smaller
    # output. Unfused, the pool's output takes the relu's block, free by then; fused, the
    # conv's step writes it while the conv still reads the relu's output (another task's
    # rows), so the planner must keep that block: the fused plan is larger by the pool's
    # output. (A race on the shared block would show only in some runs; the plan shows it
    # always.)
    g = G([1, C, 24, 24])
    x1 = g.op("relu", "input")
    pooled = g.op("maxpool", _conv(g, x1, 1, 3, 1, pad=0), attrs=pool_attrs(k=3, s=1, p=1))
    x, want = _write(g, pooled, tmp_path / "m.onebit", 24)
    for threads in (1, 2):
        m = load(tmp_path / "m.onebit", num_threads=threads)
        plain = load(tmp_path / "m.onebit", num_threads=threads, fuse_conv_maxpool=False)
        assert m.describe()[2]["computed_by"] == "v2"
        assert m.memory_bytes(3) >= plain.memory_bytes(3) + 3 * 22 * 22 * 4
        np.testing.assert_allclose(m.run(x), want, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("engine_threads", [1, 2])
@pytest.mark.parametrize("precision", ["fp32", "int8_emulated", INT8])
def test_fused_pool_shared_by_many_threads(engine_threads, precision, tmp_path):
    # 8 Python threads call one model whose stem computes its max-pool in its step (the
    # per-call bookkeeping of pooled rows must be per call): every output is the
    # single-threaded one, bit for bit, at batch sizes 1-3.
    g = G([1, C, 23, 21])
    pooled = g.op("maxpool", _conv(g, "input", 40, 7, 2), attrs=pool_attrs(k=3, s=2, p=1))
    out = g.op("relu", pooled)
    g.write(tmp_path / "m.onebit", out, [1, 40, 6, 6])
    m = load(tmp_path / "m.onebit", num_threads=engine_threads, float_precision=precision)
    one = load(tmp_path / "m.onebit", num_threads=1, float_precision=precision)
    assert m.describe()[1]["computed_by"] == "v1"
    inputs = [RNG.standard_normal((1 + i % 3, C, 23, 21)).astype(np.float32) for i in range(24)]
    expected = [one.run(x) for x in inputs]
    assert_same_bits_from_threads(m, inputs, expected)
