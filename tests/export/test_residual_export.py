"""residual_sign (Tang's k-bit activations) through the exporter: each rule to its engine ops, as PyTorch.

The per-sample rule is checked end to end through a net of residual layers. The per-channel rule
couples the images of a batch (a rounding flip in one image moves every image's scales), so a
chain of its layers is chaotic: on ResidualNet at 3 bits PyTorch fp64 and fp32 differ by 5% of
the logits' range. It is checked one residual layer at a time, and end to end on trained CIFAR
nets against PyTorch's own fp64 noise (test_tang_residual.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import onebit
from onebit import quantizers as Q
from onebit.export import ExportError, lower
from onebit.nn import QuantConv2d, QuantLinear
from onebit.runtime.format import read_model_file
from onebit.runtime.model import load
from onebit.runtime.reference import decode_tensors, run_reference

from .conftest import randomize_bn


def _res(bits: int, scale: str, **kw) -> dict:
    return dict(
        input_quantizer={"name": "residual_sign", "bits": bits, "scale": scale},
        weight_quantizer="ste_sign",
        weight_constraint="weight_clip",
        **kw,
    )


class ResidualNet(nn.Module):
    """Float stem, BN, residual conv (+bias), PReLU, pool, BN, residual strided conv (channel scaling),
    a standalone ResidualSign, max-pool, flatten, BN, residual dense (alpha), residual dense."""

    def __init__(self, bits: int, scale: str) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 20, 3, padding=1)
        self.bn0 = nn.BatchNorm2d(20)
        self.conv1 = QuantConv2d(20, 70, 3, padding=1, **_res(bits, scale))
        self.act1 = nn.PReLU(70)
        self.pool1 = nn.MaxPool2d(2)
        self.bn1 = nn.BatchNorm2d(70)
        self.conv2 = QuantConv2d(
            70, 24, 3, stride=2, padding=1, bias=False, **_res(bits, scale, scaling="channel")
        )
        self.bn2 = nn.BatchNorm2d(24)
        self.q = Q.ResidualSign(bits, scale=scale)
        self.pool2 = nn.MaxPool2d(2, ceil_mode=True)
        self.bn3 = nn.BatchNorm1d(24 * 2 * 2)
        self.fc1 = QuantLinear(24 * 2 * 2, 30, **_res(bits, scale, scaling="alpha"))
        self.bn4 = nn.BatchNorm1d(30)
        self.fc2 = QuantLinear(30, 10, bias=False, **_res(bits, scale))
        with torch.no_grad():  # a learned per-channel scale that is not all ones
            self.conv2.scale.uniform_(0.5, 1.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn1(self.pool1(self.act1(self.conv1(self.bn0(self.stem(x))))))
        x = self.pool2(self.q(self.bn2(self.conv2(x))))
        x = self.bn4(self.fc1(self.bn3(torch.flatten(x, 1))))
        return self.fc2(x)


def _export_compare(m: nn.Module, x: torch.Tensor, path) -> list[str]:
    """Export, run engine and reference on the batch, compare with PyTorch; the engine's ops."""
    onebit.export(m, x[:1], path)
    engine = load(path, num_threads=2)
    with torch.no_grad():
        want = m(x).numpy()  # one batch in all three: the channel rule averages over it
    tol = 1e-4 * np.abs(want).max()
    np.testing.assert_allclose(engine.run(x.numpy()), want, rtol=1e-4, atol=tol)
    mf = read_model_file(path)
    np.testing.assert_allclose(
        run_reference(mf.meta, decode_tensors(mf.meta, mf.tensors), x.numpy()), want, rtol=1e-4, atol=tol
    )
    # binary weights stay 1 bit in the file under both rules
    packed = [n for n, e in mf.meta["encodings"].items() if e["encoding"] == "packed_sign"]
    assert len(packed) == sum(isinstance(q, (QuantConv2d, QuantLinear)) for q in m.modules())
    return [row["op"] for row in engine.describe()]


@pytest.mark.parametrize("bits", [2, 3])
def test_per_sample_residual_net_runs_like_torch(tmp_path, bits):
    torch.manual_seed(bits)
    m = randomize_bn(ResidualNet(bits, "sample")).eval()
    ops = _export_compare(m, torch.randn(12, 3, 16, 16), tmp_path / "r.onebit")
    assert ops.count("bconv2d") == 2 and ops.count("bdense") == 2
    assert ops.count("residual_sign") == 1  # the standalone quantizer


@pytest.mark.parametrize("bits", [2, 3])
@pytest.mark.parametrize("layer", ["conv", "dense", "standalone"])
def test_per_channel_residual_layer_runs_like_torch(tmp_path, bits, layer):
    torch.manual_seed(bits)
    if layer == "conv":
        body = [
            nn.BatchNorm2d(20),
            QuantConv2d(20, 70, 3, stride=2, padding=1, **_res(bits, "channel", scaling="channel")),
        ]
    elif layer == "dense":
        body = [nn.Flatten(), nn.BatchNorm1d(20 * 64), QuantLinear(20 * 64, 30, **_res(bits, "channel"))]
    else:
        body = [Q.ResidualSign(bits, scale="channel"), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(20 * 16, 7)]
    m = randomize_bn(nn.Sequential(nn.Conv2d(3, 20, 3, padding=1), *body)).eval()
    if layer == "conv":
        with torch.no_grad():
            body[1].scale.uniform_(0.5, 1.5)
    ops = _export_compare(m, torch.randn(12, 3, 8, 8), tmp_path / "c.onebit")
    assert "residual_sign" in ops and "bconv2d" not in ops and "bdense" not in ops


@pytest.mark.parametrize("scale", ["sample", "channel"])
@pytest.mark.parametrize("groups", [4, 20])
def test_grouped_and_depthwise_residual_convs_run_like_torch(tmp_path, scale, groups):
    torch.manual_seed(groups)
    conv = QuantConv2d(20, 40, 3, padding=1, groups=groups, **_res(3, scale))
    m = randomize_bn(nn.Sequential(nn.Conv2d(3, 20, 3, padding=1), nn.BatchNorm2d(20), conv)).eval()
    ops = _export_compare(m, torch.randn(6, 3, 8, 8), tmp_path / "g.onebit")
    assert ("bconv2d" in ops) == (scale == "sample")


def test_residual_layer_before_a_sign_keeps_its_float_sum(tmp_path):
    """A residual conv feeding BN -> sign keeps its float output (a scaled sum has no integer threshold)."""
    torch.manual_seed(0)
    bin1 = dict(input_quantizer="ste_sign", weight_quantizer="ste_sign", weight_constraint="weight_clip")
    m = randomize_bn(
        nn.Sequential(
            QuantConv2d(5, 16, 3, padding=1, bias=False, **_res(2, "sample")),
            nn.BatchNorm2d(16),
            QuantConv2d(16, 8, 3, padding=1, bias=False, pad_value=1.0, **bin1),
        )
    ).eval()
    x = torch.randn(4, 5, 8, 8)
    g = lower(m, x[:1])
    res = next(n for n in g.nodes if n["attrs"].get("residual_bits") == 2)
    assert res["attrs"]["output"] == "float" and "multiplier" in res["params"]
    onebit.export(m, x[:1], tmp_path / "s.onebit")
    with torch.no_grad():
        want = m(x).numpy()
    np.testing.assert_allclose(load(tmp_path / "s.onebit").run(x.numpy()), want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(
    "layer, message",
    [
        (QuantConv2d(4, 4, 3, padding=1, pad_value=1.0, **_res(2, "sample")), "pad_value=1.0"),
        (QuantConv2d(4, 4, 3, padding=1, scaling="xnor", **_res(2, "sample")), "XNOR-Net's K"),
        (QuantConv2d(4, 4, 3, padding=1, **_res(9, "sample")), "at most 8"),
    ],
)
def test_residual_layers_the_engine_cannot_run_are_refused_with_the_reason(layer, message):
    with pytest.raises(ExportError, match=message):
        lower(nn.Sequential(layer), torch.randn(1, 4, 6, 6))
