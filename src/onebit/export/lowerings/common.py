"""Helpers shared by lowerings: tensor conversion, per-channel parameters, sign, flatten."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from onebit.export.graph import ExportError, Value
from onebit.export.registry import LoweringContext

__all__ = [
    "flatten",
    "lower_sign",
    "pair",
    "per_feature",
    "sign_threshold",
    "to_numpy",
    "weight_sign_and_scale",
]


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A tensor (parameter, buffer) as a float32 numpy array, detached and on the CPU."""
    return t.detach().to(torch.float32).cpu().numpy()


def pair(v: Any) -> list[int]:
    """An ``int`` or 2-sequence as ``[a, b]`` (kernel sizes, strides, paddings)."""
    return [int(v), int(v)] if isinstance(v, int) else [int(v[0]), int(v[1])]


def per_feature(arr: np.ndarray, x: Value) -> np.ndarray:
    """Per-channel params of a 1-d op on a flattened value, in engine order."""
    if x.torch_order is not None:
        return arr[x.torch_order]
    return arr


def sign_threshold(q: Any, channels: int, where: str) -> np.ndarray:
    """Per-channel t such that the quantizer's forward is sign(x - t) (sign(0) = +1).

    Read from the quantizer's ``sign_threshold()`` (the export protocol of
    :class:`onebit.quantizers.Quantizer`); a quantizer without one, or returning ``None``,
    cannot be exported as an activation quantizer.
    """
    fn = getattr(q, "sign_threshold", None)
    t = fn() if callable(fn) else None
    if t is None:
        raise ExportError(
            f"{where}: input quantizer {type(q).__name__} is not a plain sign; the engine binarizes "
            "activations with sign(x - t) only (a quantizer says so with sign_threshold(), "
            "see docs/deployment.md)"
        )
    t = to_numpy(t) if isinstance(t, torch.Tensor) else np.asarray(t, np.float32)
    t = t.astype(np.float32).reshape(-1)
    if t.size == 1:
        return np.full(channels, t[0], np.float32)
    if t.size != channels:
        raise ExportError(
            f"{where}: {type(q).__name__}.sign_threshold() has {t.size} values for {channels} channels"
        )
    return t


def weight_sign_and_scale(layer: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    """±1 weights and the per-output-channel factor the layer multiplies them by.

    Read from the layer's ``weight_sign_and_scale()`` (see
    :meth:`onebit.nn.layers.QuantMixin.weight_sign_and_scale`).
    """
    got = layer.weight_sign_and_scale()
    if got is None:
        raise ExportError(
            f"{where}: weight quantizer {type(layer.weight_quantizer).__name__} is not a sign quantizer"
        )
    signs, scale = got
    return to_numpy(signs), to_numpy(scale)


def lower_sign(ctx: LoweringContext, name: str, q: Any, x: Value) -> Value:
    """A ``sign`` op binarizing ``x`` as the 1-bit quantizer ``q`` does (identity on binary ``x``)."""
    if x.kind == "binary":
        return x  # sign of ±1 values is the identity
    t = sign_threshold(q, x.shape[-1], name)
    return ctx.graph.add(
        "sign", [x], "binary", x.shape, name, params={"threshold": t}, torch_order=x.torch_order
    )


def flatten(ctx: LoweringContext, name: str, x: Value, shape: tuple[int, ...]) -> Value:
    """A ``flatten`` op from (N, H, W, C) to (N, H*W*C), recording the torch order of the elements."""
    if len(x.shape) == 2:
        return x
    n, h, w, c = x.shape
    if len(shape) != 2 or shape[1] != h * w * c:
        raise ExportError(f"{name}: only flattening (N, C, H, W) to (N, C*H*W) is supported")
    # engine element (i, j, k) of NHWC sits at torch index k*H*W + i*W + j
    idx = np.arange(h * w * c).reshape(h, w, c)
    torch_order = (idx % c) * (h * w) + (idx // c)
    order = None if h * w == 1 else torch_order.reshape(-1)
    return ctx.graph.add("flatten", [x], x.kind, shape, name, torch_order=order)
