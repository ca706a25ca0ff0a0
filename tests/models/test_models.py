"""Every model: forward at its input sizes, backward, structure (what is binary, padding),
and its parameter counts / packed size / MACs against the published references.

The reference numbers below are hard-coded from the published sources named in
docs/models.md (larq zoo docs and docstrings, the papers' layer tables).
"""

from __future__ import annotations

import fnmatch

import numpy as np
import pytest
import torch
from conftest import build_small, engine_and_torch, small_input_size

from onebit import models, summary
from onebit.models._blocks import RSign
from onebit.nn import QuantMixin

ALL = models.list()
MIB = 1024 * 1024

SIGN_QUANTIZERS = {"SteSign", "ApproxSign", "SwishSign", "RSign"}


# --------------------------------------------------------------------------- #
# Forward / backward at CIFAR size (batch 2, train mode)
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("name", ALL)
def test_forward_backward_small(name, small_model):
    m = small_model(name)
    m.train()
    m.zero_grad(set_to_none=True)
    torch.manual_seed(1)
    # batch 1 keeps the suite fast; BatchNorm1d needs 2 samples in train mode
    batch = 2 if any(isinstance(mod, torch.nn.BatchNorm1d) for mod in m.modules()) else 1
    x = torch.randn(batch, *small_input_size(name))
    y = m(x)
    assert y.shape == (batch, 10)
    assert torch.isfinite(y).all()
    # a loss whose gradient reaches every unit (not y.sum(): BN would cancel it)
    (y**2).mean().backward()
    for pname, p in m.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"{name}: {pname} got no gradient"
            assert torch.isfinite(p.grad).all(), f"{name}: {pname} has a non-finite gradient"
        else:
            assert p.grad is None  # fixed parameters (QuickNet's blur-pool) stay fixed


# --------------------------------------------------------------------------- #
# Structure: binary layers are fed by sign quantizers; padding values
# --------------------------------------------------------------------------- #


def _exceptions(name: str, m: torch.nn.Module) -> list[str]:
    return list(getattr(m, "binary_exceptions", models.get_cfg(name)["binary_exceptions"]))


@pytest.mark.parametrize("name", ALL)
def test_binary_layers_are_fed_by_a_sign_quantizer(name, small_model):
    m = small_model(name)
    exceptions = _exceptions(name, m)
    binary_weight_layers = [(n, mod) for n, mod in m.named_modules() if isinstance(mod, QuantMixin)]
    binary_weight_layers = [(n, mod) for n, mod in binary_weight_layers if mod.weight_precision == 1]
    assert binary_weight_layers, f"{name} has no binary layer"
    used = set()
    for lname, mod in binary_weight_layers:
        hit = [p for p in exceptions if fnmatch.fnmatchcase(lname, p)]
        if hit:
            used.update(hit)
            assert not mod.is_binary, f"{name}: {lname} is listed as an exception but is an XNOR layer"
            continue
        assert mod.is_binary, f"{name}: {lname} has 1-bit weights but a {mod.input_precision}-bit input"
        qname = type(mod.input_quantizer).__name__
        assert qname in SIGN_QUANTIZERS, f"{name}: {lname} input quantizer {qname} is not a sign"
    assert used == set(exceptions), f"{name}: stale binary_exceptions {set(exceptions) - used}"


@pytest.mark.parametrize("name", ALL)
def test_binary_conv_padding_values(name, small_model):
    m = small_model(name)
    expected = models.get_cfg(name)["pad_value"]
    for lname, mod in m.named_modules():
        if isinstance(mod, torch.nn.Conv2d) and isinstance(mod, QuantMixin) and mod.is_binary:
            if any(mod.explicit_padding()):
                assert mod.pad_value in ((None, 0.0) if expected is None else (expected,)), (name, lname)


def test_tang_multibit_activations_are_documented_exceptions():
    m = models.create("tang_alexnet", num_classes=10, input_size=32, activation_bits=2)
    assert len(m.binary_exceptions) == 7
    for lname, mod in m.named_modules():
        if isinstance(mod, QuantMixin):
            assert mod.input_precision == 2 and mod.weight_precision == 1
            assert any(fnmatch.fnmatchcase(lname, p) for p in m.binary_exceptions)


def test_tang_width_and_opt_in_per_sample_activation_scale():
    m = models.create("tang_alexnet", num_classes=10, input_size=32, activation_bits=3, width=0.125)
    layers = [mod for mod in m.modules() if isinstance(mod, QuantMixin)]
    assert [mod.weight.shape[0] for mod in layers] == [32, 48, 48, 32, 512, 512, 10]
    assert m.conv1.out_channels == 12 and m.scale.scale.item() == pytest.approx(512**-0.5)
    assert {mod.input_quantizer.scale for mod in layers} == {"channel"}  # the default rule
    s = models.create(
        "tang_alexnet", num_classes=10, input_size=32, activation_bits=2, activation_scale="sample"
    )
    assert {
        mod.input_quantizer.get_config()["scale"] for mod in s.modules() if isinstance(mod, QuantMixin)
    } == {"sample"}
    with pytest.raises(ValueError, match="activation_scale"):
        models.create("tang_alexnet", activation_bits=2, activation_scale="pixel")
    with pytest.raises(ValueError, match="width"):
        models.create("tang_alexnet", width=0)


def test_reactnet_uses_rsign_and_rprelu():
    m = build_small("reactnet_a")
    convs = [mod for mod in m.modules() if isinstance(mod, QuantMixin)]
    assert len(convs) == 26 and all(isinstance(c.input_quantizer, RSign) for c in convs)
    assert sum(isinstance(mod, torch.nn.PReLU) for mod in m.modules()) == 26


def test_rsign_is_a_thresholded_sign():
    q = RSign(3)
    with torch.no_grad():
        q.shift.copy_(torch.tensor([0.5, -0.25, 0.0]))
    x = torch.randn(2, 3, 4, 4)
    t = q.sign_threshold().view(1, 3, 1, 1)
    assert torch.equal(q(x), torch.where(x - t >= 0, 1.0, -1.0))
    assert q.precision == 1


def test_binarynet_float_twin_has_the_same_parameters():
    b = models.create("binarynet_cifar", width=0.25)
    f = models.create("binarynet_cifar", width=0.25, binary=False)
    assert [p.shape for p in b.parameters()] == [p.shape for p in f.parameters()]
    assert not any(isinstance(mod, QuantMixin) and mod.weight_precision < 32 for mod in f.modules())
    assert f(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    mlp = models.create("binarynet_mlp", hidden=1024, binary=False)
    assert mlp(torch.randn(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("name", ["binarynet_cifar", "binarynet_mlp"])
def test_binarynet_float_first_and_last_keep_those_weights_real(name, tmp_path):
    kw = {"width": 0.125} if name == "binarynet_cifar" else {"hidden": 64}
    shape = (3, 32, 32) if name == "binarynet_cifar" else (1, 28, 28)
    torch.manual_seed(0)
    m = models.create(name, float_first=True, float_last=True, **kw)
    layers = [mod for mod in m.modules() if isinstance(mod, QuantMixin)]
    precisions = [(mod.input_precision, mod.weight_precision) for mod in layers]
    assert precisions[0] == (32, 32)  # real image, real weights
    assert precisions[-1] == (1, 32)  # binary activations into real weights
    assert all(p == (1, 1) for p in precisions[1:-1])
    # 64 images, not 16: BN stats of a tiny batch put pre-activations on sign ties
    y, ref = engine_and_torch(m, torch.randn(64, *shape), tmp_path / "m.onebit")
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    with pytest.raises(TypeError, match="float_frist"):
        models.create(name, float_first=True, float_frist=True)


def test_wu13_distill_variant():
    m = models.create("wu13", num_classes=10, input_size=32, distill=True, scale_init=0.5)
    assert not any(isinstance(mod, torch.nn.Dropout) for mod in m.modules())
    assert "scale.scale" not in dict(m.named_parameters()) and float(m.scale.scale) == 0.5
    m = build_small("wu13")
    assert any(isinstance(mod, torch.nn.Dropout) and mod.p == 0.2 for mod in m.modules())


# --------------------------------------------------------------------------- #
# Published numbers (224x224 unless said otherwise; summary counts BN running
# statistics as float parameters, as larq's summary does)
# --------------------------------------------------------------------------- #

# larq zoo docs / docstrings: (total parameters, memory in MiB with 1-bit binary weights)
LARQ_EXACT = {
    "binary_alexnet": (61_859_192, 7.49),
    "xnornet": (62_396_768, 22.81),
    "binary_resnet_e18": (11_699_368, 4.03),
    "birealnet18": (11_699_112, 4.03),
    "binary_densenet28": (5_150_504, 4.12),
    "binary_densenet37": (8_734_120, 5.25),
    "binary_densenet37_dilated": (8_734_120, 5.25),
    "binary_densenet45": (13_939_240, 7.54),
}
# larq zoo sota/quicknet.py v1.0 docstrings
LARQ_QUICKNET = {
    "quicknet_small": (12_655_688, 4.00),
    "quicknet": (13_234_088, 4.17),
    "quicknet_large": (23_342_248, 5.40),
}
# derived from the papers' layer tables (no published totals): binary weights
LAYER_TABLE_BINARY = {
    "xnornet_resnet18": 10_985_472,  # ResNet-18's sixteen 3x3 stage convs
    "bwn_resnet18": 10_985_472,
    "wu13": 92_160_000,  # Wu et al. Table 1, valid padding
    "tang_alexnet": 62_332_928,  # AlexNet's weights minus conv1's
    "reactnet_a": 28_253_184,  # authors' reactnet.py HardBinaryConv shapes
    "binarynet_cifar": 14_022_016,  # (2x128C3)-MP2-(2x256C3)-MP2-(2x512C3)-MP2-(2x1024FC)-10
    "binarynet_mlp": 784 * 4096 + 2 * 4096 * 4096 + 4096 * 10,
}
MEM_TOL_MIB = 0.006  # published sizes are rounded to 0.01 MiB


def _summary(name: str):
    """Build at the default input size and summarize; checks the output of its forward (batch 1)."""
    torch.manual_seed(0)
    m = models.create(name)
    size = tuple(models.get_cfg(name)["input_size"])
    outputs = []
    hook = m.register_forward_hook(lambda _m, _i, out: outputs.append(out))
    s = summary(m, size, model_name=name, print_table=False)  # one forward at `size`, batch 1
    hook.remove()
    (y,) = outputs
    assert y.shape == (1, models.get_cfg(name)["num_classes"]) and torch.isfinite(y).all()
    return m, s


def _implied_binary_range(total: int, mib: float) -> tuple[float, float]:
    """Binary count implied by a published (total, size): bits = b + 32 (total - b)."""
    lo_bits, hi_bits = (mib - 0.005) * MIB * 8, (mib + 0.005) * MIB * 8
    return (32 * total - hi_bits) / 31, (32 * total - lo_bits) / 31


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(LARQ_EXACT))
def test_matches_larq_zoo_exactly(name):
    _, s = _summary(name)
    total, mib = LARQ_EXACT[name]
    assert s.total_params == total
    assert abs(s.memory_bytes / MIB - mib) <= MEM_TOL_MIB
    lo, hi = _implied_binary_range(total, mib)
    assert lo <= s.total_params_binary <= hi


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(LARQ_QUICKNET))
def test_quicknet_matches_up_to_the_documented_bn_difference(name):
    # The published counts are 2 per BatchNorm channel lower than the published
    # definition builds, for every BN with gamma and beta (docs/models.md).
    m, s = _summary(name)
    total, mib = LARQ_QUICKNET[name]
    affine_bn_channels = sum(
        mod.num_features
        for mod in m.modules()
        if isinstance(mod, torch.nn.BatchNorm2d) and mod.weight is not None and mod.bias is not None
    )
    assert s.total_params - total == 2 * affine_bn_channels
    assert abs((s.memory_bytes - 4 * 2 * affine_bn_channels) / MIB - mib) <= MEM_TOL_MIB
    binary = sum(p.numel() for mod in m.modules() if isinstance(mod, QuantMixin) for p in [mod.weight])
    assert (
        s.total_params_binary
        == binary
        == sum(mod.weight.numel() for mod in m.modules() if isinstance(mod, QuantMixin) and mod.is_binary)
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(LAYER_TABLE_BINARY))
def test_binary_params_match_the_layer_tables(name):
    m, s = _summary(name)
    assert s.total_params_binary == LAYER_TABLE_BINARY[name]
    assert s.total_params_binary == models.get_cfg(name)["reference"]["params_binary"]
    trainable = sum(p.numel() for p in m.parameters() if p.requires_grad)
    if name == "bwn_resnet18":
        assert trainable == 11_689_512  # torchvision resnet18, exactly
    if name == "xnornet_resnet18":
        assert trainable == 11_689_512 + 128  # BN before each conv: 64 more BN channels
    if name == "tang_alexnet":
        weights_and_biases = sum(
            p.numel()
            for n, mod in m.named_modules()
            if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear))
            for p in mod.parameters(recurse=False)
        )
        assert weights_and_biases == 62_378_344  # AlexNet (ungrouped)
    if name == "reactnet_a":
        assert s.macs_binary == pytest.approx(4.82e9, rel=0.01)  # paper: 4.82e9 BOPs
        assert s.macs_float == pytest.approx(0.12e8, rel=0.05)  # paper: 0.12e8 (2 digits)


def test_binarynet_cifar_quarter_width_is_the_652k_benchmark_net():
    m = models.create("binarynet_cifar", width=0.25, in_chans=1, input_size=28)
    s = summary(m, (1, 28, 28), print_table=False)
    assert s.total_params == 652_872  # "652k"
    s3 = summary(models.create("binarynet_cifar", width=0.25), (3, 32, 32), print_table=False)
    assert s3.total_params == 882_824  # at 3x32x32 the flattened features are 4x4, not 3x3
    mlp = models.create("binarynet_mlp", hidden=1024, num_hidden=3)
    sm = summary(mlp, (1, 28, 28), print_table=False)
    assert sm.total_params_binary == 784 * 1024 + 2 * 1024 * 1024 + 1024 * 10


def test_summary_cli_uses_the_registry(capsys):
    from onebit.cli import main

    assert main(["summary", "binarynet_cifar"]) == 0
    out = capsys.readouterr().out
    assert "14,022,016" in out


# (input quantizer, its clip, weight quantizer, weight-clip value, scaling) of the published definitions
QUANT_SPEC = {
    "binary_resnet_e18": ("SteSign", 1.25, "SteSign", 1.25, None),
    "quicknet_small": ("SteSign", 1.25, "SteSign", 1.25, None),
    "quicknet": ("SteSign", 1.25, "SteSign", 1.25, None),
    "quicknet_large": ("SteSign", 1.25, "SteSign", 1.25, None),
    "binary_densenet28": ("SteSign", 1.3, "SteSign", 1.3, None),
    "binary_densenet37": ("SteSign", 1.3, "SteSign", 1.3, None),
    "binary_densenet37_dilated": ("SteSign", 1.3, "SteSign", 1.3, None),
    "binary_densenet45": ("SteSign", 1.3, "SteSign", 1.3, None),
    "birealnet18": ("ApproxSign", None, "MagnitudeAwareSign", 1.0, None),
    "reactnet_a": ("RSign", None, "MagnitudeAwareSign", 1.0, None),
    "xnornet": ("SteSign", 1.0, "SteSign", 1.0, "xnor"),
    "xnornet_resnet18": ("SteSign", 1.0, "SteSign", 1.0, "xnor"),
    "binary_alexnet": ("SteSign", 1.0, "SteSign", 1.0, None),
    "wu13": ("SteSign", 1.0, "SteSign", 1.0, None),
}


@pytest.mark.parametrize("name", sorted(QUANT_SPEC))
def test_quantizers_and_clip_values_follow_the_published_definitions(name, small_model):
    iq, iclip, wq, wclip, scaling = QUANT_SPEC[name]
    layers = [mod for mod in small_model(name).modules() if isinstance(mod, QuantMixin) and mod.is_binary]
    assert layers
    for mod in layers:
        assert type(mod.input_quantizer).__name__ == iq
        if iclip is not None:
            assert mod.input_quantizer.clip_value == iclip
        assert type(mod.weight_quantizer).__name__ == wq
        assert mod.weight_constraint is not None and mod.weight_constraint.clip_value == wclip
        assert mod.scaling == scaling
