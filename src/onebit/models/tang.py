"""Tang, Hua, Wang's AlexNet-style binary network (AAAI 2017).

Tang, Hua, Wang, *How to Train a Compact Binary Neural Network with High
Accuracy?*, AAAI 2017. The network is AlexNet (Krizhevsky et al. 2012; BVLC
Caffe layer shapes without the two-GPU grouping: conv 96-11x11/4, 256-5x5,
384-3x3, 384-3x3, 256-3x3, dense 4096, 4096, classes; 3x3/2 max-pools after
conv 1, 2 and 5, Caffe's ceil rounding so 224x224 ends at 6x6) with the
paper's changes:

* BatchNorm before every binary layer ("batch normalization layer is used
  before each binary convolution layer"), then the binarization, then the
  binary conv/dense (with bias, as Caffe's layers);
* PReLU (per channel) after every binary layer but the last, in place of
  ReLU: its slope absorbs the scale a binary weight loses;
* the last layer is binarized too and is followed by a learned scalar scale
  layer (:class:`onebit.nn.Scale`) that brings its +-fan-in outputs to a range
  the softmax can use (initialized to 1/sqrt(4096));
* ``activation_bits`` = 1, 2, 3: *multiple binarizations* of the activations
  (:class:`onebit.quantizers.ResidualSign`, ``bits`` residual sign planes);
  1 is the plain ``ste_sign``. ``activation_scale`` picks where the planes'
  scales are averaged: ``"channel"`` (default; per channel over the batch) or
  ``"sample"`` (opt-in; one scale per image, which the engine runs at binary
  speed, see :func:`onebit.quantizers.residual_sign`);
* no dropout (the paper trains without it: binarization regularizes).

The first conv keeps float weights and input, followed by ReLU and the
max-pool, as in the paper ("the first layer is not binarized").
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from onebit import quantizers as Q
from onebit.models._blocks import batch_norm, conv_out
from onebit.models._registry import imagenet_cfg, register_model
from onebit.nn import QuantConv2d, QuantLinear, Scale

__all__ = ["TangAlexNet"]

_BINARY_LAYERS = ["conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]

default_cfgs = {
    "tang_alexnet": imagenet_cfg(
        first_conv="conv1",
        classifier="fc8.layer",
        paper=(
            "Tang, Hua, Wang, 'How to Train a Compact Binary Neural Network with High Accuracy?', AAAI 2017"
        ),
        reference={
            "params_binary": 62_332_928,
            "params_alexnet_trainable": 62_378_344,
            "source": (
                "AlexNet layer shapes (Krizhevsky et al. 2012, BVLC Caffe without groups: "
                "62,378,344 weights and biases); binary = all weights but conv1's 34,848"
            ),
        },
    ),
}


def _act_quantizer(bits: int, scale: str) -> dict | str:
    return "ste_sign" if bits == 1 else {"name": "residual_sign", "bits": bits, "scale": scale}


class _BinaryLayer(nn.Module):
    """BN -> binarize (in the layer's input quantizer) -> binary conv/dense -> [PReLU] -> [max-pool]."""

    def __init__(self, layer: nn.Module, bn: nn.Module, prelu: int = 0, pool: bool = False) -> None:
        super().__init__()
        self.bn = bn
        self.layer = layer
        self.act = nn.PReLU(prelu) if prelu else nn.Identity()
        self.pool = nn.MaxPool2d(3, stride=2, ceil_mode=True) if pool else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.act(self.layer(self.bn(x))))


class TangAlexNet(nn.Module):
    """AlexNet binarized as Tang et al. (2017).

    What is binary: the weights of conv2-5 and fc6-8 (``ste_sign``,
    ``weight_clip``) and their inputs (sign, or ``activation_bits`` residual
    sign planes). What stays float: conv1 (+ReLU), every BN, the biases,
    the PReLU slopes, the final scale.
    ``input_size < 50``: conv1 becomes 3x3 stride 1 (pad 1) without its max-pool.
    ``width`` multiplies every conv's channels and the dense layers' 4096
    (1.0 is the paper's network; smaller widths make CPU-sized tests).
    """

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        input_size: int = 224,
        activation_bits: int = 1,
        activation_scale: str = "channel",
        width: float = 1.0,
    ) -> None:
        super().__init__()
        if activation_bits not in (1, 2, 3):
            raise ValueError(f"tang_alexnet: activation_bits must be 1, 2 or 3, got {activation_bits}")
        if activation_scale not in Q.RESIDUAL_SCALES:
            raise ValueError(
                f"tang_alexnet: activation_scale must be one of {Q.RESIDUAL_SCALES}, got {activation_scale!r}"
            )
        if not width > 0:
            raise ValueError(f"tang_alexnet: width must be > 0, got {width}")
        self.activation_bits = activation_bits
        c1, c2, c3, c4, c5, fc = (max(1, round(c * width)) for c in (96, 256, 384, 384, 256, 4096))
        small = input_size < 50
        k1, s1, p1 = (3, 1, 1) if small else (11, 4, 0)
        self.conv1 = nn.Conv2d(in_chans, c1, k1, stride=s1, padding=p1)
        self.relu1 = nn.ReLU(inplace=True)
        self.pool1 = nn.Identity() if small else nn.MaxPool2d(3, stride=2, ceil_mode=True)
        n = conv_out(input_size, k1, s1, p1)
        if not small:
            n = conv_out(n, 3, 2, ceil=True)

        def q() -> dict:
            return {
                "input_quantizer": _act_quantizer(activation_bits, activation_scale),
                "weight_quantizer": "ste_sign",
                "weight_constraint": "weight_clip",
            }

        def conv(cin: int, cout: int, k: int, pool: bool) -> _BinaryLayer:
            c = QuantConv2d(cin, cout, k, padding=k // 2, **q())
            return _BinaryLayer(c, batch_norm(cin), prelu=cout, pool=pool)

        self.conv2 = conv(c1, c2, 5, True)
        self.conv3 = conv(c2, c3, 3, False)
        self.conv4 = conv(c3, c4, 3, False)
        self.conv5 = conv(c4, c5, 3, True)
        n = conv_out(conv_out(n, 3, 2, ceil=True), 3, 2, ceil=True)
        self.flatten = nn.Flatten()
        flat = c5 * n * n
        self.fc6 = _BinaryLayer(QuantLinear(flat, fc, **q()), batch_norm(flat, dim=1), prelu=fc)
        self.fc7 = _BinaryLayer(QuantLinear(fc, fc, **q()), batch_norm(fc, dim=1), prelu=fc)
        self.fc8 = _BinaryLayer(QuantLinear(fc, num_classes, **q()), batch_norm(fc, dim=1))
        self.scale = Scale(1.0 / math.sqrt(fc), learnable=True)
        # With multi-bit activations the binary-weight layers see 2-3 bit inputs.
        self.binary_exceptions = [] if activation_bits == 1 else [f"{n}.layer" for n in _BINARY_LAYERS]

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.conv5(self.conv4(self.conv3(self.conv2(x))))
        x = self.fc8(self.fc7(self.fc6(self.flatten(x))))
        return self.scale(x)


@register_model
def tang_alexnet(num_classes: int = 1000, in_chans: int = 3, input_size: int = 224, **kw) -> nn.Module:
    """Tang et al.'s binary AlexNet (``activation_bits`` = 1, 2 or 3)."""
    return TangAlexNet(num_classes=num_classes, in_chans=in_chans, input_size=input_size, **kw)
