"""QuickNet, QuickNetSmall, QuickNetLarge (Larq's models for Larq Compute Engine).

Bannink et al., *Larq Compute Engine: Design, Benchmark, and Deploy
State-of-the-Art Binarized Neural Networks*, MLSys 2021, arXiv:2011.09398;
definition: larq zoo ``larq_zoo/sota/quicknet.py`` (v1.0), layer for layer:

* stem (float): 3x3/2 conv to C/4 -> BN -> ReLU -> depthwise 3x3/2 conv ->
  BN without gamma/beta -> 1x1 conv to C -> BN;
* residual blocks: binary 3x3 conv (``ste_sign`` clip 1.25 on inputs and
  weights, ``weight_clip`` 1.25, **padded with +1**: larq's ``pad_values=1.0``)
  -> ReLU -> BN (momentum 0.1, eps 1e-5) -> add the input;
* transition blocks (float) between sections of different width: ReLU ->
  MaxPool 2x2 stride 1 -> fixed blur-pool depthwise 3x3/2 -> 1x1 conv -> BN;
* head: ReLU -> global average pool -> dense (float, with bias).

Sections: QuickNet (4, 4, 4, 4) x (64, 128, 256, 512); Small: widths
(32, 64, 256, 512); Large: blocks (6, 8, 12, 6).
``input_size < 50`` makes both stem convs stride 1 (32x32 stays 32x32 into
the first section, as the ImageNet stem's 4x reduction would leave 8x8).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from onebit.models._blocks import BlurPool, batch_norm
from onebit.models._registry import imagenet_cfg, register_model
from onebit.nn import QuantConv2d

__all__ = ["QuickNet"]

_PAPER = (
    "Bannink et al., 'Larq Compute Engine: Design, Benchmark, and Deploy State-of-the-Art "
    "Binarized Neural Networks', MLSys 2021, arXiv:2011.09398; definition: larq zoo "
    "larq_zoo/sota/quicknet.py (v1.0)"
)
_SRC = "larq zoo larq_zoo/sota/quicknet.py v1.0 docstrings (ImageNet Metrics table)"


def _cfg(params: int, mib: float) -> dict:
    return imagenet_cfg(
        first_conv="stem.0",
        classifier="fc",
        paper=_PAPER,
        pad_value=1.0,
        reference={"params_total": params, "memory_mib": mib, "source": _SRC},
    )


default_cfgs = {
    "quicknet_small": _cfg(12_655_688, 4.00),
    "quicknet": _cfg(13_234_088, 4.17),
    "quicknet_large": _cfg(23_342_248, 5.40),
}


def _bn(c: int) -> nn.Module:
    return batch_norm(c, momentum=0.1, eps=1e-5)


class QuickNetBlock(nn.Module):
    """x + BN(ReLU(binary_conv3x3(x))), the binary conv padded with +1."""

    def __init__(self, ch: int, clip: float = 1.25) -> None:
        super().__init__()
        q = {"name": "ste_sign", "clip_value": clip}
        self.conv = QuantConv2d(
            ch,
            ch,
            3,
            padding=1,
            bias=False,
            input_quantizer=q,
            weight_quantizer=q,
            weight_constraint={"name": "weight_clip", "clip_value": clip},
            pad_value=1.0,
        )
        self.act = nn.ReLU(inplace=True)
        self.bn = _bn(ch)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.bn(self.act(self.conv(x)))


class TransitionBlock(nn.Sequential):
    """ReLU -> MaxPool 2x2/1 -> blur-pool 3x3/2 (fixed) -> float 1x1 conv -> BN."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 2) -> None:
        super().__init__(
            nn.ReLU(),
            nn.MaxPool2d(stride, stride=1),
            BlurPool(in_ch, 3, stride),
            nn.Conv2d(in_ch, out_ch, 1, bias=False),
            _bn(out_ch),
        )


class QuickNet(nn.Module):
    """QuickNet family.

    What is binary: the 3x3 convolutions of the residual blocks (inputs and
    weights, ``ste_sign`` clip 1.25, +1 padding). What stays float: the stem,
    the transition blocks (their blur-pool kernels are fixed parameters,
    ``requires_grad=False``, counted as in larq zoo), every BN, the classifier.
    """

    def __init__(
        self,
        section_blocks: Sequence[int] = (4, 4, 4, 4),
        section_filters: Sequence[int] = (64, 128, 256, 512),
        num_classes: int = 1000,
        in_chans: int = 3,
        input_size: int = 224,
    ) -> None:
        super().__init__()
        c0 = section_filters[0]
        if c0 % 4:
            raise ValueError(f"QuickNet: first section width must be divisible by 4, got {c0}")
        s = 1 if input_size < 50 else 2
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, c0 // 4, 3, stride=s, padding=1, bias=False),
            batch_norm(c0 // 4, momentum=0.01, eps=1e-3),  # Keras defaults
            nn.ReLU(inplace=True),
            nn.Conv2d(c0 // 4, c0 // 4, 3, stride=s, padding=1, groups=c0 // 4, bias=False),
            batch_norm(c0 // 4, momentum=0.01, eps=1e-3, scale=False, center=False),
            nn.Conv2d(c0 // 4, c0, 1, bias=False),
            batch_norm(c0, momentum=0.01, eps=1e-3),
        )
        mods: list[nn.Module] = []
        ch = c0
        for n, f in zip(section_blocks, section_filters, strict=True):
            for _ in range(n):
                if f != ch:
                    mods.append(TransitionBlock(ch, f, 2))
                    ch = f
                mods.append(QuickNetBlock(ch))
        self.features = nn.Sequential(*mods)
        self.act = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(ch, num_classes)
        self.num_features = ch

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.features(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


@register_model
def quicknet_small(num_classes: int = 1000, in_chans: int = 3, input_size: int = 224, **kw) -> nn.Module:
    """QuickNetSmall: sections (4, 4, 4, 4) x (32, 64, 256, 512)."""
    return QuickNet(
        (4, 4, 4, 4),
        (32, 64, 256, 512),
        num_classes=num_classes,
        in_chans=in_chans,
        input_size=input_size,
        **kw,
    )


@register_model
def quicknet(num_classes: int = 1000, in_chans: int = 3, input_size: int = 224, **kw) -> nn.Module:
    """QuickNet: sections (4, 4, 4, 4) x (64, 128, 256, 512)."""
    return QuickNet(
        (4, 4, 4, 4),
        (64, 128, 256, 512),
        num_classes=num_classes,
        in_chans=in_chans,
        input_size=input_size,
        **kw,
    )


@register_model
def quicknet_large(num_classes: int = 1000, in_chans: int = 3, input_size: int = 224, **kw) -> nn.Module:
    """QuickNetLarge: sections (6, 8, 12, 6) x (64, 128, 256, 512)."""
    return QuickNet(
        (6, 8, 12, 6),
        (64, 128, 256, 512),
        num_classes=num_classes,
        in_chans=in_chans,
        input_size=input_size,
        **kw,
    )
