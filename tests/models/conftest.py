from __future__ import annotations

import pytest
import torch

from onebit import models

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


@pytest.fixture
def small_model():
    return build_small
