import numpy as np
import pytest
import torch

from onebit.quantizers import SteSign, ste_sign
from onebit.training.fast import fast_ste_sign, patch_ste
from onebit.training.tiny import tiny_mlp


def test_fast_ste_is_bit_identical():
    b = float(np.nextafter(np.float32(1.0), np.float32(2.0)))
    x0 = torch.randn(64, 64) * 0.9
    x0[0, :8] = torch.tensor([1.0, -1.0, 0.0, -0.0, b, -b, 1.3, -0.2])
    g = torch.randn_like(x0)
    for c in (1.0, 0.5, 1.3):
        xa, xb = x0.clone().requires_grad_(), x0.clone().requires_grad_()
        ya, yb = ste_sign(xa, c), fast_ste_sign(xb, c)
        ya.backward(g)
        yb.backward(g)
        assert torch.equal(ya, yb) and torch.equal(xa.grad, xb.grad), c


def test_patch_and_undo():
    m = tiny_mlp()
    undo = patch_ste(m)
    qs = [q for q in m.modules() if isinstance(q, SteSign)]
    assert qs and all("forward" in q.__dict__ for q in qs)
    m(torch.randn(4, 144)).sum().backward()
    undo()
    assert all("forward" not in q.__dict__ for q in qs)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_fast_ste_is_bit_identical_in_low_precision(dtype):
    # Every finite value of the dtype in [-3, 3], and clip values that the dtype rounds up
    # (0.3, 1.295 in bf16), down (0.7 in fp16) or keeps (1.0): SteSign compares in the dtype.
    every = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16).view(dtype)
    x0 = every[torch.isfinite(every) & (every.abs() <= 3)]
    g = torch.randn(x0.shape).to(dtype)
    for c in (0.3, 0.7, 1.0, 1.295):
        xa, xb = x0.clone().requires_grad_(), x0.clone().requires_grad_()
        ya, yb = ste_sign(xa, c), fast_ste_sign(xb, c)
        ya.backward(g)
        yb.backward(g)
        assert yb.dtype == dtype and type(yb.grad_fn).__name__ == "_FastSteSignBackward"  # fast path
        assert torch.equal(ya, yb) and torch.equal(xa.grad, xb.grad), (dtype, c)
