"""Reference semantics of every engine op, in plain numpy.

This is the definition the fast engine is tested against: slow, obvious code.
Binary values are carried as float32 arrays of ±1 (the fast engine packs them
into bits). Integer results of binary convolutions are computed in float64,
which represents them exactly. Needs only numpy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["OPS", "decode_tensors", "run_reference"]


def _pad_nhwc(x: np.ndarray, padding: list[int], value: float) -> np.ndarray:
    left, right, top, bottom = padding
    if not any(padding):
        return x
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=value)


def _patches(x: np.ndarray, kernel: list[int], stride: list[int], dilation: list[int]) -> np.ndarray:
    """(N, Ho, Wo, kh, kw, C) view of the sliding windows of a padded NHWC array."""
    n, h, w, c = x.shape
    kh, kw = kernel
    sh, sw = stride
    dh, dw = dilation
    ho = (h - dh * (kh - 1) - 1) // sh + 1
    wo = (w - dw * (kw - 1) - 1) // sw + 1
    s = x.strides
    return np.lib.stride_tricks.as_strided(
        x,
        shape=(n, ho, wo, kh, kw, c),
        strides=(s[0], s[1] * sh, s[2] * sw, s[1] * dh, s[2] * dw, s[3]),
        writeable=False,
    )


def _conv(x: np.ndarray, w: np.ndarray, attrs: dict[str, Any], pad_value: float = 0.0) -> np.ndarray:
    """Convolution of NHWC x with OHWI w (groups supported), in float64."""
    xp = _pad_nhwc(x.astype(np.float64), attrs["padding"], pad_value)
    groups = attrs.get("groups", 1)
    p = _patches(xp, attrs["kernel"], attrs["stride"], attrs["dilation"])
    o = w.shape[0]
    cin_g = w.shape[3]
    og = o // groups
    outs = []
    for gi in range(groups):
        pg = p[..., gi * cin_g : (gi + 1) * cin_g]
        wg = w[gi * og : (gi + 1) * og].astype(np.float64)
        outs.append(np.einsum("nhwijc,oijc->nhwo", pg, wg, optimize=True))
    return np.concatenate(outs, axis=-1)


def _epilogue(acc: np.ndarray, node: dict[str, Any], P: dict[str, np.ndarray]) -> np.ndarray:
    if node["attrs"].get("output", "float") == "binary":
        d = P["direction"].astype(np.float64)
        t = P["threshold"].astype(np.float64)
        return np.where(d * (acc - t) >= 0, 1.0, -1.0).astype(np.float32)
    return (acc * P["multiplier"].astype(np.float64) + P["bias"].astype(np.float64)).astype(np.float32)


def _residual_scales(x: np.ndarray, bits: int, scale: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Tang's residual binarization of a float32 NHWC or NC array (quantizers.residual_sign).

    ``r_1 = x``, ``a_i = mean |r_i|``, ``s_i = sign(r_i)`` (sign(0) = +1), ``r_{i+1} = r_i - a_i s_i``
    in float32 as in training; the means are taken in float64 and rounded once: per channel (the
    last axis) over every sample and pixel for ``scale="channel"``, per sample for ``"sample"``.
    Returns the scales (broadcastable to x) and the ±1 planes.
    """
    r = x.astype(np.float32)
    n = r.shape[0]
    scales, planes = [], []
    for _ in range(bits):
        mag = np.abs(r).astype(np.float64)
        if scale == "sample":
            a = mag.reshape(n, -1).mean(axis=1).reshape((n,) + (1,) * (r.ndim - 1))
        else:
            a = mag.mean(axis=tuple(range(r.ndim - 1)))
        a = a.astype(np.float32)
        s = np.where(r >= 0, 1.0, -1.0).astype(np.float32)
        r = (r - a * s).astype(np.float32)
        scales.append(a)
        planes.append(s)
    return scales, planes


def _residual_dots(
    x: np.ndarray, node: dict[str, Any], dot: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """A binary layer with ``residual_bits`` k > 1: sum_i a_i[n] * dot(s_i) in float64, plane by plane."""
    scales, planes = _residual_scales(x, int(node["attrs"]["residual_bits"]), "sample")
    acc = np.zeros((), np.float64)
    for a, s in zip(scales, planes, strict=True):
        acc = acc + a.astype(np.float64) * dot(s)
    return acc


def _op_residual_sign(x, node, P):
    scales, planes = _residual_scales(x, int(node["attrs"]["bits"]), node["attrs"].get("scale", "channel"))
    out = np.zeros_like(x, dtype=np.float32)
    for a, s in zip(scales, planes, strict=True):
        out = (out + a * s).astype(np.float32)
    return out


def _op_sign(x, node, P):
    pos = x >= P["threshold"]
    if "flip" in P:  # +1 where x <= threshold on flipped channels
        pos = np.where(P["flip"].astype(bool), x <= P["threshold"], pos)
    return np.where(pos, 1.0, -1.0).astype(np.float32)


def _fused(
    y: np.ndarray, residual: list[np.ndarray], node: dict[str, Any], P: dict[str, np.ndarray]
) -> np.ndarray:
    """A conv's fused epilogue: ``activation(y + residual)`` as the separate add and relu ops;
    with ``post_scale`` / ``post_shift``, ``activation(y) * post_scale + post_shift + residual``
    as the separate relu, affine and add ops."""
    if "post_scale" in P:
        if node["attrs"].get("activation", "none") == "relu":
            y = _op_relu(y, node, {})
        y = _op_affine(y, node, {"scale": P["post_scale"], "shift": P["post_shift"]})
        return _op_add(y, residual[0], node, {}) if residual else y
    if residual:
        y = _op_add(y, residual[0], node, {})
    if node["attrs"].get("activation", "none") == "relu":
        y = _op_relu(y, node, {})
    return y


def _op_conv2d(x, *args):
    *residual, node, P = args
    return _fused(_epilogue(_conv(x, P["weight"], node["attrs"]), node, P), residual, node, P)


def _op_bconv2d(x, *args):
    *residual, node, P = args

    def dot(b: np.ndarray) -> np.ndarray:
        return _conv(b, P["weight"], node["attrs"], node["attrs"].get("pad_value", 1.0))

    if node["attrs"].get("residual_bits", 1) > 1:
        return _fused(_epilogue(_residual_dots(x, node, dot), node, P), residual, node, P)
    return _fused(_epilogue(dot(x), node, P), residual, node, P)


def _op_dense(x, node, P):
    return _epilogue(x.astype(np.float64) @ P["weight"].astype(np.float64).T, node, P)


def _op_bdense(x, node, P):
    if node["attrs"].get("residual_bits", 1) > 1:
        w = P["weight"].astype(np.float64).T
        return _epilogue(_residual_dots(x, node, lambda b: b.astype(np.float64) @ w), node, P)
    return _op_dense(x, node, P)


def _op_bnot(x, node, P):
    return np.where(P["mask"].astype(bool), -x, x).astype(np.float32)


def _op_unpack(x, node, P):
    return x.astype(np.float32)


def _op_affine(x, node, P):
    return (x * P["scale"] + P["shift"]).astype(np.float32)


def _op_mul_map(x, k, node, P):
    return (x * k).astype(np.float32)


def _op_xnor_k(x, node, P):
    a = np.abs(x).mean(axis=-1, keepdims=True)
    kh, kw = node["attrs"]["kernel"]
    box = np.full((1, kh, kw, 1), 1.0 / (kh * kw))
    return _conv(a, box, {**node["attrs"], "groups": 1}).astype(np.float32)


def _op_mean_abs(x, node, P):
    return np.abs(x).mean(axis=-1, keepdims=True).astype(np.float32)


def _op_relu(x, node, P):
    return np.maximum(x, 0).astype(np.float32)


def _op_prelu(x, node, P):
    return np.where(x >= 0, x, x * P["slope"]).astype(np.float32)


def _op_clip(x, node, P):
    return np.clip(x, node["attrs"]["min"], node["attrs"]["max"]).astype(np.float32)


def _op_scale(x, node, P):
    return (x * np.float32(node["attrs"]["value"])).astype(np.float32)


def _op_add(a, b, node, P):
    return (a + b).astype(np.float32)


def _op_concat(*args):
    *xs, node, P = args
    return np.concatenate(xs, axis=-1)


def _pool_out(n: int, k: int, s: int, p0: int, p1: int, ceil: bool) -> int:
    span = n + p0 + p1 - k
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= n + p0:  # last window must start inside the input or left padding
        out -= 1
    return out


def _pool(x: np.ndarray, attrs: dict[str, Any], reducer: str) -> np.ndarray:
    n, h, w, c = x.shape
    kh, kw = attrs["kernel"]
    sh, sw = attrs["stride"]
    left, right, top, bottom = attrs["padding"]
    ceil = attrs.get("ceil_mode", False)
    ho = _pool_out(h, kh, sh, top, bottom, ceil)
    wo = _pool_out(w, kw, sw, left, right, ceil)
    out = np.empty((n, ho, wo, c), np.float64)
    for i in range(ho):
        for j in range(wo):
            y0, x0 = i * sh - top, j * sw - left
            y1, x1 = y0 + kh, x0 + kw
            win = x[:, max(y0, 0) : min(y1, h), max(x0, 0) : min(x1, w), :].astype(np.float64)
            if reducer == "max":
                out[:, i, j] = win.max(axis=(1, 2))
            else:
                if attrs.get("count_include_pad", True):
                    # torch counts padding but not the ceil_mode overhang beyond it
                    cnt = (min(y1, h + bottom) - y0) * (min(x1, w + right) - x0)
                else:
                    cnt = win.shape[1] * win.shape[2]
                out[:, i, j] = win.sum(axis=(1, 2)) / cnt
    return out.astype(np.float32)


def _op_maxpool(x, node, P):
    return _pool(x, node["attrs"], "max")


_op_bmaxpool = _op_maxpool


def _op_avgpool(x, node, P):
    return _pool(x, node["attrs"], "avg")


def _op_global_avgpool(x, node, P):
    return x.mean(axis=(1, 2), keepdims=True, dtype=np.float64).astype(np.float32)


def _op_flatten(x, node, P):
    return x.reshape(x.shape[0], -1)


def _op_softmax(x, node, P):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


_ERF = np.vectorize(math.erf, otypes=[np.float64])
_K_TANH = math.sqrt(2.0 / math.pi)


def _f32(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float32).astype(np.float64)


# In float64, but the GELUs as PyTorch's float32 formulas x/2 (1 + erf(x/sqrt 2)) and
# x/2 (1 + tanh u) round them: erf and tanh rounded to float32 before the 1 + ...,
# so that far in the negative tail the result is 0 (-0, sign +1), not a tiny negative;
# SiLU likewise is -0 where PyTorch's float32 exp(-x) overflows.
_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "gelu": lambda x: 0.5 * x * (1.0 + _f32(_ERF(x / math.sqrt(2.0)))),
    "gelu_tanh": lambda x: 0.5 * x * (1.0 + _f32(np.tanh(_K_TANH * (x + 0.044715 * x**3)))),
    "silu": lambda x: np.where(x < -88.7228394, x * 0.0, x / (1.0 + np.exp(-x))),  # float32: x / inf
    "hardswish": lambda x: x * np.clip(x + 3.0, 0.0, 6.0) / 6.0,
    "hardsigmoid": lambda x: np.clip(x + 3.0, 0.0, 6.0) / 6.0,
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "tanh": np.tanh,
}


def _op_activation(x, node, P):
    with np.errstate(over="ignore"):
        return _ACTIVATIONS[node["attrs"]["kind"]](x.astype(np.float64)).astype(np.float32)


def _normalize(x: np.ndarray, axes: tuple[int, ...], eps: float) -> np.ndarray:
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


def _op_layer_norm(x, node, P):
    y = _normalize(x.astype(np.float64), (-1,), node["attrs"].get("eps", 1e-5))
    return (y * P["scale"] + P["shift"]).astype(np.float32)


def _op_group_norm(x, node, P):
    g = node["attrs"]["groups"]
    x64 = x.astype(np.float64)
    shape = x64.shape  # (N, H, W, C) or (N, C)
    grouped = x64.reshape(shape[0], -1, g, shape[-1] // g)
    y = _normalize(grouped, (1, 3), node["attrs"].get("eps", 1e-5)).reshape(shape)
    return (y * P["scale"] + P["shift"]).astype(np.float32)


def _source_index(n_in: int, n_out: int, scale: float, mode: str, align: bool) -> tuple[np.ndarray, ...]:
    """Per output index: (i0, i1, l0, l1) as torch's CPU upsampling computes them in float32."""
    d = np.arange(n_out)
    s = np.float32(scale)
    if mode == "nearest_exact":  # floorf of (d + 0.5) * scale, computed in double
        i0 = np.minimum(np.floor(((d + 0.5) * np.float64(s)).astype(np.float32)).astype(np.int64), n_in - 1)
        return i0, i0, np.ones(n_out, np.float32), np.zeros(n_out, np.float32)
    if mode == "nearest":
        if n_out == n_in:
            i0 = d
        elif n_out == 2 * n_in:
            i0 = d // 2
        else:
            i0 = np.minimum(np.floor(d.astype(np.float32) * s).astype(np.int64), n_in - 1)
        return i0, i0, np.ones(n_out, np.float32), np.zeros(n_out, np.float32)
    if n_out == n_in:
        return d, d, np.ones(n_out, np.float32), np.zeros(n_out, np.float32)
    df = d.astype(np.float32)
    r = s * df if align else np.maximum(s * (df + np.float32(0.5)) - np.float32(0.5), np.float32(0))
    i0 = np.minimum(np.floor(r).astype(np.int64), n_in - 1)
    l1 = np.clip(r - i0.astype(np.float32), 0, 1).astype(np.float32)
    i1 = np.where(i0 < n_in - 1, i0 + 1, i0)
    return i0, i1, (np.float32(1) - l1), l1


def _op_upsample(x, node, P):
    a = node["attrs"]
    mode, align = a["mode"], a.get("align_corners", False)
    (oh, ow), (_, h, w, _) = a["size"], x.shape
    h0, h1, lh0, lh1 = _source_index(h, oh, a["scale_h"], mode, align)
    w0, w1, lw0, lw1 = _source_index(w, ow, a["scale_w"], mode, align)
    x64 = x.astype(np.float64)
    lw0, lw1 = lw0[None, None, :, None], lw1[None, None, :, None]
    top = x64[:, h0][:, :, w0] * lw0 + x64[:, h0][:, :, w1] * lw1
    bot = x64[:, h1][:, :, w0] * lw0 + x64[:, h1][:, :, w1] * lw1
    return (top * lh0[None, :, None, None] + bot * lh1[None, :, None, None]).astype(np.float32)


OPS: dict[str, Callable[..., np.ndarray]] = {
    name[4:]: fn for name, fn in globals().items() if name.startswith("_op_") and callable(fn)
}


def run_reference(meta: dict[str, Any], tensors: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Run an engine graph on an NCHW (or NC) float input with the reference ops."""
    env: dict[str, np.ndarray] = {"input": x.transpose(0, 2, 3, 1) if x.ndim == 4 else x}
    for node in meta["nodes"]:
        fn = OPS.get(node["op"])
        if fn is None:
            raise ValueError(f"reference engine has no op {node['op']!r}")
        P = {role: tensors[name] for role, name in node["params"].items()}
        args = [env[i] for i in node["inputs"]]
        env[node["outputs"][0]] = fn(*args, node, P)
    y = env[meta["outputs"][0]["name"]]
    return y.transpose(0, 3, 1, 2) if y.ndim == 4 else y


def decode_tensors(meta: dict[str, Any], tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A file's tensors as the reference ops take them: packed signs as float ±1, fp16 as float32.

    ``meta, tensors`` as :func:`onebit.runtime.format.read_model_file` returns them
    (``mf.meta``, ``mf.tensors``).
    """
    out: dict[str, np.ndarray] = {}
    encodings = meta.get("encodings", {})
    for name, arr in tensors.items():
        enc = encodings.get(name, {})
        if enc.get("encoding") == "packed_sign":
            c = int(enc["channels"])
            words = np.ascontiguousarray(arr, dtype="<u8")
            as_bytes = words.view(np.uint8).reshape(*words.shape[:-1], -1)
            bits = np.unpackbits(as_bytes, axis=-1, bitorder="little")
            out[name] = np.where(bits[..., :c] == 1, -1.0, 1.0).astype(np.float32)
        elif arr.dtype == np.float16:
            out[name] = arr.astype(np.float32)
        else:
            out[name] = arr
    return out
