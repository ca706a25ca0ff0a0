"""Bi-Real Net 18 (Liu et al., ECCV 2018).

Liu, Wu, Luo, Yang, Liu, Cheng, *Bi-Real Net: Enhancing the Performance of
1-bit CNNs with Improved Representational Capability and Advanced Training
Algorithm*, arXiv:1808.00278. Layer for layer as larq zoo's
``larq_zoo/literature/birealnet.py``: a real-valued shortcut around every
binary 3x3 convolution; activations binarized with ``approx_sign`` (the
paper's piecewise-polynomial gradient), weights with ``magnitude_aware_sign``
(sign times the mean |W| per output filter, the paper's magnitude-aware
gradient) and ``weight_clip``; zero padding; BN momentum 0.2 (Keras 0.8),
eps 1e-3.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from onebit.models._blocks import batch_norm
from onebit.models._registry import imagenet_cfg, register_model
from onebit.nn import QuantConv2d

__all__ = ["BiRealNet"]

default_cfgs = {
    "birealnet18": imagenet_cfg(
        first_conv="stem.0",
        classifier="fc",
        paper=(
            "Liu et al., 'Bi-Real Net: Enhancing the Performance of 1-bit CNNs with Improved "
            "Representational Capability and Advanced Training Algorithm', ECCV 2018, "
            "arXiv:1808.00278; definition: larq zoo literature"
        ),
        reference={
            "params_total": 11_699_112,
            "memory_mib": 4.03,
            "source": "larq zoo docs, Available models table (docs.larq.dev/zoo)",
        },
    ),
}


def _bn(c: int) -> nn.Module:
    return batch_norm(c, momentum=0.2, eps=1e-3)


class BiRealBlock(nn.Module):
    """Binary 3x3 conv -> BN, plus the shortcut (AvgPool -> float 1x1 conv -> BN when downsampling)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        stride = 1 if in_ch == out_ch else 2
        self.conv = QuantConv2d(
            in_ch,
            out_ch,
            3,
            stride=stride,
            padding=1,
            bias=False,
            input_quantizer="approx_sign",
            weight_quantizer="magnitude_aware_sign",
            weight_constraint="weight_clip",
        )
        self.bn = _bn(out_ch)
        if in_ch != out_ch:
            self.shortcut: nn.Module = nn.Sequential(
                nn.AvgPool2d(2, stride=2, ceil_mode=True, count_include_pad=False),
                nn.Conv2d(in_ch, out_ch, 1, bias=False),
                _bn(out_ch),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.conv(x)) + self.shortcut(x)


class BiRealNet(nn.Module):
    """Bi-Real Net 18.

    What is binary: the 16 3x3 convolutions (inputs: ``approx_sign``;
    weights: ``magnitude_aware_sign``, 1 bit plus a per-filter scale computed
    from the latent weights). What stays float: the 7x7 stem conv with BN and
    max-pool (no ReLU, as larq zoo), the 1x1 downsampling shortcuts, every BN,
    the classifier (global average pool, dense with bias).
    ``input_size < 50`` replaces the stem by a 3x3 stride-1 conv + BN (no max-pool).
    """

    def __init__(
        self, num_classes: int = 1000, in_chans: int = 3, input_size: int = 224, filters: int = 64
    ) -> None:
        super().__init__()
        if input_size < 50:
            self.stem = nn.Sequential(nn.Conv2d(in_chans, filters, 3, padding=1, bias=False), _bn(filters))
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(in_chans, filters, 7, stride=2, padding=3, bias=False),
                _bn(filters),
                nn.MaxPool2d(3, stride=2, padding=1),
            )
        blocks = []
        ch = filters
        for stage in range(4):
            for i in range(4):
                out = 2 * ch if (stage > 0 and i == 0) else ch
                blocks.append(BiRealBlock(ch, out))
                ch = out
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(ch, num_classes)
        self.num_features = ch

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(self.stem(x))
        return self.fc(torch.flatten(self.pool(x), 1))


@register_model
def birealnet18(num_classes: int = 1000, in_chans: int = 3, input_size: int = 224, **kw) -> nn.Module:
    """Bi-Real Net 18 (Liu et al. 2018), as larq zoo's ``BiRealNet``."""
    return BiRealNet(num_classes=num_classes, in_chans=in_chans, input_size=input_size, **kw)
