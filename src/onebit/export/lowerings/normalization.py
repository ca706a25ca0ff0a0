"""Normalization layers: BatchNorm (running statistics) -> per-channel ``affine``."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from onebit.export.graph import ExportError, Value
from onebit.export.lowerings.common import per_feature
from onebit.export.registry import LoweringContext, register_module_lowering


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
