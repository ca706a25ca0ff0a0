"""Exporter + engine end to end: folding, exactness against PyTorch, clear errors, no torch at run time."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import onebit
from onebit.export import ExportError, lower
from onebit.runtime.format import read_model_file
from onebit.runtime.model import load
from onebit.runtime.reference import decode_tensors, run_reference

from .conftest import BIN, TinyBNN, randomize_bn


def test_folding_makes_binary_layers_pass_bits(tiny_model):
    g = lower(tiny_model, torch.randn(1, 3, 8, 8))
    ops = [n["op"] for n in g.nodes]
    # BN after the binary conv folds into integer thresholds; maxpool after sign is binary
    assert "affine" not in ops, ops
    assert ops.count("bconv2d") == 2 and "bmaxpool" in ops
    binary_out = [n for n in g.nodes if n["attrs"].get("output") == "binary"]
    assert len(binary_out) == 2  # conv1 (through the pool) and conv2 (through flatten) feed binary layers
    assert ops.count("sign") == 1  # only the float -> binary boundary after the first conv


@pytest.mark.parametrize("pad_value", [1.0, -1.0, None])
def test_engine_matches_torch(tmp_path, pad_value):
    torch.manual_seed(0)
    m = randomize_bn(TinyBNN(pad_value=pad_value)).eval()
    x = torch.randn(16, 3, 8, 8)
    path = tmp_path / "tiny.onebit"
    onebit.export(m, x[:1], path)
    rt = load(path)
    with torch.no_grad():
        ref = m(x).numpy()
    y = rt.run(x.numpy())
    assert y.shape == ref.shape and y.dtype == np.float32
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    assert (y.argmax(1) == ref.argmax(1)).all()
    # the reference semantics agree too
    mf = read_model_file(path)
    mf_y = run_reference(mf.meta, decode_tensors(mf.meta, mf.tensors), x.numpy())
    np.testing.assert_allclose(mf_y, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_binary_layers_are_exact_integers(tmp_path):
    """A lone binary conv: the engine equals torch's conv of the sign tensors exactly."""
    torch.manual_seed(1)
    conv = onebit.nn.QuantConv2d(67, 130, 3, padding=1, bias=False, pad_value=-1.0, **BIN)
    m = nn.Sequential(conv).eval()
    x = torch.randn(2, 67, 9, 9)
    onebit.export(m, x[:1], tmp_path / "c.onebit")
    y = load(tmp_path / "c.onebit").run(x.numpy())
    xs = torch.nn.functional.pad(onebit.quantizers.sign(x), (1, 1, 1, 1), value=-1.0)
    ref = torch.nn.functional.conv2d(xs, onebit.quantizers.sign(conv.weight.detach())).numpy()
    np.testing.assert_array_equal(y, ref)


def test_batch_sizes_and_buffer_reuse(tmp_path, tiny_model):
    path = tmp_path / "tiny.onebit"
    onebit.export(tiny_model, torch.randn(1, 3, 8, 8), path)
    rt = load(path)
    x = np.random.default_rng(0).standard_normal((5, 3, 8, 8)).astype(np.float32)
    y5 = rt.run(x)
    y1 = np.concatenate([rt.run(x[i : i + 1]) for i in range(5)])
    np.testing.assert_allclose(y5, y1, rtol=1e-5, atol=1e-5)
    # liveness-based reuse: the arena is smaller than all values side by side
    every_value = sum(
        5 * int(np.prod(r["shape"][1:])) * (8 if r["dtype"] == "uint64" else 4) for r in rt.describe()
    )
    assert rt.memory_bytes(5) < every_value
    assert rt.memory_bytes(5) == rt.memory_bytes(5)  # planned once per batch size


def test_bad_runtime_inputs(tmp_path, tiny_model):
    path = tmp_path / "tiny.onebit"
    onebit.export(tiny_model, torch.randn(1, 3, 8, 8), path)
    rt = load(path)
    with pytest.raises(ValueError, match=r"input must have shape \(N, C, H, W\) = \(N, 3, 8, 8\)"):
        rt.run(np.zeros((1, 3, 9, 8), np.float32))
    with pytest.raises(TypeError, match="float32"):
        rt.run(np.zeros((1, 3, 8, 8), np.float64))
    with pytest.raises(TypeError, match="numpy array"):
        rt.run([[1.0]])
    with pytest.raises(ValueError, match="empty"):
        rt.run(np.zeros((0, 3, 8, 8), np.float32))


def test_unmappable_op_names_op_and_module():
    class Odd(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.act = nn.GELU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.act(self.conv(x))

    with pytest.raises(ExportError, match="'act' of type GELU"):
        lower(Odd(), torch.randn(1, 3, 8, 8))

    class Fn(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(x)

    with pytest.raises(ExportError, match="sigmoid"):
        lower(Fn(), torch.randn(1, 4))


def test_runtime_does_not_need_torch(tmp_path, tiny_model):
    path = tmp_path / "tiny.onebit"
    x = torch.randn(2, 3, 8, 8)
    onebit.export(tiny_model, x[:1], path)
    np.save(tmp_path / "x.npy", x.numpy())
    with torch.no_grad():
        np.save(tmp_path / "ref.npy", tiny_model(x).numpy())
    code = f"""
import sys
sys.modules['torch'] = None  # any 'import torch' now raises ImportError
import numpy as np
import onebit.runtime as rt
m = rt.load({str(path)!r})
y = m.run(np.load({str(tmp_path / "x.npy")!r}))
ref = np.load({str(tmp_path / "ref.npy")!r})
assert np.allclose(y, ref, rtol=1e-4, atol=1e-4 * abs(ref).max()), (y, ref)
assert 'torch' not in [k for k, v in sys.modules.items() if v is not None]
print('ok')
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_bn_before_sign_folds_into_thresholds_with_negative_scales(tmp_path):
    """BN that cannot fold upstream (after a ReLU) becomes sign thresholds; negative gammas flip them."""
    torch.manual_seed(3)
    m = nn.Sequential(
        nn.Conv2d(3, 70, 3, padding=1),
        nn.ReLU(),
        nn.BatchNorm2d(70),
        onebit.nn.QuantConv2d(70, 8, 3, padding=1, bias=False, pad_value=1.0, **BIN),
    )
    randomize_bn(m, seed=3)
    m.eval()
    assert (m[2].weight < 0).any() and (m[2].weight > 0).any()
    x = torch.randn(8, 3, 6, 6)
    ops = [n["op"] for n in lower(m, x[:1]).nodes]
    assert "affine" not in ops and ops.count("sign") == 1
    onebit.export(m, x[:1], tmp_path / "m.onebit")
    y = load(tmp_path / "m.onebit").run(x.numpy())
    with torch.no_grad():
        ref = m(x).numpy()
    np.testing.assert_array_equal(y, ref)  # integer outputs: any flipped bit would show


def _scaled_net_in_engine(tmp_path, scaling: str, bias: bool):
    """Conv + dense under ``scaling``: its lowered ops, the engine's output and PyTorch's."""
    m = nn.Sequential(
        onebit.nn.QuantConv2d(3, 7, 3, padding=1, bias=bias, scaling=scaling, pad_value=1.0, **BIN),
        nn.Flatten(),
        onebit.nn.QuantLinear(7 * 5 * 5, 3, bias=bias, scaling=scaling, **BIN),
    ).eval()
    x = torch.randn(4, 3, 5, 5)
    ops = [n["op"] for n in lower(m, x[:1]).nodes]
    onebit.export(m, x[:1], tmp_path / f"{scaling}.onebit")
    y = load(tmp_path / f"{scaling}.onebit").run(x.numpy())
    with torch.no_grad():
        ref = m(x).numpy()
    return ops, y, ref


def test_alpha_scaling_exports_into_the_multiplier(tmp_path):
    torch.manual_seed(6)
    ops, y, ref = _scaled_net_in_engine(tmp_path, "alpha", bias=True)
    assert "xnor_k" not in ops and "mean_abs" not in ops
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())


@pytest.mark.parametrize("bias", [True, False])
def test_xnor_scaling_with_k_exports_for_conv_and_dense(tmp_path, bias):
    # Odd fan-ins (3*9 taps with +1 padding, 7*25 features) keep every popcount sum odd: with
    # a zero sum, PyTorch's alpha-scaled float conv returns +-1e-9 instead of 0 and its sign
    # is rounding noise, which would test PyTorch's rounding rather than the export.
    torch.manual_seed(5)
    ops, y, ref = _scaled_net_in_engine(tmp_path, "xnor", bias)
    assert ops.count("mul_map") == 2 and "xnor_k" in ops and "mean_abs" in ops
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())
