"""Convolutions and dense layers: ``nn.Conv2d``/``nn.Linear`` and onebit's quantized forms.

A layer whose input and weight quantizers are both 1-bit becomes ``bconv2d``/``bdense``
(XNOR-popcount), preceded by the ``sign`` of its input quantizer; otherwise ``conv2d``/
``dense`` in float (binary-weight layers keep their ±1 weights, stored packed). Scaling
factors become the op's per-channel multiplier; XNOR-Net's K an ``xnor_k``/``mean_abs`` op.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from onebit.export.graph import ExportError, Value
from onebit.export.lowerings.common import lower_sign, pair, to_numpy, weight_sign_and_scale
from onebit.export.lowerings.residual import is_residual_layer, lower_residual_layer
from onebit.export.registry import LoweringContext, register_module_lowering
from onebit.nn.layers import QuantMixin, explicit_padding


def _xnor_k_scale(
    ctx: LoweringContext,
    name: str,
    y: Value,
    x_real: Value,
    k_op: str,
    k_attrs: dict[str, Any],
    bias: np.ndarray | None,
) -> Value:
    """Multiply a binary layer's output by XNOR-Net's K (computed from its real input), then add its bias."""
    if x_real.kind != "float":
        raise ExportError(f"{name}: XNOR-Net's K needs the real-valued input, which is already binary")
    g = ctx.graph
    k = g.add(k_op, [x_real], "float", (*y.shape[:-1], 1), f"{name}.K", k_attrs)
    y = g.add("mul_map", [y, k], "float", y.shape, f"{name}.K")
    if bias is not None:
        y = g.add(
            "affine",
            [y],
            "float",
            y.shape,
            f"{name}.bias",
            params={"scale": np.ones_like(bias), "shift": bias},
        )
    return y


@register_module_lowering(nn.Conv2d)
def lower_conv2d(
    ctx: LoweringContext, name: str, m: nn.Conv2d, args: list[Any], out_shape: tuple[int, ...]
) -> Value:
    """``nn.Conv2d`` / ``QuantConv2d`` -> ``bconv2d`` (binary) or ``conv2d`` (float, BWN); any ``groups``."""
    x = args[0]
    g = ctx.graph
    if len(x.shape) != 4:
        raise ExportError(f"{name}: conv input must be 4-D, got engine shape {x.shape}")
    if m.padding_mode != "zeros":
        raise ExportError(f"{name}: padding_mode={m.padding_mode!r} is not supported (only 'zeros')")
    left, right, top, bottom = explicit_padding(m.padding, m.kernel_size, m.dilation)
    attrs = {
        "kernel": list(m.kernel_size),
        "stride": pair(m.stride),
        "padding": [left, right, top, bottom],
        "dilation": pair(m.dilation),
        "groups": int(m.groups),
    }
    if is_residual_layer(m):  # multi-bit residual sign input (Tang): lowerings/residual.py
        return lower_residual_layer(ctx, name, m, x, out_shape, attrs)
    bias = to_numpy(m.bias) if m.bias is not None else np.zeros(m.out_channels, np.float32)
    binary = isinstance(m, QuantMixin) and m.is_binary
    x_real = x
    if binary:
        x = lower_sign(ctx, f"{name}.input_quantizer", m.input_quantizer, x)
        signs, mult = weight_sign_and_scale(m, name)
        pad_value = 0.0 if m.pad_value is None else m.pad_value
        attrs.update(in_channels=int(m.in_channels), pad_value=pad_value, output="float")
        k_needed = m.scaling == "xnor"
        y = g.add(
            "bconv2d",
            [x],
            "float",
            out_shape,
            name,
            attrs,
            {
                "weight": signs.transpose(0, 2, 3, 1),
                "multiplier": mult,
                "bias": np.zeros_like(bias) if k_needed else bias,
            },
        )
        if k_needed:
            k_attrs = {key: attrs[key] for key in ("kernel", "stride", "padding", "dilation")}
            y = _xnor_k_scale(ctx, name, y, x_real, "xnor_k", k_attrs, bias if m.bias is not None else None)
        return y
    # float (or binary-weight-only) convolution
    x = _binary_input_as_float(ctx, name, m, x)
    weight, mult = _float_layer_weight(m, name, attrs)
    if x.kind == "binary":
        raise ExportError(f"{name}: a float convolution cannot consume binary activations")
    return g.add(
        "conv2d",
        [x],
        "float",
        out_shape,
        name,
        attrs,
        {"weight": weight.transpose(0, 2, 3, 1), "multiplier": mult, "bias": bias},
    )


def _float_layer_weight(m: nn.Module, name: str, attrs: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Weight and per-output-channel multiplier of a layer computed in float.

    Binary-weight layers (XNOR-Net's BWN) keep their weights as ±1 with the scale in the
    multiplier and ``attrs["binary_weight"]``, so the file stores them at 1 bit each.
    """
    out_ch = m.weight.shape[0]
    if isinstance(m, QuantMixin) and m.weight_precision == 1:
        signs, mult = weight_sign_and_scale(m, name)
        attrs["binary_weight"] = True
        return signs, mult
    w = m.quantized_weight() if isinstance(m, QuantMixin) else m.weight
    mult = np.ones(out_ch, np.float32)
    if isinstance(m, QuantMixin) and m.scaling == "channel":
        mult = to_numpy(m.scale)
    return to_numpy(w), mult


def _binary_input_as_float(ctx: LoweringContext, name: str, m: nn.Module, x: Value) -> Value:
    """A layer with 1-bit inputs but real weights: binarize, then compute in float on ±1 values."""
    if not isinstance(m, QuantMixin) or m.input_quantizer is None:
        return x
    if m.input_precision != 1:
        raise ExportError(
            f"{name}: {m.input_precision}-bit input quantizer {type(m.input_quantizer).__name__} "
            "cannot be exported (the engine binarizes activations to 1 bit only)"
        )
    b = lower_sign(ctx, f"{name}.input_quantizer", m.input_quantizer, x)
    return ctx.graph.add("unpack", [b], "float", b.shape, f"{name}.unpack", torch_order=b.torch_order)


def _dense_weight(w: np.ndarray, x: Value) -> np.ndarray:
    if x.torch_order is not None:
        return w[:, x.torch_order]
    return w


@register_module_lowering(nn.Linear)
def lower_linear(
    ctx: LoweringContext, name: str, m: nn.Linear, args: list[Any], out_shape: tuple[int, ...]
) -> Value:
    """``nn.Linear`` / ``QuantLinear`` -> ``bdense`` (binary) or ``dense`` (float, BWN)."""
    x = args[0]
    g = ctx.graph
    if len(x.shape) != 2:
        raise ExportError(f"{name}: dense input must be 2-D (N, C), got engine shape {x.shape}")
    if is_residual_layer(m):  # multi-bit residual sign input (Tang): lowerings/residual.py
        return lower_residual_layer(ctx, name, m, x, out_shape, {})
    bias = to_numpy(m.bias) if m.bias is not None else np.zeros(m.out_features, np.float32)
    if isinstance(m, QuantMixin) and m.is_binary:
        x_real = x
        x = lower_sign(ctx, f"{name}.input_quantizer", m.input_quantizer, x)
        signs, mult = weight_sign_and_scale(m, name)
        y = g.add(
            "bdense",
            [x],
            "float",
            out_shape,
            name,
            {"in_channels": int(m.in_features), "output": "float"},
            {
                "weight": _dense_weight(signs, x),
                "multiplier": mult,
                "bias": np.zeros_like(bias) if m.scaling == "xnor" else bias,
            },
        )
        if m.scaling == "xnor":
            y = _xnor_k_scale(ctx, name, y, x_real, "mean_abs", {}, bias)
        return y
    x = _binary_input_as_float(ctx, name, m, x)
    if x.kind == "binary":
        raise ExportError(f"{name}: a float dense layer cannot consume binary activations")
    attrs: dict[str, Any] = {}
    weight, mult = _float_layer_weight(m, name, attrs)
    return g.add(
        "dense",
        [x],
        "float",
        out_shape,
        name,
        attrs,
        {"weight": _dense_weight(weight, x), "multiplier": mult, "bias": bias},
    )
