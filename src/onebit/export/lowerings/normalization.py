"""Normalization layers: BatchNorm (running statistics) -> per-channel ``affine``; GroupNorm ->
``group_norm``; LayerNorm -> ``layer_norm``.

``nn.GroupNorm`` / ``F.group_norm`` on (N, C, H, W) or (N, C) values. ``nn.LayerNorm(C)`` /
``F.layer_norm`` over the last dim of an (N, C) value, or over the channels of an (N, C, H, W)
value written as conv nets do (ConvNeXt, timm's ``LayerNorm2d``): ``x.permute(0, 2, 3, 1)``,
the LayerNorm, ``.permute(0, 3, 1, 2)`` (a :class:`~onebit.export.graph.ChannelsLast` view in
between; engine values are NHWC already, so the permutes emit nothing).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from onebit.export.graph import ChannelsLast, ExportError, Value
from onebit.export.lowerings.common import bind_call, float_input, per_feature, to_numpy
from onebit.export.registry import LoweringContext, register_function_lowering, register_module_lowering


def _bn_affine(m: nn.modules.batchnorm._BatchNorm) -> tuple[np.ndarray, np.ndarray]:
    if not m.track_running_stats or m.running_mean is None:
        raise ExportError("BatchNorm without running statistics cannot be exported (it normalizes by batch)")
    mean = m.running_mean.detach().double()
    var = m.running_var.detach().double()
    gamma = m.weight.detach().double() if m.weight is not None else torch.ones_like(mean)
    beta = m.bias.detach().double() if m.bias is not None else torch.zeros_like(mean)
    scale = gamma / torch.sqrt(var + m.eps)
    shift = beta - mean * scale
    return scale.numpy().astype(np.float32), shift.numpy().astype(np.float32)


@register_module_lowering(nn.BatchNorm2d)
@register_module_lowering(nn.BatchNorm1d)
def lower_batch_norm(
    ctx: LoweringContext, name: str, m: nn.Module, args: list[Any], out_shape: tuple[int, ...]
) -> Value:
    """BatchNorm in eval mode: ``x * scale + shift`` per channel (folded into neighbours later)."""
    x = args[0]
    scale, shift = _bn_affine(m)
    return ctx.graph.add(
        "affine",
        [x],
        "float",
        out_shape,
        name,
        params={"scale": per_feature(scale, x), "shift": per_feature(shift, x)},
        torch_order=x.torch_order,
    )


def _scale_shift(where: str, weight: Any, bias: Any, c: int, x: Value) -> dict[str, np.ndarray]:
    """Per-channel scale/shift of a norm's affine (ones/zeros when absent), in engine order."""
    for role, t in (("weight", weight), ("bias", bias)):
        if t is not None and not isinstance(t, torch.Tensor):
            raise ExportError(
                f"{where}: a computed {role} is not supported (it must be a parameter or constant)"
            )
    scale = np.ones(c, np.float32) if weight is None else to_numpy(weight).reshape(-1)
    shift = np.zeros(c, np.float32) if bias is None else to_numpy(bias).reshape(-1)
    if scale.size != c or shift.size != c:
        raise ExportError(f"{where}: weight/bias of {scale.size}/{shift.size} values for {c} channels")
    return {"scale": per_feature(scale, x), "shift": per_feature(shift, x)}


def _group_norm(
    ctx: LoweringContext, name: str, x: Any, groups: int, weight: Any, bias: Any, eps: float
) -> Value:
    where = ctx.call_site()
    x = float_input(x, where, "group_norm")
    c = x.shape[-1]
    if groups < 1 or c % groups:
        raise ExportError(f"{where}: group_norm with {groups} groups does not divide {c} channels")
    if x.torch_order is not None and groups != 1:
        raise ExportError(
            f"{where}: group_norm with {groups} groups on a flattened (N, C*H*W) value is not supported "
            "(its groups would mix channels and positions; normalize before flattening)"
        )
    return ctx.graph.add(
        "group_norm",
        [x],
        "float",
        x.shape,
        name,
        {"groups": int(groups), "eps": float(eps)},
        _scale_shift(where, weight, bias, c, x),
        torch_order=x.torch_order,
    )


@register_module_lowering(nn.GroupNorm)
def lower_group_norm(
    ctx: LoweringContext, name: str, m: nn.GroupNorm, args: list[Any], out_shape: tuple[int, ...]
) -> Value:
    """``nn.GroupNorm`` -> ``group_norm``."""
    return _group_norm(ctx, name, args[0], int(m.num_groups), m.weight, m.bias, float(m.eps))


@register_function_lowering(F.group_norm)
def lower_group_norm_call(
    ctx: LoweringContext, name: str, args: list[Any], kwargs: dict[str, Any], out_shape: tuple[int, ...]
) -> Value:
    """``F.group_norm(x, groups, weight, bias, eps)`` -> ``group_norm``."""
    a = bind_call(F.group_norm, args, kwargs)
    return _group_norm(ctx, name, a["input"], int(a["num_groups"]), a["weight"], a["bias"], a["eps"])


def _layer_norm(
    ctx: LoweringContext, name: str, x: Any, normalized_shape: Any, weight: Any, bias: Any, eps: float
) -> Value | ChannelsLast:
    where = ctx.call_site()
    dims = (
        [int(normalized_shape)] if isinstance(normalized_shape, int) else [int(d) for d in normalized_shape]
    )
    view = isinstance(x, ChannelsLast)
    v = float_input(x.value if view else x, where, "layer_norm")
    if not (view or len(v.shape) == 2):
        raise ExportError(
            f"{where}: layer_norm over {dims} of an (N, C, H, W) tensor is not supported; the engine "
            "normalizes over channels: x.permute(0, 2, 3, 1), LayerNorm(C), .permute(0, 3, 1, 2) "
            "(or GroupNorm(1, C) to normalize over C, H and W)"
        )
    c = v.shape[-1]
    if dims != [c]:
        raise ExportError(f"{where}: layer_norm over {dims} of a value with {c} channels (only [{c}] is)")
    y = ctx.graph.add(
        "layer_norm",
        [v],
        "float",
        v.shape,
        name,
        {"eps": float(eps)},
        _scale_shift(where, weight, bias, c, v),
        torch_order=v.torch_order,
    )
    return ChannelsLast(y, x.where) if view else y


@register_module_lowering(nn.LayerNorm)
def lower_layer_norm(
    ctx: LoweringContext, name: str, m: nn.LayerNorm, args: list[Any], out_shape: tuple[int, ...]
) -> Value | ChannelsLast:
    """``nn.LayerNorm(C)`` over an (N, C) value or a channels-last view -> ``layer_norm``."""
    return _layer_norm(ctx, name, args[0], m.normalized_shape, m.weight, m.bias, float(m.eps))


@register_function_lowering(F.layer_norm)
def lower_layer_norm_call(
    ctx: LoweringContext, name: str, args: list[Any], kwargs: dict[str, Any], out_shape: tuple[int, ...]
) -> Value | ChannelsLast:
    """``F.layer_norm(x, (C,), weight, bias, eps)`` -> ``layer_norm``."""
    a = bind_call(F.layer_norm, args, kwargs)
    return _layer_norm(ctx, name, a["input"], a["normalized_shape"], a["weight"], a["bias"], a["eps"])
