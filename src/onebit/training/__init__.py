"""Training: recipes, the :class:`Trainer`, distillation, diagnostics, checkpoints, DDP.

``from onebit.training import Trainer, Callback, Recipe, load_recipe``. The names load on
first use, so that importing a torch-free submodule (:mod:`onebit.training.recipes`,
:mod:`onebit.training.config`) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Trainer": "onebit.training.trainer",
    "Callback": "onebit.training.trainer",
    "StepResult": "onebit.training.trainer",
    "train": "onebit.training.loop",
    "Recipe": "onebit.training.config",
    "RecipeError": "onebit.training.config",
    "load_recipe": "onebit.training.config",
    "load_config": "onebit.training.config",
    "ModelConfig": "onebit.training.config",
    "DataConfig": "onebit.training.config",
    "OptimConfig": "onebit.training.config",
    "ScheduleConfig": "onebit.training.config",
    "TrainConfig": "onebit.training.config",
    "DistillConfig": "onebit.training.config",
    "DiagnosticsConfig": "onebit.training.config",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'onebit.training' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
