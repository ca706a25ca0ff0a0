"""The 13-layer binarized network of Wu, Wu, Zhao (2016), their Table 1.

Wu, Wu, Zhao, *Binarized Neural Networks on the ImageNet Classification
Task*, arXiv:1604.03058. Table 1, layer for layer:

====  =======  ========  ======  ======
seq   type     channels  filter  stride
====  =======  ========  ======  ======
2     conv     128       7x7     2       float weights (first layer)
3     maxpool  128       3x3     2
4-6   conv     384       3x3     1       binary
7     maxpool  384       2x2     2
8-13  conv     512       3x3     1       binary
14    maxpool  512       2x2     2
15    dropout            p=0.2
16    dense    4096                      binary
17    dense    1000                      float weights ("regular weights on
                                         last fully connected layer")
18    scaling  1000
19    softmax                            (left to the loss)
====  =======  ========  ======  ======

What the table leaves open, and what we chose:

* **padding: none ("valid")** at ImageNet size. Table 1 lists none, Caffe's
  default (the authors built on BVLC AlexNet) is 0, and without padding the
  last feature map is 6x6 at 224x224 (224 -> 109 -> 54 -> 48 -> 24 -> 12 -> 6)
  exactly like AlexNet's, so dense-16 is 18432 -> 4096; with "same" padding it
  would be 14x14 and dense-16 would hold 411M weights. Unpadded binary convs
  also run exactly as XNOR-popcount (no pad value to choose). At CIFAR size
  (``input_size < 50``) valid 3x3 convs would shrink 32x32 to nothing, so the
  3x3 convs pad by 1 with zeros and the first conv is 3x3 stride 1 (the
  3x3/2 max-pool stays, padded by 1, keeping dense-16 at 8192 -> 4096).
  ``padding=`` overrides ("valid" or "same").
* normalization: BatchNorm after every conv/dense layer (after its max-pool),
  as BinaryNet (Courbariaux et al. 2016), on which the paper builds; each
  binary layer's input is the sign (``ste_sign``) of the previous BN; the
  float dense-17 also sees that sign (a binary activation with float weights).
* scaling: a learned scalar (``Scale``) after dense-17. ``distill=True`` gives
  the paper's distillation variant: no dropout and a *fixed* scale
  (``scale_init``, default 1.0).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from onebit.models._blocks import batch_norm, conv_out
from onebit.models._registry import imagenet_cfg, register_model
from onebit.nn import QuantConv2d, QuantLinear, Scale

__all__ = ["Wu13"]


def _binary_count_224() -> int:
    n = conv_out(conv_out(224, 7, 2), 3, 2)  # 54
    total = 0
    cin = 128
    for _ in range(3):
        total += cin * 384 * 9
        cin, n = 384, n - 2
    n //= 2
    for _ in range(6):
        total += cin * 512 * 9
        cin, n = 512, n - 2
    n //= 2
    return total + 512 * n * n * 4096


default_cfgs = {
    "wu13": imagenet_cfg(
        first_conv="features.0.conv",
        classifier="fc17",
        paper=(
            "Wu, Wu, Zhao, 'Binarized Neural Networks on the ImageNet Classification Task', "
            "arXiv:1604.03058, Table 1"
        ),
        reference={
            "params_binary": _binary_count_224(),
            "source": (
                "Table 1 layer shapes with valid padding at 224x224 (the paper publishes no "
                "parameter count): 3x3 convs 128->384->384->384->512x6, dense 512*6*6 -> 4096"
            ),
        },
    ),
}


class _Unit(nn.Module):
    """conv -> [max-pool] -> BN (BinaryNet's order)."""

    def __init__(self, conv: nn.Conv2d, pool: nn.Module | None, bn: nn.Module) -> None:
        super().__init__()
        self.conv = conv
        self.pool = pool if pool is not None else nn.Identity()
        self.bn = bn

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.pool(self.conv(x)))


class Wu13(nn.Module):
    """Wu et al.'s 13-layer network (see the module docstring for the choices).

    What is binary: the nine 3x3 convolutions and dense-16 (``ste_sign`` on
    inputs and weights, ``weight_clip``). What stays float: conv-1 (7x7/2,
    128), every BN, dense-17's weights (its input is binary), the scale.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        input_size: int = 224,
        padding: str | None = None,
        dropout: float = 0.2,
        distill: bool = False,
        scale_init: float = 1.0,
    ) -> None:
        super().__init__()
        small = input_size < 50
        padding = padding or ("same" if small else "valid")
        if padding not in ("same", "valid"):
            raise ValueError(f"wu13: padding must be 'same' or 'valid', got {padding!r}")
        p = 1 if padding == "same" else 0
        q = {
            "input_quantizer": "ste_sign",
            "weight_quantizer": "ste_sign",
            "weight_constraint": "weight_clip",
        }

        k1, s1, p1 = (3, 1, 1) if small else (7, 2, 3 * p)
        units = [
            _Unit(
                nn.Conv2d(in_chans, 128, k1, stride=s1, padding=p1, bias=False),
                nn.MaxPool2d(3, stride=2, padding=p),
                batch_norm(128, eps=1e-4),
            )
        ]
        n = conv_out(conv_out(input_size, k1, s1, p1), 3, 2, p)
        cin = 128
        for cout, count in ((384, 3), (512, 6)):
            for i in range(count):
                last = i == count - 1
                conv = QuantConv2d(cin, cout, 3, padding=p, bias=False, **q)
                units.append(_Unit(conv, nn.MaxPool2d(2, 2) if last else None, batch_norm(cout, eps=1e-4)))
                cin = cout
                n = conv_out(n, 3, 1, p)
            n = conv_out(n, 2, 2)
        if n < 1:
            raise ValueError(f"wu13: input_size {input_size} is too small for padding={padding!r}")
        self.features = nn.Sequential(*units)
        self.dropout = nn.Identity() if distill or not dropout else nn.Dropout(dropout)
        self.fc16 = QuantLinear(512 * n * n, 4096, bias=False, **q)
        self.bn16 = batch_norm(4096, dim=1, eps=1e-4)
        self.fc17 = QuantLinear(4096, num_classes, bias=True, input_quantizer="ste_sign")
        self.scale = Scale(scale_init, learnable=not distill)

    def forward(self, x: Tensor) -> Tensor:
        x = self.dropout(torch.flatten(self.features(x), 1))
        return self.scale(self.fc17(self.bn16(self.fc16(x))))


@register_model
def wu13(num_classes: int = 1000, in_chans: int = 3, input_size: int = 224, **kw) -> nn.Module:
    """Wu et al.'s 13-layer network, Table 1 (``padding``, ``dropout``, ``distill``, ``scale_init``)."""
    return Wu13(num_classes=num_classes, in_chans=in_chans, input_size=input_size, **kw)
