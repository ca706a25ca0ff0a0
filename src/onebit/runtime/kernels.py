"""Compute kernels of the onebit runtime: bit packing, binary conv/GEMM, float ops.

Everything works on numpy arrays in NHWC layout and calls onebit's C++ engine
(``onebit._C``); this module never imports PyTorch.

Bit convention (as in Larq Compute Engine): a *set* bit means -1, a clear bit
+1, so packing a float is a sign test (``x < 0`` -> bit set; 0 packs as +1).
Channel ``c`` of a pixel is bit ``c % 64`` of word ``c // 64``; bits past the
last channel are always 0, so any channel count is exact.

The instruction set (AVX-512 VPOPCNTDQ, AVX2, portable C++, or the naive
reference kernel) is chosen at run time from the CPU; ``ONEBIT_ISA`` or
:func:`set_isa` forces one. Threads: :func:`set_num_threads` or
``num_threads=`` per call (default: ``ONEBIT_NUM_THREADS`` or all CPUs of the
process). Bad arguments raise ``TypeError``/``ValueError`` naming the problem.
See docs/kernels.md for the full contract.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from onebit import _C

__all__ = [
    "PackedWeights",
    "active_isa",
    "avgpool_f32",
    "batchnorm_f32",
    "bconv2d",
    "bgemm",
    "conv2d_f32",
    "conv_output_size",
    "dense_f32",
    "fold_threshold",
    "get_num_threads",
    "kernel_info",
    "maxpool_f32",
    "maxpool_packed",
    "pack_bits",
    "pack_weights",
    "pack_weights_from_bits",
    "prelu_f32",
    "rprelu_f32",
    "set_isa",
    "set_num_threads",
    "sign_threshold_pack",
    "unpack_bits",
]

PackedWeights = _C.PackedWeights

IntPair = int | Sequence[int]
Padding = int | Sequence[int] | str


# --------------------------------------------------------------------------- helpers


# Argument checks run on every call, so they keep to cheap operations (a 7x7
# 512-channel layer takes ~20 us: a few us of Python would show).


def _array(x: object, name: str, dtypes: tuple[type, ...], ndims: tuple[int, ...]) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(x).__name__}")
    if x.dtype.type not in dtypes:
        want = " or ".join(np.dtype(d).name for d in dtypes)
        raise TypeError(f"{name} must have dtype {want}, got {x.dtype}")
    if x.ndim not in ndims:
        want = " or ".join(str(d) for d in ndims)
        raise ValueError(f"{name} must be {want}-D, got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name} is empty (shape {x.shape})")
    if not x.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (use np.ascontiguousarray)")
    return x


def _vector(x: object, name: str, n: int, dtype: type) -> np.ndarray | None:
    if x is None:
        return None
    a = np.asarray(x)
    if a.ndim == 0:
        a = np.full(n, a)
    if a.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {a.shape}")
    if a.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be numeric, got {a.dtype}")
    return np.ascontiguousarray(a, dtype=dtype)


def _pair(v: IntPair, name: str, minimum: int = 1) -> tuple[int, int]:
    if type(v) is int and v >= minimum:
        return (v, v)
    t = (v, v) if isinstance(v, (int, np.integer)) else tuple(v)
    if len(t) != 2 or any(not isinstance(i, (int, np.integer)) for i in t):
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    if min(t) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v!r}")
    return int(t[0]), int(t[1])


def _padding(
    padding: Padding,
    hw: tuple[int, int],
    k: tuple[int, int],
    s: tuple[int, int],
    d: tuple[int, int],
) -> tuple[int, int, int, int]:
    """Normalize padding to (top, bottom, left, right)."""
    if type(padding) is int and padding >= 0:
        return (padding, padding, padding, padding)
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":  # TensorFlow/Larq rule: extra pixel at the bottom/right
            out = []
            for i in range(2):
                o = -(-hw[i] // s[i])
                total = max((o - 1) * s[i] + (k[i] - 1) * d[i] + 1 - hw[i], 0)
                out += [total // 2, total - total // 2]
            return (out[0], out[1], out[2], out[3])
        raise ValueError(f"padding must be 'same', 'valid', an int or a tuple, got {padding!r}")
    t = (padding,) if isinstance(padding, (int, np.integer)) else tuple(padding)
    if any(not isinstance(i, (int, np.integer)) for i in t) or len(t) not in (1, 2, 4):
        raise ValueError(f"padding must be an int, (ph, pw) or (top, bottom, left, right): {padding!r}")
    if min(t) < 0:
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    if len(t) == 1:
        return (int(t[0]),) * 4  # type: ignore[return-value]
    if len(t) == 2:
        return (int(t[0]), int(t[0]), int(t[1]), int(t[1]))
    return (int(t[0]), int(t[1]), int(t[2]), int(t[3]))


def _threads(num_threads: int | None) -> int:
    if num_threads is None:
        return 0
    if type(num_threads) is int and num_threads > 0:
        return num_threads
    if not isinstance(num_threads, (int, np.integer)) or num_threads < 1:
        raise ValueError(f"num_threads must be a positive int or None, got {num_threads!r}")
    return int(num_threads)


def _act(activation: str | None, prelu_slope: object, n: int) -> tuple[str, np.ndarray | None]:
    if activation is None and prelu_slope is None:
        return "none", None
    if activation not in (None, "relu", "prelu"):
        raise ValueError(f"activation must be None, 'relu' or 'prelu', got {activation!r}")
    slope = _vector(prelu_slope, "prelu_slope", n, np.float32)
    if activation == "prelu" and slope is None:
        raise ValueError("activation='prelu' needs prelu_slope")
    return (activation or "none"), slope


def _out(out: np.ndarray | None, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype=dtype)
    if type(out) is np.ndarray and out.shape == shape and out.dtype.type is dtype and out.flags.c_contiguous:
        return out
    _array(out, "out", (dtype,), (len(shape),))
    if out.shape != shape:
        raise ValueError(f"out must have shape {shape}, got {out.shape}")
    return out


def conv_output_size(size: int, kernel: int, stride: int, pad_a: int, pad_b: int, dilation: int = 1) -> int:
    """Output length of a convolution/pool along one axis (floor rule, as torch)."""
    return (size + pad_a + pad_b - dilation * (kernel - 1) - 1) // stride + 1


# --------------------------------------------------------------------------- settings


def set_num_threads(n: int | None) -> None:
    """Set the default thread count of all kernels (None: back to the default).

    The engine uses its own small persistent pool, not numpy's BLAS; keep
    ``n`` + BLAS threads <= cores if you interleave both.
    """
    _C.set_num_threads(0 if n is None else _threads(n))


def get_num_threads() -> int:
    """Default thread count of the kernels."""
    return int(_C.get_num_threads())


def active_isa() -> str:
    """Instruction set in use: 'amx' (opt-in), 'avx512', 'avx2', 'neon', 'portable' or 'reference'."""
    return str(_C.active_isa())


def set_isa(name: str) -> None:
    """Force an instruction set for this process (tests, benchmarks).

    Raises ValueError for unknown names or sets this CPU lacks.
    """
    _C.set_isa(name)


def kernel_info() -> dict[str, str]:
    """Which micro-kernels the active instruction set selected (for logs)."""
    return dict(_C.kernel_names())


# --------------------------------------------------------------------------- packing


def pack_bits(x: np.ndarray, *, num_threads: int | None = None) -> np.ndarray:
    """Pack float32/int8 activations (..., C) into sign bits (..., ceil(C/64)) uint64.

    Bit set (= -1) iff ``x < 0``; zero packs as +1. Works on NHWC tensors and
    (N, C) matrices alike: the last axis is packed.
    """
    x = _array(x, "x", (np.float32, np.int8), (1, 2, 3, 4, 5))
    c = x.shape[-1]
    out = np.empty((*x.shape[:-1], (c + 63) // 64), dtype=np.uint64)
    if x.dtype == np.float32:
        _C.pack_f32(x, c, None, out, _threads(num_threads))
    else:
        _C.pack_i8(x, c, out, _threads(num_threads))
    return out


def sign_threshold_pack(
    x: np.ndarray, threshold: np.ndarray | float, *, num_threads: int | None = None
) -> np.ndarray:
    """Binarize float32 activations with per-channel thresholds, straight to bits.

    Bit set (= -1) iff ``x[..., c] < threshold[c]``. This is sign() after a
    per-channel shift (e.g. ReActNet's RSign, or BN folded before a sign).
    """
    x = _array(x, "x", (np.float32,), (1, 2, 3, 4, 5))
    c = x.shape[-1]
    thr = _vector(threshold, "threshold", c, np.float32)
    out = np.empty((*x.shape[:-1], (c + 63) // 64), dtype=np.uint64)
    _C.pack_f32(x, c, thr, out, _threads(num_threads))
    return out


def unpack_bits(p: np.ndarray, channels: int, dtype: type = np.float32) -> np.ndarray:
    """Inverse of :func:`pack_bits`: (..., W) uint64 -> (..., channels) of +-1."""
    p = _array(p, "p", (np.uint64,), (1, 2, 3, 4, 5))
    if not isinstance(channels, (int, np.integer)) or channels < 1:
        raise ValueError(f"channels must be a positive int, got {channels!r}")
    if p.shape[-1] != (channels + 63) // 64:
        raise ValueError(
            f"{channels} channels need {(channels + 63) // 64} words, packed array has {p.shape[-1]}"
        )
    if np.dtype(dtype) == np.float32:
        out = np.empty((*p.shape[:-1], channels), dtype=np.float32)
        _C.unpack_f32(p, int(channels), out)
    elif np.dtype(dtype) == np.int8:
        out = np.empty((*p.shape[:-1], channels), dtype=np.int8)
        _C.unpack_i8(p, int(channels), out)
    else:
        raise TypeError(f"dtype must be float32 or int8, got {np.dtype(dtype)}")
    return out


def pack_weights(
    w: np.ndarray, *, layout: Literal["OHWI", "OIHW"] = "OHWI", groups: int = 1
) -> PackedWeights:
    """Pack binary filters once into the micro-kernels' layout.

    ``w``: float32/int8 filters (signs are taken: w < 0 -> -1), 4-D in ``layout``
    OHWI (TF/LCE) or OIHW (PyTorch), with I = in_channels // groups; or 2-D
    (out, in) for :func:`bgemm`. Returns an opaque :class:`PackedWeights`
    (32 output channels interleaved per 64-bit word of K, plus per-tap weight
    sums for exact zero padding).
    """
    w = _array(w, "w", (np.float32, np.int8, np.float64), (2, 4))
    if w.ndim == 2:
        w = w[:, None, None, :]
    elif layout == "OIHW":
        w = w.transpose(0, 2, 3, 1)
    elif layout != "OHWI":
        raise ValueError(f"layout must be 'OHWI' or 'OIHW', got {layout!r}")
    if not isinstance(groups, (int, np.integer)) or groups < 1 or w.shape[0] % groups:
        raise ValueError(f"groups={groups!r} must be a positive divisor of out_channels {w.shape[0]}")
    return _C.pack_weights_ohwi(np.ascontiguousarray(w, dtype=np.float32), int(groups))


def pack_weights_from_bits(bits: np.ndarray, in_channels: int, *, groups: int = 1) -> PackedWeights:
    """Like :func:`pack_weights`, from filters whose signs are already packed.

    ``bits``: uint64 (O, kh, kw, ceil(I/64)) with I = ``in_channels`` per group, packed
    along I as :func:`pack_bits` does (bit set = -1, padding bits 0), i.e. the layout
    stored in .onebit files. Never expands the filters to one byte or float per weight.
    """
    bits = _array(bits, "bits", (np.uint64,), (4,))
    if not isinstance(in_channels, (int, np.integer)) or in_channels < 1:
        raise ValueError(f"in_channels must be a positive int, got {in_channels!r}")
    if not isinstance(groups, (int, np.integer)) or groups < 1 or bits.shape[0] % groups:
        raise ValueError(f"groups={groups!r} must be a positive divisor of out_channels {bits.shape[0]}")
    return _C.pack_weights_bits(bits, int(in_channels), int(groups))


def fold_threshold(multiplier: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fold a per-channel affine output stage into integer thresholds for bit output.

    For integer dot products ``d``, returns ``(threshold int32, flip bool)`` such
    that the packed output bit (set = -1) equals ``multiplier*d + bias < 0``
    exactly (in real arithmetic): ``d < threshold`` where ``multiplier > 0``,
    ``d > threshold`` where ``multiplier < 0`` (flip), constant where it is 0.
    """
    m = np.asarray(multiplier, dtype=np.float64).ravel()
    b = np.asarray(bias, dtype=np.float64).ravel()
    if m.shape != b.shape:
        raise ValueError(f"multiplier {m.shape} and bias {b.shape} differ in shape")
    big = np.iinfo(np.int32).max
    with np.errstate(divide="ignore", invalid="ignore"):
        x = -b / m
    thr = np.where(m > 0, np.ceil(x), np.floor(x))
    thr = np.where(m == 0, np.where(b < 0, big, -big), thr)  # d < big: always -1
    thr = np.clip(np.nan_to_num(thr, nan=0.0), -big, big).astype(np.int32)
    flip = m < 0
    return thr, flip


# --------------------------------------------------------------------------- binary ops


def bconv2d(
    x_packed: np.ndarray,
    weights: PackedWeights,
    *,
    in_channels: int,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    pad_value: int = 1,
    groups: int | None = None,
    multiplier: np.ndarray | float | None = None,
    bias: np.ndarray | float | None = None,
    threshold: np.ndarray | None = None,
    flip: np.ndarray | None = None,
    activation: Literal["relu", "prelu"] | None = None,
    prelu_slope: np.ndarray | float | None = None,
    output: Literal["float", "bits"] | None = None,
    out: np.ndarray | None = None,
    num_threads: int | None = None,
) -> np.ndarray:
    """Binary 2-D convolution of packed NHWC activations with packed filters.

    ``x_packed``: uint64 (N, H, W, ceil(in_channels/64)) from :func:`pack_bits`.
    ``pad_value``: +1 or -1 (the trained layer padded with that value) or 0
    (zero padding: padded taps contribute nothing; corrected exactly).
    ``padding``: int, (ph, pw), (top, bottom, left, right), 'same' or 'valid'.

    With ``d`` the exact +-1 dot product (an integer in [-K, K], K = kh*kw*Cin/groups):

    * ``output='float'`` (default): ``y = float(d)*multiplier[c]; y += bias[c]``, then
      relu or prelu (``y<0: y*prelu_slope[c]``); float32 (N, OH, OW, OC).
    * ``output='bits'`` (default when ``threshold`` is given): bit set (-1) iff
      ``d < threshold[c]``, or ``d > threshold[c]`` where ``flip[c]``; uint64
      (N, OH, OW, ceil(OC/64)), ready for the next binary layer. Use
      :func:`fold_threshold` to turn BN/multiplier+bias into thresholds.
    """
    x_packed = _array(x_packed, "x_packed", (np.uint64,), (4,))
    if not isinstance(weights, PackedWeights):
        raise TypeError("weights must come from pack_weights()")
    if not isinstance(in_channels, (int, np.integer)) or in_channels < 1:
        raise ValueError(f"in_channels must be a positive int, got {in_channels!r}")
    if x_packed.shape[3] != (in_channels + 63) // 64:
        raise ValueError(
            f"x_packed has {x_packed.shape[3]} words per pixel but in_channels="
            f"{in_channels} needs {(in_channels + 63) // 64}"
        )
    if groups is not None and groups != weights.groups:
        raise ValueError(f"groups={groups} but the weights were packed with groups={weights.groups}")
    if in_channels != weights.in_channels_per_group * weights.groups:
        raise ValueError(
            f"in_channels={in_channels} does not match the weights "
            f"({weights.in_channels_per_group} per group x {weights.groups} groups)"
        )
    if pad_value not in (1, -1, 0):
        raise ValueError(f"pad_value must be +1, -1 or 0, got {pad_value!r}")
    s = _pair(stride, "stride")
    d = _pair(dilation, "dilation")
    k = (weights.kernel_h, weights.kernel_w)
    n, h, w_, _ = x_packed.shape
    pad = _padding(padding, (h, w_), k, s, d)
    if h + pad[0] + pad[1] < d[0] * (k[0] - 1) + 1 or w_ + pad[2] + pad[3] < d[1] * (k[1] - 1) + 1:
        raise ValueError(f"kernel {k} with dilation {d} does not fit the padded input {h}x{w_}")
    oh = conv_output_size(h, k[0], s[0], pad[0], pad[1], d[0])
    ow = conv_output_size(w_, k[1], s[1], pad[2], pad[3], d[1])
    oc = weights.out_channels
    if output is None:
        output = "bits" if threshold is not None else "float"
    if output not in ("float", "bits"):
        raise ValueError(f"output must be 'float' or 'bits', got {output!r}")
    act, slope = _act(activation, prelu_slope, oc)
    mult = _vector(multiplier, "multiplier", oc, np.float32)
    b = _vector(bias, "bias", oc, np.float32)
    thr = _vector(threshold, "threshold", oc, np.int32)
    fl = _vector(flip, "flip", oc, np.uint8)
    if output == "bits":
        if act != "none":
            raise ValueError(
                "activation applies to float output only (a relu/prelu before "
                "a sign is folded into the threshold)"
            )
        if mult is not None or b is not None:
            raise ValueError(
                "output='bits' takes threshold/flip; fold multiplier and bias with fold_threshold()"
            )
        res = _out(out, (n, oh, ow, (oc + 63) // 64), np.uint64)
    else:
        if thr is not None or fl is not None:
            raise ValueError("threshold/flip need output='bits'")
        res = _out(out, (n, oh, ow, oc), np.float32)
    _C.bconv2d(
        x_packed,
        weights,
        int(in_channels),
        s,
        pad,
        d,
        int(pad_value),
        output == "bits",
        act,
        mult,
        b,
        slope,
        thr,
        fl,
        res,
        _threads(num_threads),
    )
    return res


def bgemm(
    a_packed: np.ndarray,
    weights: PackedWeights,
    k_bits: int,
    *,
    multiplier: np.ndarray | float | None = None,
    bias: np.ndarray | float | None = None,
    threshold: np.ndarray | None = None,
    flip: np.ndarray | None = None,
    activation: Literal["relu", "prelu"] | None = None,
    prelu_slope: np.ndarray | float | None = None,
    output: Literal["float", "bits"] | None = None,
    out: np.ndarray | None = None,
    num_threads: int | None = None,
) -> np.ndarray:
    """Binary GEMM: (M, ceil(K/64)) packed rows times packed (N, K) weights.

    ``weights`` from ``pack_weights(w2d)`` with w2d of shape (N, K). Output
    stage as in :func:`bconv2d`: float32 (M, N) or packed bits (M, ceil(N/64)).
    """
    a_packed = _array(a_packed, "a_packed", (np.uint64,), (2,))
    if not isinstance(weights, PackedWeights):
        raise TypeError("weights must come from pack_weights()")
    if (weights.kernel_h, weights.kernel_w, weights.groups) != (1, 1, 1):
        raise ValueError("bgemm weights must be packed from a 2-D (N, K) matrix")
    if k_bits != weights.in_channels_per_group:
        raise ValueError(f"k_bits={k_bits} but the weights have K={weights.in_channels_per_group}")
    m = a_packed.shape[0]
    x4 = a_packed.reshape(1, m, 1, a_packed.shape[1])
    oc = weights.out_channels
    if output is None:
        output = "bits" if threshold is not None else "float"
    if out is not None:
        want = (m, oc) if output == "float" else (m, (oc + 63) // 64)
        _out(out, want, np.float32 if output == "float" else np.uint64)
        out = out.reshape(1, m, 1, want[1])
    res = bconv2d(
        x4,
        weights,
        in_channels=int(k_bits),
        multiplier=multiplier,
        bias=bias,
        threshold=threshold,
        flip=flip,
        activation=activation,
        prelu_slope=prelu_slope,
        output=output,
        out=out,
        num_threads=num_threads,
    )
    return res.reshape(m, res.shape[3])


def maxpool_packed(
    x_packed: np.ndarray,
    channels: int,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: Padding = 0,
    *,
    num_threads: int | None = None,
) -> np.ndarray:
    """Max-pool on packed +-1 activations: max of signs = AND of the sign bits.

    Padded positions are ignored (as torch's max_pool2d). Returns packed bits.
    """
    x_packed = _array(x_packed, "x_packed", (np.uint64,), (4,))
    if x_packed.shape[3] != (channels + 63) // 64:
        raise ValueError(
            f"x_packed has {x_packed.shape[3]} words per pixel, "
            f"{channels} channels need {(channels + 63) // 64}"
        )
    k, s, pad, oh, ow = _pool_geom(x_packed.shape, kernel_size, stride, padding)
    out = np.empty((x_packed.shape[0], oh, ow, x_packed.shape[3]), dtype=np.uint64)
    _C.maxpool_packed(x_packed, int(channels), k, s, pad, out, _threads(num_threads))
    return out


def _pool_geom(
    shape: tuple[int, ...], kernel_size: IntPair, stride: IntPair | None, padding: Padding
) -> tuple:
    k = _pair(kernel_size, "kernel_size")
    s = k if stride is None else _pair(stride, "stride")
    pad = _padding(padding, (shape[1], shape[2]), k, s, (1, 1))
    if max(pad[0], pad[1]) * 2 > k[0] or max(pad[2], pad[3]) * 2 > k[1]:
        raise ValueError(f"padding {padding!r} must be at most half the kernel size {k}")
    if shape[1] + pad[0] + pad[1] < k[0] or shape[2] + pad[2] + pad[3] < k[1]:
        raise ValueError(f"pooling window {k} is larger than the padded input")
    oh = conv_output_size(shape[1], k[0], s[0], pad[0], pad[1])
    ow = conv_output_size(shape[2], k[1], s[1], pad[2], pad[3])
    return k, s, pad, oh, ow


# --------------------------------------------------------------------------- float ops


def conv2d_f32(
    x: np.ndarray,
    w: np.ndarray,
    bias: np.ndarray | None = None,
    *,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    layout: Literal["OHWI", "OIHW"] = "OHWI",
    activation: Literal["relu", "prelu"] | None = None,
    prelu_slope: np.ndarray | float | None = None,
    out: np.ndarray | None = None,
    num_threads: int | None = None,
) -> np.ndarray:
    """Float convolution, NHWC float32, zero padding (e.g. the first layer, stems).

    ``w`` in OHWI (or OIHW) layout with I = in_channels // groups.
    groups = 1: an AVX-512/AVX2 FMA GEMM over the kernel rows read in place
    (kh * kw * C <= 256, no dilation along x: stems), else over an im2col copy
    in 256-deep blocks; the same sums either way. groups = in_channels
    = out_channels (depthwise, e.g. QuickNet's stem, BlurPool): a direct
    per-channel kernel. Other groups: one GEMM per group.
    """
    x = _array(x, "x", (np.float32,), (4,))
    w = _array(w, "w", (np.float32,), (4,))
    if layout == "OIHW":
        w = np.ascontiguousarray(w.transpose(0, 2, 3, 1))
    elif layout != "OHWI":
        raise ValueError(f"layout must be 'OHWI' or 'OIHW', got {layout!r}")
    cin, oc = x.shape[3], w.shape[0]
    if not isinstance(groups, (int, np.integer)) or groups < 1 or cin % groups or oc % groups:
        raise ValueError(f"groups={groups!r} must divide in_channels {cin} and out_channels {oc}")
    if w.shape[3] * groups != cin:
        raise ValueError(
            f"weights expect {w.shape[3]} input channels per group x {groups} groups, x has {x.shape[3]}"
        )
    s = _pair(stride, "stride")
    d = _pair(dilation, "dilation")
    k = (w.shape[1], w.shape[2])
    pad = _padding(padding, (x.shape[1], x.shape[2]), k, s, d)
    if (
        x.shape[1] + pad[0] + pad[1] < d[0] * (k[0] - 1) + 1
        or x.shape[2] + pad[2] + pad[3] < d[1] * (k[1] - 1) + 1
    ):
        raise ValueError(f"kernel {k} with dilation {d} does not fit the padded input")
    oh = conv_output_size(x.shape[1], k[0], s[0], pad[0], pad[1], d[0])
    ow = conv_output_size(x.shape[2], k[1], s[1], pad[2], pad[3], d[1])
    act, slope = _act(activation, prelu_slope, oc)
    b = _vector(bias, "bias", oc, np.float32)
    res = _out(out, (x.shape[0], oh, ow, oc), np.float32)
    nt = _threads(num_threads)
    if groups == 1:
        _C.conv2d_f32(x, w, b, s, pad, d, act, slope, res, nt)
    elif groups == cin == oc:
        w_hwc = np.ascontiguousarray(w[:, :, :, 0].transpose(1, 2, 0))
        _C.depthwise_conv2d_f32(x, w_hwc, b, s, pad, d, act, slope, res, nt)
    else:
        cg, og = cin // groups, oc // groups
        for g in range(groups):
            xg = np.ascontiguousarray(x[..., g * cg : (g + 1) * cg])
            wg = np.ascontiguousarray(w[g * og : (g + 1) * og])
            yg = np.empty((x.shape[0], oh, ow, og), np.float32)
            _C.conv2d_f32(
                xg,
                wg,
                None if b is None else b[g * og : (g + 1) * og].copy(),
                s,
                pad,
                d,
                act,
                None if slope is None else slope[g * og : (g + 1) * og].copy(),
                yg,
                nt,
            )
            res[..., g * og : (g + 1) * og] = yg
    return res


def dense_f32(
    x: np.ndarray,
    w: np.ndarray,
    bias: np.ndarray | None = None,
    *,
    activation: Literal["relu", "prelu"] | None = None,
    prelu_slope: np.ndarray | float | None = None,
    out: np.ndarray | None = None,
    num_threads: int | None = None,
) -> np.ndarray:
    """Float dense layer: ``x (N, K) @ w.T + bias`` with ``w`` of shape (out, K)."""
    x = _array(x, "x", (np.float32,), (2,))
    w = _array(w, "w", (np.float32,), (2,))
    if w.shape[1] != x.shape[1]:
        raise ValueError(f"w has {w.shape[1]} inputs, x has {x.shape[1]} features")
    act, slope = _act(activation, prelu_slope, w.shape[0])
    res = _out(out, (x.shape[0], w.shape[0]), np.float32)
    _C.dense_f32(x, w, _vector(bias, "bias", w.shape[0], np.float32), act, slope, res, _threads(num_threads))
    return res


def maxpool_f32(
    x: np.ndarray,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: Padding = 0,
    *,
    num_threads: int | None = None,
) -> np.ndarray:
    """Float max-pool, NHWC (padded positions ignored, as torch)."""
    x = _array(x, "x", (np.float32,), (4,))
    k, s, pad, oh, ow = _pool_geom(x.shape, kernel_size, stride, padding)
    out = np.empty((x.shape[0], oh, ow, x.shape[3]), dtype=np.float32)
    _C.maxpool_f32(x, k, s, pad, out, _threads(num_threads))
    return out


def avgpool_f32(
    x: np.ndarray,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: Padding = 0,
    *,
    count_include_pad: bool = True,
    num_threads: int | None = None,
) -> np.ndarray:
    """Float average pool, NHWC (``count_include_pad`` as in torch)."""
    x = _array(x, "x", (np.float32,), (4,))
    k, s, pad, oh, ow = _pool_geom(x.shape, kernel_size, stride, padding)
    out = np.empty((x.shape[0], oh, ow, x.shape[3]), dtype=np.float32)
    _C.avgpool_f32(x, k, s, pad, bool(count_include_pad), out, _threads(num_threads))
    return out


def batchnorm_f32(x: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Inference BatchNorm folded to ``x * scale[c] + shift[c]`` (last axis = channels)."""
    x = _array(x, "x", (np.float32,), (1, 2, 3, 4, 5))
    c = x.shape[-1]
    sc = _vector(scale, "scale", c, np.float32)
    sh = _vector(shift, "shift", c, np.float32)
    out = x * sc
    out += sh
    return out


def prelu_f32(x: np.ndarray, slope: np.ndarray | float) -> np.ndarray:
    """PReLU with per-channel slope (last axis): ``x if x >= 0 else slope*x``."""
    x = _array(x, "x", (np.float32,), (1, 2, 3, 4, 5))
    s = _vector(slope, "slope", x.shape[-1], np.float32)
    return np.where(x < 0, x * s, x).astype(np.float32, copy=False)


def rprelu_f32(x: np.ndarray, gamma: np.ndarray, zeta: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """ReActNet's RPReLU: ``prelu(x - gamma, beta) + zeta`` per channel."""
    x = _array(x, "x", (np.float32,), (1, 2, 3, 4, 5))
    c = x.shape[-1]
    g = _vector(gamma, "gamma", c, np.float32)
    z = _vector(zeta, "zeta", c, np.float32)
    y = x - g
    y = np.where(y < 0, y * _vector(beta, "beta", c, np.float32), y)
    y += z
    return y.astype(np.float32, copy=False)
