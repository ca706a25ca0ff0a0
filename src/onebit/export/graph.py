"""The exporter's intermediate representation: engine ops in execution order.

A :class:`Graph` holds engine nodes (dicts: ``op``, ``inputs``, ``outputs``, ``attrs``,
``params``, ``source``), their parameters (numpy arrays) and a :class:`Value` per
intermediate result. Lowerings build it with :meth:`Graph.add`; folding passes
(:mod:`onebit.export.passes`) rewrite it; the writer (:mod:`onebit.export.writer`)
stores it. Op names, attributes and parameters are the engine registry's
(``onebit.runtime.ops()``).

Engine values are NHWC (``N, H, W, C``) or ``N, C``. A value is ``float`` or
``binary`` (±1, packed along channels at run time; bit set = -1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["ExportError", "Graph", "Value"]


class ExportError(ValueError):
    """The model contains something the engine cannot run; the message names op and module."""


@dataclass
class Value:
    """One engine value: its name, ``kind`` (``"float"`` or ``"binary"``) and engine-layout shape.

    ``torch_order`` is set on a flattened NHWC value: ``torch_order[engine_index]`` is the
    torch (NCHW-flattened) index of each engine element, so a dense layer's weights (or any
    per-feature parameter, see :func:`onebit.export.lowerings.common.per_feature`) can be
    permuted to engine order.
    """

    name: str
    kind: str  # "float" | "binary"
    shape: tuple[int, ...]  # engine layout, batch included
    # For a flattened NHWC value: torch_index[engine_index], so dense weights can be permuted.
    torch_order: np.ndarray | None = None


@dataclass
class Graph:
    """Engine ops in execution order plus their parameters (numpy arrays)."""

    nodes: list[dict[str, Any]] = field(default_factory=list)
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    values: dict[str, Value] = field(default_factory=dict)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    _counter: int = 0

    def fresh(self, hint: str) -> str:
        """A new value name derived from ``hint`` (a module path), unique in this graph."""
        self._counter += 1
        return f"{hint.replace('.', '_')}:{self._counter}"

    def param(self, owner: str, role: str, arr: np.ndarray) -> str:
        """Store ``arr`` as a parameter named ``owner.role`` (made unique); returns the name."""
        name = f"{owner}.{role}"
        i = 1
        while name in self.tensors:
            i += 1
            name = f"{owner}.{role}{i}"
        self.tensors[name] = np.ascontiguousarray(arr)
        return name

    def add(
        self,
        op: str,
        inputs: list[Value],
        out_kind: str,
        out_shape: tuple[int, ...],
        source: str,
        attrs: dict[str, Any] | None = None,
        params: dict[str, np.ndarray] | None = None,
        torch_order: np.ndarray | None = None,
    ) -> Value:
        """Append engine op ``op`` on ``inputs``; returns its output value.

        Args:
            op: an engine op name (``onebit.runtime.ops()``).
            inputs: the op's input values, in the op's order.
            out_kind: ``"float"`` or ``"binary"``.
            out_shape: the output's engine-layout shape (NHWC or NC), batch included.
            source: the module path the op comes from (named in errors and by ``onebit inspect``).
            attrs: the op's attributes (JSON values).
            params: the op's parameters by role (numpy arrays, stored under ``source.role``).
            torch_order: see :class:`Value` (pass the input's for per-element ops on flat values).
        """
        out = Value(self.fresh(source or op), out_kind, tuple(int(s) for s in out_shape), torch_order)
        node = {
            "op": op,
            "inputs": [v.name for v in inputs],
            "outputs": [out.name],
            "attrs": attrs or {},
            "params": {
                role: self.param(out.name.split(":")[0], role, arr) for role, arr in (params or {}).items()
            },
            "source": source,
        }
        self.nodes.append(node)
        self.values[out.name] = out
        return out

    def consumers(self, value_name: str) -> list[dict[str, Any]]:
        """Nodes reading ``value_name`` (plus ``{"op": "<output>"}`` when it is a graph output)."""
        users = [n for n in self.nodes if value_name in n["inputs"]]
        if any(o["name"] == value_name for o in self.outputs):
            users.append({"op": "<output>"})
        return users

    def producer(self, value_name: str) -> dict[str, Any] | None:
        """The node that defines ``value_name`` (``None`` for the graph input)."""
        for n in self.nodes:
            if value_name in n["outputs"]:
                return n
        return None

    def drop_param(self, node: dict[str, Any], role: str) -> np.ndarray | None:
        """Remove ``node``'s parameter ``role`` from the node and the graph; returns its array."""
        name = node["params"].pop(role, None)
        return self.tensors.pop(name) if name is not None else None
