"""Quantized layers and binarize_ against the float layers they replace."""

from __future__ import annotations

import inspect
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
    Scale,
    VersionMismatchError,
    apply_constraints,
    binarize_,
    config_from_dict,
)

BIN = dict(input_quantizer="ste_sign", weight_quantizer="ste_sign", weight_constraint="weight_clip")


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(kernel_size=3, padding=1),
        dict(kernel_size=3, stride=2, padding=1, bias=False),
        dict(kernel_size=(1, 3), padding=(0, 2), dilation=2),
        dict(kernel_size=3, padding="same"),
        dict(kernel_size=3, groups=2),
    ],
)
def test_quantconv_without_quantizers_equals_conv2d(kwargs):
    torch.manual_seed(0)
    ref = nn.Conv2d(4, 6, **kwargs)
    q = QuantConv2d(4, 6, **kwargs)
    q.load_state_dict(ref.state_dict())
    x = torch.randn(2, 4, 9, 9)
    torch.testing.assert_close(q(x), ref(x), rtol=0, atol=0)


def test_quantlinear_without_quantizers_equals_linear():
    torch.manual_seed(0)
    ref = nn.Linear(7, 5)
    q = QuantLinear(7, 5)
    q.load_state_dict(ref.state_dict())
    x = torch.randn(3, 7)
    torch.testing.assert_close(q(x), ref(x), rtol=0, atol=0)


def test_signatures_keep_torch_names_and_defaults():
    for quant, base in [(QuantConv2d, nn.Conv2d), (QuantLinear, nn.Linear)]:
        qp = inspect.signature(quant.__init__).parameters
        for name, p in inspect.signature(base.__init__).parameters.items():
            assert name in qp, f"{quant.__name__} lacks {name}"
            assert qp[name].default == p.default, f"{quant.__name__}.{name} default differs"


@pytest.mark.parametrize("pad_value", [None, 1.0, -1.0])
@pytest.mark.parametrize("stride,dilation", [(1, 1), (2, 1), (1, 2)])
def test_binary_conv_equals_float_conv_of_sign_tensors(pad_value, stride, dilation):
    torch.manual_seed(1)
    q = QuantConv2d(
        5, 7, 3, stride=stride, padding=1, dilation=dilation, bias=False, pad_value=pad_value, **BIN
    )
    x = torch.randn(2, 5, 8, 8)
    xs, ws = Q.sign(x), Q.sign(q.weight.detach())
    if pad_value in (None, 0.0):
        expected = F.conv2d(xs, ws, stride=stride, padding=1, dilation=dilation)
    else:
        expected = F.conv2d(F.pad(xs, (1, 1, 1, 1), value=pad_value), ws, stride=stride, dilation=dilation)
    out = q(x)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    # results are integers in [-K, K]
    assert torch.equal(out, out.round()) and out.abs().max() <= 5 * 9


def test_binary_linear_equals_float_linear_of_sign_tensors():
    torch.manual_seed(2)
    q = QuantLinear(33, 4, **BIN)
    x = torch.randn(3, 33)
    expected = F.linear(Q.sign(x), Q.sign(q.weight.detach()), q.bias)
    torch.testing.assert_close(q(x), expected)


def test_pad_value_same_padding_asymmetric():
    q = QuantConv2d(2, 3, 4, padding="same", pad_value=1.0, bias=False, **BIN)
    assert q.explicit_padding() == (1, 2, 1, 2)
    x = torch.randn(1, 2, 6, 6)
    expected = F.conv2d(F.pad(Q.sign(x), (1, 2, 1, 2), value=1.0), Q.sign(q.weight.detach()))
    torch.testing.assert_close(q(x), expected)


def test_xnor_scaling_alpha_and_k():
    torch.manual_seed(3)
    q = QuantConv2d(3, 4, 3, padding=1, bias=False, scaling="xnor", **BIN)
    x = torch.randn(2, 3, 6, 6)
    w = q.weight.detach()
    alpha = w.abs().mean(dim=(1, 2, 3)).view(1, -1, 1, 1)
    k = Q.xnor_activation_scale(x, (3, 3), 1, 1)
    expected = F.conv2d(Q.sign(x), Q.sign(w), padding=1) * alpha * k
    torch.testing.assert_close(q(x), expected)


def test_xnor_scaling_binary_weight_only_uses_alpha():
    q = QuantConv2d(3, 4, 3, padding=1, bias=False, scaling="xnor", weight_quantizer="ste_sign")
    x = torch.randn(1, 3, 5, 5)
    w = q.weight.detach()
    alpha = w.abs().mean(dim=(1, 2, 3)).view(-1, 1, 1, 1)
    torch.testing.assert_close(q(x), F.conv2d(x, Q.sign(w) * alpha, padding=1))


def test_alpha_scaling_has_no_k():
    torch.manual_seed(4)
    q = QuantConv2d(3, 4, 3, padding=1, bias=False, scaling="alpha", **BIN)
    x = torch.randn(2, 3, 6, 6) * 3.0  # |x| far from 1: a K factor would show
    w = q.weight.detach()
    alpha = w.abs().mean(dim=(1, 2, 3)).view(1, -1, 1, 1)
    torch.testing.assert_close(q(x), F.conv2d(Q.sign(x), Q.sign(w), padding=1) * alpha)
    lin = QuantLinear(6, 3, bias=False, scaling="alpha", **BIN)
    xl = torch.randn(2, 6) * 3.0
    wl = lin.weight.detach()
    expected = F.linear(Q.sign(xl), Q.sign(wl)) * wl.abs().mean(dim=1)
    torch.testing.assert_close(lin(xl), expected)


def test_channel_scaling_is_learned():
    q = QuantLinear(6, 3, scaling="channel", **BIN)
    assert q.scale.shape == (3,)
    q(torch.randn(2, 6)).sum().backward()
    assert q.scale.grad is not None and q.weight.grad is not None


def test_precision_properties():
    assert QuantConv2d(2, 2, 3, **BIN).is_binary
    bwn = QuantConv2d(2, 2, 3, weight_quantizer="ste_sign")
    assert not bwn.is_binary and bwn.weight_precision == 1 and bwn.input_precision == 32
    assert QuantConv2d(2, 2, 3).weight_precision == 32


def test_weight_clip_constraint():
    q = QuantLinear(4, 4, **BIN)
    with torch.no_grad():
        q.weight.mul_(10)
    apply_constraints(q)
    assert q.weight.abs().max() <= 1.0


def test_starved_weight_warning():
    with pytest.warns(UserWarning, match="weight_constraint"):
        QuantLinear(4, 4, input_quantizer="ste_sign", weight_quantizer="ste_sign")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        QuantLinear(4, 4, **BIN)


def test_bad_inputs_raise_clear_errors():
    q = QuantConv2d(3, 4, 3, **BIN)
    with pytest.raises(ValueError, match="3 input channels, got 5"):
        q(torch.randn(1, 5, 8, 8))
    with pytest.raises(ValueError, match="4-D"):
        q(torch.randn(3, 8, 8))
    with pytest.raises(ValueError, match="last dimension is 4"):
        QuantLinear(4, 2)(torch.randn(2, 5))
    with pytest.raises(ValueError, match="unknown scaling"):
        QuantLinear(4, 2, scaling="alpha_k")
    with pytest.raises(ValueError, match="pad_value"):
        QuantConv2d(3, 4, 3, pad_value=0.5)
    with pytest.raises(ValueError, match="unknown quantizer"):
        QuantConv2d(3, 4, 3, input_quantizer="sgn")
    with pytest.raises(ValueError, match="unknown weight constraint"):
        QuantConv2d(3, 4, 3, weight_constraint="clip")


def test_scale_layer():
    s = Scale(0.5)
    x = torch.randn(3)
    torch.testing.assert_close(s(x), x * 0.5)
    assert [n for n, _ in s.named_parameters()] == ["scale"]
    fixed = Scale(2.0, learnable=False)
    assert list(fixed.parameters()) == [] and "scale" in fixed.state_dict()


class TestBinarize:
    def test_resnet18_keeps_first_and_last_float(self):
        torch.manual_seed(0)
        m = torchvision.models.resnet18(num_classes=10)
        ref_w = m.layer1[0].conv1.weight.detach().clone()
        out = binarize_(m)
        assert out is m
        assert type(m.conv1) is nn.Conv2d and type(m.fc) is nn.Linear
        assert isinstance(m.layer1[0].conv1, QuantConv2d) and m.layer1[0].conv1.is_binary
        assert isinstance(m.layer2[0].downsample[0], QuantConv2d)
        torch.testing.assert_close(m.layer1[0].conv1.weight.detach(), ref_w.clamp(-1, 1))
        y = m(torch.randn(2, 3, 32, 32))
        y.sum().backward()
        assert y.shape == (2, 10)
        assert "QuantConv2d" in repr(m)

    def test_config_options_and_filter(self):
        m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.Flatten(), nn.LazyLinear(2))
        cfg = BinarizeConfig(input_quantizer=None, scaling="xnor", keep_first=False, keep_last=True)
        binarize_(m, cfg)
        assert isinstance(m[0], QuantConv2d) and m[0].input_quantizer is None and m[0].scaling == "xnor"
        m2 = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3), nn.Conv2d(4, 4, 3))
        binarize_(m2, filter_fn=lambda mod, name: name == "0")
        assert isinstance(m2[0], QuantConv2d) and type(m2[1]) is nn.Conv2d

    def test_config_validation_and_versioning(self):
        with pytest.raises(ValueError, match="unknown quantizer"):
            BinarizeConfig(input_quantizer="nope")
        with pytest.raises(ValueError, match="unknown scaling"):
            BinarizeConfig(scaling="per_tensor")
        cfg = BinarizeConfig(scaling="channel", pad_value=1.0)
        assert config_from_dict(cfg.to_dict()) == cfg
        with pytest.raises(VersionMismatchError):
            config_from_dict({**cfg.to_dict(), "_version": 99})
        with pytest.raises(ValueError, match="unknown BinarizeConfig fields"):
            config_from_dict({"colour": "red"})
        with pytest.raises(TypeError, match="nn.Module"):
            binarize_("not a model")
