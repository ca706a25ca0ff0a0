"""Faster, bit-identical straight-through sign for training (``train.fast_ste``).

:class:`onebit.quantizers.SteSign` computes ``sign`` with ``torch.where`` and its
gradient mask through a boolean tensor converted to float. On the CPUs
measured here, boolean-mask kernels are several times slower than plain
arithmetic ones, and a binary MLP step spent most of its time in them. This
module computes the same function with two cheaper kernels:

* forward ``sign(sign(x) + 0.5)``: +1 for x >= 0 (and for -0.0), -1 for x < 0;
* backward ``hardtanh_backward(g, x, -c', c')`` with ``c'`` the next float32
  above ``clip_value``: one fused kernel that keeps ``g`` where ``|x| <= c``
  (inclusive, as SteSign; latent weights clipped to exactly 1 keep learning).

The outputs and gradients equal SteSign's exactly for float32, bfloat16 and
float16 inputs (``tests/training/test_fast.py``; under bf16 autocast the sign
of every activation sees a bf16 tensor). In the low-precision dtypes SteSign
compares ``|x|`` with ``clip_value`` rounded to that dtype, so the bound is
taken just above the rounded value. float64 uses SteSign's own code.
:func:`patch_ste` swaps the ``forward`` of the model's SteSign instances (no
type change: summaries, exporters and checkpoints see the same modules) and
returns a function that undoes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["fast_ste_sign", "patch_ste"]


_FAST_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
# (clip_value, dtype) -> bound; filled eagerly by patch_ste so that torch.compile only reads it
_BOUNDS: dict[tuple[float, torch.dtype], float] = {}


def _above(c: float, dtype: torch.dtype = torch.float32) -> float:
    """The float32 just above ``c`` as ``dtype`` rounds it: ``x <= bound`` iff ``x <= c`` in ``dtype``."""
    key = (c, dtype)
    if key not in _BOUNDS:
        rounded = float(torch.tensor(c, dtype=dtype))
        _BOUNDS[key] = float(np.nextafter(np.float32(rounded), np.float32(np.inf)))
    return _BOUNDS[key]


class _FastSteSign(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, bound: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.bound = bound
        return torch.sign(x).add_(0.5).sign_()

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor, None]:
        (x,) = ctx.saved_tensors
        return torch.ops.aten.hardtanh_backward(g, x, -ctx.bound, ctx.bound), None


def fast_ste_sign(x: Tensor, clip_value: float = 1.0) -> Tensor:
    """``ste_sign`` with cheaper kernels (float32/bf16/fp16; float64 falls back to ``ste_sign``)."""
    if x.dtype not in _FAST_DTYPES:
        from onebit.quantizers import ste_sign

        return ste_sign(x, clip_value)
    return _FastSteSign.apply(x, _above(clip_value, x.dtype))


def patch_ste(model: nn.Module) -> Callable[[], None]:
    """Make every ``SteSign`` in ``model`` use :func:`fast_ste_sign`; returns the undo function."""
    from onebit.quantizers import SteSign

    patched = []
    for m in model.modules():
        if type(m) is SteSign:
            c = m.clip_value
            for dtype in _FAST_DTYPES:
                _above(c, dtype)  # precomputed here: no tensor is built inside a compiled graph
            m.forward = lambda x, _c=c: fast_ste_sign(x, _c)  # type: ignore[method-assign]
            patched.append(m)

    def undo() -> None:
        for m in patched:
            m.__dict__.pop("forward", None)

    return undo
