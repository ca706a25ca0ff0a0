"""Pooling: ``nn.MaxPool2d``, ``nn.AvgPool2d``, global ``nn.AdaptiveAvgPool2d``."""

from __future__ import annotations

from typing import Any

from torch import nn

from onebit.export.graph import ExportError, Value
from onebit.export.lowerings.common import pair
from onebit.export.registry import LoweringContext, register_module_lowering


def _pool_attrs(m: Any, name: str) -> dict[str, Any]:
    k, s, p = (
        pair(m.kernel_size),
        pair(m.stride if m.stride is not None else m.kernel_size),
        pair(m.padding),
    )
    attrs = {"kernel": k, "stride": s, "padding": [p[1], p[1], p[0], p[0]], "ceil_mode": bool(m.ceil_mode)}
    if isinstance(m, nn.MaxPool2d):
        if pair(m.dilation) != [1, 1]:
            raise ExportError(f"{name}: dilated max-pooling is not supported")
        if m.return_indices:
            raise ExportError(f"{name}: max-pooling with return_indices is not supported")
    else:
        attrs["count_include_pad"] = bool(m.count_include_pad)
        if getattr(m, "divisor_override", None):
            raise ExportError(f"{name}: avg-pool divisor_override is not supported")
    return attrs


@register_module_lowering(nn.MaxPool2d)
def lower_maxpool(
    ctx: LoweringContext, name: str, m: nn.MaxPool2d, args: list[Any], out_shape: tuple[int, ...]
) -> Value:
    """``nn.MaxPool2d`` -> ``maxpool`` (becomes ``bmaxpool`` when a sign follows)."""
    x = args[0]
    return ctx.graph.add("maxpool", [x], x.kind, out_shape, name, _pool_attrs(m, name))


@register_module_lowering(nn.AvgPool2d)
def lower_avgpool(
    ctx: LoweringContext, name: str, m: nn.AvgPool2d, args: list[Any], out_shape: tuple[int, ...]
) -> Value:
    """``nn.AvgPool2d`` -> ``avgpool``."""
    return ctx.graph.add("avgpool", [args[0]], "float", out_shape, name, _pool_attrs(m, name))


@register_module_lowering(nn.AdaptiveAvgPool2d)
def lower_adaptive_avgpool(
    ctx: LoweringContext, name: str, m: nn.AdaptiveAvgPool2d, args: list[Any], out_shape: tuple[int, ...]
) -> Value:
    """``nn.AdaptiveAvgPool2d`` to 1x1 -> ``global_avgpool``."""
    if tuple(out_shape[1:3]) != (1, 1):
        raise ExportError(f"{name}: only global average pooling (output 1x1) is supported")
    return ctx.graph.add("global_avgpool", [args[0]], "float", out_shape, name)
