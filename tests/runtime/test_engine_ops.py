"""Every op of the engine's registry against its numpy definition (runtime/reference.py).

Each case is a small graph around one op, written to a file and run by the C++
engine under every instruction set the CPU has; binary results must be exact,
float results equal up to float rounding. A new op without a case here fails
``test_every_registered_op_is_covered``.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from onebit.runtime import load, ops
from onebit.runtime.format import write_model_file
from onebit.runtime.reference import run_reference

RNG = np.random.default_rng(7)


def _signs(shape):
    return np.where(RNG.standard_normal(shape) < 0, -1.0, 1.0).astype(np.float32)


def _packed(signs: np.ndarray) -> np.ndarray:
    c = signs.shape[-1]
    out = np.zeros((*signs.shape[:-1], (c + 63) // 64), np.uint64)
    for ch in range(c):
        out[..., ch // 64] |= (signs[..., ch] < 0).astype(np.uint64) << np.uint64(ch % 64)
    return out


class G:
    """A graph under construction: nodes in order, float tensors for the reference, file tensors."""

    def __init__(self, shape):
        self.shape = list(shape)
        self.nodes, self.ref, self.file, self.enc, self.n = [], {}, {}, {}, 0

    def t(self, arr, packed=False):
        name = f"t{len(self.ref)}"
        self.ref[name] = arr
        if packed:
            self.file[name] = _packed(arr)
            self.enc[name] = {"encoding": "packed_sign", "channels": int(arr.shape[-1])}
        else:
            self.file[name] = arr
        return name

    def op(self, op, *inputs, attrs=None, **params):
        self.n += 1
        out = f"v{self.n}"
        self.nodes.append(
            {"op": op, "inputs": list(inputs), "outputs": [out], "attrs": attrs or {}, "params": params}
        )
        return out

    def write(self, path, out, out_shape):
        meta = {
            "inputs": [{"name": "input", "shape": self.shape, "dtype": "float32"}],
            "outputs": [{"name": out, "shape": out_shape, "dtype": "float32"}],
            "nodes": self.nodes,
            "encodings": self.enc,
        }
        write_model_file(path, meta, self.file)
        return meta


def assert_same_bits_from_threads(m, inputs: list, expected: list, threads: int = 8) -> None:
    """Calls ``m`` on every input three times over from ``threads`` Python threads at once; each
    output must be ``expected``'s, bit for bit (a loaded model is shared by concurrent calls)."""
    failures: list[str] = []

    def worker(t: int) -> None:
        for i in range(t, len(inputs) * 3, threads):
            got = m.run(inputs[i % len(inputs)])
            if not np.array_equal(got.view(np.uint32), expected[i % len(inputs)].view(np.uint32)):
                failures.append(f"thread {t}, input {i % len(inputs)}")

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    assert not failures, failures


def conv_attrs(k=3, s=1, p=1, d=1, **extra):
    return {"kernel": [k, k], "stride": [s, s], "padding": [p, p, p, p], "dilation": [d, d], **extra}


def pool_attrs(k=3, s=2, p=1, ceil=False, **extra):
    return {"kernel": [k, k], "stride": [s, s], "padding": [p, p, p, p], "ceil_mode": ceil, **extra}


def case_sign(g, c):
    flip = (RNG.random(c) < 0.5).astype(np.float32)
    b = g.op("sign", "input", threshold=g.t(RNG.standard_normal(c).astype(np.float32) * 0.3), flip=g.t(flip))
    return g.op("unpack", b)


def case_bnot(g, c):
    b = g.op("sign", "input", threshold=g.t(np.zeros(c, np.float32)))
    return g.op("unpack", g.op("bnot", b, mask=g.t((RNG.random(c) < 0.5).astype(np.float32))))


def _bconv(g, c, oc, out, groups=1, pad_value=-1.0, **geo):
    b = g.op("sign", "input", threshold=g.t(np.zeros(c, np.float32)))
    k = geo["k"]
    attrs = conv_attrs(**geo, in_channels=c, pad_value=pad_value, output=out, groups=groups)
    params = {"weight": g.t(_signs((oc, k, k, c // groups)), packed=True)}
    if out == "binary":
        params["threshold"] = g.t(RNG.integers(-20, 20, oc).astype(np.int32))
        params["direction"] = g.t(np.where(RNG.random(oc) < 0.3, -1, 1).astype(np.int32))
        return g.op("unpack", g.op("bconv2d", b, attrs=attrs, **params))
    params["multiplier"] = g.t(RNG.uniform(0.5, 1.5, oc).astype(np.float32))
    params["bias"] = g.t(RNG.standard_normal(oc).astype(np.float32))
    return g.op("bconv2d", b, attrs=attrs, **params)


def case_bconv2d(g, c):
    return _bconv(g, c, 40, "float", k=3, s=2, p=2, d=2)


def case_bconv2d_bits(g, c):
    return _bconv(g, c, 70, "binary", k=3, s=1, p=1, d=1)


def case_bconv2d_depthwise(g, c):
    return _bconv(g, c, c, "float", groups=c, pad_value=0.0, k=3, s=1, p=1, d=1)


def case_bconv2d_depthwise_bits(g, c):
    return _bconv(g, c, c, "binary", groups=c, k=3, s=2, p=1, d=1)


def _post_affine(g, c, groups):
    """relu(bconv) * post_scale + post_shift + input (QuickNet's block, passes.fuse_conv_post_affine)."""
    b = g.op("sign", "input", threshold=g.t(np.zeros(c, np.float32)))
    attrs = conv_attrs(k=3, in_channels=c, pad_value=1.0, output="float", groups=groups, activation="relu")
    return g.op("bconv2d", b, "input", attrs=attrs, weight=g.t(_signs((c, 3, 3, c // groups)), packed=True),
                multiplier=g.t(RNG.uniform(0.5, 1.5, c).astype(np.float32)),
                bias=g.t(RNG.standard_normal(c).astype(np.float32)),
                post_scale=g.t(RNG.uniform(-2, 2, c).astype(np.float32)),
                post_shift=g.t(RNG.standard_normal(c).astype(np.float32)))


def case_bconv2d_post_affine(g, c):
    return _post_affine(g, c, 1)


def case_bconv2d_post_affine_depthwise(g, c):  # the bit-sliced kernel, then one pass over the output
    return _post_affine(g, c, c)


def case_bconv2d_grouped_multiplier_bits(g, c):
    return _bconv(g, c, 3 * c, "binary", groups=c, pad_value=1.0, k=3, s=1, p=2, d=2)


def case_bconv2d_zero_pad(g, c):
    b = g.op("sign", "input", threshold=g.t(np.zeros(c, np.float32)))
    attrs = conv_attrs(k=3, s=1, p=1, in_channels=c, pad_value=0.0, output="float")
    return g.op(
        "bconv2d",
        b,
        attrs=attrs,
        weight=g.t(_signs((33, 3, 3, c)), packed=True),
        multiplier=g.t(np.ones(33, np.float32)),
        bias=g.t(np.zeros(33, np.float32)),
    )


def _fused_bconv(g, c, oc, residual, groups=1, act="relu", **geo):
    """A float bconv2d with the exporter's fused epilogue: activation(conv + residual)."""
    b = g.op("sign", "input", threshold=g.t(np.zeros(c, np.float32)))
    k = geo["k"]
    attrs = conv_attrs(**geo, in_channels=c, pad_value=-1.0, output="float", groups=groups, activation=act)
    params = {
        "weight": g.t(_signs((oc, k, k, c // groups)), packed=True),
        "multiplier": g.t(RNG.uniform(0.5, 1.5, oc).astype(np.float32)),
        "bias": g.t(RNG.standard_normal(oc).astype(np.float32)),
    }
    return g.op("bconv2d", b, *([residual] if residual else []), attrs=attrs, **params)


def case_bconv2d_fused_residual_relu(g, c):  # the residual is the input (same shape)
    return _fused_bconv(g, c, c, "input", k=3, s=1, p=1)


def case_bconv2d_fused_residual_wide(g, c):  # 70 channels: 3 blocks of 32, a tail; residual from a 1x1 conv
    r = _fused_conv(g, c, 70, 1, None, k=1, act="none")
    return _fused_bconv(g, c, 70, r, act="none", k=3, s=1, p=1)


def case_bconv2d_fused_relu_only(g, c):
    return _fused_bconv(g, c, 40, None, k=3, s=2, p=1)


def case_bconv2d_fused_depthwise(g, c):  # the bit-sliced kernel, then the residual pass
    return _fused_bconv(g, c, c, "input", groups=c, k=3, s=1, p=1)


def case_bconv2d_fused_grouped(g, c):  # 80 channels in 2 groups of 40: per-group GEMMs
    x = _fused_conv(g, c, 80, 1, None, k=1, act="none")
    b = g.op("sign", x, threshold=g.t(np.zeros(80, np.float32)))
    attrs = conv_attrs(k=3, s=1, p=1, in_channels=80, pad_value=1.0, output="float", groups=2,
                       activation="relu")
    return g.op("bconv2d", b, x, attrs=attrs, weight=g.t(_signs((80, 3, 3, 40)), packed=True),
                multiplier=g.t(RNG.uniform(0.5, 1.5, 80).astype(np.float32)),
                bias=g.t(RNG.standard_normal(80).astype(np.float32)))


def case_bconv2d_fused_residual2(g, c):  # residual_bits 2, then the fused add and relu
    attrs = conv_attrs(k=3, s=1, p=1, in_channels=c, pad_value=0.0, output="float", residual_bits=2,
                       activation="relu")
    return g.op("bconv2d", "input", "input", attrs=attrs, weight=g.t(_signs((c, 3, 3, c)), packed=True),
                multiplier=g.t(RNG.uniform(0.5, 1.5, c).astype(np.float32)),
                bias=g.t(RNG.standard_normal(c).astype(np.float32)))


def _fused_conv(g, c, oc, groups, residual, k=3, act="relu"):
    return g.op(
        "conv2d",
        "input",
        *([residual] if residual else []),
        attrs=conv_attrs(k=k, p=k // 2, groups=groups, activation=act),
        weight=g.t(RNG.standard_normal((oc, k, k, c // groups)).astype(np.float32)),
        multiplier=g.t(RNG.uniform(0.5, 1.5, oc).astype(np.float32)),
        bias=g.t(RNG.standard_normal(oc).astype(np.float32)),
    )


def case_conv2d_fused_residual_relu(g, c):  # K = 45: kernel rows read in place
    return _fused_conv(g, c, c, 1, "input")


def case_conv2d_fused_pointwise(g, c):  # 1x1: the direct GEMM path, 37 columns
    r = _fused_conv(g, c, 37, 1, None, k=1, act="none")
    return _fused_conv(g, c, 37, 1, r, k=1, act="none")


def case_conv2d_fused_relu_depthwise(g, c):
    return _fused_conv(g, c, c, c, None)


def case_bdense(g, c):
    f = g.op("flatten", "input")
    b = g.op("sign", f, threshold=g.t(np.zeros(c * 36, np.float32)))
    return g.op(
        "bdense",
        b,
        attrs={"in_channels": c * 36, "output": "float"},
        weight=g.t(_signs((10, c * 36)), packed=True),
        multiplier=g.t(np.full(10, 0.1, np.float32)),
        bias=g.t(np.zeros(10, np.float32)),
    )


def case_residual_sign(g, c):
    return g.op("residual_sign", "input", attrs={"bits": 3, "scale": "channel"})


def case_residual_sign_sample(g, c):
    return g.op("residual_sign", g.op("flatten", "input"), attrs={"bits": 2, "scale": "sample"})


def _residual_bconv(g, x, c, oc, bits, groups=1, **geo):
    k = geo["k"]
    return g.op(
        "bconv2d",
        x,
        attrs=conv_attrs(
            **geo, in_channels=c, pad_value=0.0, output="float", residual_bits=bits, groups=groups
        ),
        weight=g.t(_signs((oc, k, k, c // groups)), packed=True),
        multiplier=g.t(RNG.uniform(0.5, 1.5, oc).astype(np.float32)),
        bias=g.t(RNG.standard_normal(oc).astype(np.float32)),
    )


def case_bconv2d_residual2(g, c):
    return _residual_bconv(g, "input", c, 21, 2, k=3, s=2, p=1, d=1)


def case_bconv2d_residual3_wide(g, c):
    # 70 channels: two words per pixel in every plane; grouped (the driver's per-group copies)
    wide = _conv(g, c, 70, 1)
    return _residual_bconv(g, wide, 70, 12, 3, groups=2, k=3, s=1, p=2, d=2)


def case_bconv2d_residual2_depthwise(g, c):
    # one input channel per group: the planes go through the bit-sliced grouped kernel
    return _residual_bconv(g, "input", c, c, 2, groups=c, k=3, s=1, p=1, d=1)


def case_bdense_residual3(g, c):
    f = g.op("flatten", "input")
    return g.op(
        "bdense",
        f,
        attrs={"in_channels": c * 36, "output": "float", "residual_bits": 3},
        weight=g.t(_signs((9, c * 36)), packed=True),
        multiplier=g.t(np.full(9, 0.05, np.float32)),
        bias=g.t(RNG.standard_normal(9).astype(np.float32)),
    )


def _conv(g, c, oc, groups, k=3):
    return g.op(
        "conv2d",
        "input",
        attrs=conv_attrs(k=k, groups=groups),
        weight=g.t(RNG.standard_normal((oc, k, k, c // groups)).astype(np.float32)),
        multiplier=g.t(RNG.uniform(0.5, 1.5, oc).astype(np.float32)),
        bias=g.t(RNG.standard_normal(oc).astype(np.float32)),
    )


def case_conv2d(g, c):
    return _conv(g, c, 12, 1)


def case_conv2d_depthwise(g, c):
    return _conv(g, c, c, c)


def case_conv2d_grouped(g, c):  # one input channel per group, 2 filters each: depthwise on repeated channels
    return _conv(g, c, 10, 5)


def case_conv2d_grouped_multiplier_strided(g, c):  # 3 filters per input channel, stride 2, as QuickNet's stem
    return g.op(
        "conv2d",
        "input",
        attrs=conv_attrs(k=3, s=2, p=1, groups=c),
        weight=g.t(RNG.standard_normal((3 * c, 3, 3, 1)).astype(np.float32)),
        multiplier=g.t(RNG.uniform(0.5, 1.5, 3 * c).astype(np.float32)),
        bias=g.t(RNG.standard_normal(3 * c).astype(np.float32)),
    )


def case_conv2d_grouped_two_per_group(g, c):  # 2 input channels per group: one GEMM per group
    f = g.op("concat", "input", g.op("relu", "input"))
    return g.op(
        "conv2d",
        f,
        attrs=conv_attrs(k=3, groups=c),
        weight=g.t(RNG.standard_normal((c, 3, 3, 2)).astype(np.float32)),
        multiplier=g.t(np.ones(c, np.float32)),
        bias=g.t(RNG.standard_normal(c).astype(np.float32)),
    )


def case_dense(g, c):
    f = g.op("flatten", "input")
    return g.op(
        "dense",
        f,
        weight=g.t(RNG.standard_normal((7, c * 36)).astype(np.float32)),
        multiplier=g.t(np.ones(7, np.float32)),
        bias=g.t(RNG.standard_normal(7).astype(np.float32)),
    )


def case_affine(g, c):
    return g.op(
        "affine",
        "input",
        scale=g.t(RNG.standard_normal(c).astype(np.float32)),
        shift=g.t(RNG.standard_normal(c).astype(np.float32)),
    )


def case_relu(g, c):
    return g.op("relu", "input")


def case_prelu(g, c):
    return g.op("prelu", "input", slope=g.t(RNG.uniform(0, 0.5, c).astype(np.float32)))


def case_clip(g, c):
    return g.op("clip", "input", attrs={"min": -0.5, "max": 0.75})


def case_scale(g, c):
    return g.op("scale", "input", attrs={"value": 0.37})


def case_add(g, c):
    return g.op("add", g.op("relu", "input"), "input")


def case_mul_map(g, c):
    return g.op("mul_map", "input", g.op("mean_abs", "input"))


def case_mean_abs(g, c):
    return g.op("mean_abs", "input")


def case_xnor_k(g, c):
    return g.op("xnor_k", "input", attrs=conv_attrs(k=3, s=2, p=1))


def case_concat(g, c):
    return g.op("concat", "input", g.op("relu", "input"))


def case_concat_bits(g, c):
    b1 = g.op("sign", "input", threshold=g.t(np.zeros(c, np.float32)))
    b2 = g.op("sign", "input", threshold=g.t(np.full(c, 0.3, np.float32)))
    return g.op("unpack", g.op("concat", b1, b2, b1))


def case_concat_mixed(g, c):
    b = g.op("sign", "input", threshold=g.t(np.zeros(c, np.float32)))
    return g.op("concat", b, "input")


def case_flatten_bits(g, c):
    b = g.op("sign", "input", threshold=g.t(np.zeros(c, np.float32)))
    return g.op("unpack", g.op("flatten", b))


def case_maxpool(g, c):
    return g.op("maxpool", "input", attrs=pool_attrs(3, 2, 1))


def case_maxpool_ceil(g, c):
    return g.op("maxpool", "input", attrs=pool_attrs(2, 2, 0, ceil=True))


def case_bmaxpool(g, c):
    b = g.op("sign", "input", threshold=g.t(np.zeros(c, np.float32)))
    return g.op("unpack", g.op("bmaxpool", b, attrs=pool_attrs(3, 2, 1, ceil=True)))


def case_avgpool(g, c):
    return g.op("avgpool", "input", attrs=pool_attrs(3, 2, 1, count_include_pad=True))


def case_avgpool_ceil_pad(g, c):
    return g.op("avgpool", "input", attrs=pool_attrs(3, 2, 1, ceil=True, count_include_pad=True))


def case_avgpool_no_pad_count(g, c):
    return g.op("avgpool", "input", attrs=pool_attrs(3, 2, 1, ceil=True, count_include_pad=False))


def case_global_avgpool(g, c):
    return g.op("global_avgpool", "input")


def case_softmax(g, c):
    return g.op("softmax", g.op("flatten", "input"))


def _activation_case(kind):
    def case(g, c):  # x * 4: the tails (|x| up to ~15) as well as the middle
        return g.op("activation", g.op("scale", "input", attrs={"value": 4.0}), attrs={"kind": kind})

    return case


for _kind in ("gelu", "gelu_tanh", "silu", "hardswish", "hardsigmoid", "sigmoid", "tanh"):
    globals()[f"case_activation_{_kind}"] = _activation_case(_kind)


def case_activation_out_of_place(g, c):  # its input is read again afterwards: no in-place run
    x = g.op("scale", "input", attrs={"value": 4.0})
    return g.op("concat", g.op("activation", x, attrs={"kind": "gelu"}), x)


def _norm_params(g, c):
    return {
        "scale": g.t(RNG.uniform(0.5, 1.5, c).astype(np.float32)),
        "shift": g.t(RNG.standard_normal(c).astype(np.float32)),
    }


def case_layer_norm(g, c):
    return g.op("layer_norm", "input", attrs={"eps": 1e-5}, **_norm_params(g, c))


def case_layer_norm_2d(g, c):
    return g.op("layer_norm", g.op("flatten", "input"), attrs={"eps": 1e-3}, **_norm_params(g, c * 36))


def case_group_norm(g, c):  # 12 channels in 3 groups, mean far from 0 (the moments must not cancel)
    x = g.op(
        "affine",
        _conv(g, c, 12, 1),
        scale=g.t(np.ones(12, np.float32)),
        shift=g.t(np.full(12, 50, np.float32)),
    )
    return g.op("group_norm", x, attrs={"groups": 3, "eps": 1e-5}, **_norm_params(g, 12))


def case_group_norm_instance(g, c):
    return g.op("group_norm", "input", attrs={"groups": c, "eps": 1e-2}, **_norm_params(g, c))


def case_group_norm_2d(g, c):
    return g.op(
        "group_norm", g.op("flatten", "input"), attrs={"groups": 4, "eps": 1e-5}, **_norm_params(g, c * 36)
    )


def _upsample(g, mode, size, scale, align=False):
    attrs = {"mode": mode, "size": list(size), "scale_h": scale[0], "scale_w": scale[1]}
    if align:
        attrs["align_corners"] = True
    return g.op("upsample", "input", attrs=attrs)


def case_upsample_nearest_x2(g, c):
    return _upsample(g, "nearest", (12, 12), (0.5, 0.5))


def case_upsample_nearest_fraction(g, c):  # scale_factor 1.5 (rows) and size 8 (columns)
    return _upsample(g, "nearest", (9, 8), (float(np.float32(1 / 1.5)), float(np.float32(6) / np.float32(8))))


def case_upsample_nearest_down(g, c):
    return _upsample(g, "nearest", (4, 3), (1.5, 2.0))


def case_upsample_nearest_exact(g, c):  # 'nearest-exact' at scale factor 1.5 (rows) and size 11 (columns)
    return _upsample(
        g, "nearest_exact", (9, 11), (float(np.float32(1 / 1.5)), float(np.float32(6) / np.float32(11)))
    )


def case_upsample_bilinear(g, c):
    return _upsample(g, "bilinear", (11, 13), (float(np.float32(6 / 11)), float(np.float32(6 / 13))))


def case_upsample_bilinear_align(g, c):
    return _upsample(g, "bilinear", (11, 6), (float(np.float32(5) / np.float32(10)), 1.0), align=True)


def case_upsample_bilinear_down(g, c):
    return _upsample(g, "bilinear", (4, 1), (1.5, 6.0))


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


def test_every_registered_op_is_covered():
    covered = {n["op"] for fn in CASES.values() for n in _build(fn)[0].nodes}
    assert set(ops()) <= covered, sorted(set(ops()) - covered)


def _build(fn, c=5, hw=(6, 6), batch=2):
    g = G([1, c, *hw])
    out = fn(g, c)
    x = RNG.standard_normal((batch, c, *hw)).astype(np.float32)
    return g, out, x


@pytest.mark.parametrize("case", sorted(CASES))
def test_op_matches_reference(case, isa, tmp_path):
    g, out, x = _build(CASES[case])
    ref_meta = {"inputs": [{"name": "input"}], "outputs": [{"name": out}], "nodes": g.nodes}
    want = run_reference(ref_meta, g.ref, x)
    meta = g.write(tmp_path / "m.onebit", out, [1, *want.shape[1:]])
    got = load(tmp_path / "m.onebit", num_threads=2).run(x)
    assert got.shape == want.shape
    binary = g.nodes[-1]["op"] == "unpack"
    if binary:
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)
    assert meta["nodes"]


def test_docs_list_exactly_the_registered_ops():
    import os
    import re

    doc = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "deployment.md")
    text = open(doc, encoding="utf-8").read()
    para = text[text.index("Engine ops:") : text.index("Their exact")]
    listed = set(re.findall(r"`([a-z_0-9]+)`", para))
    assert listed == set(ops()), (sorted(listed - set(ops())), sorted(set(ops()) - listed))


def _bits_on_every_fast_isa(path, x: np.ndarray) -> dict[str, np.ndarray]:
    """The file's output on x as uint32, per optimized ISA this CPU has (the active one restored)."""
    from onebit import _C

    before, results = _C.active_isa(), {}
    try:
        for name in ("portable", "avx2", "avx512"):
            if _C.isa_supported(name):
                _C.set_isa(name)
                results[name] = load(path).run(x).view(np.uint32)
    finally:
        _C.set_isa(before)
    return results


def test_float_convs_packed_at_load_run_under_another_isa(tmp_path):
    """fp32 conv weights are packed at load for the active ISA's GEMM kernel; run under
    another ISA (set_isa after the load) they are packed again for it: every (load ISA,
    run ISA) pair gives the outputs of loading under the run ISA."""
    from onebit import _C

    g = G([1, 3, 21, 19])
    stem = g.op(
        "conv2d",
        "input",
        attrs=conv_attrs(k=7, s=2, p=3, groups=1, activation="relu"),
        weight=g.t(RNG.standard_normal((40, 7, 7, 3)).astype(np.float32)),
        multiplier=g.t(RNG.uniform(0.5, 1.5, 40).astype(np.float32)),
        bias=g.t(RNG.standard_normal(40).astype(np.float32)),
    )
    out = g.op(
        "conv2d",
        stem,
        attrs=conv_attrs(k=1, p=0, groups=1, activation="none"),
        weight=g.t(RNG.standard_normal((70, 1, 1, 40)).astype(np.float32)),
        multiplier=g.t(RNG.uniform(0.5, 1.5, 70).astype(np.float32)),
        bias=g.t(RNG.standard_normal(70).astype(np.float32)),
    )
    g.write(tmp_path / "m.onebit", out, [1, 70, 11, 10])
    x = RNG.standard_normal((2, 3, 21, 19)).astype(np.float32)
    isas = [n for n in ("portable", "avx2", "avx512", "neon") if _C.isa_supported(n)]
    if len(isas) < 2:
        pytest.skip(f"this CPU runs one optimized ISA ({isas}): no other to switch to")
    before = _C.active_isa()
    try:
        loaded = {}
        for name in isas:
            _C.set_isa(name)
            loaded[name] = load(tmp_path / "m.onebit")
        for run_isa in isas:
            _C.set_isa(run_isa)
            want = loaded[run_isa].run(x)
            for load_isa in isas:
                got = loaded[load_isa].run(x)
                np.testing.assert_array_equal(got, want, err_msg=f"load {load_isa}, run {run_isa}")
    finally:
        _C.set_isa(before)


@pytest.mark.parametrize("engine_threads", [1, 2])
def test_float_convs_shared_by_many_threads(tmp_path, engine_threads):
    """8 Python threads call one model whose float convs hold weights packed at load (a 7x7
    stem read in place, a pointwise conv split over column panels, a depthwise conv): every
    output is the single-threaded one, bit for bit."""
    g = G([1, 3, 23, 21])
    stem = g.op(
        "conv2d", "input", attrs=conv_attrs(k=7, s=2, p=3, groups=1, activation="relu"),
        weight=g.t(RNG.standard_normal((48, 7, 7, 3)).astype(np.float32)),
        multiplier=g.t(RNG.uniform(0.5, 1.5, 48).astype(np.float32)),
        bias=g.t(RNG.standard_normal(48).astype(np.float32)),
    )
    dw = g.op(
        "conv2d", stem, attrs=conv_attrs(k=3, s=1, p=1, groups=48, activation="none"),
        weight=g.t(RNG.standard_normal((48, 3, 3, 1)).astype(np.float32)),
        multiplier=g.t(RNG.uniform(0.5, 1.5, 48).astype(np.float32)),
        bias=g.t(RNG.standard_normal(48).astype(np.float32)),
    )
    out = g.op(
        "conv2d", dw, attrs=conv_attrs(k=1, p=0, groups=1, activation="none"),
        weight=g.t(RNG.standard_normal((200, 1, 1, 48)).astype(np.float32)),
        multiplier=g.t(RNG.uniform(0.5, 1.5, 200).astype(np.float32)),
        bias=g.t(RNG.standard_normal(200).astype(np.float32)),
    )
    g.write(tmp_path / "m.onebit", out, [1, 200, 12, 11])
    m = load(tmp_path / "m.onebit", num_threads=engine_threads)
    one = load(tmp_path / "m.onebit", num_threads=1)
    inputs = [RNG.standard_normal((1 + i % 3, 3, 23, 21)).astype(np.float32) for i in range(24)]
    expected = [one.run(x) for x in inputs]
    assert_same_bits_from_threads(m, inputs, expected)


@pytest.mark.parametrize("kind", ["gelu", "gelu_tanh", "silu", "hardswish", "hardsigmoid", "sigmoid", "tanh"])
def test_activation_is_bit_identical_on_every_isa(kind, tmp_path):
    """The activation kernels are compiled once per ISA from one source (kernels/activation_impl.h)
    with IEEE operations only: every ISA gives the same bits, NaN and the extremes included."""
    x = np.concatenate(
        [
            RNG.standard_normal(4000) * 6,
            [np.nan, np.inf, -np.inf, 0.0, -0.0, 88.0, -88.0, 1e30, -1e30, 1e-40, -3.0, 3.0, -88.5, -89.0],
        ]
    ).astype(np.float32)[None]
    g = G(list(x.shape))
    out = g.op("activation", "input", attrs={"kind": kind})
    g.write(tmp_path / "m.onebit", out, list(x.shape))
    results = _bits_on_every_fast_isa(tmp_path / "m.onebit", x)
    for name, bits in results.items():
        np.testing.assert_array_equal(bits, results["portable"], err_msg=name)
    y = results["portable"].view(np.float32)[0]
    assert np.isnan(y[4000]) and np.all(np.isfinite(y[4003:]))
    want = run_reference({"inputs": [{"name": "input"}], "outputs": [{"name": out}], "nodes": g.nodes}, {}, x)
    # accuracy (kernels/activation_impl.h): 3e-7 relative; the GELUs 2e-6, and 1e-6 absolute in the
    # negative tail, where erf / tanh rounded to float32 (as PyTorch) decide the result
    ok = np.isfinite(x[0])
    gelu = kind.startswith("gelu")
    np.testing.assert_allclose(y[ok], want[0][ok], rtol=2e-6 if gelu else 3e-7, atol=1e-6 if gelu else 1e-30)
    if gelu:  # exactly 0 (sign +1, as the sign op reads -0) from where PyTorch's float32 formula gives 0
        deep = ok & (x[0] < (-5.6 if kind == "gelu" else -5.25))
        assert deep.sum() > 10 and np.all(y[deep] == 0)


@pytest.mark.parametrize("c", [1, 7, 16, 17, 64, 70])
def test_channel_ops_are_bit_identical_on_every_isa(c, tmp_path):
    """affine, prelu, relu, clip and scale run kernels/chanwise_impl.h compiled per ISA (4, 8 or
    16 lanes, and the remainders): every ISA gives the reference's bits, NaN, infinities, -0
    and subnormals included."""
    special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-40, -1e-40, 3e38, -3e38], np.float32)
    x = np.concatenate([RNG.standard_normal(40 * c).astype(np.float32) * 3, np.resize(special, 9 * c)])
    x = x.reshape(1, c, 7, 7)
    g = G(list(x.shape))
    y = g.op("affine", "input", scale=g.t(RNG.uniform(-2, 2, c).astype(np.float32)),
             shift=g.t(RNG.standard_normal(c).astype(np.float32)))
    y = g.op("prelu", y, slope=g.t(RNG.uniform(-0.5, 0.5, c).astype(np.float32)))
    a = g.op("clip", y, attrs={"min": -1.5, "max": 2.0})
    b = g.op("scale", g.op("relu", y), attrs={"value": -0.75})
    out = g.op("concat", a, b, y)
    g.write(tmp_path / "m.onebit", out, [1, 3 * c, 7, 7])
    results = _bits_on_every_fast_isa(tmp_path / "m.onebit", x)
    meta = {"inputs": [{"name": "input"}], "outputs": [{"name": out}], "nodes": g.nodes}
    want = run_reference(meta, g.ref, x)
    for name, bits in results.items():
        np.testing.assert_array_equal(bits, want.view(np.uint32), err_msg=name)


def _large_row_parallel(g, c):
    """relu, affine, add and three concats (bits at a word boundary, bits off it, float) on a
    value big enough to be split into row tasks (ops/common.h for_row_chunks)."""
    r = g.op("relu", "input")
    a = g.op("affine", r, scale=g.t(RNG.uniform(-2, 2, c).astype(np.float32)),
             shift=g.t(RNG.standard_normal(c).astype(np.float32)))
    s = g.op("add", a, "input")
    b64 = g.op("sign", g.op("concat", s, s), threshold=g.t(np.zeros(2 * c, np.float32)))  # 128 channels
    pick = np.zeros((37, 1, 1, c), np.float32)  # a 1x1 conv that copies 37 channels exactly
    pick[np.arange(37), 0, 0, np.arange(37) * 7 % c] = 1.0
    f37 = g.op("conv2d", "input", attrs=conv_attrs(k=1, p=0), weight=g.t(pick),
               multiplier=g.t(np.ones(37, np.float32)), bias=g.t(np.zeros(37, np.float32)))
    b37 = g.op("sign", f37, threshold=g.t(np.full(37, 0.1, np.float32)))
    bits = g.op("concat", b64, b37, b64)  # whole words; a partial word; then off the word boundary
    return g.op("concat", g.op("unpack", bits), s)


@pytest.mark.parametrize("threads", [1, 2])
def test_row_parallel_ops_match_reference_on_large_inputs(threads, isa, tmp_path):
    c = 64
    g = G([1, c, 48, 40])
    out = _large_row_parallel(g, c)
    x = RNG.standard_normal((2, c, 48, 40)).astype(np.float32)
    meta = {"inputs": [{"name": "input"}], "outputs": [{"name": out}], "nodes": g.nodes}
    want = run_reference(meta, g.ref, x)  # every step is exact in float32: bits must agree
    g.write(tmp_path / "m.onebit", out, [1, *want.shape[1:]])
    got = load(tmp_path / "m.onebit", num_threads=threads).run(x)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("c", [1, 2, 3, 4, 5, 67])
@pytest.mark.parametrize("hw", [(1, 1), (3, 5), (9, 7)])
def test_nchw_input_and_output_layout_is_exact(c, hw, tmp_path):
    # The engine runs NHWC: the input is transposed on entry (a special case for 1, 3 and
    # 4 channels, 4 RGB pixels per SSE step) and a 4-D output back. relu is exact, so any
    # misplaced value shows.
    g = G([1, c, *hw])
    out = g.op("relu", "input")
    x = RNG.standard_normal((2, c, *hw)).astype(np.float32)
    g.write(tmp_path / "m.onebit", out, [1, c, *hw])
    np.testing.assert_array_equal(load(tmp_path / "m.onebit", num_threads=1).run(x), np.maximum(x, 0))


@pytest.mark.parametrize("c", [1, 3, 4, 5])
@pytest.mark.parametrize("threads", [2, 3])
def test_nchw_input_copy_split_across_threads_is_exact(c, threads, tmp_path):
    # A large input is copied to NHWC by several threads, one run of pixels each; with a
    # batch of 3 the runs start and end inside a sample, and an odd pixel count leaves
    # each RGB run a remainder past its 4-pixel SSE steps.
    hw = (150, 149)
    g = G([1, c, *hw])
    out = g.op("relu", "input")
    x = RNG.standard_normal((3, c, *hw)).astype(np.float32)
    g.write(tmp_path / "m.onebit", out, [1, c, *hw])
    np.testing.assert_array_equal(load(tmp_path / "m.onebit", num_threads=threads).run(x), np.maximum(x, 0))


# (channels, h, w): a zero-padded bconv whose border corrections are made at load (a few
# KB, within the weights' size) and one whose corrections would outgrow its few weights
# (4000 output columns: 16 KB of column classes for 7 KB of weights), made per call.
@pytest.mark.parametrize("c,h,w", [(64, 9, 11), (1, 3, 4000)])
def test_zero_pad_corrections_at_load_or_per_call(c, h, w, isa, tmp_path):
    g = G([1, c, h, w])
    out = _bconv(g, c, 33, "float", pad_value=0.0, k=3, s=1, p=1, d=1)
    x = RNG.standard_normal((2, c, h, w)).astype(np.float32)
    meta = {"inputs": [{"name": "input"}], "outputs": [{"name": out}], "nodes": g.nodes}
    want = run_reference(meta, g.ref, x)
    g.write(tmp_path / "m.onebit", out, [1, *want.shape[1:]])
    for threads in (1, 2):
        got = load(tmp_path / "m.onebit", num_threads=threads).run(x)
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)
