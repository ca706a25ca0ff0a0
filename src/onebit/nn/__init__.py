"""Quantized layers and the one-call converter.

* :class:`QuantConv2d`, :class:`QuantLinear`: drop-in ``nn.Conv2d``/``nn.Linear``
  with input/weight quantizers, weight constraints, scaling and binary padding.
* :class:`Scale`: the scalar scale layer before the softmax (Tang, Wu).
* :func:`binarize_` with :class:`BinarizeConfig`: convert a float model in place.
* :func:`apply_constraints`: run the layers' weight constraints.
"""

from onebit.nn.binarize import BinarizeConfig, VersionMismatchError, binarize_, config_from_dict
from onebit.nn.constraints import WeightClip, apply_constraints, get_constraint
from onebit.nn.layers import SCALINGS, QuantConv2d, QuantLinear, QuantMixin, Scale

__all__ = [
    "SCALINGS",
    "BinarizeConfig",
    "QuantConv2d",
    "QuantLinear",
    "QuantMixin",
    "Scale",
    "VersionMismatchError",
    "WeightClip",
    "apply_constraints",
    "binarize_",
    "config_from_dict",
    "get_constraint",
]
