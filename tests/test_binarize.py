"""binarize_ and the activations in front of binary layers.

sign(relu(x)) is +1 everywhere (sign(0) = +1): a binary layer behind a ReLU computes a
constant. binarize_ must replace such ReLUs (BinarizeConfig.activation) and warn about
every sign it cannot fix.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from onebit import quantizers as Q
from onebit.nn import (
    BinarizeConfig,
    QuantConv2d,
    QuantLinear,
    VersionMismatchError,
    binarize_,
    config_from_dict,
    nonnegative_sign_inputs,
)

BIN = dict(input_quantizer="ste_sign", weight_quantizer="ste_sign", weight_constraint="weight_clip")


def _binarize_quietly(model: nn.Module, config: BinarizeConfig | None = None) -> list[str]:
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        binarize_(model, config)
    return [str(x.message) for x in w if issubclass(x.category, UserWarning)]


def _sign_inputs(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The sign of every binary layer's input on one forward pass."""
    seen: dict[str, torch.Tensor] = {}
    hooks = [
        m.register_forward_pre_hook(lambda mod, args, name=name: seen.__setitem__(name, args[0].detach()))
        for name, m in model.named_modules()
        if isinstance(m, (QuantConv2d, QuantLinear)) and m.is_binary
    ]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return {k: torch.where(v >= 0, 1.0, -1.0) for k, v in seen.items()}


class TestResNet18:
    def test_keep_reproduces_dead_signs_and_warns(self):
        torch.manual_seed(0)
        m = torchvision.models.resnet18(num_classes=10)
        msgs = _binarize_quietly(m, BinarizeConfig(scaling="channel", pad_value=1.0, activation="keep"))
        assert len(msgs) == 1 and "19 sign quantizer(s) see only non-negative inputs" in msgs[0]
        assert "layer1.0.conv1 (input from relu (ReLU))" in msgs[0]
        assert len(nonnegative_sign_inputs(m)) == 19
        signs = _sign_inputs(m.eval(), torch.randn(2, 3, 32, 32))
        assert len(signs) == 19 and all(bool((s == 1).all()) for s in signs.values())

    def test_default_replaces_relus_and_signs_see_both_signs(self):
        torch.manual_seed(0)
        m = torchvision.models.resnet18(num_classes=10)
        assert _binarize_quietly(m, BinarizeConfig(scaling="channel", pad_value=1.0)) == []
        assert nonnegative_sign_inputs(m) == []
        assert not any(isinstance(mod, nn.ReLU) for mod in m.modules())
        assert type(m.relu) is nn.Identity and type(m.layer3[1].relu) is nn.Identity
        signs = _sign_inputs(m.eval(), torch.randn(2, 3, 32, 32))
        assert len(signs) == 19
        for name, s in signs.items():  # (behind the stem's max-pool most are +1 until BN learns a shift)
            assert 0.0 < float((s == 1).float().mean()) < 1.0, name

    @pytest.mark.parametrize("activation, cls", [("prelu", nn.PReLU), ("hardtanh", nn.Hardtanh)])
    def test_other_activations(self, activation, cls):
        m = torchvision.models.resnet18(num_classes=10)
        assert _binarize_quietly(m, BinarizeConfig(activation=activation)) == []
        assert type(m.relu) is cls and type(m.layer1[0].relu) is cls
        assert nonnegative_sign_inputs(m) == []
        m.eval()(torch.randn(1, 3, 32, 32)).sum()


class _FunctionalReLU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv0(x)), 2)
        return self.fc(self.conv1(x).mean((2, 3)))


class _Untraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.relu = nn.ReLU()
        self.b = nn.Linear(4, 4)
        self.c = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.a(x))
        if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
            x = self.b(x)
        return self.c(x)


class TestDetection:
    def test_functional_relu_cannot_be_replaced_and_warns(self):
        msgs = _binarize_quietly(_FunctionalReLU())
        assert len(msgs) == 1 and "conv1 (input from relu() in forward" in msgs[0]
        assert "use a module" in msgs[0]

    def test_through_pool_flatten_cat_and_sums(self):
        relu = nn.Sequential(
            nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.1), nn.Flatten(), QuantLinear(12, 2, bias=False, **BIN)
        )
        (found,) = nonnegative_sign_inputs(relu)
        assert found.layer == "4" and found.sources == ("0 (ReLU)",)
        sigmoid = nn.Sequential(nn.Sigmoid(), nn.AdaptiveAvgPool2d(1), QuantConv2d(3, 2, 1, **BIN))
        assert [f.layer for f in nonnegative_sign_inputs(sigmoid)] == ["2"]

        class Sums(nn.Module):
            def __init__(self, shift: float) -> None:
                super().__init__()
                self.shift = shift
                self.r1, self.r2 = nn.ReLU(), nn.ReLU6()
                self.q = QuantConv2d(6, 2, 1, **BIN)

            def forward(self, x):
                y = torch.cat([self.r1(x), self.r2(x) * 2.0], 1) + self.shift
                return self.q(y)

        (found,) = nonnegative_sign_inputs(Sums(0.5))
        assert found.sources == ("r1 (ReLU)", "r2 (ReLU6)")
        assert nonnegative_sign_inputs(Sums(-0.5)) == []  # a negative shift makes the sign useful

    def test_signed_inputs_are_not_flagged(self):
        m = nn.Sequential(nn.ReLU(), nn.BatchNorm2d(3), QuantConv2d(3, 2, 1, **BIN))
        assert nonnegative_sign_inputs(m) == []
        heaviside = nn.Sequential(
            nn.ReLU(),
            QuantConv2d(
                3,
                2,
                1,
                input_quantizer="ste_heaviside",
                weight_quantizer="ste_sign",
                weight_constraint="weight_clip",
            ),
        )
        assert nonnegative_sign_inputs(heaviside) == []  # heaviside(relu(x)) = heaviside(x)
        float_input = nn.Sequential(
            nn.ReLU(), QuantConv2d(3, 2, 1, weight_quantizer="ste_sign", weight_constraint="weight_clip")
        )
        assert nonnegative_sign_inputs(float_input) == []

    def test_standalone_sign_module(self):
        m = nn.Sequential(nn.ReLU(), nn.Identity(), Q.SteSign())
        assert [f.layer for f in nonnegative_sign_inputs(m)] == ["2"]

    def test_untraceable_model_warns(self):
        m = _Untraceable()
        msgs = _binarize_quietly(m, BinarizeConfig(keep_first=False))
        assert len(msgs) == 1 and "cannot trace _Untraceable" in msgs[0]
        assert type(m.relu) is nn.ReLU  # nothing was replaced blindly


class TestConfig:
    def test_activation_validated(self):
        with pytest.raises(ValueError, match="unknown activation 'gelu'"):
            BinarizeConfig(activation="gelu")

    def test_versions(self):
        cfg = BinarizeConfig(scaling="channel", pad_value=1.0, activation="prelu")
        assert cfg.to_dict()["_version"] == 2
        assert config_from_dict(cfg.to_dict()) == cfg
        v1 = {k: v for k, v in cfg.to_dict().items() if k != "activation"}
        v1["_version"] = 1
        old = config_from_dict(v1)
        assert old.activation == "keep" and old.scaling == "channel"  # converts as version 1 did
        with pytest.raises(
            ValueError, match=r"unknown BinarizeConfig fields \(version 1\): \['activation'\]"
        ):
            config_from_dict({**v1, "activation": "identity"})
        with pytest.raises(VersionMismatchError):
            config_from_dict({**cfg.to_dict(), "_version": 3})
