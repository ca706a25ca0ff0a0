"""BinaryNet's MNIST MLP and CIFAR-10/SVHN ConvNet (Courbariaux, Hubara et al. 2016).

Courbariaux, Hubara, Soudry, El-Yaniv, Bengio, *Binarized Neural Networks:
Training Deep Neural Networks with Weights and Activations Constrained to +1
or -1*, arXiv:1602.02830 (NIPS 2016 as Hubara et al.).

Both networks binarize *every* weight (first and last layer included,
``ste_sign`` + ``weight_clip``) and every activation but the network input;
BatchNorm follows every layer (after the max-pool where there is one, as in
the authors' code), the sign of the next layer is the nonlinearity, the last
BN's output is the logits (the paper trains it with a squared hinge loss).
Layers have no bias (the BN that follows makes it redundant; larq's examples
do the same). The first layer sees the real-valued input, so it has binary
weights and a float input: it is listed in ``binary_exceptions``.

``binary=False`` builds the float twin for speed/accuracy comparisons: the same
layers without quantizers and a ReLU after each hidden BN.
"""

from __future__ import annotations

from torch import Tensor, nn

from onebit.models._blocks import batch_norm, conv_out
from onebit.models._registry import CIFAR10_MEAN, CIFAR10_STD, MNIST_MEAN, MNIST_STD, register_model
from onebit.nn import QuantConv2d, QuantLinear

__all__ = ["BinaryNetCifar", "BinaryNetMLP"]

_PAPER = (
    "Courbariaux, Hubara, Soudry, El-Yaniv, Bengio, 'Binarized Neural Networks: Training Deep "
    "Neural Networks with Weights and Activations Constrained to +1 or -1', arXiv:1602.02830"
)

default_cfgs = {
    "binarynet_mlp": {
        "input_size": (1, 28, 28),  # flattened inside the model to 784
        "num_classes": 10,
        "mean": MNIST_MEAN,
        "std": MNIST_STD,
        "dataset": "mnist",
        "first_conv": "layers.0.fc",
        "classifier": "layers.3.fc",
        "paper": _PAPER + " (MNIST MLP: 3 hidden layers of 4096 binary units)",
        "binary_exceptions": ["layers.0.fc"],
        "reference": {
            "params_binary": 784 * 4096 + 2 * 4096 * 4096 + 4096 * 10,
            "source": "paper, Section 'MLP on MNIST': 784-4096-4096-4096-10, all weights binary",
        },
    },
    "binarynet_cifar": {
        "input_size": (3, 32, 32),
        "num_classes": 10,
        "mean": CIFAR10_MEAN,
        "std": CIFAR10_STD,
        "dataset": "cifar10",
        "first_conv": "features.0.conv",
        "classifier": "classifier.2.fc",
        "paper": _PAPER + " (CIFAR-10/SVHN ConvNet)",
        "binary_exceptions": ["features.0.conv"],
        "reference": {
            "params_binary": 14_022_016,
            "params_total_width_0.25_mnist": 652_872,
            "source": (
                "paper, Section 'ConvNet on CIFAR-10': (2x128C3)-MP2-(2x256C3)-MP2-(2x512C3)-MP2-"
                "(2x1024FC)-10 -> sum of its weight shapes; width=0.25 at 1x28x28: the '652k' "
                "benchmark network"
            ),
        },
    },
}


class _Unit(nn.Module):
    """(Quant)Conv or (Quant)Linear -> [MaxPool 2] -> BN -> [ReLU in the float twin] -> [dropout]."""

    def __init__(self, layer: nn.Module, bn: nn.Module, pool: bool, act: bool, drop: float = 0.0) -> None:
        super().__init__()
        if isinstance(layer, nn.Conv2d):
            self.conv = layer
        else:
            self.fc = layer
        self.pool = nn.MaxPool2d(2) if pool else nn.Identity()
        self.bn = bn
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()
        self.drop = nn.Dropout(drop) if drop else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        layer = self.conv if hasattr(self, "conv") else self.fc
        return self.drop(self.act(self.bn(self.pool(layer(x)))))


def _q(binary: bool, first: bool, float_weight: bool = False) -> dict:
    """Quantizer keywords of one layer: sign on the input (not on the image) and on the weights.

    ``float_weight`` keeps the weights real (a real first or last layer, as XNOR-Net and most
    later BNNs do); the input of a real last layer is still binarized.
    """
    if not binary:
        return {}
    if float_weight:
        return {"input_quantizer": None if first else "ste_sign"}
    return {
        "input_quantizer": None if first else "ste_sign",
        "weight_quantizer": "ste_sign",
        "weight_constraint": "weight_clip",
    }


class BinaryNetMLP(nn.Module):
    """BinaryNet's MLP: ``num_hidden`` layers of ``hidden`` binary units, BN after each.

    ``hidden=4096, num_hidden=3`` is the paper's MNIST network; ``hidden=1024``
    gives larq's 784-1024-1024-1024-10 example MLP. Input: (N, in_chans, H, W)
    or already flat (N, in_chans*H*W). What is binary: all weights and all
    hidden activations; what stays float: the input image, the BNs.
    ``drop_in``/``drop_hidden``: optional dropout on the input / hidden layers
    (off by default). ``float_first``/``float_last`` keep the first / last
    layer's weights real (the paper binarizes them; XNOR-Net and most later
    BNNs do not); the last layer's input stays binary.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 1,
        input_size: int = 28,
        hidden: int = 4096,
        num_hidden: int = 3,
        binary: bool = True,
        drop_in: float = 0.0,
        drop_hidden: float = 0.0,
        float_first: bool = False,
        float_last: bool = False,
    ) -> None:
        super().__init__()
        self.in_features = in_chans * input_size * input_size
        self.flatten = nn.Flatten()
        self.drop_in = nn.Dropout(drop_in) if drop_in else nn.Identity()
        widths = [self.in_features] + [hidden] * num_hidden + [num_classes]
        units = []
        for i in range(len(widths) - 1):
            last = i == len(widths) - 2
            real = (float_first and i == 0) or (float_last and last)
            fc = QuantLinear(widths[i], widths[i + 1], bias=False, **_q(binary, i == 0, real))
            bn = batch_norm(widths[i + 1], dim=1, eps=1e-4)
            units.append(_Unit(fc, bn, False, act=not binary and not last, drop=0.0 if last else drop_hidden))
        self.layers = nn.Sequential(*units)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(self.drop_in(self.flatten(x)))


class BinaryNetCifar(nn.Module):
    """BinaryNet's ConvNet: (2x128C3)-MP2-(2x256C3)-MP2-(2x512C3)-MP2-(2x1024FC)-10, BN after each.

    ``width`` multiplies every width but the classes' (width=0.25:
    32C3-32C3-MP2-64C3-64C3-MP2-128C3-128C3-MP2-256FC-256FC-10). What is
    binary: all weights, all activations but the input image; what stays
    float: the BNs. 3x3 convs pad with zeros (pad 1), as the authors' code.
    ``float_first``/``float_last`` keep the first conv's / the last dense
    layer's weights real, the usual choice since XNOR-Net (the last layer's
    input stays binary).
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 3,
        input_size: int = 32,
        width: float = 1.0,
        binary: bool = True,
        float_first: bool = False,
        float_last: bool = False,
    ) -> None:
        super().__init__()

        def w(c: int) -> int:
            return max(1, int(round(c * width)))

        convs = [
            (w(128), False),
            (w(128), True),
            (w(256), False),
            (w(256), True),
            (w(512), False),
            (w(512), True),
        ]
        units = []
        cin = in_chans
        n = input_size
        for i, (cout, pool) in enumerate(convs):
            q = _q(binary, i == 0, float_first and i == 0)
            conv = QuantConv2d(cin, cout, 3, padding=1, bias=False, **q)
            units.append(_Unit(conv, batch_norm(cout, eps=1e-4), pool, act=not binary))
            cin = cout
            if pool:
                n = conv_out(n, 2, 2)
        self.features = nn.Sequential(*units)
        self.flatten = nn.Flatten()
        dims = [cin * n * n, w(1024), w(1024), num_classes]
        fcs = []
        for i in range(3):
            fc = QuantLinear(dims[i], dims[i + 1], bias=False, **_q(binary, False, float_last and i == 2))
            fcs.append(_Unit(fc, batch_norm(dims[i + 1], dim=1, eps=1e-4), False, act=not binary and i < 2))
        self.classifier = nn.Sequential(*fcs)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.flatten(self.features(x)))


@register_model
def binarynet_mlp(num_classes: int = 10, in_chans: int = 1, input_size: int = 28, **kw) -> nn.Module:
    """BinaryNet MNIST MLP (``hidden``, ``num_hidden``, ``binary`` options)."""
    return BinaryNetMLP(num_classes=num_classes, in_chans=in_chans, input_size=input_size, **kw)


@register_model
def binarynet_cifar(num_classes: int = 10, in_chans: int = 3, input_size: int = 32, **kw) -> nn.Module:
    """BinaryNet CIFAR-10/SVHN ConvNet (``width``, ``binary`` options)."""
    return BinaryNetCifar(num_classes=num_classes, in_chans=in_chans, input_size=input_size, **kw)
