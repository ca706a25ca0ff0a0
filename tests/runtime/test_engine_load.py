"""The C++ engine refuses hostile or inconsistent files cleanly, and runs one model from many threads.

Every file here is written with :func:`write_model_file`, which recomputes the
checksum, as an attacker would: the checksum only catches accidents. Each case
must raise ModelFormatError (or MemoryError for the memory cap) quickly, with a
message that names the problem, and never crash or allocate without bound.
"""

from __future__ import annotations

import copy
import threading
import time

import numpy as np
import pytest

from onebit import _C
from onebit.runtime import ModelFormatError, load, ops
from onebit.runtime.format import write_model_file
from onebit.runtime.reference import run_reference


def _packed(signs: np.ndarray) -> np.ndarray:
    """OHWI +-1 weights -> the file's packed_sign layout (bit set = -1)."""
    c = signs.shape[-1]
    words = (c + 63) // 64
    out = np.zeros((*signs.shape[:-1], words), np.uint64)
    for ch in range(c):
        bit = (signs[..., ch] < 0).astype(np.uint64) << np.uint64(ch % 64)
        out[..., ch // 64] |= bit
    return out


def small_model(c_in: int = 3, c_mid: int = 8, size: int = 8, seed: int = 0) -> tuple[dict, dict]:
    """input -> sign -> bconv2d 3x3 -> affine -> relu -> global_avgpool -> flatten -> dense."""
    rng = np.random.default_rng(seed)
    w = np.where(rng.standard_normal((c_mid, 3, 3, c_in)) < 0, -1.0, 1.0).astype(np.float32)
    tensors = {
        "t": np.zeros(c_in, np.float32),
        "w": _packed(w),
        "m": rng.uniform(0.5, 1.5, c_mid).astype(np.float32),
        "b": rng.standard_normal(c_mid).astype(np.float32),
        "s": rng.uniform(0.5, 1.5, c_mid).astype(np.float32),
        "h": rng.standard_normal(c_mid).astype(np.float32),
        "dw": rng.standard_normal((5, c_mid)).astype(np.float32),
        "dm": np.ones(5, np.float32),
        "db": rng.standard_normal(5).astype(np.float32),
    }
    conv = {"kernel": [3, 3], "stride": [1, 1], "padding": [1, 1, 1, 1], "dilation": [1, 1], "groups": 1}
    meta = {
        "inputs": [{"name": "input", "shape": [1, c_in, size, size], "dtype": "float32"}],
        "outputs": [{"name": "y", "shape": [1, 5], "dtype": "float32"}],
        "encodings": {"w": {"encoding": "packed_sign", "channels": c_in}},
        "nodes": [
            {"op": "sign", "inputs": ["input"], "outputs": ["x1"], "attrs": {}, "params": {"threshold": "t"}},
            {
                "op": "bconv2d",
                "inputs": ["x1"],
                "outputs": ["x2"],
                "attrs": {**conv, "in_channels": c_in, "pad_value": 1.0, "output": "float"},
                "params": {"weight": "w", "multiplier": "m", "bias": "b"},
            },
            {"op": "affine", "inputs": ["x2"], "outputs": ["x3"], "params": {"scale": "s", "shift": "h"}},
            {"op": "relu", "inputs": ["x3"], "outputs": ["x4"]},
            {"op": "global_avgpool", "inputs": ["x4"], "outputs": ["x5"]},
            {"op": "flatten", "inputs": ["x5"], "outputs": ["x6"]},
            {
                "op": "dense",
                "inputs": ["x6"],
                "outputs": ["y"],
                "params": {"weight": "dw", "multiplier": "dm", "bias": "db"},
            },
        ],
    }
    for node in meta["nodes"]:  # as the exporter writes them
        node.setdefault("attrs", {})
        node.setdefault("params", {})
    return meta, tensors


def _write(tmp_path, meta, tensors, name="m.onebit"):
    path = tmp_path / name
    write_model_file(path, meta, tensors)
    return path


def test_small_model_matches_reference(tmp_path):
    meta, tensors = small_model()
    m = load(_write(tmp_path, meta, tensors), num_threads=1)
    x = np.random.default_rng(1).standard_normal((3, 3, 8, 8)).astype(np.float32)
    ref_tensors = dict(
        tensors, w=np.where(np.random.default_rng(0).standard_normal((8, 3, 3, 3)) < 0, -1.0, 1.0)
    )
    np.testing.assert_allclose(m.run(x), run_reference(meta, ref_tensors, x), rtol=1e-5, atol=1e-5)


def _node(meta, op):
    return next(n for n in meta["nodes"] if n["op"] == op)


def _set_attr(op, key, value):
    def f(meta, tensors):
        _node(meta, op).setdefault("attrs", {})[key] = value

    return f


def _hostile_cases():
    """(name, mutation, fragment of the expected message)."""

    def redefine_input(meta, tensors):
        meta["nodes"][2]["outputs"] = ["input"]

    def redefine_value(meta, tensors):
        meta["nodes"][3]["outputs"] = ["x2"]

    def read_before_define(meta, tensors):
        meta["nodes"][1]["inputs"] = ["x4"]

    def huge_input(meta, tensors):
        meta["inputs"][0]["shape"] = [1, 3, 10**9, 10**9]

    def channel_mismatch(meta, tensors):
        _node(meta, "bconv2d")["attrs"]["in_channels"] = 5

    def wrong_weight_bytes(meta, tensors):
        tensors["w"] = tensors["w"][:4]

    def padding_bits(meta, tensors):
        tensors["w"] = tensors["w"] | np.uint64(1 << 40)

    def unknown_op(meta, tensors):
        meta["nodes"][3]["op"] = "gelu"

    def bad_threshold_len(meta, tensors):
        tensors["t"] = np.zeros(7, np.float32)

    def string_for_int(meta, tensors):
        _node(meta, "bconv2d")["attrs"]["stride"] = ["1", "1"]

    def float_for_int(meta, tensors):
        _node(meta, "bconv2d")["attrs"]["stride"] = [1.5, 1]

    def nested_junk(meta, tensors):
        _node(meta, "bconv2d")["attrs"]["kernel"] = [[3], {"a": 3}]

    def missing_param(meta, tensors):
        del _node(meta, "affine")["params"]["shift"]

    def unknown_attr(meta, tensors):
        _node(meta, "relu")["attrs"] = {"inplace": True}

    def binary_output(meta, tensors):
        meta["outputs"][0]["name"] = "x1"

    def bad_output_shape(meta, tensors):
        meta["outputs"][0]["shape"] = [1, 6]

    def two_inputs(meta, tensors):
        meta["inputs"].append(dict(meta["inputs"][0], name="other"))

    def add_shape_mismatch(meta, tensors):
        meta["nodes"][3] = {
            "op": "add",
            "inputs": ["x3", "input"],
            "outputs": ["x4"],
            "attrs": {},
            "params": {},
        }

    def float_into_binary(meta, tensors):
        _node(meta, "bconv2d")["inputs"] = ["input"]

    def residual(**attrs):
        """bconv2d reads the float input as residual planes, with these attributes."""

        def f(meta, tensors):
            node = _node(meta, "bconv2d")
            node["inputs"] = ["input"]
            node["attrs"].update({"pad_value": 0.0, **attrs})

        return f

    def residual_binary_output(meta, tensors):
        residual(residual_bits=2, output="binary")(meta, tensors)
        params = _node(meta, "bconv2d")["params"]
        params.pop("multiplier"), params.pop("bias")
        tensors["thr"] = np.zeros(8, np.int32)
        tensors["dir"] = np.ones(8, np.int32)
        params.update(threshold="thr", direction="dir")

    def residual_sign_node(**attrs):
        """a residual_sign between the input and the sign, with these attributes."""

        def f(meta, tensors):
            meta["nodes"].insert(
                0,
                {"op": "residual_sign", "inputs": ["input"], "outputs": ["r"], "attrs": attrs, "params": {}},
            )
            _node(meta, "sign")["inputs"] = ["r"]

        return f

    def residual_sign_on_bits(meta, tensors):
        residual_sign_node(bits=2)(meta, tensors)
        meta["nodes"][0]["inputs"] = ["x1"]
        meta["nodes"].insert(2, meta["nodes"].pop(0))  # after the sign that defines x1
        _node(meta, "sign")["inputs"] = ["input"]

    return [
        ("int32 padded geometry", _set_attr("bconv2d", "padding", [2**31 - 1] * 4), "padding"),
        ("huge dilation", _set_attr("bconv2d", "dilation", [2**29, 2**29]), "dilation"),
        ("negative dilation", _set_attr("bconv2d", "dilation", [-1, 1]), "dilation"),
        (
            "padding 12000 stride 1e6",
            lambda m, t: (
                _set_attr("bconv2d", "padding", [12000] * 4)(m, t),
                _set_attr("bconv2d", "stride", [10**6] * 2)(m, t),
            ),
            "padding|stride",
        ),
        ("padding 1e5", _set_attr("bconv2d", "padding", [10**5] * 4), "padding"),
        ("stride 0", _set_attr("bconv2d", "stride", [0, 1]), "stride"),
        ("kernel 0", _set_attr("bconv2d", "kernel", [0, 3]), "kernel"),
        ("bad groups", _set_attr("bconv2d", "groups", 2), "groups"),
        ("pad_value 2", _set_attr("bconv2d", "pad_value", 2.0), "pad_value"),
        ("output enum", _set_attr("bconv2d", "output", "ternary"), "output"),
        ("redefine input", redefine_input, "redefines"),
        ("redefine value", redefine_value, "redefines"),
        ("read before define", read_before_define, "before it is defined"),
        ("huge input", huge_input, "shape"),
        ("channel mismatch", channel_mismatch, "channels"),
        ("weight bytes", wrong_weight_bytes, "multiplier|weight"),
        ("padding bits", padding_bits, "padding bits"),
        ("unknown op", unknown_op, "unknown op 'gelu'"),
        ("threshold length", bad_threshold_len, "threshold"),
        ("string for int", string_for_int, "stride"),
        ("float for int", float_for_int, "stride"),
        ("nested junk", nested_junk, "kernel"),
        ("missing param", missing_param, "shift"),
        ("unknown attribute", unknown_attr, "unknown attribute 'inplace'"),
        ("binary output", binary_output, "binary"),
        ("output shape", bad_output_shape, "output shape"),
        ("two inputs", two_inputs, "one input"),
        ("add shape mismatch", add_shape_mismatch, "shape"),
        ("float into binary conv", float_into_binary, "binary"),
        ("residual_bits 0", residual(residual_bits=0), "residual_bits"),
        ("residual_bits 9", residual(residual_bits=9), "residual_bits"),
        ("residual_bits 2**40", residual(residual_bits=2**40), "residual_bits"),
        ("residual_bits string", residual(residual_bits="2"), "residual_bits"),
        ("residual_bits float", residual(residual_bits=2.5), "residual_bits"),
        ("residual_bits on bits", _set_attr("bconv2d", "residual_bits", 2), "input 0 must be float"),
        ("residual_bits pad_value 1", residual(residual_bits=2, pad_value=1.0), "pad_value 0"),
        ("residual_bits binary output", residual_binary_output, "output must be float"),
        ("residual_sign bits 0", residual_sign_node(bits=0), "bits"),
        ("residual_sign bits 9", residual_sign_node(bits=9), "bits"),
        ("residual_sign no bits", residual_sign_node(scale="sample"), "bits"),
        ("residual_sign scale enum", residual_sign_node(bits=2, scale="pixel"), "scale"),
        ("residual_sign scale int", residual_sign_node(bits=2, scale=1), "scale"),
        ("residual_sign on bits", residual_sign_on_bits, "input 0 must be float"),
    ]


def _replace_relu(op, attrs=None, **params):
    """A mutation putting `op` where the small model's relu is (x3 -> x4, 8 channels, 8 x 8)."""

    def f(meta, tensors):
        for role, arr in params.items():
            tensors[f"p_{role}"] = arr
        meta["nodes"][3] = {
            "op": op,
            "inputs": ["x3"],
            "outputs": ["x4"],
            "attrs": dict(attrs or {}),
            "params": {role: f"p_{role}" for role in params},
        }

    return f


def _norm(op, c=8, **attrs):
    return _replace_relu(op, attrs, scale=np.ones(c, np.float32), shift=np.zeros(c, np.float32))


def _up(**attrs):
    base = {"mode": "bilinear", "size": [16, 16], "scale_h": 0.5, "scale_w": 0.5}
    return _replace_relu("upsample", {**base, **attrs})


def _float_op_hostile_cases():
    """The float ops of issue 16 (activation, layer/group norm, upsample): bad attributes and params."""

    def upsample_binary(meta, tensors):
        _up()(meta, tensors)
        meta["nodes"][3]["inputs"] = ["x1"]

    return [
        (
            "activation kind",
            _replace_relu("activation", {"kind": "swish"}),
            "attribute 'kind' must be one of",
        ),
        ("activation no kind", _replace_relu("activation"), "lacks required attribute 'kind'"),
        ("group_norm groups 3 of 8", _norm("group_norm", groups=3), r"'groups' \(3\) must divide the 8"),
        ("group_norm groups 0", _norm("group_norm", groups=0), "attribute 'groups' must be integers"),
        ("group_norm groups huge", _norm("group_norm", groups=2**40), "attribute 'groups' must be integers"),
        ("group_norm no groups", _norm("group_norm"), "lacks required attribute 'groups'"),
        ("group_norm eps 0", _norm("group_norm", groups=2, eps=0.0), "'eps' must be a positive float32"),
        ("group_norm eps < 0", _norm("group_norm", groups=2, eps=-1e-5), "'eps' must be a positive float32"),
        ("layer_norm eps 1e-50", _norm("layer_norm", eps=1e-50), "'eps' must be a positive float32"),
        ("layer_norm eps 1e300", _norm("layer_norm", eps=1e300), "'eps' must be a positive float32"),
        ("layer_norm eps NaN", _norm("layer_norm", eps=float("nan")), "JSON|NaN|number"),
        ("layer_norm eps string", _norm("layer_norm", eps="1e-5"), "'eps' must be a finite number"),
        (
            "layer_norm scale length",
            _replace_relu("layer_norm", scale=np.ones(7, np.float32), shift=np.zeros(8, np.float32)),
            "'scale' tensor has 7 values, needs 8",
        ),
        ("layer_norm no shift", _replace_relu("layer_norm", scale=np.ones(8, np.float32)), "shift"),
        ("upsample size 0", _up(size=[0, 16]), "attribute 'size' must be integers in \\[1, 16384\\]"),
        ("upsample size 20000", _up(size=[20000, 16]), "attribute 'size' must be integers"),
        ("upsample size 16384^2", _up(size=[16384, 16384]), "bytes per sample"),
        ("upsample one size", _up(size=[16]), "attribute 'size' must be a list of 2"),
        ("upsample scale 0", _up(scale_h=0.0), "'scale_h' must be in \\(0, 16384\\]"),
        ("upsample scale < 0", _up(scale_w=-2.0), "'scale_w' must be in"),
        ("upsample scale 1e30", _up(scale_w=1e30), "'scale_w' must be in"),
        ("upsample scale 1e-50", _up(scale_h=1e-50), "'scale_h' must be in"),
        (
            "upsample mode",
            _up(mode="bicubic"),
            r"attribute 'mode' must be one of nearest\|nearest_exact\|bilinear",
        ),
        ("upsample nearest align", _up(mode="nearest", align_corners=True), "'align_corners' applies"),
        ("upsample binary input", upsample_binary, "input 0 must be float, is binary"),
    ]




def test_float_ops_valid_variants_load_and_match_reference(tmp_path):
    """The same mutations with valid values load and agree with the reference (the cases above are not
    refused for some unrelated reason)."""
    x = np.random.default_rng(2).standard_normal((2, 3, 8, 8)).astype(np.float32)
    for mutate in (
        _replace_relu("activation", {"kind": "gelu"}),
        _norm("group_norm", groups=2, eps=1e-5),
        _norm("layer_norm", eps=1e-6),
        _up(),
        _up(mode="nearest", size=[5, 24], scale_h=1.6, scale_w=float(np.float32(1 / 3))),
    ):
        meta, tensors = small_model()
        mutate(meta, tensors)
        ref_tensors = dict(
            tensors, w=np.where(np.random.default_rng(0).standard_normal((8, 3, 3, 3)) < 0, -1.0, 1.0)
        )
        got = load(_write(tmp_path, meta, tensors), num_threads=2).run(x)
        np.testing.assert_allclose(got, run_reference(meta, ref_tensors, x), rtol=1e-5, atol=1e-5)


def test_upsample_within_limits_but_over_the_memory_cap(tmp_path):
    meta, tensors = small_model()
    _up(size=[4096, 4096], scale_h=1 / 512, scale_w=1 / 512)(meta, tensors)  # 512 MiB per sample
    with pytest.raises(MemoryError, match="memory cap"):
        load(_write(tmp_path, meta, tensors), memory_cap=64 << 20)


@pytest.mark.parametrize("name,mutate,message", _hostile_cases(), ids=[c[0] for c in _hostile_cases()])
def test_hostile_file_is_refused(tmp_path, name, mutate, message):
    meta, tensors = small_model()
    meta = copy.deepcopy(meta)
    mutate(meta, tensors)
    path = _write(tmp_path, meta, tensors)
    t0 = time.perf_counter()
    with pytest.raises(ModelFormatError, match=message):
        load(path)
    assert time.perf_counter() - t0 < 1.0


def test_residual_input_runs_like_reference_and_counts_its_planes(tmp_path):
    """The valid twin of the residual_bits cases above: it loads, matches the reference, and the
    planes and per-plane dot products it holds during a call count against the memory cap."""
    meta, tensors = small_model()
    plain_path = _write(tmp_path, meta, tensors, "plain.onebit")
    node = _node(meta, "bconv2d")
    node["inputs"] = ["input"]
    node["attrs"].update(pad_value=0.0, residual_bits=3)
    path = _write(tmp_path, meta, tensors)
    m = load(path, num_threads=2)
    x = np.random.default_rng(1).standard_normal((3, 3, 8, 8)).astype(np.float32)
    w = np.where(np.random.default_rng(0).standard_normal((8, 3, 3, 3)) < 0, -1.0, 1.0)
    np.testing.assert_allclose(m.run(x), run_reference(meta, dict(tensors, w=w), x), rtol=1e-5, atol=1e-5)
    # batch 16 holds 48 planes of 64 pixels (24 KiB) and 48 x 64 x 8 float dots (96 KiB) in the
    # residual bconv2d: a cap 100 KB above the values' own memory stops it, not the plain model
    cap = m.memory_bytes(16) + 100_000
    xb = np.zeros((16, 3, 8, 8), np.float32)
    load(plain_path, memory_cap=cap, num_threads=1).run(xb)
    with pytest.raises(MemoryError, match=r"batch 16 needs .* at node 1 \(bconv2d"):
        load(path, memory_cap=cap, num_threads=1).run(xb)


def grouped_model(c_in: int = 8, c_out: int = 8, groups: int = 8, seed: int = 0) -> tuple[dict, dict]:
    """small_model with a grouped (by default depthwise) binary conv: c_in -> c_out channels."""
    meta, tensors = small_model(c_in=c_in, c_mid=c_out, seed=seed)
    rng = np.random.default_rng(seed + 1)
    tensors["w"] = _packed(np.where(rng.standard_normal((c_out, 3, 3, c_in // groups)) < 0, -1.0, 1.0))
    meta["encodings"]["w"]["channels"] = c_in // groups
    _node(meta, "bconv2d")["attrs"]["groups"] = groups
    return meta, tensors


def test_grouped_model_loads_and_matches_reference(tmp_path):
    for c_in, c_out, groups in [(8, 8, 8), (8, 16, 8), (12, 8, 4), (96, 96, 96)]:
        meta, tensors = grouped_model(c_in, c_out, groups)
        m = load(_write(tmp_path, meta, tensors), num_threads=1)
        x = np.random.default_rng(2).standard_normal((2, c_in, 8, 8)).astype(np.float32)
        enc = {"w": tensors["w"]}
        from onebit.runtime.reference import decode_tensors

        ref = dict(tensors, **decode_tensors(meta, enc))
        np.testing.assert_allclose(m.run(x), run_reference(meta, ref, x), rtol=1e-5, atol=1e-5)


def _grouped_hostile_cases():
    """(name, groups, weight channels per filter or None, c_out, expected message)."""
    return [
        ("groups 0", 0, None, 8, "groups"),
        ("groups negative", -8, None, 8, "groups"),
        ("groups not dividing in_channels", 3, None, 8, "groups must divide in_channels"),
        ("groups above in_channels", 16, None, 16, "groups must divide in_channels"),
        ("groups huge", 2**40, None, 8, "groups"),
        ("groups not dividing out channels", 8, None, 12, "groups must divide the output channels"),
        ("weight channels for another groups", 4, 1, 8, "channels per filter, needs 2"),
    ]


@pytest.mark.parametrize("name,groups,wch,c_out,message", _grouped_hostile_cases(),
                         ids=[c[0] for c in _grouped_hostile_cases()])
def test_hostile_groups_are_refused(tmp_path, name, groups, wch, c_out, message):
    meta, tensors = grouped_model(8, c_out, 8)
    _node(meta, "bconv2d")["attrs"]["groups"] = groups
    if wch is not None:
        meta["encodings"]["w"]["channels"] = wch
    t0 = time.perf_counter()
    with pytest.raises(ModelFormatError, match=message):
        load(_write(tmp_path, meta, tensors))
    assert time.perf_counter() - t0 < 1.0


def test_grouped_groups_as_float_or_string_is_refused(tmp_path):
    for bad in (8.5, "8", [8], True, None):
        meta, tensors = grouped_model()
        _node(meta, "bconv2d")["attrs"]["groups"] = bad
        with pytest.raises(ModelFormatError, match="groups"):
            load(_write(tmp_path, meta, tensors))


def test_avgpool_ceil_mode_large_padding_is_refused_fast(tmp_path):
    meta, tensors = small_model()
    meta["nodes"][4] = {
        "op": "avgpool",
        "inputs": ["x4"],
        "outputs": ["x5"],
        "attrs": {"kernel": [2, 2], "stride": [2, 2], "padding": [600] * 4, "ceil_mode": True},
    }
    t0 = time.perf_counter()
    with pytest.raises(ModelFormatError, match="half the kernel"):
        load(_write(tmp_path, meta, tensors))
    assert time.perf_counter() - t0 < 1.0


def test_xnor_k_negative_dilation_is_refused(tmp_path):
    meta, tensors = small_model()
    meta["nodes"].insert(
        1,
        {
            "op": "xnor_k",
            "inputs": ["input"],
            "outputs": ["k"],
            "attrs": {"kernel": [3, 3], "stride": [1, 1], "padding": [1, 1, 1, 1], "dilation": [-5, 1]},
        },
    )
    with pytest.raises(ModelFormatError, match="dilation"):
        load(_write(tmp_path, meta, tensors))


def test_memory_cap(tmp_path):
    meta, tensors = small_model(size=64)
    path = _write(tmp_path, meta, tensors)
    m = load(path, memory_cap=1 << 20)
    assert m.memory_bytes(1) < 1 << 20
    x = np.zeros((64, 3, 64, 64), np.float32)
    with pytest.raises(
        MemoryError, match=r"batch 64 needs \d+ bytes .* at node \d+ \(\w+ .*memory cap of 1048576 bytes"
    ):
        m.run(x)
    with pytest.raises(MemoryError, match="memory cap"):
        load(path, memory_cap=4096)


def test_truncated_and_bitflipped_files(tmp_path):
    meta, tensors = small_model()
    raw = _write(tmp_path, meta, tensors).read_bytes()
    rng = np.random.default_rng(0)
    for i in range(200):
        data = bytearray(raw)
        if i % 2:
            data = data[: rng.integers(0, len(raw))]
        else:
            data[rng.integers(0, len(raw))] ^= 1 << int(rng.integers(0, 8))
        p = tmp_path / f"bad{i}.onebit"
        p.write_bytes(bytes(data))
        with pytest.raises(ModelFormatError):
            load(p)


def test_registry_is_visible():
    table = ops()
    assert {"sign", "bconv2d", "bdense", "conv2d", "dense", "concat", "xnor_k"} <= set(table)
    bconv = table["bconv2d"]
    assert bconv["attrs"]["stride"] == {
        "kind": "ints",
        "required": True,
        "min": 1,
        "max": 64,
        "count": 2,
        "doc": "stride along height and width",
    }
    assert bconv["params"]["weight"]["required"]


@pytest.mark.parametrize("engine_threads", [1, 2])
def test_concurrent_calls_match_single_threaded(tmp_path, engine_threads):
    """8 Python threads on one model; with engine_threads = 2 every call also uses the
    process-wide pool (whose helpers sleep, wake and rebind between calls)."""
    meta, tensors = small_model(c_in=16, c_mid=96, size=16)
    path = _write(tmp_path, meta, tensors)
    m = load(path, num_threads=engine_threads)
    rng = np.random.default_rng(3)
    inputs = [rng.standard_normal((1 + i % 3, 16, 16, 16)).astype(np.float32) for i in range(40)]
    one = load(path, num_threads=1)
    expected = [one.run(x) for x in inputs]
    failures: list[str] = []

    def worker(t: int) -> None:
        for k in range(200):
            j = (t * 7 + k) % len(inputs)
            y = m.run(inputs[j])
            if not np.array_equal(y.view(np.uint32), expected[j].view(np.uint32)):
                failures.append(f"thread {t} call {k}")

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not failures, failures[:5]


def test_engine_errors_name_the_node(tmp_path):
    meta, tensors = small_model()
    _node(meta, "bconv2d")["source"] = "features.3.conv"
    _node(meta, "bconv2d")["attrs"]["stride"] = [0, 1]
    with pytest.raises(ModelFormatError, match=r"node 1 \(bconv2d 'x2' from module 'features.3.conv'\)"):
        load(_write(tmp_path, meta, tensors))
    with pytest.raises(_C.EngineFormatError):
        _C.Engine.load(str(tmp_path / "m.onebit"))


def _fused_epilogue_cases():
    """(name, mutate(meta, tensors), message) for a bconv2d/conv2d's fused residual and activation."""

    def bconv_inputs(*extra):
        def f(meta, tensors):
            _node(meta, "bconv2d")["inputs"] += list(extra)

        return f

    def bconv_attr(**attrs):
        def f(meta, tensors):
            _node(meta, "bconv2d")["attrs"].update(attrs)

        return f

    def bits_out_with(activation=None, residual=None):
        def f(meta, tensors):
            n = _node(meta, "bconv2d")
            n["attrs"]["output"] = "binary"
            n["params"] = {"weight": "w", "threshold": "thr", "direction": "dir"}
            tensors["thr"] = np.zeros(8, np.int32)
            tensors["dir"] = np.ones(8, np.int32)
            if activation:
                n["attrs"]["activation"] = activation
            if residual:
                n["inputs"].append(residual)
            unpack = {"op": "unpack", "inputs": ["x2"], "outputs": ["x2f"], "attrs": {}, "params": {}}
            meta["nodes"].insert(2, unpack)
            meta["nodes"][3]["inputs"] = ["x2f"]

        return f

    def post_affine(scale, shift=None, bits=False, op="bconv2d"):
        def f(meta, tensors):
            if bits:
                bits_out_with()(meta, tensors)
            tensors.update(s8=np.ones(8, np.float32), s3=np.ones(3, np.float32), h8=np.zeros(8, np.float32),
                           i8=np.zeros(8, np.int32))
            if op == "conv2d":  # a float conv in place of the sign -> bconv2d pair
                tensors["fw"] = np.zeros((8, 3, 3, 3), np.float32)
                n = _node(meta, "bconv2d")
                meta["nodes"].remove(_node(meta, "sign"))
                n.update(op="conv2d", inputs=["input"])
                n["params"] = {"weight": "fw", "multiplier": "m", "bias": "b"}
                binary_only = ("in_channels", "pad_value", "output")
                n["attrs"] = {k: v for k, v in n["attrs"].items() if k not in binary_only}
            n = _node(meta, op)
            n["params"]["post_scale"] = scale
            if shift:
                n["params"]["post_shift"] = shift

        return f

    return [
        ("residual of another shape", bconv_inputs("input"), "residual input is 8 x 8 x 3, the output 8 x 8"),
        ("residual of bits", bconv_inputs("x1"), "input 1 must be float, is binary"),
        ("three inputs", bconv_inputs("x1", "x1"), "takes 1 to 2 inputs, has 3"),
        ("residual not defined yet", bconv_inputs("x4"), "reads .x4. before it is defined"),
        ("activation unknown", bconv_attr(activation="gelu"), r"'activation' must be one of none\|relu"),
        ("activation not a string", bconv_attr(activation=1), "attribute .activation. must be one of"),
        ("activation with bits output", bits_out_with(activation="relu"), "needs a float output"),
        ("residual with bits output", bits_out_with(residual="input"), "needs a float output"),
        ("post_scale alone", post_affine("s8"), "post_scale and post_shift come together"),
        ("post_scale too short", post_affine("s3", "h8"), "'post_scale' tensor has 3 values, needs 8"),
        ("post_shift of int32", post_affine("s8", "i8"), "'post_shift' tensor must be float32 or float16"),
        ("post_scale with bits output", post_affine("s8", "h8", bits=True), "needs a float output"),
        ("post_scale on conv2d", post_affine("s8", "h8", op="conv2d"), "unknown parameter .post_scale."),
    ]


def _hostile_op_cases() -> list:
    return [*_float_op_hostile_cases(), *_fused_epilogue_cases()]


@pytest.mark.parametrize("name,mutate,message", _hostile_op_cases(), ids=[c[0] for c in _hostile_op_cases()])
def test_hostile_op_attributes_are_refused(tmp_path, name, mutate, message):
    """The float ops' and the fused conv epilogue's hostile attributes and inputs."""
    meta, tensors = small_model()
    mutate(meta, tensors)
    t0 = time.perf_counter()
    with pytest.raises(ModelFormatError, match=message):
        load(_write(tmp_path, meta, tensors))
    assert time.perf_counter() - t0 < 1.0
