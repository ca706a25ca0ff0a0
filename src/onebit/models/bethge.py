"""BinaryResNetE and BinaryDenseNet (Bethge et al., "Back to Simplicity", 2019).

Bethge, Yang, Bornstein, Meinel, *Back to Simplicity: How to Train Accurate
BNNs from Scratch?*, arXiv:1906.08637. Layer for layer as larq zoo's
``larq_zoo/literature/resnet_e.py`` and ``larq_zoo/literature/densenet.py``:

* binary 3x3 convolutions with ``ste_sign`` on inputs and weights (plain STE,
  no scaling factors), clip value 1.25 (ResNetE) / 1.3 (DenseNet) for both
  quantizers and the ``weight_clip`` constraint; zero padding (larq's default);
* real-valued downsampling: ResNetE's shortcut is AvgPool 2x2 -> float 1x1
  conv -> BN; DenseNet's transition is BN -> MaxPool 2x2 -> ReLU -> float 1x1
  conv (no pool where the next block is dilated);
* float stem (7x7/2 conv, BN, ReLU, 3x3/2 max-pool; ResNetE adds a BN) and a
  float classifier (global average pool, dense with bias).

``input_size < 50`` (CIFAR) replaces the stem by a single float 3x3 stride-1
conv, as larq zoo does for small inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from onebit.models._blocks import batch_norm
from onebit.models._registry import imagenet_cfg, register_model
from onebit.nn import QuantConv2d

__all__ = ["BinaryDenseNet", "BinaryResNetE"]

_PAPER = (
    "Bethge, Yang, Bornstein, Meinel, 'Back to Simplicity: How to Train Accurate BNNs "
    "from Scratch?', arXiv:1906.08637 (2019); definition: larq zoo literature"
)
_LARQ_DOCS = "larq zoo docs, Available models table (docs.larq.dev/zoo)"


def _ref(params: int, mib: float) -> dict:
    return {"params_total": params, "memory_mib": mib, "source": _LARQ_DOCS}


default_cfgs = {
    "binary_resnet_e18": imagenet_cfg(
        first_conv="stem.0",
        classifier="fc",
        paper=_PAPER,
        reference=_ref(11_699_368, 4.03),
    ),
    "binary_densenet28": imagenet_cfg(
        first_conv="stem.0", classifier="fc", paper=_PAPER, reference=_ref(5_150_504, 4.12)
    ),
    "binary_densenet37": imagenet_cfg(
        first_conv="stem.0", classifier="fc", paper=_PAPER, reference=_ref(8_734_120, 5.25)
    ),
    "binary_densenet37_dilated": imagenet_cfg(
        first_conv="stem.0", classifier="fc", paper=_PAPER, reference=_ref(8_734_120, 5.25)
    ),
    "binary_densenet45": imagenet_cfg(
        first_conv="stem.0", classifier="fc", paper=_PAPER, reference=_ref(13_939_240, 7.54)
    ),
}


def _sign(clip: float) -> dict:
    return {"name": "ste_sign", "clip_value": clip}


def _stem(in_chans: int, filters: int, input_size: int, extra_bn: bool) -> nn.Sequential:
    if input_size < 50:
        return nn.Sequential(nn.Conv2d(in_chans, filters, 3, padding=1, bias=False))
    layers: list[nn.Module] = [
        nn.Conv2d(in_chans, filters, 7, stride=2, padding=3, bias=False),
        batch_norm(filters),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, stride=2, padding=1),
    ]
    if extra_bn:
        layers.append(batch_norm(filters))
    return nn.Sequential(*layers)


class ResidualBlockE(nn.Module):
    """BinaryResNetE block: binary 3x3 conv -> BN, plus a (real-valued when downsampling) shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, clip: float) -> None:
        super().__init__()
        self.conv = QuantConv2d(
            in_ch,
            out_ch,
            3,
            stride=stride,
            padding=1,
            bias=False,
            input_quantizer=_sign(clip),
            weight_quantizer=_sign(clip),
            weight_constraint={"name": "weight_clip", "clip_value": clip},
        )
        self.bn = batch_norm(out_ch)
        if in_ch != out_ch:
            self.shortcut: nn.Module = nn.Sequential(
                nn.AvgPool2d(2, stride=2, ceil_mode=True, count_include_pad=False),
                nn.Conv2d(in_ch, out_ch, 1, bias=False),
                batch_norm(out_ch),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.conv(x)) + self.shortcut(x)


class BinaryResNetE(nn.Module):
    """BinaryResNetE-18: ResNet-18 with a shortcut around *every* binary 3x3 conv.

    What is binary: the 16 3x3 convolutions of the four stages (inputs and
    weights, ``ste_sign`` with clip 1.25, no scaling). What stays float: the
    stem, the 1x1 downsampling shortcuts with their BN, every BN, the classifier.
    """

    def __init__(
        self,
        blocks: Sequence[int] = (2, 2, 2, 2),
        filters: Sequence[int] = (64, 128, 256, 512),
        num_classes: int = 1000,
        in_chans: int = 3,
        input_size: int = 224,
        initial_filters: int = 64,
        clip_value: float = 1.25,
    ) -> None:
        super().__init__()
        self.stem = _stem(in_chans, initial_filters, input_size, extra_bn=True)
        layers = []
        ch = initial_filters
        for stage, (n, f) in enumerate(zip(blocks, filters, strict=True)):
            for i in range(2 * n):  # one shortcut per conv: twice the blocks of ResNet
                stride = 2 if stage > 0 and i == 0 else 1
                layers.append(ResidualBlockE(ch, f, stride, clip_value))
                ch = f
        self.features = nn.Sequential(*layers)
        self.act = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(ch, num_classes)
        self.num_features = ch

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.features(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


class DenseLayer(nn.Module):
    """BN -> binary 3x3 conv (growth-rate channels) -> concatenate with the input."""

    def __init__(self, in_ch: int, growth: int, dilation: int, clip: float) -> None:
        super().__init__()
        self.bn = batch_norm(in_ch)
        self.conv = QuantConv2d(
            in_ch,
            growth,
            3,
            padding=dilation,
            dilation=dilation,
            bias=False,
            input_quantizer=_sign(clip),
            weight_quantizer=_sign(clip),
            weight_constraint={"name": "weight_clip", "clip_value": clip},
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x, self.conv(self.bn(x))], dim=1)


class BinaryDenseNet(nn.Module):
    """BinaryDenseNet: dense blocks of binary 3x3 convs, real-valued transitions.

    What is binary: every 3x3 convolution of the dense blocks (inputs and
    weights, ``ste_sign`` clip 1.3, no scaling). What stays float: the stem,
    BNs, the transitions (BN -> [MaxPool] -> ReLU -> 1x1 conv whose width is
    ``round(C // reduction / 32) * 32``), the final BN/ReLU and the classifier.
    """

    def __init__(
        self,
        layers: Sequence[int],
        reduction: Sequence[float],
        dilation: Sequence[int] = (1, 1, 1, 1),
        num_classes: int = 1000,
        in_chans: int = 3,
        input_size: int = 224,
        initial_filters: int = 64,
        growth_rate: int = 64,
        clip_value: float = 1.3,
    ) -> None:
        super().__init__()
        self.stem = _stem(in_chans, initial_filters, input_size, extra_bn=False)
        mods: list[nn.Module] = []
        ch = initial_filters
        for block, n in enumerate(layers):
            for _ in range(n):
                mods.append(DenseLayer(ch, growth_rate, dilation[block], clip_value))
                ch += growth_rate
            if block < len(layers) - 1:
                # Python's floor division of an int by a float, then round(): as larq zoo.
                out = round(ch // reduction[block] / 32) * 32
                trans: list[nn.Module] = [batch_norm(ch)]
                if dilation[block + 1] == 1:
                    trans.append(nn.MaxPool2d(2, stride=2))
                trans += [nn.ReLU(inplace=True), nn.Conv2d(ch, out, 1, bias=False)]
                mods.append(nn.Sequential(*trans))
                ch = out
        self.features = nn.Sequential(*mods)
        self.norm = batch_norm(ch)
        self.act = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(ch, num_classes)
        self.num_features = ch

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.norm(self.features(self.stem(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


@register_model
def binary_resnet_e18(num_classes: int = 1000, in_chans: int = 3, input_size: int = 224, **kw) -> nn.Module:
    """BinaryResNetE-18 (Bethge et al. 2019), as larq zoo's ``BinaryResNetE18``."""
    return BinaryResNetE(num_classes=num_classes, in_chans=in_chans, input_size=input_size, **kw)


@register_model
def binary_densenet28(num_classes: int = 1000, in_chans: int = 3, input_size: int = 224, **kw) -> nn.Module:
    """BinaryDenseNet28: blocks (6, 6, 6, 5), reductions (2.7, 2.7, 2.2)."""
    return BinaryDenseNet(
        (6, 6, 6, 5), (2.7, 2.7, 2.2), num_classes=num_classes, in_chans=in_chans, input_size=input_size, **kw
    )


@register_model
def binary_densenet37(num_classes: int = 1000, in_chans: int = 3, input_size: int = 224, **kw) -> nn.Module:
    """BinaryDenseNet37: blocks (6, 8, 12, 6), reductions (3.3, 3.3, 4)."""
    return BinaryDenseNet(
        (6, 8, 12, 6), (3.3, 3.3, 4), num_classes=num_classes, in_chans=in_chans, input_size=input_size, **kw
    )


@register_model
def binary_densenet37_dilated(
    num_classes: int = 1000, in_chans: int = 3, input_size: int = 224, **kw
) -> nn.Module:
    """BinaryDenseNet37Dilated: as 37, dilation (1, 1, 2, 4) instead of the last two poolings."""
    return BinaryDenseNet(
        (6, 8, 12, 6),
        (3.3, 3.3, 4),
        (1, 1, 2, 4),
        num_classes=num_classes,
        in_chans=in_chans,
        input_size=input_size,
        **kw,
    )


@register_model
def binary_densenet45(num_classes: int = 1000, in_chans: int = 3, input_size: int = 224, **kw) -> nn.Module:
    """BinaryDenseNet45: blocks (6, 12, 14, 8), reductions (2.7, 3.3, 4)."""
    return BinaryDenseNet(
        (6, 12, 14, 8), (2.7, 3.3, 4), num_classes=num_classes, in_chans=in_chans, input_size=input_size, **kw
    )
