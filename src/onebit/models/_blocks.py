"""Building blocks shared by the model families.

* :func:`batch_norm`: BatchNorm with larq/Keras options (``scale``/``center``
  off remove gamma/beta, as ``BatchNormalization(scale=False)`` does), so
  parameter counts equal the published Keras ones.
* :class:`RSign`, :class:`RPReLU`, :class:`LearnableBias`: ReActNet's
  activations (Liu et al., *ReActNet*, ECCV 2020, arXiv:2003.03488).
* :class:`BlurPool`: the fixed (non-trainable) anti-aliasing depthwise filter of
  QuickNet's transition blocks (Zhang, *Making Convolutional Networks
  Shift-Invariant Again*, arXiv:1904.11486).
* small shape helpers used to size the dense layers of the AlexNet-style models.

Momentum: PyTorch's ``momentum`` is ``1 - keras_momentum`` (Keras 0.9 == 0.1 here).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from onebit import quantizers as Q
from onebit.export import LoweringContext, Value, register_module_lowering
from onebit.export.lowerings.common import per_feature, to_numpy

__all__ = [
    "BlurPool",
    "LearnableBias",
    "RPReLU",
    "RSign",
    "batch_norm",
    "conv_out",
    "pool_out",
]


def batch_norm(
    num_features: int,
    dim: int = 2,
    *,
    momentum: float = 0.1,
    eps: float = 1e-5,
    scale: bool = True,
    center: bool = True,
) -> nn.Module:
    """``nn.BatchNorm{1,2}d`` whose gamma (``scale``) and beta (``center``) can be dropped.

    Running mean and variance are always tracked (and count as float parameters
    in :func:`onebit.summary`, as in larq's summary).
    """
    cls = nn.BatchNorm2d if dim == 2 else nn.BatchNorm1d
    bn = cls(num_features, eps=eps, momentum=momentum, affine=True)
    if not scale:
        del bn.weight
        bn.register_parameter("weight", None)
    if not center:
        del bn.bias
        bn.register_parameter("bias", None)
    return bn


def conv_out(n: int, k: int, s: int = 1, p: int = 0, d: int = 1, ceil: bool = False) -> int:
    """Output side of a convolution / pooling over a side of ``n``."""
    x = (n + 2 * p - d * (k - 1) - 1) / s
    return int(math.ceil(x) if ceil else math.floor(x)) + 1


pool_out = conv_out


class LearnableBias(nn.Module):
    """Add a learned per-channel shift (initialized to 0): ``x + b_c``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.bias.view(1, -1, *([1] * (x.dim() - 2)))


@register_module_lowering(LearnableBias)
def _export_learnable_bias(
    ctx: LoweringContext, name: str, m: LearnableBias, args: list[Any], out_shape: tuple[int, ...]
) -> Value:
    """Export: a per-channel ``affine`` with scale 1 (folded into the producing layer)."""
    x = args[0]
    b = per_feature(to_numpy(m.bias).reshape(-1), x)
    return ctx.graph.add(
        "affine",
        [x],
        "float",
        out_shape,
        name,
        params={"scale": np.ones_like(b), "shift": b},
        torch_order=x.torch_order,
    )


class RSign(Q.Quantizer):
    """ReActNet's RSign: ``sign(x + b_c)`` with a learned per-channel threshold ``-b_c``.

    Forward: :math:`\\mathrm{sign}(x_c + b_c)` (``sign(0) = +1``), ``b`` initialized to 0.
    Gradient: Bi-Real's approximation (:func:`onebit.quantizers.approx_sign`) of
    the sign, as in ReActNet's code; ``b`` receives the same gradient summed
    over the other dimensions. A 1-bit quantizer (``precision = 1``): a binary
    convolution fed by it runs as XNOR-popcount; the shift folds into the
    preceding BatchNorm or into the binarization threshold at deployment.
    """

    precision = 1
    name = "rsign"

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.shift = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        return Q.approx_sign(x + self.shift.view(1, -1, *([1] * (x.dim() - 2))))

    def sign_threshold(self) -> Tensor:
        """Per-channel ``t`` with ``forward(x) == sign(x - t)``: ``t = -shift`` (for exporters)."""
        return -self.shift.detach()

    def get_config(self) -> dict[str, int]:
        return {"channels": self.channels}


class RPReLU(nn.Module):
    """ReActNet's RPReLU: shift, PReLU (per channel, slope 0.25 at init), shift.

    ``y = PReLU(x - gamma_c) + zeta_c`` (written here as two learnable biases
    around ``nn.PReLU(channels)``, the same function and parameter count).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.shift_in = LearnableBias(channels)
        self.prelu = nn.PReLU(channels)
        self.shift_out = LearnableBias(channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.shift_out(self.prelu(self.shift_in(x)))


class BlurPool(nn.Module):
    """Fixed depthwise blur (binomial 3x3 ``[1,2,1]^T[1,2,1]/16``) with a stride.

    The kernel is a parameter with ``requires_grad=False`` (Keras's
    ``trainable=False``), so it counts in the parameter totals as in larq zoo.
    Padding is ``k // 2`` (TF "same" for odd inputs, as used in QuickNet).
    """

    def __init__(self, channels: int, kernel_size: int = 3, stride: int = 2) -> None:
        super().__init__()
        taps = {2: [1.0, 1.0], 3: [1.0, 2.0, 1.0], 5: [1.0, 4.0, 6.0, 4.0, 1.0]}
        if kernel_size not in taps:
            raise ValueError(f"BlurPool: kernel_size must be 2, 3 or 5, got {kernel_size}")
        k = torch.tensor(taps[kernel_size])
        k2 = torch.outer(k, k)
        k2 = k2 / k2.sum()
        self.weight = nn.Parameter(
            k2.expand(channels, 1, kernel_size, kernel_size).clone(), requires_grad=False
        )
        self.stride = stride
        self.padding = kernel_size // 2
        self.channels = channels

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.conv2d(
            x, self.weight, stride=self.stride, padding=self.padding, groups=self.channels
        )

    def extra_repr(self) -> str:
        return f"{self.channels}, kernel_size={self.weight.shape[-1]}, stride={self.stride}"


@register_module_lowering(BlurPool)
def _export_blur_pool(
    ctx: LoweringContext, name: str, m: BlurPool, args: list[Any], out_shape: tuple[int, ...]
) -> Value:
    """Export: a depthwise float ``conv2d`` with the fixed blur kernel."""
    k = int(m.weight.shape[-1])
    p = int(m.padding)
    c = int(m.channels)
    attrs = {
        "kernel": [k, k],
        "stride": [int(m.stride)] * 2,
        "padding": [p, p, p, p],
        "dilation": [1, 1],
        "groups": c,
    }
    return ctx.graph.add(
        "conv2d",
        [args[0]],
        "float",
        out_shape,
        name,
        attrs,
        {
            "weight": to_numpy(m.weight).transpose(0, 2, 3, 1),
            "multiplier": np.ones(c, np.float32),
            "bias": np.zeros(c, np.float32),
        },
    )
