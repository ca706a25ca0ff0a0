"""The writer: turn a lowered graph into the (meta, tensors) pair of a ``.onebit`` file.

Binary weights are packed at 1 bit each, float weights optionally stored as fp16, and
every node is checked against the engine's op registry first (format:
:mod:`onebit.runtime.format`).
"""

from __future__ import annotations

import datetime
import platform
from typing import Any

import numpy as np
import torch

import onebit
from onebit.export.graph import ExportError, Graph

__all__ = ["check_against_registry", "to_model_file"]

# Which params of which ops are ±1 weights to store packed.
_PACKED_WEIGHTS = {("bconv2d", "weight"), ("bdense", "weight")}


def check_against_registry(nodes: list[dict[str, Any]]) -> None:
    """Refuse a graph the engine would not load: every op, attribute and parameter must be in its registry.

    The C++ engine defines each op once (``onebit.runtime.ops()``); checking here
    turns an exporter bug into an ExportError at export time, naming the module,
    instead of a file that every engine refuses.
    """
    from onebit.runtime.model import ops as engine_ops  # the C++ engine, loaded only to export

    table = engine_ops()
    for node in nodes:
        where = f"{node.get('source') or node['outputs'][0]} ({node['op']})"
        spec = table.get(node["op"])
        if spec is None:
            raise ExportError(f"{where}: the engine has no op {node['op']!r}")
        unknown = set(node.get("attrs", {})) - set(spec["attrs"])
        if unknown:
            raise ExportError(f"{where}: attributes {sorted(unknown)} are not in the engine's schema")
        unknown = set(node.get("params", {})) - set(spec["params"])
        if unknown:
            raise ExportError(f"{where}: parameters {sorted(unknown)} are not in the engine's schema")
        lo, hi = spec["inputs"]
        if not lo <= len(node["inputs"]) <= hi:
            raise ExportError(f"{where}: {len(node['inputs'])} inputs, the engine op takes {lo} to {hi}")


def to_model_file(
    graph: Graph,
    *,
    fp16: bool = False,
    extra_meta: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Turn a lowered graph into the (meta, tensors) pair that ``write_model_file`` stores."""
    from onebit.runtime.kernels import pack_bits

    check_against_registry(graph.nodes)
    tensors: dict[str, np.ndarray] = {}
    encodings: dict[str, dict[str, Any]] = {}
    packed_names = {
        node["params"]["weight"]
        for node in graph.nodes
        if (node["op"], "weight") in _PACKED_WEIGHTS or node["attrs"].get("binary_weight")
    }
    for name, arr in graph.tensors.items():
        if name in packed_names:
            tensors[name] = pack_bits(np.ascontiguousarray(arr, dtype=np.float32))
            encodings[name] = {"encoding": "packed_sign", "channels": int(arr.shape[-1])}
        elif fp16 and arr.dtype == np.float32 and arr.size > 64:
            tensors[name] = arr.astype(np.float16)
            encodings[name] = {"encoding": "fp16"}
        else:
            tensors[name] = arr
    meta = {
        "producer": {
            "onebit": onebit.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        },
        "inputs": graph.inputs,
        "outputs": graph.outputs,
        "nodes": graph.nodes,
        "encodings": encodings,
        **(extra_meta or {}),
    }
    return meta, tensors
