"""Shape and identity ops: flatten/view/reshape, channel concatenation and repetition, no-ops."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from onebit.export.graph import ExportError, Value
from onebit.export.lowerings.common import flatten
from onebit.export.registry import (
    LoweringContext,
    register_function_lowering,
    register_method_lowering,
    register_module_lowering,
)


@register_module_lowering(nn.Identity)
@register_module_lowering(nn.Dropout)
@register_module_lowering(nn.Dropout2d)
def lower_identity(
    ctx: LoweringContext, name: str, m: nn.Module, args: list[Any], out_shape: tuple[int, ...]
) -> Value:
    """Identity and dropout (eval mode) emit no op."""
    return args[0]


@register_method_lowering("contiguous")
def lower_contiguous(
    ctx: LoweringContext, name: str, args: list[Any], kwargs: dict[str, Any], out_shape: tuple[int, ...]
) -> Value:
    """``x.contiguous()`` emits no op."""
    return args[0]


@register_module_lowering(nn.Flatten)
def lower_flatten_module(
    ctx: LoweringContext, name: str, m: nn.Flatten, args: list[Any], out_shape: tuple[int, ...]
) -> Value:
    """``nn.Flatten`` (to (N, C*H*W)) -> ``flatten``."""
    return flatten(ctx, name, args[0], out_shape)


@register_function_lowering(torch.flatten)
def lower_flatten_function(
    ctx: LoweringContext, name: str, args: list[Any], kwargs: dict[str, Any], out_shape: tuple[int, ...]
) -> Value:
    """``torch.flatten(x, 1)`` -> ``flatten``."""
    start = kwargs.get("start_dim", args[1] if len(args) > 1 else 0)
    if start != 1:
        raise ExportError(f"{name}: only torch.flatten(x, 1) is supported")
    return flatten(ctx, name, args[0], out_shape)


@register_method_lowering("view", "reshape", "flatten")
def lower_flatten_method(
    ctx: LoweringContext, name: str, args: list[Any], kwargs: dict[str, Any], out_shape: tuple[int, ...]
) -> Value:
    """``x.view(n, -1)``, ``x.reshape(n, -1)``, ``x.flatten(1)`` -> ``flatten``."""
    return flatten(ctx, name, args[0], out_shape)


@register_function_lowering(torch.cat, torch.concat)
def lower_cat(
    ctx: LoweringContext, name: str, args: list[Any], kwargs: dict[str, Any], out_shape: tuple[int, ...]
) -> Value:
    """``torch.cat([...], dim=1)`` of 4-D tensors -> ``concat``."""
    tensors = args[0]
    dim = kwargs.get("dim", args[1] if len(args) > 1 else 0)
    if dim not in (1, -3) or not all(isinstance(v, Value) and len(v.shape) == 4 for v in tensors):
        raise ExportError(f"{name}: only channel concatenation (dim=1) of 4-D tensors is supported")
    kinds = {v.kind for v in tensors}
    return ctx.graph.add(
        "concat", list(tensors), kinds.pop() if len(kinds) == 1 else "float", out_shape, name
    )


@register_method_lowering("repeat")
def lower_repeat(
    ctx: LoweringContext, name: str, args: list[Any], kwargs: dict[str, Any], out_shape: tuple[int, ...]
) -> Value:
    """``x.repeat(1, r, 1, 1)`` -> ``concat`` of r copies."""
    self_ = args[0]
    reps = [int(r) for r in args[1:]] if len(args) > 2 else list(args[1])
    if len(self_.shape) != 4 or reps[0] != 1 or reps[2:] != [1, 1]:
        raise ExportError(f"{name}: only x.repeat(1, r, 1, 1) (channel repetition) is supported")
    return ctx.graph.add("concat", [self_] * reps[1], self_.kind, out_shape, name)
