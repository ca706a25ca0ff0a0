"""float_twin (the float baseline of a binary model) and compare_engine's labelled report."""

from __future__ import annotations

import math
import os

import torch
import torchvision
from torch import nn

import onebit
from onebit import quantizers as Q
from onebit.export.verify import DeployReport, compare_engine, interleaved_median_ms, pinned
from onebit.models import create
from onebit.nn import BinarizeConfig, QuantMixin, binarize_, float_twin


def _float_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def test_twin_of_converted_resnet18_has_only_float_layers_of_the_same_shapes():
    torch.manual_seed(0)
    m = binarize_(
        torchvision.models.resnet18(num_classes=10), BinarizeConfig(scaling="channel", pad_value=1.0)
    )
    twin = float_twin(m)
    assert not any(isinstance(x, (QuantMixin, Q.Quantizer)) for x in twin.modules())
    assert all(type(x) in (nn.Conv2d, nn.Linear) for x in _float_layers(twin))
    assert [tuple(x.weight.shape) for x in _float_layers(twin)] == [
        tuple(x.weight.shape) for x in _float_layers(m)
    ]
    # the sign was the binary layers' nonlinearity: the twin puts a ReLU in its place
    assert isinstance(twin.layer1[0].conv1, nn.Sequential) and isinstance(twin.layer1[0].conv1[0], nn.ReLU)
    assert type(twin.conv1) is nn.Conv2d  # the float stem had no input quantizer
    assert isinstance(m.layer1[0].conv1, QuantMixin)  # the binary model is untouched
    torch.testing.assert_close(twin.layer1[0].conv1[1].weight, m.layer1[0].conv1.weight)
    assert twin.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_twin_of_binarynet_mlp_matches_the_zoo_float_twin():
    b = create("binarynet_mlp", hidden=64, num_hidden=2)
    zoo = create("binarynet_mlp", hidden=64, num_hidden=2, binary=False)
    twin = float_twin(b)
    n = sum(p.numel() for p in twin.parameters())
    assert n == sum(p.numel() for p in zoo.parameters())
    assert sum(isinstance(x, nn.ReLU) for x in twin.modules()) == sum(
        isinstance(x, nn.ReLU) for x in zoo.modules()
    )
    bare = float_twin(b, activation=None)
    assert not any(isinstance(x, (nn.ReLU, nn.Sequential)) and x is not bare.layers for x in bare.modules())


def test_standalone_quantizers_become_identities():
    m = nn.Sequential(nn.Linear(4, 4), Q.SteSign(), nn.Linear(4, 2))
    twin = float_twin(m)
    assert type(twin[1]) is nn.Identity and type(m[1]) is Q.SteSign


def test_interleaved_medians_and_pinning():
    calls: list[str] = []
    ms = interleaved_median_ms(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, runs=4, warmup=1
    )
    assert set(ms) == {"a", "b"} and calls[2:] == ["a", "b"] * 4
    with pinned(2) as cpu:
        assert cpu is None
    if not hasattr(os, "sched_getaffinity"):
        return
    before = os.sched_getaffinity(0)
    with pinned(1) as cpu:
        assert cpu in before and os.sched_getaffinity(0) == {cpu}
    assert os.sched_getaffinity(0) == before


def test_compare_engine_reports_the_float_twin(tmp_path):
    torch.manual_seed(0)
    model = create("binarynet_mlp", hidden=64, num_hidden=2).eval()
    x = torch.randn(40, 1, 28, 28)
    labels = torch.randint(0, 10, (40,))
    path = str(tmp_path / "m.onebit")
    onebit.export(model, x[:1], path)
    rep = compare_engine(model, path, x, labels, num_threads=1, runs=5)
    assert isinstance(rep, DeployReport) and rep.twin_acc is None and rep.runs == 5
    assert rep.engine_ms > 0 and rep.twin_ms > 0 and rep.torch_ms > 0
    assert math.isclose(rep.speedup, rep.twin_ms / rep.engine_ms)
    text = "\n".join(rep.lines())
    assert "float twin in PyTorch fp32 (same layers, float weights and activations)" in text
    assert "fake-quant" in text and "PyTorch fp32 " not in text.replace("float twin in PyTorch fp32", "")
    trained = float_twin(model)
    rep2 = compare_engine(model, path, x, labels, num_threads=1, runs=3, twin=trained)
    assert rep2.twin_acc is not None and "float twin in PyTorch fp32" in rep2.lines()[0]
