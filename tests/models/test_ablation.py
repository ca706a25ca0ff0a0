"""ablation_convnet: each switch does what it says; the exportable variants run in the engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import engine_and_torch

import onebit
from onebit import models
from onebit import quantizers as Q
from onebit.nn import QuantConv2d, QuantLinear, Scale

SMALL = {"widths": [8, 16, 16], "fc": [32], "growth": [4, 8, 8]}


def _binary_layers(m):
    return [mod for mod in m.modules() if isinstance(mod, (QuantConv2d, QuantLinear)) and mod.is_binary]


def test_default_counts_and_layout():
    m = models.create("ablation_convnet")
    s = onebit.summary(m, (3, 32, 32), print_table=False)
    assert s.total_params_binary == models.get_cfg("ablation_convnet")["reference"]["params_binary"]
    assert len(_binary_layers(m)) == 6  # 5 binary 3x3 convs + FC 2048-256; stem and classifier float
    assert isinstance(m.stem, torch.nn.Conv2d) and not isinstance(m.stem, QuantConv2d)
    assert type(m.head.layer) is torch.nn.Linear


@pytest.mark.parametrize("scaling", [None, "alpha", "xnor", "channel"])
def test_scaling_reaches_every_binary_layer(scaling):
    m = models.create("ablation_convnet", scaling=scaling, **SMALL)
    assert {layer.scaling for layer in _binary_layers(m)} == {scaling}


def test_switches():
    prelu = models.create("ablation_convnet", activation="prelu", **SMALL)
    assert sum(isinstance(mod, torch.nn.PReLU) for mod in prelu.modules()) == len(_binary_layers(prelu))
    bits = models.create("ablation_convnet", act_bits=3, **SMALL)
    qs = [layer.input_quantizer for layer in bits.modules() if isinstance(layer, QuantConv2d)]
    assert all(isinstance(q, Q.ResidualSign) and q.bits == 3 and q.scale == "channel" for q in qs)
    sample = models.create("ablation_convnet", act_bits=2, act_scale="sample", **SMALL)
    layers = [mod for mod in sample.modules() if isinstance(mod, QuantConv2d) and mod.input_quantizer]
    assert layers and {layer.input_quantizer.scale for layer in layers} == {"sample"}
    swish = models.create("ablation_convnet", act_quantizer="swish_sign", **SMALL)
    assert all(isinstance(layer.input_quantizer, Q.SwishSign) for layer in _binary_layers(swish))
    last = models.create("ablation_convnet", last="binary_scale", **SMALL)
    assert last.head.layer.is_binary and isinstance(last.head.scale, Scale)
    assert float(last.head.scale.scale.detach()) == pytest.approx(1 / np.sqrt(32))
    assert not isinstance(models.create("ablation_convnet", last="binary", **SMALL).head.scale, Scale)
    twin = models.create("ablation_convnet", binary=False, **SMALL)
    assert not _binary_layers(twin) and any(isinstance(mod, torch.nn.ReLU) for mod in twin.modules())


def test_typical_order_pools_binary_values():
    m = models.create("ablation_convnet", order="typical", **SMALL).eval()
    seen = []
    hook = m.features[0].pool.register_forward_hook(lambda mod, i, o: seen.append(i[0]))
    m(torch.randn(2, 3, 32, 32))
    hook.remove()
    assert set(seen[0].unique().tolist()) <= {-1.0, 1.0}


def test_residual_adds_the_identity_and_dense_matches_plain_macs():
    m = models.create("ablation_convnet", shortcut="residual", **SMALL).eval()
    block = m.features[0]  # 8 -> 8 channels: has the shortcut
    assert block.residual
    x = torch.randn(2, 8, 32, 32)
    with torch.no_grad():
        expected = block.pool(block.act(block.layer(block.bn(x))) + x)
        torch.testing.assert_close(block(x), expected)
    plain = onebit.summary(models.create("ablation_convnet"), (3, 32, 32), print_table=False).macs_binary
    dense = onebit.summary(
        models.create("ablation_convnet", shortcut="dense"), (3, 32, 32), print_table=False
    )
    assert abs(dense.macs_binary / plain - 1) < 0.05


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"order": "bn_first"}, "unknown order"),
        ({"act_bits": 4}, "act_bits"),
        ({"act_bits": 2, "act_scale": "tensor"}, "act_scale"),
        ({"shortcut": "residual", "order": "typical"}, "shortcuts need order='xnor'"),
        ({"last": "ternary"}, "unknown last"),
        ({"input_size": 20}, "not divisible"),
    ],
)
def test_bad_switches_name_the_problem(kw, message):
    with pytest.raises(ValueError, match=message):
        models.create("ablation_convnet", **kw)


@pytest.mark.parametrize(
    "kw",
    [
        {"scaling": "xnor", "activation": "prelu"},
        {"shortcut": "residual", "scaling": "alpha"},
        {"shortcut": "dense", "scaling": "channel"},
        {"last": "binary_scale"},
    ],
)
def test_exportable_variants_run_in_the_engine_like_torch(kw, tmp_path):
    torch.manual_seed(0)
    m = models.create("ablation_convnet", **SMALL, **kw)
    y, ref = engine_and_torch(m, torch.randn(16, 3, 32, 32), tmp_path / "m.onebit")
    assert np.mean(y.argmax(1) == ref.argmax(1)) >= 0.9
    if kw.get("last") == "binary_scale":
        # Binary classifier: logits are scale * (integer popcount sums), so engine and torch may
        # differ only by whole flipped input bits (2 * scale each), never by anything else.
        steps = (y - ref) / (2 * float(m.head.scale.scale.detach()))
        np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)
        assert np.mean(np.abs(steps).max(axis=1) < 0.5) >= 0.5
    else:
        close = np.isclose(y, ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max()).all(axis=1)
        assert close.mean() >= 0.8  # a sample differs only where a near-zero pre-activation flipped
