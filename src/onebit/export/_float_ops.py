"""Lowerings of the float ops users reach for: smooth activations, GroupNorm / LayerNorm, upsampling.

Each torch form (module, function, tensor method) maps to one engine op of
``csrc/engine/ops/`` whose exact semantics are ``onebit.runtime.reference``:

* ``activation`` [kind]: ``nn.GELU`` / ``F.gelu`` (kind ``gelu``, or ``gelu_tanh`` for
  ``approximate='tanh'``), ``nn.SiLU`` / ``F.silu``, ``nn.Hardswish`` / ``F.hardswish``,
  ``nn.Hardsigmoid`` / ``F.hardsigmoid``, ``nn.Sigmoid`` / ``torch.sigmoid`` / ``x.sigmoid()``,
  ``nn.Tanh`` / ``torch.tanh`` / ``x.tanh()`` (and ``torch.special.expit``);
* ``clip`` [min, max]: the functional forms of nn.Hardtanh / nn.ReLU6 (``F.hardtanh``,
  ``F.relu6``) and ``torch.clamp`` / ``x.clamp`` with number bounds;
* ``group_norm`` [groups, eps] {scale, shift}: ``nn.GroupNorm`` / ``F.group_norm``;
* ``layer_norm`` [eps] {scale, shift}: ``nn.LayerNorm(C)`` / ``F.layer_norm`` over the last dim of
  an ``(N, C)`` value, or over the channels of an ``(N, C, H, W)`` value written as conv nets do
  (ConvNeXt, timm's ``LayerNorm2d``): ``x.permute(0, 2, 3, 1)``, the LayerNorm, then
  ``.permute(0, 3, 1, 2)``. Engine values are NHWC already, so both permutes vanish;
* ``upsample`` [mode, size, scale_h, scale_w, align_corners]: ``nn.Upsample`` (and
  ``nn.UpsamplingNearest2d`` / ``nn.UpsamplingBilinear2d``) / ``F.interpolate`` with
  ``mode='nearest'`` or ``'bilinear'``, ``size`` or ``scale_factor``, either ``align_corners``.
  ``scale_h`` / ``scale_w`` are the float32 source-per-output ratios torch's kernels use.

Anything else of these families (other interpolation modes, antialiasing, a LayerNorm over
H and W, grouped norms on a flattened value) raises :class:`ExportError` naming the module
path (for a function or method: the module whose ``forward`` calls it) and the op.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from onebit.export._lower import (
    ExportError,
    Value,
    _Ctx,
    _engine_shape,
    _np,
    _per_feature,
    _shape_of,
    call_site,
    register_function_lowering,
    register_method_lowering,
    register_module_lowering,
)

__all__ = ["ChannelsLast"]


class ChannelsLast:
    """``x.permute(0, 2, 3, 1)`` of a 4-D engine value: the same NHWC data seen as torch's (N, H, W, C).

    Only a LayerNorm over its last dim, element-wise activations and ``.permute(0, 3, 1, 2)`` (back
    to the value) accept it; anything else raises ExportError.
    """

    def __init__(self, value: Value, where: str) -> None:
        self.value = value
        self.where = where

    def contiguous(self) -> ChannelsLast:
        """A no-op, as on the value itself."""
        return self

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise ExportError(
            f"{self.where}: a tensor permuted to (N, H, W, C) is only supported as the input of a "
            f"LayerNorm over channels or an activation, then permuted back; not .{name}"
        )


def _float_input(x: Any, where: str, op: str) -> Value:
    if not isinstance(x, Value):
        raise ExportError(f"{where}: {op} takes a computed tensor, got {type(x).__name__}")
    if x.kind != "float":
        raise ExportError(f"{where}: {op} of binary (±1) activations is not supported; it needs float input")
    return x


def _params(owner: str, weight: Any, bias: Any, c: int, x: Value) -> dict[str, np.ndarray]:
    """Per-channel scale/shift (ones/zeros when absent), in engine channel order."""
    for role, t in (("weight", weight), ("bias", bias)):
        if t is not None and not isinstance(t, torch.Tensor):
            raise ExportError(
                f"{owner}: a computed {role} is not supported (it must be a parameter or constant)"
            )
    scale = np.ones(c, np.float32) if weight is None else _np(weight).reshape(-1)
    shift = np.zeros(c, np.float32) if bias is None else _np(bias).reshape(-1)
    if scale.size != c or shift.size != c:
        raise ExportError(f"{owner}: weight/bias of {scale.size}/{shift.size} values for {c} channels")
    return {"scale": _per_feature(scale, x), "shift": _per_feature(shift, x)}


# --------------------------------------------------------------------------- #
# activation
# --------------------------------------------------------------------------- #

_KINDS: dict[type, str] = {
    nn.SiLU: "silu",
    nn.Hardswish: "hardswish",
    nn.Hardsigmoid: "hardsigmoid",
    nn.Sigmoid: "sigmoid",
    nn.Tanh: "tanh",
}


def _gelu_kind(approximate: str, where: str) -> str:
    if approximate == "none":
        return "gelu"
    if approximate == "tanh":
        return "gelu_tanh"
    raise ExportError(f"{where}: GELU approximate={approximate!r} has no engine op ('none' or 'tanh')")


def _activation(ctx: _Ctx, source: str, where: str, x: Any, kind: str) -> Value | ChannelsLast:
    if isinstance(x, ChannelsLast):  # element-wise: the layout does not matter
        return ChannelsLast(_activation(ctx, source, where, x.value, kind), x.where)  # type: ignore[arg-type]
    x = _float_input(x, where, kind)
    return ctx.g.add("activation", [x], "float", x.shape, source, {"kind": kind}, torch_order=x.torch_order)


def _lower_activation_module(
    ctx: _Ctx, name: str, m: nn.Module, args: list[Any], shape: tuple[int, ...]
) -> Any:
    where = f"module {name!r} ({type(m).__name__})"
    kind = _gelu_kind(m.approximate, where) if isinstance(m, nn.GELU) else _KINDS[type(m)]
    return _activation(ctx, name, where, args[0], kind)


for _cls in (nn.GELU, *_KINDS):
    register_module_lowering(_cls)(_lower_activation_module)


@register_function_lowering(F.gelu)
def _lower_gelu_function(ctx: _Ctx, node: fx.Node, args: list[Any], kwargs: dict[str, Any]) -> Any:
    where = call_site(node)
    approximate = kwargs.get("approximate", args[1] if len(args) > 1 else "none")
    return _activation(ctx, node.name, where, args[0], _gelu_kind(approximate, where))


_FUNCTION_KINDS: dict[Callable[..., Any], str] = {
    F.silu: "silu",
    F.hardswish: "hardswish",
    F.hardsigmoid: "hardsigmoid",
    torch.sigmoid: "sigmoid",
    torch.special.expit: "sigmoid",
    torch.tanh: "tanh",
}


def _lower_activation_function(ctx: _Ctx, node: fx.Node, args: list[Any], kwargs: dict[str, Any]) -> Any:
    return _activation(ctx, node.name, call_site(node), args[0], _FUNCTION_KINDS[node.target])


register_function_lowering(*_FUNCTION_KINDS)(_lower_activation_function)


@register_method_lowering("sigmoid", "sigmoid_", "tanh", "tanh_")
def _lower_activation_method(ctx: _Ctx, node: fx.Node, args: list[Any], kwargs: dict[str, Any]) -> Any:
    return _activation(ctx, node.name, call_site(node), args[0], str(node.target).rstrip("_"))


# --------------------------------------------------------------------------- #
# clip (the engine op nn.Hardtanh / nn.ReLU6 lower to): the functional forms
# --------------------------------------------------------------------------- #

_F32_MAX = float(np.finfo(np.float32).max)


def _clip(ctx: _Ctx, node: fx.Node, x: Any, lo: Any, hi: Any) -> Value:
    where = call_site(node)
    x = _float_input(x, where, "clip")
    if not all(b is None or isinstance(b, (int, float)) for b in (lo, hi)):
        raise ExportError(f"{where}: clamp bounds must be numbers (node {node.name}), not tensors")
    lo = -_F32_MAX if lo is None else max(float(lo), -_F32_MAX)
    hi = _F32_MAX if hi is None else min(float(hi), _F32_MAX)
    if lo > hi:
        raise ExportError(f"{where}: clamp with min {lo} above max {hi} (node {node.name})")
    return ctx.g.add(
        "clip", [x], "float", x.shape, node.name, {"min": lo, "max": hi}, torch_order=x.torch_order
    )


@register_function_lowering(F.hardtanh, F.relu6, torch.clamp, torch.clip)
def _lower_clip_function(ctx: _Ctx, node: fx.Node, args: list[Any], kwargs: dict[str, Any]) -> Value:
    if node.target is F.relu6:
        return _clip(ctx, node, args[0], 0.0, 6.0)
    if node.target is F.hardtanh:
        a = _bind(F.hardtanh, args, kwargs)
        return _clip(ctx, node, a["input"], a["min_val"], a["max_val"])
    lo = kwargs.get("min", args[1] if len(args) > 1 else None)
    hi = kwargs.get("max", args[2] if len(args) > 2 else None)
    return _clip(ctx, node, args[0], lo, hi)


@register_method_lowering("clamp", "clip", "clamp_", "clip_")
def _lower_clip_method(ctx: _Ctx, node: fx.Node, args: list[Any], kwargs: dict[str, Any]) -> Value:
    lo = kwargs.get("min", args[1] if len(args) > 1 else None)
    hi = kwargs.get("max", args[2] if len(args) > 2 else None)
    return _clip(ctx, node, args[0], lo, hi)


# --------------------------------------------------------------------------- #
# group_norm
# --------------------------------------------------------------------------- #


def _group_norm(
    ctx: _Ctx, source: str, where: str, x: Any, groups: int, weight: Any, bias: Any, eps: float
) -> Value:
    x = _float_input(x, where, "group_norm")
    c = x.shape[-1]
    if groups < 1 or c % groups:
        raise ExportError(f"{where}: group_norm with {groups} groups does not divide {c} channels")
    if x.torch_order is not None and groups != 1:
        raise ExportError(
            f"{where}: group_norm with {groups} groups on a flattened (N, C*H*W) value is not supported "
            "(its groups would mix channels and positions; normalize before flattening)"
        )
    return ctx.g.add(
        "group_norm",
        [x],
        "float",
        x.shape,
        source,
        {"groups": int(groups), "eps": float(eps)},
        _params(where, weight, bias, c, x),
        torch_order=x.torch_order,
    )


@register_module_lowering(nn.GroupNorm)
def _lower_group_norm_module(
    ctx: _Ctx, name: str, m: nn.GroupNorm, args: list[Any], shape: tuple[int, ...]
) -> Value:
    where = f"module {name!r} (GroupNorm)"
    return _group_norm(ctx, name, where, args[0], int(m.num_groups), m.weight, m.bias, float(m.eps))


def _bind(fn: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    bound = inspect.signature(fn).bind(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


@register_function_lowering(F.group_norm)
def _lower_group_norm_function(ctx: _Ctx, node: fx.Node, args: list[Any], kwargs: dict[str, Any]) -> Value:
    a = _bind(F.group_norm, args, kwargs)
    return _group_norm(
        ctx, node.name, call_site(node), a["input"], int(a["num_groups"]), a["weight"], a["bias"], a["eps"]
    )


# --------------------------------------------------------------------------- #
# layer_norm
# --------------------------------------------------------------------------- #


def _layer_norm(
    ctx: _Ctx, source: str, where: str, x: Any, normalized_shape: Any, weight: Any, bias: Any, eps: float
) -> Value | ChannelsLast:
    dims = (
        [int(normalized_shape)] if isinstance(normalized_shape, int) else [int(d) for d in normalized_shape]
    )
    channels_last = isinstance(x, ChannelsLast)
    v = _float_input(x.value if channels_last else x, where, "layer_norm")
    if not (channels_last or len(v.shape) == 2):
        raise ExportError(
            f"{where}: layer_norm over {dims} of an (N, C, H, W) tensor is not supported; the engine "
            "normalizes over channels: x.permute(0, 2, 3, 1), LayerNorm(C), .permute(0, 3, 1, 2) "
            "(or GroupNorm(1, C) to normalize over C, H and W)"
        )
    c = v.shape[-1]
    if dims != [c]:
        raise ExportError(f"{where}: layer_norm over {dims} of a value with {c} channels (only [{c}] is)")
    y = ctx.g.add(
        "layer_norm",
        [v],
        "float",
        v.shape,
        source,
        {"eps": float(eps)},
        _params(where, weight, bias, c, v),
        torch_order=v.torch_order,
    )
    return ChannelsLast(y, x.where) if channels_last else y


@register_module_lowering(nn.LayerNorm)
def _lower_layer_norm_module(
    ctx: _Ctx, name: str, m: nn.LayerNorm, args: list[Any], shape: tuple[int, ...]
) -> Any:
    where = f"module {name!r} (LayerNorm)"
    return _layer_norm(ctx, name, where, args[0], m.normalized_shape, m.weight, m.bias, float(m.eps))


@register_function_lowering(F.layer_norm)
def _lower_layer_norm_function(ctx: _Ctx, node: fx.Node, args: list[Any], kwargs: dict[str, Any]) -> Any:
    a = _bind(F.layer_norm, args, kwargs)
    return _layer_norm(
        ctx, node.name, call_site(node), a["input"], a["normalized_shape"], a["weight"], a["bias"], a["eps"]
    )


def _permute(node: fx.Node, x: Any, dims: list[int]) -> Any:
    where = call_site(node)
    dims = [d % 4 for d in dims]
    if isinstance(x, Value) and len(x.shape) == 4 and dims == [0, 2, 3, 1]:
        return ChannelsLast(x, where)
    if isinstance(x, ChannelsLast) and dims == [0, 3, 1, 2]:
        return x.value
    raise ExportError(
        f"{where}: permute{tuple(dims)} (node {node.name}) is not supported; the engine takes "
        "x.permute(0, 2, 3, 1) -> LayerNorm over channels -> .permute(0, 3, 1, 2)"
    )


@register_method_lowering("permute")
def _lower_permute_method(ctx: _Ctx, node: fx.Node, args: list[Any], kwargs: dict[str, Any]) -> Any:
    dims = kwargs.get("dims", args[1:])
    if len(dims) == 1 and isinstance(dims[0], (list, tuple)):
        dims = dims[0]
    return _permute(node, args[0], list(dims))


@register_function_lowering(torch.permute)
def _lower_permute_function(ctx: _Ctx, node: fx.Node, args: list[Any], kwargs: dict[str, Any]) -> Any:
    return _permute(node, args[0], list(kwargs.get("dims", args[1] if len(args) > 1 else ())))


# --------------------------------------------------------------------------- #
# upsample
# --------------------------------------------------------------------------- #


def _ratio(n_in: int, n_out: int, scale_factor: float | None, mode: str, align_corners: bool) -> float:
    """Source pixels per output pixel in float32, as torch's CPU kernels compute it."""
    if mode == "bilinear" and align_corners:
        # (in - 1) / (out - 1); with one output pixel only index 0 exists and any ratio gives it
        return float(np.float32(n_in - 1) / np.float32(n_out - 1)) if n_out > 1 else 1.0
    if scale_factor is not None and scale_factor > 0:
        return float(np.float32(1.0 / scale_factor))
    return float(np.float32(n_in) / np.float32(n_out))


def _upsample(
    ctx: _Ctx,
    source: str,
    where: str,
    x: Any,
    out_shape: tuple[int, ...],
    scale_factor: Any,
    mode: str,
    align_corners: bool | None,
    recompute_scale_factor: bool | None,
    antialias: bool,
) -> Value:
    if mode not in ("nearest", "bilinear"):
        raise ExportError(f"{where}: interpolation mode {mode!r} has no engine op (nearest, bilinear)")
    if antialias:
        raise ExportError(f"{where}: antialiased interpolation has no engine op")
    x = _float_input(x, where, "upsample")
    if len(x.shape) != 4 or len(out_shape) != 4:
        raise ExportError(f"{where}: upsample takes (N, C, H, W) tensors, got engine shape {x.shape}")
    _, h, w, _ = x.shape
    _, oh, ow, _ = out_shape
    if scale_factor is None or recompute_scale_factor:
        sf: tuple[float | None, float | None] = (None, None)
    elif isinstance(scale_factor, (tuple, list)):
        sf = (float(scale_factor[0]), float(scale_factor[-1]))
    else:
        sf = (float(scale_factor), float(scale_factor))
    align = bool(align_corners) if mode == "bilinear" else False
    attrs: dict[str, Any] = {
        "mode": mode,
        "size": [int(oh), int(ow)],
        "scale_h": _ratio(h, oh, sf[0], mode, align),
        "scale_w": _ratio(w, ow, sf[1], mode, align),
    }
    if align:
        attrs["align_corners"] = True
    return ctx.g.add("upsample", [x], "float", out_shape, source, attrs)


def _lower_upsample_module(
    ctx: _Ctx, name: str, m: nn.Upsample, args: list[Any], shape: tuple[int, ...]
) -> Value:
    where = f"module {name!r} ({type(m).__name__})"
    return _upsample(
        ctx,
        name,
        where,
        args[0],
        shape,
        m.scale_factor,
        m.mode,
        m.align_corners,
        m.recompute_scale_factor,
        False,
    )


for _cls in (nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d):
    register_module_lowering(_cls)(_lower_upsample_module)


@register_function_lowering(F.interpolate, F.upsample)
def _lower_interpolate(ctx: _Ctx, node: fx.Node, args: list[Any], kwargs: dict[str, Any]) -> Value:
    a = _bind(node.target, args, kwargs)
    return _upsample(
        ctx,
        node.name,
        call_site(node),
        a["input"],
        _engine_shape(_shape_of(node)),
        a["scale_factor"],
        a["mode"],
        a["align_corners"],
        a.get("recompute_scale_factor"),
        bool(a.get("antialias", False)),
    )
