"""Element-wise activations: ReLU, PReLU, Hardtanh (``clip``), Softmax, onebit's ``Scale``, and the
smooth activations of the ``activation`` op (GELU, SiLU, Hardswish, Hardsigmoid, Sigmoid, Tanh).

Each in module and functional form: ``nn.GELU`` / ``F.gelu`` (kind ``gelu``, or ``gelu_tanh``
for ``approximate='tanh'``), ``nn.SiLU`` / ``F.silu``, ``nn.Hardswish`` / ``F.hardswish``,
``nn.Hardsigmoid`` / ``F.hardsigmoid``, ``nn.Sigmoid`` / ``torch.sigmoid`` / ``x.sigmoid()``,
``nn.Tanh`` / ``torch.tanh`` / ``x.tanh()``; ``nn.Hardtanh`` / ``nn.ReLU6`` / ``F.hardtanh`` /
``F.relu6`` / ``torch.clamp`` / ``x.clamp`` (number bounds) -> ``clip``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from onebit.export.graph import ChannelsLast, ExportError, Value
from onebit.export.lowerings.common import bind_call, float_input, per_feature, to_numpy
from onebit.export.registry import (
    LoweringContext,
    register_function_lowering,
    register_method_lowering,
    register_module_lowering,
)
from onebit.nn.layers import Scale


@register_module_lowering(nn.ReLU)
def lower_relu(
    ctx: LoweringContext, name: str, m: nn.Module, args: list[Any], out_shape: tuple[int, ...]
) -> Value:
    """``nn.ReLU`` -> ``relu``."""
    x = args[0]
    return ctx.graph.add("relu", [x], "float", out_shape, name, torch_order=x.torch_order)


@register_function_lowering(F.relu, torch.relu)
@register_method_lowering("relu", "relu_")
def lower_relu_call(
    ctx: LoweringContext, name: str, args: list[Any], kwargs: dict[str, Any], out_shape: tuple[int, ...]
) -> Value:
    """``F.relu(x)``, ``torch.relu(x)``, ``x.relu()`` -> ``relu``."""
    x = args[0]
    return ctx.graph.add("relu", [x], "float", out_shape, name, torch_order=x.torch_order)


@register_module_lowering(nn.PReLU)
def lower_prelu(
    ctx: LoweringContext, name: str, m: nn.PReLU, args: list[Any], out_shape: tuple[int, ...]
) -> Value:
    """``nn.PReLU`` (one slope or one per channel) -> ``prelu``."""
    x = args[0]
    slope = to_numpy(m.weight).reshape(-1)
    if slope.size == 1:
        slope = np.full(out_shape[-1], slope[0], np.float32)
    return ctx.graph.add(
        "prelu",
        [x],
        "float",
        out_shape,
        name,
        params={"slope": per_feature(slope, x)},
        torch_order=x.torch_order,
    )


@register_module_lowering(nn.Hardtanh)
def lower_hardtanh(
    ctx: LoweringContext, name: str, m: nn.Hardtanh, args: list[Any], out_shape: tuple[int, ...]
) -> Value:
    """``nn.Hardtanh`` (and ``nn.ReLU6``) -> ``clip``."""
    x = args[0]
    return ctx.graph.add(
        "clip",
        [x],
        "float",
        out_shape,
        name,
        {"min": float(m.min_val), "max": float(m.max_val)},
        torch_order=x.torch_order,
    )


@register_module_lowering(Scale)
def lower_scale(
    ctx: LoweringContext, name: str, m: Scale, args: list[Any], out_shape: tuple[int, ...]
) -> Value:
    """onebit's ``Scale`` -> ``scale``."""
    x = args[0]
    return ctx.graph.add(
        "scale", [x], "float", out_shape, name, {"value": float(m.scale.detach())}, torch_order=x.torch_order
    )


@register_module_lowering(nn.Softmax)
def lower_softmax(
    ctx: LoweringContext, name: str, m: nn.Softmax, args: list[Any], out_shape: tuple[int, ...]
) -> Value:
    """``nn.Softmax`` -> ``softmax``."""
    return ctx.graph.add("softmax", [args[0]], "float", out_shape, name)


# --------------------------------------------------------------------------- #
# activation [kind]
# --------------------------------------------------------------------------- #

_KINDS: dict[type, str] = {
    nn.SiLU: "silu",
    nn.Hardswish: "hardswish",
    nn.Hardsigmoid: "hardsigmoid",
    nn.Sigmoid: "sigmoid",
    nn.Tanh: "tanh",
}
_FUNCTION_KINDS: dict[Any, str] = {
    F.silu: "silu",
    F.hardswish: "hardswish",
    F.hardsigmoid: "hardsigmoid",
    torch.sigmoid: "sigmoid",
    torch.tanh: "tanh",
}


def _gelu_kind(approximate: str, where: str) -> str:
    if approximate in ("none", "tanh"):
        return "gelu" if approximate == "none" else "gelu_tanh"
    raise ExportError(f"{where}: GELU approximate={approximate!r} has no engine op ('none' or 'tanh')")


def _activation(ctx: LoweringContext, name: str, x: Any, kind: str) -> Value | ChannelsLast:
    """An ``activation`` op; on a channels-last view (between permutes) it stays a view."""
    if isinstance(x, ChannelsLast):
        return ChannelsLast(_activation(ctx, name, x.value, kind), x.where)  # type: ignore[arg-type]
    x = float_input(x, ctx.call_site(), kind)
    return ctx.graph.add("activation", [x], "float", x.shape, name, {"kind": kind}, torch_order=x.torch_order)


@register_module_lowering(nn.GELU)
@register_module_lowering(nn.SiLU)
@register_module_lowering(nn.Hardswish)
@register_module_lowering(nn.Hardsigmoid)
@register_module_lowering(nn.Sigmoid)
@register_module_lowering(nn.Tanh)
def lower_activation(
    ctx: LoweringContext, name: str, m: nn.Module, args: list[Any], out_shape: tuple[int, ...]
) -> Value | ChannelsLast:
    """``nn.GELU``, ``nn.SiLU``, ``nn.Hardswish``, ``nn.Hardsigmoid``, ``nn.Sigmoid``, ``nn.Tanh``."""
    if isinstance(m, nn.GELU):
        kind = _gelu_kind(m.approximate, ctx.call_site())
    else:  # the registered base class of a (leaf) subclass
        kind = next(_KINDS[c] for c in type(m).__mro__ if c in _KINDS)
    return _activation(ctx, name, args[0], kind)


@register_function_lowering(F.gelu)
def lower_gelu_call(
    ctx: LoweringContext, name: str, args: list[Any], kwargs: dict[str, Any], out_shape: tuple[int, ...]
) -> Value | ChannelsLast:
    """``F.gelu(x, approximate=...)`` -> ``activation`` (gelu or gelu_tanh)."""
    approximate = kwargs.get("approximate", args[1] if len(args) > 1 else "none")
    return _activation(ctx, name, args[0], _gelu_kind(approximate, ctx.call_site()))


@register_function_lowering(*_FUNCTION_KINDS)
def lower_activation_call(
    ctx: LoweringContext, name: str, args: list[Any], kwargs: dict[str, Any], out_shape: tuple[int, ...]
) -> Value | ChannelsLast:
    """``F.silu``, ``F.hardswish``, ``F.hardsigmoid``, ``torch.sigmoid``, ``torch.tanh`` -> ``activation``."""
    return _activation(ctx, name, args[0], _FUNCTION_KINDS[ctx.node.target])


@register_method_lowering("sigmoid", "sigmoid_", "tanh", "tanh_")
def lower_activation_method(
    ctx: LoweringContext, name: str, args: list[Any], kwargs: dict[str, Any], out_shape: tuple[int, ...]
) -> Value | ChannelsLast:
    """``x.sigmoid()``, ``x.tanh()`` -> ``activation``."""
    return _activation(ctx, name, args[0], str(ctx.node.target).rstrip("_"))


# --------------------------------------------------------------------------- #
# clip: the functional forms of Hardtanh / ReLU6 and clamp
# --------------------------------------------------------------------------- #

_F32_MAX = float(np.finfo(np.float32).max)


def _clip(ctx: LoweringContext, name: str, x: Any, lo: Any, hi: Any) -> Value:
    where = ctx.call_site()
    x = float_input(x, where, "clip")
    if not all(b is None or isinstance(b, (int, float)) for b in (lo, hi)):
        raise ExportError(f"{where}: clamp bounds must be numbers (node {name}), not tensors")
    lo = -_F32_MAX if lo is None else max(float(lo), -_F32_MAX)
    hi = _F32_MAX if hi is None else min(float(hi), _F32_MAX)
    if lo > hi:
        raise ExportError(f"{where}: clamp with min {lo} above max {hi} (node {name})")
    return ctx.graph.add(
        "clip", [x], "float", x.shape, name, {"min": lo, "max": hi}, torch_order=x.torch_order
    )


@register_function_lowering(F.hardtanh, F.relu6, torch.clamp, torch.clip)
def lower_clip_call(
    ctx: LoweringContext, name: str, args: list[Any], kwargs: dict[str, Any], out_shape: tuple[int, ...]
) -> Value:
    """``F.relu6``, ``F.hardtanh``, ``torch.clamp``/``torch.clip`` with number bounds -> ``clip``."""
    target = ctx.node.target
    if target is F.relu6:
        return _clip(ctx, name, args[0], 0.0, 6.0)
    if target is F.hardtanh:
        a = bind_call(F.hardtanh, args, kwargs)
        return _clip(ctx, name, a["input"], a["min_val"], a["max_val"])
    lo = kwargs.get("min", args[1] if len(args) > 1 else None)
    hi = kwargs.get("max", args[2] if len(args) > 2 else None)
    return _clip(ctx, name, args[0], lo, hi)


@register_method_lowering("clamp", "clip", "clamp_", "clip_")
def lower_clip_method(
    ctx: LoweringContext, name: str, args: list[Any], kwargs: dict[str, Any], out_shape: tuple[int, ...]
) -> Value:
    """``x.clamp(min, max)`` with number bounds -> ``clip``."""
    lo = kwargs.get("min", args[1] if len(args) > 1 else None)
    hi = kwargs.get("max", args[2] if len(args) > 2 else None)
    return _clip(ctx, name, args[0], lo, hi)
