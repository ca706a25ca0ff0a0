"""Grouped and depthwise binary convolutions: QuantConv2d(groups=...) exports to bconv2d and runs exactly.

The acceptance test trains a MobileNet-style binary net (float stem, then
[depthwise 3x3 binary conv -> BN -> pointwise 1x1 binary conv -> BN] blocks)
on real CIFAR-10 for a few hundred steps, exports it and compares its
predictions with PyTorch's on the whole test set. The model lives here, not in
the zoo: the zoo holds papers' networks with their published reference counts
(models/_registry.py), and this one is a test fixture.
"""

from __future__ import annotations

import os
import pathlib
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import onebit
from onebit.export import lower
from onebit.nn import QuantConv2d
from onebit.runtime.model import load

from .conftest import BIN, randomize_bn

ROOT = pathlib.Path(__file__).resolve().parents[2]
DATA = os.environ.get("ONEBIT_DATA") or str(ROOT.parent / "shared" / "data")


def _sign_conv(x: torch.Tensor, conv: QuantConv2d) -> torch.Tensor:
    """Exact integer conv of the sign tensors with the layer's padding rule."""
    xs = onebit.quantizers.sign(x)
    w = onebit.quantizers.sign(conv.weight.detach())
    pad = conv.explicit_padding()
    if conv.pad_value not in (None, 0.0):
        xs = F.pad(xs, pad, value=conv.pad_value)
    else:
        xs = F.pad(xs, pad, value=0.0)
    return F.conv2d(xs, w, stride=conv.stride, dilation=conv.dilation, groups=conv.groups)


# (in, out, groups, kernel, stride, padding, dilation, pad_value)
LAYERS = [
    (32, 32, 32, 3, 1, 1, 1, 1.0),  # depthwise
    (96, 96, 96, 3, 2, 1, 1, None),  # depthwise, zero padding, 96 channels
    (3, 3, 3, 3, 1, 1, 1, -1.0),
    (8, 16, 8, 3, 1, 2, 2, 1.0),  # depth multiplier 2
    (24, 12, 4, 3, 1, 1, 1, None),  # 6 in, 3 out per group
    (128, 64, 2, 3, 1, 1, 1, 1.0),  # 64 per group: the per-group GEMM
    (70, 70, 7, 5, 1, 2, 1, -1.0),  # 10 per group: the per-group GEMM, off the word size
]


@pytest.mark.parametrize("cin,cout,groups,k,s,p,d,pv", LAYERS, ids=lambda v: str(v))
def test_grouped_binary_conv_is_exact(tmp_path, cin, cout, groups, k, s, p, d, pv):
    torch.manual_seed(0)
    conv = QuantConv2d(cin, cout, k, stride=s, padding=p, dilation=d, groups=groups, bias=False,
                       pad_value=pv, **BIN)
    m = nn.Sequential(conv).eval()
    x = torch.randn(3, cin, 9, 9)
    onebit.export(m, x[:1], tmp_path / "g.onebit")
    node = next(n for n in lower(m, x[:1]).nodes if n["op"] == "bconv2d")
    assert node["attrs"]["groups"] == groups
    y = load(tmp_path / "g.onebit").run(x.numpy())
    np.testing.assert_array_equal(y, _sign_conv(x, conv).numpy())


class _DwBlock(nn.Module):
    """Depthwise 3x3 binary conv -> BN -> pointwise 1x1 binary conv -> BN (binary inputs both)."""

    def __init__(self, cin: int, cout: int, stride: int, pad_value: float | None = 1.0) -> None:
        super().__init__()
        self.dw = QuantConv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False,
                              pad_value=pad_value, **BIN)
        self.bn1 = nn.BatchNorm2d(cin)
        self.pw = QuantConv2d(cin, cout, 1, bias=False, **BIN)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.pw(self.bn1(self.dw(x))))


class BinaryMobileNet(nn.Module):
    """MobileNet-style binary net for 32x32 inputs: float stem, depthwise-separable binary blocks.

    Widths 32 -> 48 -> 96 -> 96 -> 160 (channel counts off 64 on purpose) at
    16x16, 8x8 and 4x4 (a stride-2 stem keeps training inside the test's time);
    the stem conv and the classifier stay float.
    """

    def __init__(self, num_classes: int = 10, pad_value: float | None = 1.0) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(32)
        self.blocks = nn.Sequential(
            _DwBlock(32, 48, 1, pad_value),
            _DwBlock(48, 96, 2, pad_value),
            _DwBlock(96, 96, 1, pad_value),
            _DwBlock(96, 160, 2, pad_value),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(160, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.bn0(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


def test_depthwise_chain_runs_in_binary(tmp_path):
    """dw -> BN -> sign folds into thresholds: the depthwise convs emit bits for the pointwise ones."""
    torch.manual_seed(0)
    m = randomize_bn(BinaryMobileNet()).eval()
    x = torch.randn(4, 3, 32, 32)
    g = lower(m, x[:1])
    dw = [n for n in g.nodes if n["op"] == "bconv2d" and n["attrs"]["groups"] > 1]
    assert len(dw) == 4 and all(n["attrs"]["output"] == "binary" for n in dw)
    pw = [n for n in g.nodes if n["op"] == "bconv2d" and n["attrs"]["groups"] == 1]
    assert [n["attrs"]["output"] for n in pw] == ["binary"] * 3 + ["float"]
    onebit.export(m, x[:1], tmp_path / "mb.onebit")
    with torch.no_grad():
        ref = m(x).numpy()
    y = load(tmp_path / "mb.onebit").run(x.numpy())
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_mobilenet_style_net_trained_on_cifar10_agrees_with_torch(tmp_path, monkeypatch):
    """200 steps of 64 real CIFAR-10 images, then the full 10,000-image test set in both."""
    if not os.path.exists(os.path.join(DATA, "cifar10")):
        pytest.fail(f"{DATA}/cifar10 not found: point ONEBIT_DATA at the shared data directory")
    from onebit.data import Normalize, cache_dir, data_dir, load_arrays, random_crop_flip

    monkeypatch.setenv("ONEBIT_DATA", DATA)
    t0 = time.perf_counter()
    train = load_arrays("cifar10", data_dir(), cache_dir(), True)
    test = load_arrays("cifar10", data_dir(), cache_dir(), False)
    norm = Normalize("standard", "cifar10", 3)
    torch.manual_seed(0)
    model = BinaryMobileNet()
    binary = onebit.optim.binary_parameters(model)
    is_binary = onebit.optim.is_binary_parameter(model)
    rest = [p for p in model.parameters() if not is_binary(p)]
    opt = onebit.optim.CaseOptimizer(onebit.optim.Bop(binary), torch.optim.Adam(rest, lr=3e-3))
    gen = torch.Generator().manual_seed(0)
    prev = torch.get_num_threads()
    torch.set_num_threads(1)  # two threads on a shared 2-CPU machine ran 4x slower per step
    try:
        model.train()
        for _ in range(200):
            idx = torch.randint(len(train), (64,), generator=gen)
            x = norm(random_crop_flip(train.images[idx], 4, True, gen))
            loss = F.cross_entropy(model(x), train.labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        x_test = norm(test.images)
        with torch.inference_mode():
            torch_pred = torch.cat([model(b) for b in x_test.split(1000)]).argmax(1).numpy()
    finally:
        torch.set_num_threads(prev)
    path = tmp_path / "mobilenet_cifar10.onebit"
    onebit.export(model, x_test[:1], path)
    engine = load(path, num_threads=1)
    engine_pred = np.concatenate([engine.run(b.numpy()).argmax(1) for b in x_test.split(1000)])
    labels = test.labels.numpy()
    acc = float((torch_pred == labels).mean())
    agree = float((engine_pred == torch_pred).mean())
    assert len(labels) == 10_000
    assert acc > 0.25, acc  # it learned (chance is 10%)
    assert agree >= 0.995, (agree, acc)
    print(f"grouped export: torch acc {acc:.4f}, engine agrees on {agree:.4%}, "
          f"{time.perf_counter() - t0:.1f} s")
