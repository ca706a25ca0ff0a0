"""Binary AlexNet (BinaryNet on ImageNet), XNOR-Net AlexNet, XNOR-Net and BWN ResNet-18.

* ``binary_alexnet``: Hubara, Courbariaux, Soudry, El-Yaniv, Bengio,
  *Binarized Neural Networks*, NIPS 2016 (arXiv:1602.02830), as larq zoo's
  ``larq_zoo/literature/binary_alex_net.py``.
* ``xnornet``: Rastegari, Ordonez, Redmon, Farhadi, *XNOR-Net: ImageNet
  Classification Using Binary Convolutional Neural Networks*, ECCV 2016
  (arXiv:1603.05279), AlexNet as larq zoo's ``larq_zoo/literature/xnornet.py``,
  with the paper's scaling: alpha (mean |W| per filter) *and* K (mean |input|
  over channels, box-filtered to the kernel) via ``scaling="xnor"``.
* ``xnornet_resnet18`` / ``bwn_resnet18``: the paper's ResNet-18 experiments
  (XNOR-Network: binary weights and activations; Binary-Weight-Network: binary
  weights only), on He et al.'s ResNet-18 layer shapes.

All binary convolutions pad with zeros (larq's default; the paper's Torch code
pads with zeros too).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from onebit.models._blocks import batch_norm, conv_out
from onebit.models._registry import imagenet_cfg, register_model
from onebit.nn import QuantConv2d, QuantLinear

__all__ = ["BinaryAlexNet", "BwnResNet18", "XnorNetAlexNet", "XnorResNet18"]

_LARQ_DOCS = "larq zoo docs, Available models table (docs.larq.dev/zoo)"
_XNOR = (
    "Rastegari, Ordonez, Redmon, Farhadi, 'XNOR-Net: ImageNet Classification Using Binary "
    "Convolutional Neural Networks', ECCV 2016, arXiv:1603.05279"
)
_RESNET_REF = {
    "params_binary": 10_985_472,
    "params_trainable": 11_689_512,
    "source": (
        "He et al. 2016 ResNet-18 layer shapes: the sixteen 3x3 stage convolutions hold "
        "10,985,472 weights; torchvision resnet18 has 11,689,512 trainable parameters"
    ),
}

default_cfgs = {
    "binary_alexnet": imagenet_cfg(
        first_conv="features.0.conv",
        classifier="classifier.2.fc",
        paper=(
            "Hubara, Courbariaux, Soudry, El-Yaniv, Bengio, 'Binarized Neural Networks', NIPS 2016, "
            "arXiv:1602.02830; definition: larq zoo literature BinaryAlexNet"
        ),
        # The first conv has binary weights but sees the (float) image.
        binary_exceptions=["features.0.conv"],
        reference={"params_total": 61_859_192, "memory_mib": 7.49, "source": _LARQ_DOCS},
    ),
    "xnornet": imagenet_cfg(
        first_conv="conv1",
        classifier="fc",
        paper=_XNOR + "; definition: larq zoo literature XNORNet",
        reference={"params_total": 62_396_768, "memory_mib": 22.81, "source": _LARQ_DOCS},
    ),
    "xnornet_resnet18": imagenet_cfg(
        first_conv="stem.0",
        classifier="fc",
        paper=_XNOR + " (ResNet-18, XNOR-Network)",
        reference=_RESNET_REF,
    ),
    "bwn_resnet18": imagenet_cfg(
        first_conv="stem.0",
        classifier="fc",
        paper=_XNOR + " (ResNet-18, Binary-Weight-Network)",
        # BWN: every binary-weight conv sees real-valued activations (by design).
        binary_exceptions=["layer*.conv1", "layer*.conv2"],
        reference=_RESNET_REF,
    ),
}


# --------------------------------------------------------------------------- #
# Binary AlexNet (larq zoo literature.BinaryAlexNet)
# --------------------------------------------------------------------------- #


class _AlexConv(nn.Module):
    """Binary conv (sign on the input unless it is the first layer) -> [MaxPool 3/2] -> BN(no gamma)."""

    def __init__(
        self, cin: int, cout: int, k: int, stride: int, padding: int, pool: bool, first: bool
    ) -> None:
        super().__init__()
        self.conv = QuantConv2d(
            cin,
            cout,
            k,
            stride=stride,
            padding=padding,
            bias=False,
            input_quantizer=None if first else "ste_sign",
            weight_quantizer="ste_sign",
            weight_constraint="weight_clip",
        )
        self.pool = nn.MaxPool2d(3, stride=2) if pool else nn.Identity()
        self.bn = batch_norm(cout, momentum=0.1, eps=1e-3, scale=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.pool(self.conv(x)))


class _AlexDense(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.fc = QuantLinear(
            cin,
            cout,
            bias=False,
            input_quantizer="ste_sign",
            weight_quantizer="ste_sign",
            weight_constraint="weight_clip",
        )
        self.bn = batch_norm(cout, dim=1, momentum=0.1, eps=1e-3, scale=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.fc(x))


class BinaryAlexNet(nn.Module):
    """BinaryNet's AlexNet for ImageNet (larq zoo's BinaryAlexNet).

    What is binary: *all* weights, including the first conv and the last dense
    layer (``ste_sign``, ``weight_clip``); the inputs of every layer but the
    first (``ste_sign``). The first conv therefore has binary weights and a
    float input (listed in ``binary_exceptions``). What stays float: the BNs
    (no gamma, as larq zoo), nothing else. Conv widths 64-192-384-384-256
    (times ``inflation_ratio`` except the last), dense 4096-4096-classes.
    ``input_size < 50``: 3x3 stride-1 first conv without its max-pool.
    """

    def __init__(
        self, num_classes: int = 1000, in_chans: int = 3, input_size: int = 224, inflation_ratio: int = 1
    ) -> None:
        super().__init__()
        r = inflation_ratio
        small = input_size < 50
        k1, s1, p1 = (3, 1, 1) if small else (11, 4, 4)  # p1=4: TF "same" output size (56 at 224)
        self.features = nn.Sequential(
            _AlexConv(in_chans, 64 * r, k1, s1, p1, pool=not small, first=True),
            _AlexConv(64 * r, 192 * r, 5, 1, 2, pool=True, first=False),
            _AlexConv(192 * r, 384 * r, 3, 1, 1, pool=False, first=False),
            _AlexConv(384 * r, 384 * r, 3, 1, 1, pool=False, first=False),
            _AlexConv(384 * r, 256, 3, 1, 1, pool=True, first=False),
        )
        n = conv_out(input_size, k1, s1, p1)
        if not small:
            n = conv_out(n, 3, 2)
        n = conv_out(conv_out(n, 3, 2), 3, 2)
        flat = 256 * n * n
        self.classifier = nn.Sequential(
            _AlexDense(flat, 4096), _AlexDense(4096, 4096), _AlexDense(4096, num_classes)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


# --------------------------------------------------------------------------- #
# XNOR-Net AlexNet (larq zoo literature.XNORNet, with the paper's K scaling)
# --------------------------------------------------------------------------- #


def _xnor_conv(cin: int, cout: int, k: int, padding: int = 0) -> QuantConv2d:
    return QuantConv2d(
        cin,
        cout,
        k,
        padding=padding,
        bias=False,
        input_quantizer="ste_sign",
        weight_quantizer="ste_sign",
        weight_constraint="weight_clip",
        scaling="xnor",
    )


class XnorNetAlexNet(nn.Module):
    """XNOR-Net's AlexNet: blocks BN -> sign -> binary conv (alpha, K) -> [pool].

    What is binary: the five convolutions after the first (``ste_sign`` on
    inputs and weights, scaled by alpha per filter and K per position, which
    are float multiplications of the XNOR-popcount result); the first "dense"
    layers are binary convs too (6x6 valid conv to 4096, 1x1 conv to 4096).
    What stays float: the first conv (11x11/4, 96) with BN/ReLU/max-pool, every
    BN (no gamma, eps 1e-4 as larq zoo), the last dense layer (no bias).
    ``input_size < 50``: 3x3 stride-1 first conv without the first max-pool.
    """

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, input_size: int = 224) -> None:
        super().__init__()
        small = input_size < 50
        k1, s1, p1 = (3, 1, 1) if small else (11, 4, 4)
        self.conv1 = nn.Conv2d(in_chans, 96, k1, stride=s1, padding=p1, bias=False)
        self.bn1 = batch_norm(96, eps=1e-5, scale=False)
        self.relu1 = nn.ReLU(inplace=True)
        self.pool1 = nn.Identity() if small else nn.MaxPool2d(3, stride=2)

        def bn(c: int, eps: float = 1e-4) -> nn.Module:
            return batch_norm(c, eps=eps, scale=False)

        self.features = nn.Sequential(
            bn(96),
            _xnor_conv(96, 256, 5, 2),
            nn.MaxPool2d(3, stride=2),
            bn(256),
            _xnor_conv(256, 384, 3, 1),
            bn(384),
            _xnor_conv(384, 384, 3, 1),
            bn(384),
            _xnor_conv(384, 256, 3, 1),
            nn.MaxPool2d(3, stride=2),
            bn(256),
            _xnor_conv(256, 4096, 6),
            bn(4096),
            _xnor_conv(4096, 4096, 1),  # "equivalent to a dense layer"
            bn(4096, 1e-3),
            nn.ReLU(inplace=True),
        )
        n = conv_out(input_size, k1, s1, p1)
        if not small:
            n = conv_out(n, 3, 2)
        n = conv_out(conv_out(conv_out(n, 3, 2), 3, 2), 6)
        if n < 1:
            raise ValueError(f"xnornet: input_size {input_size} is too small for the 6x6 conv")
        self.fc = nn.Linear(4096 * n * n, num_classes, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool1(self.relu1(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(self.features(x), 1))


# --------------------------------------------------------------------------- #
# ResNet-18 with XNOR-Network / Binary-Weight-Network layers
# --------------------------------------------------------------------------- #


def _stem(in_chans: int, input_size: int) -> nn.Sequential:
    if input_size < 50:
        return nn.Sequential(
            nn.Conv2d(in_chans, 64, 3, padding=1, bias=False), batch_norm(64), nn.ReLU(inplace=True)
        )
    return nn.Sequential(
        nn.Conv2d(in_chans, 64, 7, stride=2, padding=3, bias=False),
        batch_norm(64),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, stride=2, padding=1),
    )


def _downsample(cin: int, cout: int, stride: int) -> nn.Module:
    if stride == 1 and cin == cout:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), batch_norm(cout))


class XnorBlock(nn.Module):
    """XNOR-Net basic block: (BN -> sign -> binary 3x3 conv with alpha, K) twice, + shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1 = batch_norm(cin)
        self.conv1 = QuantConv2d(
            cin,
            cout,
            3,
            stride=stride,
            padding=1,
            bias=False,
            input_quantizer="ste_sign",
            weight_quantizer="ste_sign",
            weight_constraint="weight_clip",
            scaling="xnor",
        )
        self.bn2 = batch_norm(cout)
        self.conv2 = _xnor_conv(cout, cout, 3, 1)
        self.shortcut = _downsample(cin, cout, stride)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(self.bn2(self.conv1(self.bn1(x)))) + self.shortcut(x)


class BwnBlock(nn.Module):
    """ResNet basic block with binary weights (alpha-scaled) and real-valued activations."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        kw = {
            "bias": False,
            "weight_quantizer": "ste_sign",
            "weight_constraint": "weight_clip",
            "scaling": "xnor",  # without an input quantizer: alpha only
        }
        self.conv1 = QuantConv2d(cin, cout, 3, stride=stride, padding=1, **kw)
        self.bn1 = batch_norm(cout)
        self.conv2 = QuantConv2d(cout, cout, 3, padding=1, **kw)
        self.bn2 = batch_norm(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _downsample(cin, cout, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class _ResNet18(nn.Module):
    block: type[nn.Module]

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, input_size: int = 224) -> None:
        super().__init__()
        self.stem = _stem(in_chans, input_size)
        ch = 64
        for i, width in enumerate((64, 128, 256, 512)):
            stride = 1 if i == 0 else 2
            layer = nn.Sequential(self.block(ch, width, stride), self.block(width, width, 1))
            self.add_module(f"layer{i + 1}", layer)
            ch = width
        self.head = self._head(ch)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(ch, num_classes)
        self.num_features = ch

    def _head(self, ch: int) -> nn.Module:
        return nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.pool(self.head(x)), 1))


class XnorResNet18(_ResNet18):
    """ResNet-18 as an XNOR-Network.

    What is binary: the sixteen 3x3 stage convolutions (inputs and weights,
    ``ste_sign`` with alpha and K scaling), each preceded by BN (the paper's
    block order BN -> BinActiv -> BinConv; the sign is the nonlinearity). What
    stays float: the stem (7x7/2 conv, BN, ReLU, max-pool), the 1x1 projection
    shortcuts with BN (the paper keeps "the first and last layer" real and does
    not discuss them; we keep them real-valued like Bi-Real Net and ResNetE),
    the final BN -> ReLU, the classifier.
    """

    block = XnorBlock

    def _head(self, ch: int) -> nn.Module:
        return nn.Sequential(batch_norm(ch), nn.ReLU(inplace=True))


class BwnResNet18(_ResNet18):
    """ResNet-18 as a Binary-Weight-Network (He et al.'s block, binary alpha-scaled weights).

    What is binary: the weights of the sixteen 3x3 stage convolutions (sign
    times alpha per filter); activations stay real, so these layers are not
    XNOR-popcount layers (listed in ``binary_exceptions``). What stays float:
    stem, 1x1 projection shortcuts, BNs, classifier.
    """

    block = BwnBlock


@register_model
def binary_alexnet(num_classes: int = 1000, in_chans: int = 3, input_size: int = 224, **kw) -> nn.Module:
    """BinaryNet's AlexNet (Hubara et al. 2016), as larq zoo's ``BinaryAlexNet``."""
    return BinaryAlexNet(num_classes=num_classes, in_chans=in_chans, input_size=input_size, **kw)


@register_model
def xnornet(num_classes: int = 1000, in_chans: int = 3, input_size: int = 224) -> nn.Module:
    """XNOR-Net AlexNet (Rastegari et al. 2016), larq zoo's ``XNORNet`` with alpha and K scaling."""
    return XnorNetAlexNet(num_classes=num_classes, in_chans=in_chans, input_size=input_size)


@register_model
def xnornet_resnet18(num_classes: int = 1000, in_chans: int = 3, input_size: int = 224) -> nn.Module:
    """ResNet-18 XNOR-Network (Rastegari et al. 2016)."""
    return XnorResNet18(num_classes=num_classes, in_chans=in_chans, input_size=input_size)


@register_model
def bwn_resnet18(num_classes: int = 1000, in_chans: int = 3, input_size: int = 224) -> nn.Module:
    """ResNet-18 Binary-Weight-Network (Rastegari et al. 2016)."""
    return BwnResNet18(num_classes=num_classes, in_chans=in_chans, input_size=input_size)
