"""Model summary counts against hand counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import onebit
from onebit.nn import QuantConv2d, QuantLinear

BIN = dict(input_quantizer="ste_sign", weight_quantizer="ste_sign", weight_constraint="weight_clip")


def net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),  # 3*8*9 + 8 = 224 float, MACs 8*8*8 * 27 = 13,824
        nn.BatchNorm2d(8),  # 4 * 8 = 32 float (gamma, beta, running mean, running var)
        QuantConv2d(8, 16, 3, padding=1, bias=False, **BIN),  # 1,152 binary, MACs 16*8*8 * 72 = 73,728
        nn.MaxPool2d(2),
        nn.BatchNorm2d(16),  # 64 float
        nn.PReLU(16),  # 16 float
        nn.Flatten(),
        QuantLinear(256, 10, weight_quantizer="ste_sign", weight_constraint="weight_clip"),  # BWN
        onebit.nn.Scale(1.0),
    )


def test_summary_matches_hand_counts():
    s = onebit.summary(net(), (3, 8, 8), print_table=False)
    assert s.total_params_binary == 1152 + 2560
    assert s.total_params_float == 224 + 32 + 64 + 16 + 10 + 1
    assert s.memory_bytes == (1152 + 2560) / 8 + (224 + 32 + 64 + 16 + 10 + 1) * 4
    assert s.macs_binary == 73728
    # the BWN dense layer has float inputs: its 2,560 MACs are float MACs
    assert s.macs_float == 13824 + 2560
    rows = {r.name: r for r in s.layers}
    assert rows["2"].output_shape == (16, 8, 8)
    assert (rows["2"].input_precision, rows["2"].weight_precision) == (1, 1)
    assert rows["7"].macs_float == 2560 and rows["7"].params_binary == 2560
    assert s.total_params == sum(p.numel() for p in net().parameters()) + 2 * (8 + 16)
    assert s.compression_ratio == pytest.approx(s.total_params * 4 / s.memory_bytes)


def test_summary_counts_grouped_and_strided_convs():
    m = nn.Sequential(QuantConv2d(4, 8, 3, stride=2, padding=1, groups=2, bias=False, **BIN))
    s = onebit.summary(m, (4, 9, 9), print_table=False)
    assert s.total_params_binary == 8 * 2 * 9
    assert s.macs_binary == 8 * 5 * 5 * (2 * 9)


def test_summary_prints_table(capsys):
    onebit.summary(net(), 8, print_table=True)
    out = capsys.readouterr().out
    assert "Total params" in out and "1-bit MACs" in out and "MiB packed" in out


def test_summary_bad_input():
    with pytest.raises(ValueError, match="input_size"):
        onebit.summary(net(), print_table=False)
    with pytest.raises(ValueError, match="positive"):
        onebit.summary(net(), (3, 0, 8), print_table=False)


def test_summary_leaves_model_mode_alone():
    m = net().train()
    onebit.summary(m, (3, 8, 8), print_table=False)
    assert m.training
    m.eval()
    onebit.summary(m, (3, 8, 8), example_input=torch.randn(2, 3, 8, 8), print_table=False)
    assert not m.training
