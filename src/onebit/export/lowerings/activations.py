"""Element-wise activations: ReLU, PReLU, Hardtanh (``clip``), Softmax, onebit's ``Scale``."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from onebit.export.graph import Value
from onebit.export.lowerings.common import per_feature, to_numpy
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
