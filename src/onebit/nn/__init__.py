"""Quantized layers and the one-call converter.

* :class:`QuantConv2d`, :class:`QuantLinear`: drop-in ``nn.Conv2d``/``nn.Linear``
  with input/weight quantizers, weight constraints, scaling and binary padding.
* :class:`Scale`: the scalar scale layer before the softmax (Tang, Wu).
* :func:`binarize_` with :class:`BinarizeConfig`: convert a float model in place
  (ReLUs in front of signs replaced; :func:`nonnegative_sign_inputs` finds signs
  that see only non-negative values, i.e. constant ones).
* :func:`float_twin`: the same architecture with float layers, the baseline to
  time a binary model against.
* :func:`apply_constraints`: run the layers' weight constraints.
"""

from onebit.nn.binarize import (
    ACTIVATIONS,
    BinarizeConfig,
    NonNegativeSignInput,
    VersionMismatchError,
    binarize_,
    config_from_dict,
    float_twin,
    nonnegative_sign_inputs,
)
from onebit.nn.constraints import WeightClip, apply_constraints, get_constraint
from onebit.nn.layers import SCALINGS, QuantConv2d, QuantLinear, QuantMixin, Scale

__all__ = [
    "ACTIVATIONS",
    "SCALINGS",
    "BinarizeConfig",
    "NonNegativeSignInput",
    "QuantConv2d",
    "QuantLinear",
    "QuantMixin",
    "Scale",
    "VersionMismatchError",
    "WeightClip",
    "apply_constraints",
    "binarize_",
    "config_from_dict",
    "float_twin",
    "get_constraint",
    "nonnegative_sign_inputs",
]
