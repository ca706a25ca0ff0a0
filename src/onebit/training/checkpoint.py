"""Checkpoints: everything needed to continue a run exactly, written atomically.

A checkpoint is one ``torch.save`` dict::

    {"format": "onebit-checkpoint", "version": 1,
     "model": state_dict, "model_name": str, "model_kwargs": dict,
     "input_size": (C, H, W), "num_classes": int,
     "optimizer": ..., "scheduler": ..., "scaler": ...,
     "rng": {"python", "numpy", "torch", "cuda"},
     "epoch": e, "step_in_epoch": s, "global_step": g,   # next batch to run: (e, s)
     "config": recipe, "metrics": {...}, "extra": {...}}

Written to ``path.tmp`` then ``os.replace``-d over ``path``: a crash (even
SIGKILL) leaves either the old or the new file, never half of one.
:func:`load_model` rebuilds the model from the recorded name and kwargs.
"""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["build_model", "capture_rng", "load_checkpoint", "load_model", "restore_rng", "save_checkpoint"]

FORMAT = "onebit-checkpoint"


def capture_rng() -> dict[str, Any]:
    st: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # noqa: NPY002 (global state is what we restore)
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def restore_rng(st: dict[str, Any]) -> None:
    random.setstate(st["python"])
    np.random.set_state(st["numpy"])  # noqa: NPY002
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def save_checkpoint(path: str, state: dict[str, Any]) -> None:
    """Atomically write ``state`` (plus format tags) to ``path``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    state = {"format": FORMAT, "version": 1, **state}
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: str, map_location: Any = "cpu") -> dict[str, Any]:
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ck = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # truncated / not a torch file
        raise ValueError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise ValueError(f"{path}: not a onebit training checkpoint")
    return ck


def build_model(name: str, num_classes: int, kwargs: dict[str, Any] | None = None) -> nn.Module:
    """Build a model by registered name (``onebit.models``), test-model name (``tiny_*``)
    or ``module:callable``."""
    kwargs = dict(kwargs or {})
    if ":" in name:
        import importlib

        mod, attr = name.split(":", 1)
        try:
            fn = getattr(importlib.import_module(mod), attr)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"model {name!r}: cannot import ({e})") from None
        return fn(num_classes=num_classes, **kwargs)
    from onebit.training import tiny

    if name in tiny.MODELS:
        return tiny.MODELS[name](num_classes=num_classes, **kwargs)
    from onebit import models

    return models.create(name, num_classes=num_classes, **kwargs)


def load_model(path: str, map_location: Any = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model saved in a checkpoint; returns ``(model, meta)``.

    ``meta`` holds ``model_name``, ``model_kwargs``, ``input_size`` (C, H, W),
    ``num_classes``, ``epoch``, ``metrics`` and the recipe (``config``).
    """
    ck = load_checkpoint(path, map_location)
    model = build_model(ck["model_name"], ck["num_classes"], ck.get("model_kwargs"))
    model.load_state_dict(ck["model"])
    model.eval()
    meta = {
        k: ck.get(k)
        for k in ("model_name", "model_kwargs", "input_size", "num_classes", "epoch", "metrics", "config")
    }
    if meta["input_size"] is not None:
        meta["input_size"] = tuple(meta["input_size"])
    return model, meta
