"""The driver: capture a model, lower each ``torch.fx`` node through the registry, fold.

``lower(model, example_input)`` returns the engine :class:`~onebit.export.graph.Graph`.
Each ``call_module``/``call_function``/``call_method`` node goes to the lowering
:mod:`onebit.export.registry` holds for it; constants (parameters, ``getattr``, indexing
into Python objects, ``x.size()``) are evaluated in Python.
"""

from __future__ import annotations

import operator
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from onebit.export import lowerings as _lowerings  # noqa: F401  (registers the built-in lowerings)
from onebit.export.capture import capture, engine_shape, shape_of
from onebit.export.graph import ExportError, Graph, Value
from onebit.export.passes import fold as run_folding_passes
from onebit.export.registry import (
    LoweringContext,
    describe_function,
    describe_method,
    find_function_lowering,
    find_method_lowering,
    find_module_lowering,
)

__all__ = ["lower"]


def lower(model: nn.Module, example_input: torch.Tensor, fold: bool = True) -> Graph:
    """Capture ``model`` and return its engine graph, folded unless ``fold=False``."""
    if example_input.dim() not in (2, 4):
        raise ExportError(
            f"example input must be (N, C, H, W) or (N, C), got shape {tuple(example_input.shape)}"
        )
    was_training = model.training
    model.eval()
    try:
        gm = capture(model, example_input)
        g = Graph()
        ctx = LoweringContext(g)
        env: dict[str, Any] = {}
        modules = dict(gm.named_modules())

        def load(a: Any) -> Any:
            return fx.node.map_arg(a, lambda n: env[n.name])

        for node in gm.graph.nodes:
            ctx.node = node
            if node.op == "placeholder":
                if g.inputs:
                    raise ExportError("the engine runs models with exactly one input tensor")
                shape = engine_shape(shape_of(node))
                v = Value("input", "float", shape)
                g.values["input"] = v
                g.inputs.append(
                    {
                        "name": "input",
                        "shape": list(shape_of(node)),
                        "dtype": "float32",
                        "layout": "NCHW" if len(shape) == 4 else "NC",
                    }
                )
                env[node.name] = v
            elif node.op == "get_attr":
                obj: Any = gm
                for part in node.target.split("."):
                    obj = getattr(obj, part)
                env[node.name] = obj
            elif node.op == "call_module":
                m = modules[node.target]
                try:
                    env[node.name] = _lower_module(ctx, node.target, m, list(load(node.args)), node)
                except ExportError:
                    raise
                except Exception as e:
                    raise ExportError(f"{node.target} ({type(m).__name__}): {type(e).__name__}: {e}") from e
            elif node.op in ("call_function", "call_method"):
                lower_call = _lower_function if node.op == "call_function" else _lower_method
                try:
                    env[node.name] = lower_call(ctx, node, list(load(node.args)), dict(load(node.kwargs)))
                except ExportError as e:
                    raise ExportError(f"{_called_in(node, model)}: {e}") from e
                except Exception as e:
                    raise ExportError(
                        f"{_called_in(node, model)}: {_describe_call(node)} (node {node.name}): "
                        f"{type(e).__name__}: {e}"
                    ) from e
            elif node.op == "output":
                out = load(node.args[0])
                if not isinstance(out, Value):
                    raise ExportError("the engine runs models with exactly one output tensor")
                if out.kind != "float":
                    raise ExportError("the model's output is binary; the engine returns float outputs")
                if out.torch_order is not None:
                    raise ExportError(
                        "the model's output is a flattened (N, C, H, W) tensor with H*W > 1, whose "
                        "elements the engine holds in (H, W, C) order, not PyTorch's (C, H, W); end the "
                        "model with a layer after the flatten (e.g. nn.Linear) or pool to 1x1 first"
                    )
                g.outputs.append(
                    {"name": out.name, "shape": list(shape_of(node.args[0])), "dtype": "float32"}
                )
        if fold:
            run_folding_passes(g)
        return g
    finally:
        model.train(was_training)


def _lower_module(
    ctx: LoweringContext, name: str, m: nn.Module, args: list[Any], node: fx.Node
) -> Value | None:
    x = args[0] if args else None
    if not isinstance(x, Value):
        raise ExportError(f"{name} ({type(m).__name__}): expected a tensor input")
    shape = engine_shape(shape_of(node))
    fn = find_module_lowering(m)
    if fn is None:
        raise ExportError(
            f"cannot export module {name!r} of type {type(m).__name__}: no engine op for it "
            "(no lowering is registered for it; see onebit.export.register_module_lowering)"
        )
    return fn(ctx, name, m, args, shape)


def _lower_function(ctx: LoweringContext, node: fx.Node, args: list[Any], kwargs: dict[str, Any]) -> Any:
    t = node.target
    name = node.name
    if t in (operator.getitem,) and not isinstance(args[0], Value):
        return args[0][args[1]]
    if t in (getattr,):
        if isinstance(args[0], Value):  # x.shape, x.dtype: the torch tensor's, not the engine value's
            meta = node.args[0].meta.get("tensor_meta")
            if args[1] == "shape" and meta is not None:
                return torch.Size(meta.shape)
            if args[1] == "dtype" and meta is not None:
                return meta.dtype
            raise ExportError(f"cannot export reading {args[1]!r} of a computed tensor (node {name})")
        return getattr(args[0], args[1])
    if not _has_value((args, kwargs)):  # arithmetic on shapes, constants: evaluated now
        return t(*args, **kwargs)
    shape = (
        engine_shape(shape_of(node))
        if "tensor_meta" in node.meta and hasattr(node.meta["tensor_meta"], "shape")
        else None
    )
    fn = find_function_lowering(t)
    if fn is None:
        raise ExportError(
            f"cannot export {_describe_call(node)} (node {name}): no lowering is registered for it "
            "(see onebit.export.register_function_lowering)"
        )
    return fn(ctx, name, args, kwargs, shape)


def _lower_method(ctx: LoweringContext, node: fx.Node, args: list[Any], kwargs: dict[str, Any]) -> Any:
    self_ = args[0]
    m = node.target
    if m == "size":
        return _torch_shape_of_value(node.args[0], args[1] if len(args) > 1 else None)
    if not isinstance(self_, Value):
        if m in ("view", "reshape") or m == "__getitem__":
            raise ExportError(f"cannot export method {m!r} on a parameter")
        return getattr(self_, m)(*args[1:], **kwargs)
    shape = engine_shape(shape_of(node))
    fn = find_method_lowering(m)
    if fn is None:
        raise ExportError(
            f"cannot export {_describe_call(node)} (node {node.name}): no lowering is registered for it "
            "(see onebit.export.register_method_lowering)"
        )
    return fn(ctx, node.name, args, kwargs, shape)


def _torch_shape_of_value(fx_node: Any, dim: int | None) -> Any:
    shape = tuple(int(s) for s in fx_node.meta["tensor_meta"].shape)
    return shape if dim is None else shape[dim]


def _has_value(a: Any) -> bool:
    """True when ``a`` (nested tuples, lists, dicts) holds an engine :class:`Value`."""
    if isinstance(a, Value):
        return True
    if isinstance(a, (list, tuple)):
        return any(_has_value(v) for v in a)
    if isinstance(a, dict):
        return any(_has_value(v) for v in a.values())
    return False


def _describe_call(node: fx.Node) -> str:
    """The op a call node stands for, as the model's source spells it: ``F.gelu``, ``x.gelu()``."""
    if node.op == "call_method":
        return f"tensor method {describe_method(node.target)}"
    return f"function {describe_function(node.target)}"


def _called_in(node: fx.Node, model: nn.Module) -> str:
    """The module whose ``forward`` made the call ``node``: its path in the model and its type."""
    stack = node.meta.get("nn_module_stack") or {}
    if stack:
        path, cls = list(stack.values())[-1]
        if path:
            return f"module {path!r} ({getattr(cls, '__name__', cls)})"
    return f"the model's forward ({type(model).__name__})"
