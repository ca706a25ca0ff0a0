"""Tiny binary models for tests and smoke runs (no dependency on the model zoo)."""

from __future__ import annotations

from torch import nn

from onebit.nn import QuantConv2d, QuantLinear

__all__ = ["MODELS", "tiny_cnn", "tiny_mlp"]

_BIN = {"input_quantizer": "ste_sign", "weight_quantizer": "ste_sign", "weight_constraint": "weight_clip"}


def tiny_mlp(
    num_classes: int = 10, in_features: int = 144, hidden: int = 64, bn: bool = True, dropout: float = 0.1
) -> nn.Module:
    """Flatten -> float linear -> [BN] -> binary linear -> [BN] -> float linear."""
    norm = (lambda c: nn.BatchNorm1d(c)) if bn else (lambda c: nn.Identity())
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_features, hidden),
        norm(hidden),
        QuantLinear(hidden, hidden, bias=False, **_BIN),
        norm(hidden),
        nn.Dropout(dropout) if dropout else nn.Identity(),
        nn.Linear(hidden, num_classes),
    )


def tiny_cnn(num_classes: int = 10, in_chans: int = 1, width: int = 16) -> nn.Module:
    """Float stem conv, two binary convs, float classifier (works on 12x12..32x32 inputs)."""
    return nn.Sequential(
        nn.Conv2d(in_chans, width, 3, padding=1, bias=False),
        nn.BatchNorm2d(width),
        QuantConv2d(width, width, 3, padding=1, bias=False, **_BIN),
        nn.BatchNorm2d(width),
        nn.MaxPool2d(2),
        QuantConv2d(width, 2 * width, 3, padding=1, bias=False, **_BIN),
        nn.BatchNorm2d(2 * width),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2 * width, num_classes),
    )


MODELS = {"tiny_mlp": tiny_mlp, "tiny_cnn": tiny_cnn}
