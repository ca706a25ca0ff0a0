"""ReActNet-A (Liu et al., ECCV 2020).

Liu, Shen, Savvides, Cheng, *ReActNet: Towards Precise Binary Neural Network
with Generalized Activation Functions*, arXiv:2003.03488. Layer for layer as
the authors' code (github.com/liuzechun/ReActNet, ``mobilenet/reactnet.py``):
MobileNetV1's layout with every depthwise-separable block replaced by two
binary convolutions, each with a real-valued shortcut:

* a block: RSign -> binary 3x3 conv (stride s) -> BN, + input (AvgPool 2x2
  when s = 2) -> RPReLU; then RSign -> binary 1x1 conv -> BN, + input ->
  RPReLU. Where the width doubles, the authors use *two* binary 1x1 convs
  (C -> C each) with two BNs, both added to the input and concatenated; here
  that is one binary 1x1 conv C -> 2C with one BN over 2C channels and the
  input repeated twice: the same function, the same parameters (per-output
  channel weights, scales and BN statistics) and the same MACs.
* widths 32 (float 3x3/2 stem conv + BN), 64, 128x2, 256x2, 512x6, 1024x2;
  strides 2 at the first 128, 256, 512 and 1024 blocks.
* head: global average pool -> float dense (with bias).

Binarization: activations by :class:`RSign` (learned per-channel threshold,
Bi-Real's approx-sign gradient), weights by ``magnitude_aware_sign`` (sign
times the mean |W| per output filter, as the authors' ``HardBinaryConv``; its
gradient is the clipped STE times that mean, where the authors' omits the
mean: a per-filter rescaling of the latent weight's gradient). Zero padding,
as the authors' ``padding=1``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from onebit.models._blocks import RPReLU, RSign, batch_norm
from onebit.models._registry import imagenet_cfg, register_model
from onebit.nn import QuantConv2d

__all__ = ["ReActNetA"]

_WIDTHS = (32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024)

default_cfgs = {
    "reactnet_a": imagenet_cfg(
        first_conv="stem.0",
        classifier="fc",
        paper=(
            "Liu, Shen, Savvides, Cheng, 'ReActNet: Towards Precise Binary Neural Network with "
            "Generalized Activation Functions', ECCV 2020, arXiv:2003.03488; definition: "
            "github.com/liuzechun/ReActNet mobilenet/reactnet.py"
        ),
        reference={
            "params_binary": 28_253_184,
            "macs_binary": 4.82e9,
            "macs_float": 0.12e8,
            "source": (
                "binary params: the authors' reactnet.py layer shapes (sum of its HardBinaryConv "
                "weights: sum over blocks of C_in^2*9 + C_in*C_out); BOPs/FLOPs: ReActNet paper, "
                "ImageNet comparison table, ReActNet-A: 4.82e9 BOPs, 0.12e8 FLOPs, 0.87e8 OPs"
            ),
        },
    ),
}


def _binary_conv(in_ch: int, out_ch: int, k: int, stride: int) -> QuantConv2d:
    return QuantConv2d(
        in_ch,
        out_ch,
        k,
        stride=stride,
        padding=k // 2,
        bias=False,
        input_quantizer=RSign(in_ch),
        weight_quantizer="magnitude_aware_sign",
        weight_constraint="weight_clip",
    )


class ReActBlock(nn.Module):
    """Two binary convolutions (3x3 then 1x1), each with a shortcut, BN and RPReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        if out_ch not in (in_ch, 2 * in_ch):
            raise ValueError(f"ReActBlock: out_ch must be in_ch or 2*in_ch, got {in_ch}->{out_ch}")
        self.conv3x3 = _binary_conv(in_ch, in_ch, 3, stride)
        self.bn1 = batch_norm(in_ch)
        self.pool = nn.AvgPool2d(2, 2) if stride == 2 else nn.Identity()
        self.act1 = RPReLU(in_ch)
        self.conv1x1 = _binary_conv(in_ch, out_ch, 1, 1)
        self.bn2 = batch_norm(out_ch)
        self.act2 = RPReLU(out_ch)
        self.repeat = out_ch // in_ch

    def forward(self, x: Tensor) -> Tensor:
        out1 = self.act1(self.bn1(self.conv3x3(x)) + self.pool(x))
        short = out1 if self.repeat == 1 else out1.repeat(1, self.repeat, 1, 1)
        return self.act2(self.bn2(self.conv1x1(out1)) + short)


class ReActNetA(nn.Module):
    """ReActNet-A.

    What is binary: the 13 binary 3x3 and 13 binary 1x1 convolutions of the
    blocks (inputs via RSign, weights via ``magnitude_aware_sign``). What stays
    float: the 3x3/2 stem conv + BN, RSign thresholds, RPReLU shifts/slopes,
    every BN, the classifier.
    ``input_size < 50`` makes the stem stride 1 and the first stride-2 block
    stride 1 (32 -> 32 -> 16 -> 8 -> 4 instead of 224 -> 112 -> ... -> 7).
    """

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, input_size: int = 224) -> None:
        super().__init__()
        small = input_size < 50
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, _WIDTHS[0], 3, stride=1 if small else 2, padding=1, bias=False),
            batch_norm(_WIDTHS[0]),
        )
        blocks = []
        first_down = True
        for i in range(1, len(_WIDTHS)):
            cin, cout = _WIDTHS[i - 1], _WIDTHS[i]
            stride = 2 if (cin != cout and cout != 64) else 1
            if stride == 2 and small and first_down:
                stride, first_down = 1, False
            blocks.append(ReActBlock(cin, cout, stride))
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(_WIDTHS[-1], num_classes)
        self.num_features = _WIDTHS[-1]

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(self.stem(x))
        return self.fc(torch.flatten(self.pool(x), 1))


@register_model
def reactnet_a(num_classes: int = 1000, in_chans: int = 3, input_size: int = 224) -> nn.Module:
    """ReActNet-A (Liu et al. 2020), as the authors' PyTorch definition."""
    return ReActNetA(num_classes=num_classes, in_chans=in_chans, input_size=input_size)
