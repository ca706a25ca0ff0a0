"""Export a trained model to a packed ``.onebit`` file for the torch-free engine.

``onebit.export(model, example_input, "model.onebit")`` captures the model's graph
(:mod:`.capture`), maps each node to engine ops through the lowering registry
(:mod:`.registry`, built-in lowerings in :mod:`.lowerings`, driven by :mod:`.driver`),
folds BatchNorm and scaling factors into the binary layers (:mod:`.passes`), packs
binary weights at 1 bit each (:mod:`.writer`) and writes the file atomically (format:
:mod:`onebit.runtime.format`). The intermediate graph is :mod:`.graph`.

Besides the graph, a file records what `onebit run` needs to use the model on an
image: ``preprocess`` and ``labels`` (:mod:`.metadata`; :func:`recipe_preprocess` and
:func:`recipe_labels` derive both from a training recipe, as ``onebit export
CHECKPOINT`` does, and :func:`model_cfg_preprocess` from a zoo model's default config).

A model with a module the exporter does not know is taught with
:func:`register_module_lowering` (functions: :func:`register_function_lowering`,
tensor methods: :func:`register_method_lowering`); see docs/deployment.md.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from onebit.export.driver import lower
from onebit.export.graph import ExportError, Graph, Value
from onebit.export.metadata import (
    DATASET_CLASSES,
    checked_labels,
    checked_preprocess,
    model_cfg_preprocess,
    recipe_labels,
    recipe_preprocess,
)
from onebit.export.registry import (
    LoweringContext,
    register_function_lowering,
    register_method_lowering,
    register_module_lowering,
    supported,
)
from onebit.export.writer import check_against_registry, to_model_file

__all__ = [
    "DATASET_CLASSES",
    "ExportError",
    "Graph",
    "LoweringContext",
    "Value",
    "check_against_registry",
    "export",
    "lower",
    "model_cfg_preprocess",
    "recipe_labels",
    "recipe_preprocess",
    "register_function_lowering",
    "register_method_lowering",
    "register_module_lowering",
    "supported",
    "to_model_file",
]


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
            ``{"channels": 3, "resize": 256, "crop": 224, "mean": [...], "std": [...]}``
            (keys: :func:`onebit.runtime.tools.check_preprocess`; :func:`recipe_preprocess`
            builds it from a recipe). ``channels`` is filled in from ``example_input``.
        labels: class names in output order, printed by `onebit run`; one per output.

    Raises:
        ExportError: an op or module the engine cannot run, named with its module path.
        ValueError: ``preprocess`` or ``labels`` that do not fit the model.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"export expects an nn.Module, got {type(model).__name__}")
    if not isinstance(example_input, torch.Tensor) or example_input.dtype != torch.float32:
        raise TypeError("example_input must be a float32 torch.Tensor")
    if preprocess is not None:
        preprocess = checked_preprocess(preprocess, tuple(example_input.shape))
    graph = lower(model, example_input)
    extra: dict[str, Any] = {"model": {"name": model_name or type(model).__name__}}
    if preprocess is not None:
        extra["preprocess"] = preprocess
    if labels is not None:
        extra["labels"] = checked_labels(labels, graph.outputs)
    meta, tensors = to_model_file(graph, fp16=fp16, extra_meta=extra)
    from onebit.runtime.format import write_model_file  # loaded on use: see onebit.models._blocks

    return write_model_file(path, meta, tensors)


class _CallableModule(type(os)):
    """Lets ``onebit.export(model, x, path)`` call :func:`export` while ``onebit.export`` stays a package."""

    def __call__(self, *args: Any, **kwargs: Any) -> int:
        return export(*args, **kwargs)


import sys as _sys  # noqa: E402

_sys.modules[__name__].__class__ = _CallableModule
