"""Where the exporter looks up how to lower a module, a function or a tensor method.

A lowering turns one node of the captured ``torch.fx`` graph into engine ops on the
:class:`~onebit.export.graph.Graph` (``ctx.graph.add(...)``) and returns the resulting
:class:`~onebit.export.graph.Value` (or a Python object for a node that only computes a
constant). The built-in lowerings (:mod:`onebit.export.lowerings`) register through the
same three decorators a user's own code would use:

* :func:`register_module_lowering` ``(cls)``: ``fn(ctx, name, module, args, out_shape)``;
  a module of a registered type stays whole in the captured graph (a leaf), and
  subclasses that are leaves anyway (onebit layers and quantizers, ``torch.nn`` modules)
  use their nearest registered base class's lowering;
* :func:`register_function_lowering` ``(*targets)``: ``fn(ctx, name, args, kwargs, out_shape)``
  for calls such as ``torch.cat`` or ``operator.add`` met in a ``forward``;
* :func:`register_method_lowering` ``(*names)``: ``fn(ctx, name, args, kwargs, out_shape)``
  for tensor methods (``x.view(...)``; ``args[0]`` is the tensor).

``args`` hold a :class:`Value` where the model passed a computed tensor, and the Python
object otherwise (parameters, constants); ``out_shape`` is the node's output shape in
engine layout (NHWC or NC; ``None`` for a function whose output is not one tensor).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.fx as fx

from onebit.export.graph import Graph

__all__ = [
    "LoweringContext",
    "find_function_lowering",
    "find_method_lowering",
    "find_module_lowering",
    "is_registered_module",
    "register_function_lowering",
    "register_method_lowering",
    "register_module_lowering",
]

ModuleLowering = Callable[..., Any]
FunctionLowering = Callable[..., Any]

_MODULE_LOWERINGS: dict[type, ModuleLowering] = {}
_FUNCTION_LOWERINGS: dict[Any, FunctionLowering] = {}
_METHOD_LOWERINGS: dict[str, FunctionLowering] = {}


class LoweringContext:
    """What a lowering gets besides its node's arguments.

    Attributes:
        graph: the engine graph being built; add ops with :meth:`Graph.add`.
        node: the ``torch.fx`` node being lowered (``node.meta["tensor_meta"]`` has the
            torch-layout output shape).
    """

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.node: fx.Node | None = None


def register_module_lowering(cls: type) -> Callable[[ModuleLowering], ModuleLowering]:
    """Teach the exporter a module type: ``fn(ctx, name, module, args, out_shape) -> Value``.

    Modules of a registered type stay whole in the captured graph. ``name`` is the
    module's path in the model, ``args`` its call's positional arguments.
    """

    def wrap(fn: ModuleLowering) -> ModuleLowering:
        _MODULE_LOWERINGS[cls] = fn
        return fn

    return wrap


def register_function_lowering(*targets: Any) -> Callable[[FunctionLowering], FunctionLowering]:
    """Teach the exporter functions: ``fn(ctx, name, args, kwargs, out_shape) -> Value``.

    ``targets`` are the callables as ``torch.fx`` records them (``torch.cat``,
    ``operator.add``, ``torch.nn.functional.relu``, ...).
    """

    def wrap(fn: FunctionLowering) -> FunctionLowering:
        for t in targets:
            _FUNCTION_LOWERINGS[t] = fn
        return fn

    return wrap


def register_method_lowering(*names: str) -> Callable[[FunctionLowering], FunctionLowering]:
    """Teach the exporter tensor methods by name: ``fn(ctx, name, args, kwargs, out_shape) -> Value``.

    ``args[0]`` is the tensor the method is called on.
    """

    def wrap(fn: FunctionLowering) -> FunctionLowering:
        for n in names:
            _METHOD_LOWERINGS[n] = fn
        return fn

    return wrap


def is_registered_module(m: Any) -> bool:
    """True when ``type(m)`` itself has a registered lowering (it then stays whole when captured)."""
    return type(m) in _MODULE_LOWERINGS


def find_module_lowering(m: Any) -> ModuleLowering | None:
    """The lowering of ``m``'s type or of its nearest registered base class, or ``None``."""
    for cls in type(m).__mro__:
        fn = _MODULE_LOWERINGS.get(cls)
        if fn is not None:
            return fn
    return None


def find_function_lowering(target: Any) -> FunctionLowering | None:
    """The lowering registered for the function ``target``, or ``None``."""
    try:
        return _FUNCTION_LOWERINGS.get(target)
    except TypeError:  # an unhashable target
        return None


def find_method_lowering(name: str) -> FunctionLowering | None:
    """The lowering registered for the tensor method ``name``, or ``None``."""
    return _METHOD_LOWERINGS.get(name)
