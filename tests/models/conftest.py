from __future__ import annotations

import numpy as np
import pytest
import torch

import onebit
from onebit import models
from onebit.export.verify import calibrate_batchnorm
from onebit.runtime import load

_CACHE: dict[str, torch.nn.Module] = {}


def small_input_size(name: str) -> tuple[int, ...]:
    """CIFAR-size input of a model: input_size=32 for ImageNet models, the cfg's otherwise."""
    cfg = models.get_cfg(name)
    if cfg.get("dataset") == "imagenet":
        return (3, 32, 32)
    return tuple(cfg["input_size"])


def build_small(name: str) -> torch.nn.Module:
    """The model at CIFAR size, 10 classes, cached for the session (built once, shared)."""
    if name not in _CACHE:
        torch.manual_seed(0)
        kw = {"input_size": 32} if models.get_cfg(name).get("dataset") == "imagenet" else {}
        _CACHE[name] = models.create(name, num_classes=10, **kw)
    return _CACHE[name]


def engine_and_torch(m: torch.nn.Module, x: torch.Tensor, path) -> tuple[np.ndarray, np.ndarray]:
    """Calibrate ``m``'s BNs on ``x``, export it to ``path``; the engine's and PyTorch's outputs on ``x``."""
    calibrate_batchnorm(m, x, batch=len(x))
    onebit.export(m, x[:1], path)
    y = load(path, num_threads=1).run(x.numpy())
    with torch.no_grad():
        ref = m(x).numpy()
    return y, ref


@pytest.fixture
def small_model():
    return build_small
