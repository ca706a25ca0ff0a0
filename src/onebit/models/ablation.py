"""A configurable CIFAR-size binary ConvNet for controlled experiments.

The papers' claims are about single design choices (XNOR-Net's scaling factors
and block order, Tang et al.'s PReLU, regularizer, binarized last layer and
multiple binarizations, Bethge et al.'s gradients and dense shortcuts). Testing
one at a time needs one network in which each choice is a switch and
everything else stays put. :class:`AblationConvNet` is that network: the
width-0.25 BinaryNet/VGG-small layout (32C3-MP2-64C3-64C3-MP2-128C3-128C3-MP2
after a float 32C3 stem, then FC 256, then the classifier), with

* ``order``: ``"xnor"`` = XNOR-Net's block BN -> sign -> binary conv -> [act]
  -> pool (pooling sees real values); ``"typical"`` = conv -> BN -> [act] ->
  sign -> pool (pooling sees +-1, the order XNOR-Net's Table 3 argues against);
* ``scaling``: ``None``, ``"alpha"`` (per-filter alpha), ``"xnor"`` (alpha and
  K) or ``"channel"`` (learned per-channel scale), see :class:`~onebit.nn.QuantConv2d`;
* ``activation``: ``"none"`` or ``"prelu"`` (per channel, after every binary
  layer but the last; Tang et al.);
* ``act_bits``: 1, 2 or 3 binarizations of the activations (residual sign, Tang et al.);
  ``act_scale``: their scales per channel over the batch (``"channel"``, default) or
  per sample (``"sample"``, opt-in, deployable at binary speed; see
  :func:`onebit.quantizers.residual_sign`);
* ``act_quantizer``: the sign's gradient, ``"ste_sign"``, ``"approx_sign"`` or
  ``"swish_sign"`` (Bethge et al.);
* ``last``: ``"float"`` classifier (XNOR-Net), ``"binary"`` or
  ``"binary_scale"`` (binary classifier followed by a learned scalar
  :class:`~onebit.nn.Scale`, Tang et al.);
* ``shortcut``: ``"none"``, ``"residual"`` (a real-valued identity around
  every binary 3x3 conv whose input and output widths agree, ResNetE/Bi-Real
  style) or ``"dense"`` (BinaryDenseNet style: each stage is a dense block of
  3x3 binary convs whose ``growth`` outputs are concatenated to their input,
  then max-pool and a binary 1x1 transition back to the stage width; with the
  default growths the dense net has about the plain net's binary MACs).

What is binary: every conv and dense weight and activation but the stem conv
(float weights, real input) and, with ``last="float"``, the classifier.
``binary=False`` gives the float twin (no quantizers, ReLU after each layer).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from onebit import quantizers as Q
from onebit.models._blocks import batch_norm
from onebit.models._registry import CIFAR10_MEAN, CIFAR10_STD, register_model
from onebit.nn import QuantConv2d, QuantLinear, Scale

__all__ = ["AblationConvNet"]

ORDERS = ("xnor", "typical")
LASTS = ("float", "binary", "binary_scale")
SHORTCUTS = ("none", "residual", "dense")
ACTIVATIONS = ("none", "prelu", "relu")
SIGNS = ("ste_sign", "approx_sign", "swish_sign")

default_cfgs = {
    "ablation_convnet": {
        "input_size": (3, 32, 32),
        "num_classes": 10,
        "mean": CIFAR10_MEAN,
        "std": CIFAR10_STD,
        "dataset": "cifar10",
        "first_conv": "stem",
        "classifier": "head.layer",
        "paper": (
            "onebit's ablation network: BinaryNet's width-0.25 CIFAR-10 ConvNet (Courbariaux et al. "
            "2016) with the switches of XNOR-Net (Rastegari et al. 2016), Tang et al. (2017) and "
            "Bethge et al. (2019)"
        ),
        "reference": {
            "params_binary": 9 * (32 * 32 + 32 * 64 + 64 * 64 + 64 * 128 + 128 * 128) + 2048 * 256,
            "source": "sum of the default configuration's binary weight shapes (5 3x3 convs, FC 2048-256)",
        },
    },
}


class _Binary(nn.Module):
    """One binary layer in the chosen block order, with optional PReLU, pool and identity shortcut."""

    def __init__(
        self,
        layer: nn.Module,
        cin: int,
        cout: int,
        order: str,
        activation: str,
        pool: bool,
        residual: bool,
        quantizer: Any,
        dim: int = 2,
    ) -> None:
        super().__init__()
        self.order = order
        self.residual = residual
        self.layer = layer
        if order == "xnor":
            self.bn = batch_norm(cin, dim=dim)
        else:
            self.bn = batch_norm(cout, dim=dim)
            self.sign = _quantizer_module(quantizer)
        self.act = _activation(activation, cout)
        self.pool = nn.MaxPool2d(2) if pool else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        if self.order == "xnor":
            y = self.act(self.layer(self.bn(x)))
            if self.residual:
                y = y + x
            return self.pool(y)
        return self.pool(self.sign(self.act(self.bn(self.layer(x)))))


def _quantizer_module(q: Any) -> nn.Module:
    """The sign module for a quantizer name or config; ``None`` (the float twin) gives identity."""
    return Q.get(q) or nn.Identity()


def _activation(kind: str, channels: int) -> nn.Module:
    if kind == "prelu":
        return nn.PReLU(channels, init=0.25)
    if kind == "relu":
        return nn.ReLU(inplace=False)
    return nn.Identity()


class _DenseStage(nn.Module):
    """Dense block: each 3x3 binary conv adds ``growth`` channels; then max-pool and a 1x1 transition."""

    def __init__(
        self, cin: int, cout: int, n: int, growth: int, make_conv, order: str, activation: str, quantizer: Any
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList()
        c = cin
        for _ in range(n):
            self.layers.append(
                _Binary(make_conv(c, growth, 3), c, growth, order, activation, False, False, quantizer)
            )
            c += growth
        self.pool = nn.MaxPool2d(2)
        self.transition = _Binary(make_conv(c, cout, 1), c, cout, order, activation, False, False, quantizer)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = torch.cat([x, layer(x)], dim=1)
        return self.transition(self.pool(x))


class AblationConvNet(nn.Module):
    """Width-0.25 VGG-small BNN for CIFAR-10 with one switch per design choice (see the module docstring).

    Args:
        widths: stage widths; stage 0 has one binary 3x3 conv after the float stem,
            the others two, each stage ends with a 2x2 max-pool.
        fc: widths of the binary hidden dense layers.
        dense_layers, growth: per-stage dense-block depth and growth (``shortcut="dense"``).
        binary: ``False`` builds the float twin (teacher, speed comparisons).
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 3,
        input_size: int = 32,
        widths: tuple[int, ...] | list[int] = (32, 64, 128),
        fc: tuple[int, ...] | list[int] = (256,),
        order: str = "xnor",
        scaling: str | None = None,
        activation: str = "none",
        act_bits: int = 1,
        act_scale: str = "channel",
        act_quantizer: str = "ste_sign",
        last: str = "float",
        shortcut: str = "none",
        dense_layers: tuple[int, ...] | list[int] = (2, 3, 3),
        growth: tuple[int, ...] | list[int] = (16, 32, 64),
        binary: bool = True,
    ) -> None:
        super().__init__()
        for arg, val, choices in (
            ("order", order, ORDERS),
            ("last", last, LASTS),
            ("shortcut", shortcut, SHORTCUTS),
            ("activation", activation, ACTIVATIONS),
            ("act_quantizer", act_quantizer, SIGNS),
        ):
            if val not in choices:
                raise ValueError(f"AblationConvNet: unknown {arg} {val!r}; expected one of {choices}")
        if act_bits not in (1, 2, 3):
            raise ValueError(f"AblationConvNet: act_bits must be 1, 2 or 3, got {act_bits!r}")
        if act_scale not in Q.RESIDUAL_SCALES:
            raise ValueError(
                f"AblationConvNet: act_scale must be one of {Q.RESIDUAL_SCALES}, got {act_scale!r}"
            )
        if shortcut != "none" and order != "xnor":
            raise ValueError(
                "AblationConvNet: shortcuts need order='xnor' (real values on the identity path)"
            )
        if shortcut == "dense" and not (len(dense_layers) == len(growth) == len(widths)):
            raise ValueError("AblationConvNet: dense_layers and growth need one entry per stage")
        if input_size % (2 ** len(widths)):
            raise ValueError(f"AblationConvNet: input_size {input_size} is not divisible by 2**{len(widths)}")
        self.binary = binary
        if not binary:
            activation, act_bits, last = "relu", 1, "float"
        quant = (
            act_quantizer
            if act_bits == 1
            else {"name": "residual_sign", "bits": act_bits, "scale": act_scale}
        )
        self.act_bits = act_bits

        def q(first: bool = False) -> dict[str, Any]:
            if not binary:
                return {}
            return {
                "input_quantizer": None if first else quant,
                "weight_quantizer": "ste_sign",
                "weight_constraint": "weight_clip",
                "scaling": scaling,
            }

        def make_conv(cin: int, cout: int, k: int) -> nn.Module:
            return QuantConv2d(cin, cout, k, padding=k // 2, bias=False, **q())

        sign = quant if binary else None
        w0 = widths[0]
        stem_out = w0 if shortcut != "dense" else w0 // 2
        self.stem = nn.Conv2d(in_chans, stem_out, 3, padding=1, bias=False)
        if order == "typical":  # conv -> BN -> sign for the stem too; the first binary layer sees +-1
            self.stem_bn: nn.Module = batch_norm(stem_out)
            self.stem_sign: nn.Module = _quantizer_module(sign) if binary else nn.ReLU()
        else:
            self.stem_bn = nn.Identity()
            self.stem_sign = nn.Identity()
        stages: list[nn.Module] = []
        cin = stem_out
        for s, width in enumerate(widths):
            if shortcut == "dense":
                stages.append(
                    _DenseStage(cin, width, dense_layers[s], growth[s], make_conv, order, activation, sign)
                )
            else:
                n = 1 if s == 0 else 2
                for i in range(n):
                    c_in = cin if i == 0 else width
                    stages.append(
                        _Binary(
                            make_conv(c_in, width, 3),
                            c_in,
                            width,
                            order,
                            activation,
                            i == n - 1,
                            shortcut == "residual" and c_in == width,
                            sign,
                        )
                    )
            cin = width
        self.features = nn.Sequential(*stages)
        self.flatten = nn.Flatten()
        side = input_size // 2 ** len(widths)
        dims = [cin * side * side, *fc]
        self.fc = nn.Sequential(
            *[
                _Binary(
                    QuantLinear(dims[i], dims[i + 1], bias=False, **q()),
                    dims[i],
                    dims[i + 1],
                    order,
                    activation,
                    False,
                    False,
                    sign,
                    dim=1,
                )
                for i in range(len(fc))
            ]
        )
        self.head = _Head(dims[-1], num_classes, last, order, q, binary)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem_sign(self.stem_bn(self.stem(x)))
        return self.head(self.fc(self.flatten(self.features(x))))


class _Head(nn.Module):
    """Classifier: BN -> float dense (+bias), or BN -> sign -> binary dense [-> Scale] (Tang et al.)."""

    def __init__(self, cin: int, classes: int, last: str, order: str, q, binary: bool) -> None:
        super().__init__()
        self.bn = batch_norm(cin, dim=1) if order == "xnor" else nn.Identity()
        if last == "float":
            self.layer: nn.Module = nn.Linear(cin, classes)
        else:
            self.layer = QuantLinear(cin, classes, bias=False, **q())
        # Binary logits are integers in [-cin, cin]; Tang's scale layer brings them to a usable range.
        self.scale = Scale(1.0 / math.sqrt(cin)) if last == "binary_scale" else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.scale(self.layer(self.bn(x)))


@register_model
def ablation_convnet(num_classes: int = 10, in_chans: int = 3, input_size: int = 32, **kw) -> nn.Module:
    """onebit's ablation ConvNet for CIFAR-size inputs (switches: see :class:`AblationConvNet`)."""
    return AblationConvNet(num_classes=num_classes, in_chans=in_chans, input_size=input_size, **kw)
