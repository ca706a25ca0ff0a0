"""The public lowering mechanism: user modules, functions and quantizers, errors, the user guide.

Every built-in lowering, the zoo's blocks and a user's own module go through the same
registry (``onebit.export.register_*_lowering``); quantizers and layers say how they export
(``sign_threshold``, ``sign_scale``, ``weight_sign_and_scale``) instead of being listed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import onebit
from onebit import quantizers as Q
from onebit.export import ExportError, lower, register_module_lowering, supported
from onebit.export import registry as R
from onebit.models import _blocks as B
from onebit.nn import QuantConv2d, QuantLinear
from onebit.nn.layers import explicit_padding
from onebit.runtime.model import load

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "deployment.md")


def _engine(model: nn.Module, x: torch.Tensor, tmp_path, name: str = "m") -> np.ndarray:
    path = tmp_path / f"{name}.onebit"
    onebit.export(model, x[:1], path)
    return load(path).run(x.numpy())


class ShiftedSign(Q.Quantizer):
    """sign(x - t) with a per-channel t: exports through ``sign_threshold``."""

    precision = 1

    def __init__(self, t: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("t", t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return Q.ste_sign(x - self.t.view(1, -1, 1, 1))

    def sign_threshold(self) -> torch.Tensor:
        return self.t


class HalfSign(nn.Module):
    """0.5 * sign(w), not a Quantizer subclass: exports through ``sign_scale`` (duck typing)."""

    precision = 1

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return 0.5 * Q.sign(w)

    def sign_scale(self, w: torch.Tensor) -> float:
        return 0.5


class NoProtocolSign(Q.Quantizer):
    """A 1-bit quantizer that does not say how it computes."""

    precision = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return Q.sign(x * x - 0.5)


def test_user_quantizers_export_through_their_protocol(tmp_path):
    torch.manual_seed(0)
    t = torch.linspace(-0.5, 0.5, 6)
    conv = QuantConv2d(
        6, 8, 3, padding=1, pad_value=-1.0, input_quantizer=ShiftedSign(t), weight_quantizer=HalfSign()
    )
    model = nn.Sequential(conv, nn.Conv2d(8, 2, 1)).eval()
    x = torch.randn(3, 6, 5, 5)
    got = _engine(model, x, tmp_path)
    with torch.no_grad():
        want = model(x).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    g = lower(model, x[:1])
    sign = next(n for n in g.nodes if n["op"] == "sign")
    np.testing.assert_array_equal(g.tensors[sign["params"]["threshold"]], t.numpy())


def test_quantizer_without_protocol_names_layer_and_protocol():
    model = nn.Sequential(QuantConv2d(3, 4, 3, input_quantizer=NoProtocolSign(), weight_quantizer=HalfSign()))
    with pytest.raises(
        ExportError,
        match=r"^0\.input_quantizer: input quantizer NoProtocolSign is not a plain sign.*sign_threshold",
    ):
        lower(model, torch.randn(1, 3, 6, 6))
    model = nn.Sequential(QuantLinear(3, 4, input_quantizer="ste_sign", weight_quantizer=NoProtocolSign()))
    with pytest.raises(ExportError, match="0: weight quantizer NoProtocolSign is not a sign quantizer"):
        lower(model, torch.randn(1, 3))


@pytest.mark.parametrize("name", Q.list_quantizers())
def test_registered_quantizers_protocol_matches_forward(name):
    """sign_threshold / sign_scale, where a quantizer has them, are what its forward computes."""
    q = Q.get(name)
    torch.manual_seed(1)
    x = torch.randn(4, 5, 3, 3)
    t = q.sign_threshold()
    if t is not None:
        assert q.precision == 1
        np.testing.assert_array_equal(q(x).numpy(), Q.sign(x - torch.as_tensor(t)).numpy())
    a = q.sign_scale(x)
    if a is not None:
        np.testing.assert_allclose(q(x).numpy(), (torch.as_tensor(a) * Q.sign(x)).numpy(), rtol=1e-6)
    if name in ("ste_sign", "approx_sign", "swish_sign"):
        assert t is not None and a is not None
    if name in ("ste_heaviside", "ste_tern", "dorefa", "residual_sign"):
        assert t is None and a is None


def test_weight_sign_and_scale_gathers_every_factor():
    torch.manual_seed(2)
    for scaling in (None, "alpha", "xnor", "channel"):
        layer = QuantConv2d(3, 5, 3, weight_quantizer="magnitude_aware_sign", scaling=scaling)
        if scaling == "channel":
            layer.scale.data.uniform_(0.5, 2.0)
        signs, scale = layer.weight_sign_and_scale()
        w_eff = layer.quantized_weight()
        if scaling == "channel":
            w_eff = w_eff * layer.scale.view(-1, 1, 1, 1)
        np.testing.assert_allclose(
            (signs * scale.view(-1, 1, 1, 1)).numpy(), w_eff.detach().numpy(), rtol=1e-6, atol=0
        )
    assert QuantConv2d(3, 5, 3, weight_quantizer="ste_heaviside").weight_sign_and_scale() is None
    assert QuantConv2d(3, 5, 3).weight_sign_and_scale() is None  # float weights


@pytest.mark.parametrize("k,d", [(1, 1), (2, 1), (3, 1), (4, 2), (5, 3)])
def test_explicit_padding_same_matches_torch(k, d):
    torch.manual_seed(0)
    x = torch.randn(1, 2, 9, 10)
    conv = nn.Conv2d(2, 3, (k, k + 1), padding="same", dilation=d)
    left, right, top, bottom = explicit_padding("same", conv.kernel_size, conv.dilation)
    want = conv(x)
    got = F.conv2d(F.pad(x, (left, right, top, bottom)), conv.weight, conv.bias, dilation=d)
    torch.testing.assert_close(got, want)
    assert explicit_padding("valid", 3) == (0, 0, 0, 0)
    assert explicit_padding((1, 2), 3) == (2, 2, 1, 1)
    with pytest.raises(ValueError, match="'full'"):
        explicit_padding("full", 3)


def test_plain_conv_same_padding_exports(tmp_path):
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(3, 4, 4, padding="same", dilation=2), nn.ReLU()).eval()
    x = torch.randn(2, 3, 7, 6)
    with torch.no_grad():
        np.testing.assert_allclose(_engine(model, x, tmp_path), model(x).numpy(), rtol=1e-5, atol=1e-5)


def test_flattened_output_is_refused_not_permuted():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Flatten())
    with pytest.raises(ExportError, match=r"output is a flattened \(N, C, H, W\) tensor"):
        lower(model, torch.randn(1, 3, 2, 2))
    lower(nn.Sequential(nn.Conv2d(3, 4, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()), torch.randn(1, 3, 2, 2))


def test_zoo_blocks_lower_through_the_public_registry():
    assert R.find_module_lowering(B.BlurPool(4)) is B._export_blur_pool
    assert R.find_module_lowering(B.LearnableBias(4)) is B._export_learnable_bias
    pkg = os.path.dirname(onebit.export.__file__)
    for rel in (
        "driver.py",
        "capture.py",
        *(f"lowerings/{f}" for f in os.listdir(f"{pkg}/lowerings")),
    ):
        if rel.endswith(".py"):
            src = open(os.path.join(pkg, rel), encoding="utf-8").read()
            assert "onebit.models" not in src and "_blocks" not in src, rel


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.mish(self.conv(x))


class Outer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Identity(), Block())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stem(x)


def test_unsupported_function_names_calling_module_and_op():
    with pytest.raises(ExportError, match=r"module 'stem\.1' \(Block\): cannot export function F\.mish"):
        lower(Outer(), torch.randn(1, 3, 8, 8))

    class Top(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.erf(x).sigmoid()

    with pytest.raises(ExportError, match=r"the model's forward \(Top\): cannot export function torch\.erf"):
        lower(Top(), torch.randn(1, 4))

    class Meth(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = nn.Sequential(nn.Linear(4, 4))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x).sigmoid()

    with pytest.raises(ExportError, match=r"\(Meth\): cannot export tensor method x\.sigmoid\(\)"):
        lower(Meth(), torch.randn(1, 4))


def test_errors_inside_a_function_lowering_name_the_module():
    class Cat(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([x, x], dim=2)

    model = nn.Sequential(nn.Identity(), Cat())
    with pytest.raises(ExportError, match=r"module '1' \(Cat\): cat: only channel concatenation"):
        lower(model, torch.randn(1, 3, 4, 4))


def test_shapes_read_in_forward_are_torch_shapes(tmp_path):
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3 * 4 * 5, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            n, c = x.shape[0], x.shape[1]
            return self.fc(x.reshape(n, c * x.shape[2] * x.size(3)))

    torch.manual_seed(4)
    model = Net().eval()
    x = torch.randn(2, 3, 4, 5)
    with torch.no_grad():
        np.testing.assert_allclose(_engine(model, x, tmp_path), model(x).numpy(), rtol=1e-5, atol=1e-5)


def test_user_module_lowering_and_duplicate_registration(tmp_path):
    class Twice(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2.0 + 1.0

    calls = []

    @register_module_lowering(Twice)
    def lower_twice(ctx, name, m, args, out_shape):
        calls.append(name)
        x = args[0]
        c = out_shape[-1]
        return ctx.graph.add(
            "affine",
            [x],
            "float",
            out_shape,
            name,
            params={"scale": np.full(c, 2.0, np.float32), "shift": np.ones(c, np.float32)},
        )

    try:
        model = nn.Sequential(nn.Conv2d(3, 4, 1), Twice(), nn.ReLU()).eval()
        x = torch.randn(2, 3, 4, 4)
        with torch.no_grad():
            np.testing.assert_allclose(_engine(model, x, tmp_path), model(x).numpy(), rtol=1e-5, atol=1e-5)
        assert calls == ["1"]
        with pytest.raises(ValueError, match="already has a lowering"):
            register_module_lowering(Twice)(lambda *a: None)
        with pytest.raises(ValueError, match="already has a lowering"):
            R.register_function_lowering(torch.cat)(lambda *a: None)
        register_module_lowering(Twice, replace=True)(lower_twice)
    finally:
        R._MODULE_LOWERINGS.pop(Twice, None)


def _bullets(section: str) -> dict[str, set[str]]:
    out = {}
    for m in re.finditer(r"^- ([A-Z][a-z ]+): (.*)$", section, flags=re.M):
        out[m.group(1)] = set(re.findall(r"`([^`]+)`", m.group(2)))
    return out


def _guide() -> str:
    text = open(DOC, encoding="utf-8").read()
    return text[text.index("## My model does not export") : text.index("## The file")]


def test_docs_list_exactly_what_exports():
    listed = _bullets(_guide()[: _guide().index("### Writing a lowering")])
    s = supported()
    assert listed == {
        "Modules": set(s["modules"]),
        "Functions": set(s["functions"]),
        "Tensor methods": set(s["methods"]),
        "Activation quantizers": set(s["activation_quantizers"]),
        "Weight quantizers": set(s["weight_quantizers"]),
    }


def test_docs_example_runs(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", _guide(), flags=re.S)
    example = [b for b in blocks if "register_module_lowering" in b]
    assert len(example) == 1, "the guide has one runnable lowering example"
    src = tmp_path / "example.py"
    src.write_text(example[0])
    r = subprocess.run([sys.executable, str(src)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "engine equals PyTorch: (4, 10)" in r.stdout
