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

import builtins
import operator
from collections.abc import Callable
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from onebit.export.graph import Graph

__all__ = [
    "LoweringContext",
    "describe_function",
    "describe_method",
    "describe_module",
    "find_function_lowering",
    "find_method_lowering",
    "find_module_lowering",
    "is_registered_module",
    "register_function_lowering",
    "register_method_lowering",
    "register_module_lowering",
    "supported",
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


def _put(table: dict[Any, Any], key: Any, fn: Any, replace: bool, what: str) -> None:
    old = table.get(key)
    if old is not None and old is not fn and not replace:
        raise ValueError(
            f"{what} already has a lowering ({old.__module__}.{old.__qualname__}); "
            "pass replace=True to replace it"
        )
    table[key] = fn


def register_module_lowering(
    cls: type, *, replace: bool = False
) -> Callable[[ModuleLowering], ModuleLowering]:
    """Teach the exporter a module type: ``fn(ctx, name, module, args, out_shape) -> Value``.

    Modules of a registered type stay whole in the captured graph. ``name`` is the
    module's path in the model, ``args`` its call's positional arguments. Registering a
    type that already has a lowering raises ``ValueError`` unless ``replace=True``.
    """

    def wrap(fn: ModuleLowering) -> ModuleLowering:
        _put(_MODULE_LOWERINGS, cls, fn, replace, f"module {describe_module(cls)}")
        return fn

    return wrap


def register_function_lowering(
    *targets: Any, replace: bool = False
) -> Callable[[FunctionLowering], FunctionLowering]:
    """Teach the exporter functions: ``fn(ctx, name, args, kwargs, out_shape) -> Value``.

    ``targets`` are the callables as ``torch.fx`` records them (``torch.cat``,
    ``operator.add``, ``torch.nn.functional.relu``, ...). ``replace`` as for
    :func:`register_module_lowering`.
    """

    def wrap(fn: FunctionLowering) -> FunctionLowering:
        for t in targets:
            _put(_FUNCTION_LOWERINGS, t, fn, replace, f"function {describe_function(t)}")
        return fn

    return wrap


def register_method_lowering(
    *names: str, replace: bool = False
) -> Callable[[FunctionLowering], FunctionLowering]:
    """Teach the exporter tensor methods by name: ``fn(ctx, name, args, kwargs, out_shape) -> Value``.

    ``args[0]`` is the tensor the method is called on. ``replace`` as for
    :func:`register_module_lowering`.
    """

    def wrap(fn: FunctionLowering) -> FunctionLowering:
        for n in names:
            _put(_METHOD_LOWERINGS, n, fn, replace, f"tensor method {describe_method(n)}")
        return fn

    return wrap


def describe_module(cls: type) -> str:
    """A module type as users spell it: ``nn.Conv2d``, ``onebit.nn.layers.Scale``."""
    if getattr(nn, cls.__name__, None) is cls:
        return f"nn.{cls.__name__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def describe_function(t: Any) -> str:
    """A function as users spell it: ``F.relu``, ``torch.cat``, ``operator.add``."""
    name = getattr(t, "__name__", None) or repr(t)
    if getattr(F, name, None) is t:
        return f"F.{name}"
    if getattr(torch, name, None) is t:
        return f"torch.{name}"
    if getattr(operator, name, None) is t:
        return f"operator.{name}"
    if getattr(builtins, name, None) is t:
        return name
    mod = getattr(t, "__module__", None)
    return f"{mod}.{getattr(t, '__qualname__', name)}" if mod else name


def describe_method(name: str) -> str:
    """A tensor method as users spell it: ``x.view()``."""
    return f"x.{name}()"


def supported() -> dict[str, list[str]]:
    """What the exporter lowers: module types, functions, tensor methods and 1-bit quantizers.

    ``{"modules": [...], "functions": [...], "methods": [...], "activation_quantizers": [...],
    "weight_quantizers": [...]}``, each sorted; modules include their subclasses that stay
    whole when captured (onebit's layers and quantizers). The list is the registry's at
    the time of the call: lowerings defined next to their modules (the zoo's blocks in
    ``onebit.models._blocks``, a user's own) appear once their module is imported. Quantizers are the names of
    :func:`onebit.quantizers.list_quantizers` whose default instance implements the export
    protocol (``sign_threshold()`` for activations, ``sign_scale(w)`` for weights).
    """
    import onebit.export.lowerings  # noqa: F401  (the built-in lowerings are registered)
    from onebit import quantizers as Q

    w = torch.linspace(-1.0, 1.0, 6).reshape(2, 3)
    act, wgt = [], []
    for qname in Q.list_quantizers():
        q = Q.get(qname)
        if Q.precision_of(q) != 1:
            continue
        if q.sign_threshold() is not None:
            act.append(qname)
        if q.sign_scale(w) is not None:
            wgt.append(qname)
    return {
        "modules": sorted(describe_module(c) for c in _MODULE_LOWERINGS),
        "functions": sorted({describe_function(t) for t in _FUNCTION_LOWERINGS}),
        "methods": sorted(describe_method(n) for n in _METHOD_LOWERINGS),
        "activation_quantizers": act,
        "weight_quantizers": wgt,
    }


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
