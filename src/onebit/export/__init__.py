"""Export a trained model to a packed ``.onebit`` file for the torch-free engine.

``onebit.export(model, example_input, "model.onebit")`` captures the model's
graph, maps it to engine ops, folds BatchNorm and scaling factors into the
binary layers (see :mod:`onebit.export._lower`), packs binary weights at 1 bit
each and writes the file atomically (format: :mod:`onebit.runtime.format`).
"""

from __future__ import annotations

import datetime
import os
import platform
from typing import Any

import numpy as np
import torch
from torch import nn

import onebit
from onebit.export._lower import ExportError, Graph, lower, register_module_lowering
from onebit.runtime.format import write_model_file
from onebit.runtime.kernels import pack_bits
from onebit.runtime.model import ops as engine_ops

__all__ = ["ExportError", "export", "register_module_lowering", "to_model_file"]

# Which params of which ops are ±1 weights to store packed.
_PACKED_WEIGHTS = {("bconv2d", "weight"), ("bdense", "weight")}


def check_against_registry(nodes: list[dict[str, Any]]) -> None:
    """Refuse a graph the engine would not load: every op, attribute and parameter must be in its registry.

    The C++ engine defines each op once (``onebit.runtime.ops()``); checking here
    turns an exporter bug into an ExportError at export time, naming the module,
    instead of a file that every engine refuses.
    """
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
    """Turn a lowered graph into the (meta, tensors) pair that :func:`write_model_file` stores."""
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


def export(
    model: nn.Module,
    example_input: torch.Tensor,
    path: str | os.PathLike,
    *,
    fp16: bool = False,
    model_name: str | None = None,
    preprocess: dict[str, Any] | None = None,
    labels: list[str] | None = None,
) -> int:
    """Export ``model`` to ``path``; returns the file size in bytes.

    Args:
        model: a (trained) model built from onebit and torch.nn layers; it is put
            in eval mode for the capture and restored afterwards.
        example_input: one batch in NCHW (or NC) layout; fixes the input's C, H, W.
        path: destination; written atomically.
        fp16: store float weights as fp16 (half the float part of the file).
        model_name: recorded as provenance (default: the class name).
        preprocess: how `onebit run` turns an image into the input, e.g.
            ``{"resize": 256, "crop": 224, "mean": [...], "std": [...]}``.
        labels: class names, printed by `onebit run`.

    Raises:
        ExportError: an op or module the engine cannot run, named with its module path.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"export expects an nn.Module, got {type(model).__name__}")
    if not isinstance(example_input, torch.Tensor) or example_input.dtype != torch.float32:
        raise TypeError("example_input must be a float32 torch.Tensor")
    graph = lower(model, example_input)
    extra: dict[str, Any] = {"model": {"name": model_name or type(model).__name__}}
    if preprocess is not None:
        extra["preprocess"] = preprocess
    if labels is not None:
        extra["labels"] = list(labels)
    meta, tensors = to_model_file(graph, fp16=fp16, extra_meta=extra)
    return write_model_file(path, meta, tensors)


class _CallableModule(type(os)):
    """Lets ``onebit.export(model, x, path)`` call :func:`export` while ``onebit.export`` stays a package."""

    def __call__(self, *args: Any, **kwargs: Any) -> int:
        return export(*args, **kwargs)


import sys as _sys  # noqa: E402

_sys.modules[__name__].__class__ = _CallableModule
