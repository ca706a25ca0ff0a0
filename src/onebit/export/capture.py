"""Capture: a module-level ``torch.fx`` graph of the model, annotated with shapes.

onebit's quantized layers, the quantizers, :class:`~onebit.nn.layers.Scale`, modules
with a registered lowering (:mod:`onebit.export.registry`) and the standard ``torch.nn``
layers stay whole (leaves), so their semantics are known exactly; everything else is
traced through. Shapes come from running the example input through the graph.
"""

from __future__ import annotations

import torch
import torch.fx as fx
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from onebit import quantizers as Q
from onebit.export.graph import ExportError
from onebit.export.registry import is_registered_module
from onebit.nn.layers import QuantMixin, Scale

__all__ = ["capture", "engine_shape", "shape_of"]

_LEAF_TYPES: tuple[type, ...] = (QuantMixin, Q.Quantizer, Scale)


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, _LEAF_TYPES) or is_registered_module(m):
            return True
        return super().is_leaf_module(m, qualname)


def capture(model: nn.Module, example_input: torch.Tensor) -> fx.GraphModule:
    """Symbolically trace ``model`` and annotate every node with its output shape."""
    tracer = _Tracer()
    try:
        graph = tracer.trace(model)
    except Exception as e:  # fx raises many types for data-dependent control flow
        raise ExportError(
            f"cannot capture {type(model).__name__} with torch.fx: {type(e).__name__}: {e}. "
            "Data-dependent Python control flow in forward() cannot be exported."
        ) from e
    gm = fx.GraphModule(model, graph)
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(example_input)
    except Exception as e:
        cause = e.__cause__ or e  # ShapeProp wraps the model's own error
        raise ExportError(
            f"{type(model).__name__} does not run on the example input of shape "
            f"{tuple(example_input.shape)}: {type(cause).__name__}: {cause}"
        ) from e
    return gm


def shape_of(node: fx.Node) -> tuple[int, ...]:
    """The torch-layout shape of the tensor ``node`` produces (from the shape annotation)."""
    meta = node.meta.get("tensor_meta")
    if meta is None or not hasattr(meta, "shape"):
        raise ExportError(f"node {node.name} ({node.target}) does not produce a single tensor")
    return tuple(int(s) for s in meta.shape)


def engine_shape(torch_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Engine layout of a torch shape: (N, C, H, W) -> (N, H, W, C); (N, C) unchanged."""
    if len(torch_shape) == 4:
        n, c, h, w = torch_shape
        return (n, h, w, c)
    if len(torch_shape) == 2:
        return torch_shape
    raise ExportError(f"the engine handles 4-D (N, C, H, W) and 2-D (N, C) tensors, got shape {torch_shape}")
