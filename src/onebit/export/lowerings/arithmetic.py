"""``+ - * /``: the sum of two tensors (``add``) or a tensor and a per-channel constant (``affine``)."""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
import torch

from onebit.export.graph import ExportError, Value
from onebit.export.lowerings.common import per_feature, to_numpy
from onebit.export.registry import LoweringContext, register_function_lowering

_ADD = (operator.add, torch.add)
_SUB = (operator.sub, torch.sub)
_MUL = (operator.mul, torch.mul)


@register_function_lowering(*_ADD, *_SUB, *_MUL, operator.truediv)
def lower_arithmetic(
    ctx: LoweringContext,
    name: str,
    args: list[Any],
    kwargs: dict[str, Any],
    out_shape: tuple[int, ...] | None,
) -> Value:
    """``a + b`` of two tensors -> ``add``; a tensor with a scalar or per-channel constant -> ``affine``."""
    g = ctx.graph
    t = ctx.node.target
    if t in _ADD and all(isinstance(a, Value) for a in args[:2]):
        a, b = args[0], args[1]
        if a.shape != b.shape:
            raise ExportError(
                f"{name}: add of shapes {a.shape} and {b.shape} (no broadcasting in the engine)"
            )
        return g.add("add", [a, b], "float", out_shape, name)
    a, b = args[0], args[1]
    if isinstance(a, Value) and not isinstance(b, Value):
        const = b
        x = a
    elif isinstance(b, Value) and t in (*_ADD, *_MUL):
        const, x = a, b
    else:
        raise ExportError(f"{name}: {getattr(t, '__name__', t)} of two computed tensors is not supported")
    c = (
        to_numpy(const).reshape(-1)
        if isinstance(const, torch.Tensor)
        else np.array([float(const)], np.float32)
    )
    ch = x.shape[-1]
    if c.size == 1:
        c = np.full(ch, c[0], np.float32)
    if c.size != ch:
        raise ExportError(f"{name}: constant of {c.size} values does not broadcast per channel over {ch}")
    c = per_feature(c, x)
    one, zero = np.ones(ch, np.float32), np.zeros(ch, np.float32)
    if t in _ADD:
        sc, sh = one, c
    elif t in _SUB:
        sc, sh = one, -c
    elif t in _MUL:
        sc, sh = c, zero
    else:
        sc, sh = 1.0 / c, zero
    return g.add(
        "affine", [x], "float", out_shape, name, params={"scale": sc, "shift": sh}, torch_order=x.torch_order
    )
