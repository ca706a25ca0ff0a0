from __future__ import annotations

import pytest
import torch
from torch import nn

from onebit.nn import QuantConv2d, QuantLinear, Scale

BIN = dict(input_quantizer="ste_sign", weight_quantizer="ste_sign", weight_constraint="weight_clip")


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give BatchNorms non-trivial statistics (some negative gammas) so that folding is exercised."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
            if m.weight is not None:
                m.weight.data.copy_(torch.rand(n, generator=g) * 2 - 1)
            if m.bias is not None:
                m.bias.data.copy_(torch.rand(n, generator=g) - 0.5)
    return model


class TinyBNN(nn.Module):
    """Float conv, BN, [sign, bconv, maxpool, BN] x2, flatten, bdense, BN, dense, scale."""

    def __init__(self, pad_value: float | None = 1.0) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(16)
        self.conv1 = QuantConv2d(16, 70, 3, padding=1, bias=False, pad_value=pad_value, **BIN)
        self.pool1 = nn.MaxPool2d(2)
        self.bn1 = nn.BatchNorm2d(70)
        self.conv2 = QuantConv2d(70, 33, 3, stride=2, padding=1, bias=False, pad_value=pad_value, **BIN)
        self.bn2 = nn.BatchNorm2d(33)
        self.fc1 = QuantLinear(33 * 2 * 2, 40, bias=False, **BIN)
        self.bn3 = nn.BatchNorm1d(40)
        self.fc2 = nn.Linear(40, 10)
        self.scale = Scale(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn0(self.conv0(x))
        x = self.bn1(self.pool1(self.conv1(x)))
        x = self.bn2(self.conv2(x))
        x = torch.flatten(x, 1)
        x = self.bn3(self.fc1(x))
        return self.scale(self.fc2(x))


@pytest.fixture
def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return randomize_bn(TinyBNN()).eval()
