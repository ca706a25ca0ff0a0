"""Tang et al.'s multiple binarizations (``residual_sign``): the quantizer alone and the layers it feeds.

``residual_sign(bits=k)`` splits its input into k sign planes with scales computed from the data
at run time. Which engine ops run it depends on where the scales are averaged
(:func:`onebit.quantizers.residual_sign`'s ``scale``):

* ``"sample"`` (one scale per image): a binary-weight conv/dense fed by it becomes one
  ``bconv2d``/``bdense`` with ``residual_bits = k``: every plane through the XNOR-popcount
  kernel, ``multiplier * sum_i a_i dot_i + bias`` in the epilogue;
* ``"channel"`` (per input channel, over the batch): the scales differ along the channels a
  popcount runs over, so they cannot leave it; ``residual_sign`` (the floats
  ``sum_i a_i sign(r_i)``) then ``conv2d``/``dense`` with ±1 weights (still 1 bit each in the file).

A standalone ``ResidualSign`` module becomes a ``residual_sign`` op under either rule. A layer's
input quantizer is read through the export protocol, ``residual_planes() -> (bits, scale)``
(:meth:`onebit.quantizers.ResidualSign.residual_planes`), so a quantizer of one's own with the
same forward exports the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from onebit import quantizers as Q
from onebit.export.graph import ExportError, Value
from onebit.export.lowerings.common import to_numpy, weight_sign_and_scale
from onebit.export.registry import LoweringContext, register_module_lowering
from onebit.nn.layers import QuantMixin

__all__ = ["MAX_RESIDUAL_BITS", "is_residual_layer", "lower_residual_layer", "lower_residual_sign"]

#: The engine's limit on residual sign planes (residual_bits of bconv2d/bdense, bits of residual_sign).
MAX_RESIDUAL_BITS = 8


def _check_bits(name: str, bits: int) -> None:
    if bits > MAX_RESIDUAL_BITS:
        raise ExportError(
            f"{name}: residual_sign with {bits} bits; the engine runs at most {MAX_RESIDUAL_BITS}"
        )


@register_module_lowering(Q.ResidualSign)
def lower_residual_sign(
    ctx: LoweringContext, name: str, q: Q.ResidualSign, args: list[Any], out_shape: tuple[int, ...]
) -> Value:
    """A standalone ``ResidualSign`` -> the ``residual_sign`` op (floats out)."""
    bits, scale = q.residual_planes()
    return _residual_sign(ctx, name, bits, scale, args[0])


def _residual_sign(ctx: LoweringContext, name: str, bits: int, scale: str, x: Value) -> Value:
    _check_bits(name, bits)
    if x.kind == "binary":
        return x  # +-1 values: a_1 = 1 leaves no residual, every later plane has a_i = 0
    attrs = {"bits": int(bits), "scale": scale}
    return ctx.graph.add("residual_sign", [x], "float", x.shape, name, attrs, torch_order=x.torch_order)


def is_residual_layer(m: nn.Module) -> bool:
    """A binary-weight conv/dense whose input quantizer declares residual planes (``residual_planes()``)."""
    q = getattr(m, "input_quantizer", None)
    return (
        isinstance(m, QuantMixin)
        and callable(getattr(q, "residual_planes", None))
        and q.residual_planes() is not None
        and m.weight_precision == 1
    )


def lower_residual_layer(
    ctx: LoweringContext, name: str, m: nn.Module, x: Value, out_shape: tuple[int, ...], attrs: dict[str, Any]
) -> Value:
    """A binary-weight conv/dense fed by ``residual_sign``; ``attrs``: the conv's window ({} for dense)."""
    bits, scale = m.input_quantizer.residual_planes()
    dense = isinstance(m, nn.Linear)
    if x.kind != "float":
        raise ExportError(f"{name}: residual_sign input quantizer on an already binary input")
    _check_bits(name, bits)
    if m.scaling == "xnor":
        raise ExportError(f"{name}: XNOR-Net's K with residual_sign inputs is not supported by the engine")
    if not dense:
        if m.pad_value not in (None, 0.0) and any(attrs["padding"]):
            raise ExportError(
                f"{name}: residual_sign input with pad_value={m.pad_value}: the planes' sum is padded with "
                "zeros only (a +-1 border is not a sum of +-1-padded planes); use pad_value=None or 0"
            )
    out_ch = int(m.weight.shape[0])
    bias = to_numpy(m.bias) if m.bias is not None else np.zeros(out_ch, np.float32)
    signs, mult = weight_sign_and_scale(m, name)  # the layer's scaling included
    if dense:
        weight = signs[:, x.torch_order] if x.torch_order is not None else signs
    else:
        weight = signs.transpose(0, 2, 3, 1)
    params = {"weight": weight, "multiplier": mult, "bias": bias}
    g = ctx.graph
    if scale == "sample":
        attrs = dict(attrs, output="float", residual_bits=int(bits))
        if dense:
            attrs["in_channels"] = int(m.in_features)
        else:
            attrs.update(in_channels=int(m.in_channels), pad_value=0.0)  # groups kept: any that divide
        return g.add("bdense" if dense else "bconv2d", [x], "float", out_shape, name, attrs, params)
    xq = _residual_sign(ctx, f"{name}.input_quantizer", bits, scale, x)
    attrs = dict(attrs, binary_weight=True)
    return g.add("dense" if dense else "conv2d", [xq], "float", out_shape, name, attrs, params)
