"""Lowering a PyTorch model to onebit engine ops.

The model is captured with ``torch.fx`` (module-level graph: onebit's quantized
layers, quantizers and the standard ``torch.nn`` layers stay whole, so their
semantics are known exactly), annotated with shapes by running the example
input through it, and mapped node by node to engine ops. Folding passes then
apply what the papers' deployment implies:

1. ``maxpool -> sign`` becomes ``sign -> binary maxpool`` (max and sign commute),
2. BatchNorm and other per-channel affines fold into the producing conv/dense's
   per-channel multiplier and bias,
3. a binary conv whose only consumer is a sign outputs packed bits directly,
   through per-channel integer thresholds on its popcount result.

Engine values are NHWC (``N, H, W, C``) or ``N, C``. A value is ``float`` or
``binary`` (±1, packed along channels at run time; bit set = -1).

Ops (``attrs`` in brackets, ``params`` in braces):

* ``sign`` [threshold given per channel in {threshold}]: binary = +1 where x >= t.
* ``conv2d`` [stride, padding (l, r, t, b), dilation, groups] {weight OHWI, multiplier?, bias?}:
  float conv; ``y = conv(x, W) * multiplier + bias``.
* ``bconv2d`` [in_channels, stride, padding, dilation, pad_value, output]
  {weight (O, kh, kw, C) ±1 float32 in memory / packed in the file, multiplier, bias}
  or {weight, threshold, direction} when ``output == "binary"``:
  ``acc = conv(x, W)`` (integers), float out ``acc * multiplier + bias``;
  binary out ``+1 where direction * (acc - threshold) >= 0`` (direction ±1; a
  constant channel has direction 0 and the sign of its threshold).
* ``dense`` / ``bdense``: as conv2d / bconv2d on ``N, C`` values.
* ``affine`` {scale, shift}: per-channel ``x * scale + shift``.
* ``mul_map``: ``x * k`` with k of shape ``N, H, W, 1`` (XNOR-Net's K).
* ``xnor_k`` [kernel, stride, padding, dilation]: K from the float input.
* ``relu``, ``prelu`` {slope}, ``scale`` [value], ``add``, ``concat``,
  ``maxpool`` / ``avgpool`` [kernel, stride, padding, ceil_mode, count_include_pad],
  ``bmaxpool`` (binary), ``global_avgpool``, ``flatten``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from onebit import quantizers as Q
from onebit.nn.layers import QuantConv2d, QuantMixin, Scale

__all__ = ["ExportError", "Graph", "lower"]


class ExportError(ValueError):
    """The model contains something the engine cannot run; the message names op and module."""


@dataclass
class Value:
    name: str
    kind: str  # "float" | "binary"
    shape: tuple[int, ...]  # engine layout, batch included
    # For a flattened NHWC value: torch_index[engine_index], so dense weights can be permuted.
    torch_order: np.ndarray | None = None


@dataclass
class Graph:
    """Engine ops in execution order plus their parameters (numpy arrays)."""

    nodes: list[dict[str, Any]] = field(default_factory=list)
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    values: dict[str, Value] = field(default_factory=dict)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    _counter: int = 0

    def fresh(self, hint: str) -> str:
        self._counter += 1
        return f"{hint.replace('.', '_')}:{self._counter}"

    def param(self, owner: str, role: str, arr: np.ndarray) -> str:
        name = f"{owner}.{role}"
        i = 1
        while name in self.tensors:
            i += 1
            name = f"{owner}.{role}{i}"
        self.tensors[name] = np.ascontiguousarray(arr)
        return name

    def add(
        self,
        op: str,
        inputs: list[Value],
        out_kind: str,
        out_shape: tuple[int, ...],
        source: str,
        attrs: dict[str, Any] | None = None,
        params: dict[str, np.ndarray] | None = None,
        torch_order: np.ndarray | None = None,
    ) -> Value:
        out = Value(self.fresh(source or op), out_kind, tuple(int(s) for s in out_shape), torch_order)
        node = {
            "op": op,
            "inputs": [v.name for v in inputs],
            "outputs": [out.name],
            "attrs": attrs or {},
            "params": {
                role: self.param(out.name.split(":")[0], role, arr) for role, arr in (params or {}).items()
            },
            "source": source,
        }
        self.nodes.append(node)
        self.values[out.name] = out
        return out

    def consumers(self, value_name: str) -> list[dict[str, Any]]:
        users = [n for n in self.nodes if value_name in n["inputs"]]
        if any(o["name"] == value_name for o in self.outputs):
            users.append({"op": "<output>"})
        return users

    def producer(self, value_name: str) -> dict[str, Any] | None:
        for n in self.nodes:
            if value_name in n["outputs"]:
                return n
        return None

    def drop_param(self, node: dict[str, Any], role: str) -> np.ndarray | None:
        name = node["params"].pop(role, None)
        return self.tensors.pop(name) if name is not None else None


# --------------------------------------------------------------------------- #
# Capture
# --------------------------------------------------------------------------- #

_LEAF_TYPES: tuple[type, ...] = (QuantMixin, Q.Quantizer, Scale)
_MODULE_LOWERINGS: dict[type, Callable[..., Value]] = {}


def register_module_lowering(cls: type) -> Callable[[Callable[..., Value]], Callable[..., Value]]:
    """Teach the exporter a module type: ``fn(ctx, name, module, inputs, out_meta) -> Value``.

    Modules of a registered type stay whole in the captured graph.
    """

    def wrap(fn: Callable[..., Value]) -> Callable[..., Value]:
        _MODULE_LOWERINGS[cls] = fn
        return fn

    return wrap


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, _LEAF_TYPES) or type(m) in _MODULE_LOWERINGS:
            return True
        return super().is_leaf_module(m, qualname)


def capture(model: nn.Module, example_input: torch.Tensor) -> fx.GraphModule:
    """Symbolically trace ``model`` and annotate every node with its output shape."""
    tracer = _Tracer()
    try:
        graph = tracer.trace(model)
    except Exception as e:  # fx raises many types for data-dependent control flow
        raise ExportError(
            f"cannot capture {type(model).__name__} with torch.fx: {type(e).__name__}: {e}. "
            "Data-dependent Python control flow in forward() cannot be exported."
        ) from e
    gm = fx.GraphModule(model, graph)
    with torch.no_grad():
        ShapeProp(gm).propagate(example_input)
    return gm


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float32).cpu().numpy()


def _shape_of(node: fx.Node) -> tuple[int, ...]:
    meta = node.meta.get("tensor_meta")
    if meta is None or not hasattr(meta, "shape"):
        raise ExportError(f"node {node.name} ({node.target}) does not produce a single tensor")
    return tuple(int(s) for s in meta.shape)


def _engine_shape(torch_shape: tuple[int, ...]) -> tuple[int, ...]:
    if len(torch_shape) == 4:
        n, c, h, w = torch_shape
        return (n, h, w, c)
    if len(torch_shape) == 2:
        return torch_shape
    raise ExportError(f"the engine handles 4-D (N, C, H, W) and 2-D (N, C) tensors, got shape {torch_shape}")


def _sign_threshold(q: Any, channels: int, where: str) -> np.ndarray:
    """Per-channel t such that the quantizer's forward is sign(x - t) (sign(0) = +1)."""
    if isinstance(q, (Q.SteSign, Q.ApproxSign, Q.SwishSign)):
        return np.zeros(channels, np.float32)
    if hasattr(q, "sign_threshold"):
        return np.asarray(q.sign_threshold(), np.float32).reshape(channels)
    if type(q).__name__ == "RSign" and hasattr(q, "shift"):
        return -_np(q.shift).reshape(channels)
    raise ExportError(
        f"{where}: input quantizer {type(q).__name__} is not a plain sign; the engine binarizes "
        "activations with sign(x - t) only (ste_sign, approx_sign, swish_sign, RSign)"
    )


def _weight_sign_and_scale(layer: QuantMixin, where: str) -> tuple[np.ndarray, np.ndarray]:
    """±1 weights and the per-output-channel factor the layer multiplies them by."""
    wq = layer.weight_quantizer
    w = layer.weight.detach()
    out_ch = w.shape[0]
    scale = np.ones(out_ch, np.float32)
    if isinstance(wq, Q.MagnitudeAwareSign):
        scale = scale * _np(Q.xnor_weight_scale(w)).reshape(out_ch)
    elif not isinstance(wq, (Q.SteSign, Q.ApproxSign, Q.SwishSign)):
        raise ExportError(f"{where}: weight quantizer {type(wq).__name__} is not a sign quantizer")
    if layer.scaling in ("xnor", "alpha"):
        scale = scale * _np(Q.xnor_weight_scale(w)).reshape(out_ch)
    signs = np.where(_np(w) >= 0, 1.0, -1.0).astype(np.float32)
    return signs, scale


def _pair(v: Any) -> list[int]:
    return [int(v), int(v)] if isinstance(v, int) else [int(v[0]), int(v[1])]


# --------------------------------------------------------------------------- #
# Lowering of modules
# --------------------------------------------------------------------------- #


class _Ctx:
    def __init__(self, graph: Graph) -> None:
        self.g = graph


def _lower_sign(ctx: _Ctx, name: str, q: Any, x: Value) -> Value:
    if x.kind == "binary":
        return x  # sign of ±1 values is the identity
    t = _sign_threshold(q, x.shape[-1], name)
    return ctx.g.add("sign", [x], "binary", x.shape, name, params={"threshold": t}, torch_order=x.torch_order)


def _xnor_k_scale(
    ctx: _Ctx, name: str, y: Value, x_real: Value, k_op: str, k_attrs: dict[str, Any], bias: np.ndarray | None
) -> Value:
    """Multiply a binary layer's output by XNOR-Net's K (computed from its real input), then add its bias."""
    if x_real.kind != "float":
        raise ExportError(f"{name}: XNOR-Net's K needs the real-valued input, which is already binary")
    g = ctx.g
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


def _lower_conv(ctx: _Ctx, name: str, m: nn.Conv2d, x: Value, out_shape: tuple[int, ...]) -> Value:
    g = ctx.g
    if len(x.shape) != 4:
        raise ExportError(f"{name}: conv input must be 4-D, got engine shape {x.shape}")
    if m.padding_mode != "zeros":
        raise ExportError(f"{name}: padding_mode={m.padding_mode!r} is not supported (only 'zeros')")
    if isinstance(m, QuantConv2d):
        left, right, top, bottom = m.explicit_padding()
    else:
        if isinstance(m.padding, str):
            tmp = QuantConv2d(1, 1, m.kernel_size, padding=m.padding, dilation=m.dilation)
            left, right, top, bottom = tmp.explicit_padding()
        else:
            ph, pw = _pair(m.padding)
            left = right = pw
            top = bottom = ph
    attrs = {
        "kernel": list(m.kernel_size),
        "stride": _pair(m.stride),
        "padding": [left, right, top, bottom],
        "dilation": _pair(m.dilation),
        "groups": int(m.groups),
    }
    if _is_residual_layer(m):
        return _lower_residual_layer(ctx, name, m, x, out_shape, attrs)
    bias = _np(m.bias) if m.bias is not None else np.zeros(m.out_channels, np.float32)
    binary = isinstance(m, QuantMixin) and m.is_binary
    x_real = x
    if binary:
        if m.groups != 1:
            raise ExportError(f"{name}: grouped binary convolutions are not supported by the engine yet")
        x = _lower_sign(ctx, f"{name}.input_quantizer", m.input_quantizer, x)
        signs, mult = _weight_sign_and_scale(m, name)
        if m.scaling == "channel":
            mult = mult * _np(m.scale)
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
        signs, mult = _weight_sign_and_scale(m, name)
        if m.scaling == "channel":
            mult = mult * _np(m.scale)
        attrs["binary_weight"] = True
        return signs, mult
    w = m.quantized_weight() if isinstance(m, QuantMixin) else m.weight
    mult = np.ones(out_ch, np.float32)
    if isinstance(m, QuantMixin) and m.scaling == "channel":
        mult = _np(m.scale)
    return _np(w), mult


def _binary_input_as_float(ctx: _Ctx, name: str, m: nn.Module, x: Value) -> Value:
    """A layer with 1-bit inputs but real weights: binarize, then compute in float on ±1 values."""
    if not isinstance(m, QuantMixin) or m.input_quantizer is None:
        return x
    if m.input_precision != 1:
        raise ExportError(
            f"{name}: {m.input_precision}-bit input quantizer {type(m.input_quantizer).__name__} "
            "cannot be exported (the engine binarizes activations to 1 bit only)"
        )
    b = _lower_sign(ctx, f"{name}.input_quantizer", m.input_quantizer, x)
    return ctx.g.add("unpack", [b], "float", b.shape, f"{name}.unpack", torch_order=b.torch_order)


#: The engine's limit on residual sign planes (its residual_bits and residual_sign's bits).
_MAX_RESIDUAL_BITS = 8


def _lower_residual_sign(ctx: _Ctx, name: str, q: Q.ResidualSign, x: Value) -> Value:
    """A residual_sign quantizer on its own: the engine's residual_sign op (floats out)."""
    if q.bits > _MAX_RESIDUAL_BITS:
        raise ExportError(
            f"{name}: residual_sign with {q.bits} bits; the engine runs at most {_MAX_RESIDUAL_BITS}"
        )
    if x.kind == "binary":
        return x  # +-1 values: a_1 = 1 leaves no residual, every later plane has a_i = 0
    attrs = {"bits": int(q.bits), "scale": q.scale}
    return ctx.g.add("residual_sign", [x], "float", x.shape, name, attrs, torch_order=x.torch_order)


def _is_residual_layer(m: nn.Module) -> bool:
    return (
        isinstance(m, QuantMixin)
        and isinstance(m.input_quantizer, Q.ResidualSign)
        and m.weight_precision == 1
    )


def _lower_residual_layer(
    ctx: _Ctx, name: str, m: nn.Module, x: Value, out_shape: tuple[int, ...], attrs: dict[str, Any]
) -> Value:
    """A binary-weight conv/dense fed by residual_sign(bits=k): Tang's multiple binarizations.

    ``scale="sample"``: one bconv2d/bdense with ``residual_bits = k`` (every plane through the
    XNOR-popcount kernel, scaled sum in the epilogue). ``scale="channel"``: the per-input-channel
    scales cannot leave the popcount, so residual_sign (floats) then conv2d/dense with ±1 weights.
    """
    q = m.input_quantizer
    dense = isinstance(m, nn.Linear)
    if x.kind != "float":
        raise ExportError(f"{name}: residual_sign input quantizer on an already binary input")
    if q.bits > _MAX_RESIDUAL_BITS:
        raise ExportError(
            f"{name}: residual_sign with {q.bits} bits; the engine runs at most {_MAX_RESIDUAL_BITS}"
        )
    if m.scaling == "xnor":
        raise ExportError(f"{name}: XNOR-Net's K with residual_sign inputs is not supported by the engine")
    if not dense:
        if m.groups != 1:
            raise ExportError(f"{name}: grouped binary convolutions are not supported by the engine yet")
        if m.pad_value not in (None, 0.0) and any(attrs["padding"]):
            raise ExportError(
                f"{name}: residual_sign input with pad_value={m.pad_value}: the planes' sum is padded with "
                "zeros only (a +-1 border is not a sum of +-1-padded planes); use pad_value=None or 0"
            )
    out_ch = int(m.weight.shape[0])
    bias = _np(m.bias) if m.bias is not None else np.zeros(out_ch, np.float32)
    signs, mult = _weight_sign_and_scale(m, name)
    if m.scaling == "channel":
        mult = mult * _np(m.scale)
    weight = _dense_weight(signs, x) if dense else signs.transpose(0, 2, 3, 1)
    params = {"weight": weight, "multiplier": mult, "bias": bias}
    g = ctx.g
    if q.scale == "sample":
        attrs = dict(attrs, output="float", residual_bits=int(q.bits))
        if dense:
            attrs["in_channels"] = int(m.in_features)
        else:
            attrs.update(in_channels=int(m.in_channels), pad_value=0.0)
            attrs.pop("groups", None)
        return g.add("bdense" if dense else "bconv2d", [x], "float", out_shape, name, attrs, params)
    xq = _lower_residual_sign(ctx, f"{name}.input_quantizer", q, x)
    attrs = dict(attrs, binary_weight=True)
    return g.add("dense" if dense else "conv2d", [xq], "float", out_shape, name, attrs, params)


def _dense_weight(w: np.ndarray, x: Value) -> np.ndarray:
    if x.torch_order is not None:
        return w[:, x.torch_order]
    return w


def _lower_linear(ctx: _Ctx, name: str, m: nn.Linear, x: Value, out_shape: tuple[int, ...]) -> Value:
    g = ctx.g
    if len(x.shape) != 2:
        raise ExportError(f"{name}: dense input must be 2-D (N, C), got engine shape {x.shape}")
    if _is_residual_layer(m):
        return _lower_residual_layer(ctx, name, m, x, out_shape, {})
    bias = _np(m.bias) if m.bias is not None else np.zeros(m.out_features, np.float32)
    if isinstance(m, QuantMixin) and m.is_binary:
        x_real = x
        x = _lower_sign(ctx, f"{name}.input_quantizer", m.input_quantizer, x)
        signs, mult = _weight_sign_and_scale(m, name)
        if m.scaling == "channel":
            mult = mult * _np(m.scale)
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


def _bn_affine(m: nn.modules.batchnorm._BatchNorm) -> tuple[np.ndarray, np.ndarray]:
    if not m.track_running_stats or m.running_mean is None:
        raise ExportError("BatchNorm without running statistics cannot be exported (it normalizes by batch)")
    mean = m.running_mean.detach().double()
    var = m.running_var.detach().double()
    gamma = m.weight.detach().double() if m.weight is not None else torch.ones_like(mean)
    beta = m.bias.detach().double() if m.bias is not None else torch.zeros_like(mean)
    scale = gamma / torch.sqrt(var + m.eps)
    shift = beta - mean * scale
    return scale.numpy().astype(np.float32), shift.numpy().astype(np.float32)


def _per_feature(arr: np.ndarray, x: Value) -> np.ndarray:
    """Per-channel params of a 1-d op on a flattened value, in engine order."""
    if x.torch_order is not None:
        return arr[x.torch_order]
    return arr


def _pool_attrs(m: Any, name: str) -> dict[str, Any]:
    k, s, p = (
        _pair(m.kernel_size),
        _pair(m.stride if m.stride is not None else m.kernel_size),
        _pair(m.padding),
    )
    attrs = {"kernel": k, "stride": s, "padding": [p[1], p[1], p[0], p[0]], "ceil_mode": bool(m.ceil_mode)}
    if isinstance(m, nn.MaxPool2d):
        if _pair(m.dilation) != [1, 1]:
            raise ExportError(f"{name}: dilated max-pooling is not supported")
        if m.return_indices:
            raise ExportError(f"{name}: max-pooling with return_indices is not supported")
    else:
        attrs["count_include_pad"] = bool(m.count_include_pad)
        if getattr(m, "divisor_override", None):
            raise ExportError(f"{name}: avg-pool divisor_override is not supported")
    return attrs


def _lower_module(ctx: _Ctx, name: str, m: nn.Module, args: list[Any], node: fx.Node) -> Value | None:
    g = ctx.g
    x = args[0] if args else None
    if not isinstance(x, Value):
        raise ExportError(f"{name} ({type(m).__name__}): expected a tensor input")
    shape = _engine_shape(_shape_of(node))
    fn = _MODULE_LOWERINGS.get(type(m))
    if fn is not None:
        return fn(ctx, name, m, args, shape)
    if isinstance(m, nn.Conv2d):
        return _lower_conv(ctx, name, m, x, shape)
    if isinstance(m, nn.Linear):
        return _lower_linear(ctx, name, m, x, shape)
    if isinstance(m, Q.ResidualSign):
        return _lower_residual_sign(ctx, name, m, x)
    if isinstance(m, Q.Quantizer):
        if m.precision != 1:
            raise ExportError(f"{name}: standalone {type(m).__name__} ({m.precision}-bit) cannot be exported")
        return _lower_sign(ctx, name, m, x)
    if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
        scale, shift = _bn_affine(m)
        return g.add(
            "affine",
            [x],
            "float",
            shape,
            name,
            params={"scale": _per_feature(scale, x), "shift": _per_feature(shift, x)},
            torch_order=x.torch_order,
        )
    if isinstance(m, nn.ReLU):
        return g.add("relu", [x], "float", shape, name, torch_order=x.torch_order)
    if isinstance(m, nn.PReLU):
        slope = _np(m.weight).reshape(-1)
        if slope.size == 1:
            slope = np.full(shape[-1], slope[0], np.float32)
        return g.add(
            "prelu",
            [x],
            "float",
            shape,
            name,
            params={"slope": _per_feature(slope, x)},
            torch_order=x.torch_order,
        )
    if isinstance(m, nn.Hardtanh):
        return g.add(
            "clip",
            [x],
            "float",
            shape,
            name,
            {"min": float(m.min_val), "max": float(m.max_val)},
            torch_order=x.torch_order,
        )
    if isinstance(m, (nn.Dropout, nn.Identity, nn.Dropout2d)):
        return x
    if isinstance(m, Scale):
        return g.add(
            "scale", [x], "float", shape, name, {"value": float(m.scale.detach())}, torch_order=x.torch_order
        )
    if isinstance(m, nn.MaxPool2d):
        return g.add("maxpool", [x], x.kind, shape, name, _pool_attrs(m, name))
    if isinstance(m, nn.AvgPool2d):
        return g.add("avgpool", [x], "float", shape, name, _pool_attrs(m, name))
    if isinstance(m, nn.AdaptiveAvgPool2d):
        if tuple(shape[1:3]) != (1, 1):
            raise ExportError(f"{name}: only global average pooling (output 1x1) is supported")
        return g.add("global_avgpool", [x], "float", shape, name)
    if isinstance(m, nn.Flatten):
        return _flatten(ctx, name, x, shape)
    if isinstance(m, nn.Softmax):
        return g.add("softmax", [x], "float", shape, name)
    raise ExportError(f"cannot export module {name!r} of type {type(m).__name__}: no engine op for it")


def _flatten(ctx: _Ctx, name: str, x: Value, shape: tuple[int, ...]) -> Value:
    if len(x.shape) == 2:
        return x
    n, h, w, c = x.shape
    if len(shape) != 2 or shape[1] != h * w * c:
        raise ExportError(f"{name}: only flattening (N, C, H, W) to (N, C*H*W) is supported")
    # engine element (i, j, k) of NHWC sits at torch index k*H*W + i*W + j
    idx = np.arange(h * w * c).reshape(h, w, c)
    torch_order = (idx % c) * (h * w) + (idx // c)
    order = None if h * w == 1 else torch_order.reshape(-1)
    return ctx.g.add("flatten", [x], x.kind, shape, name, torch_order=order)


def _lower_function(ctx: _Ctx, node: fx.Node, args: list[Any], kwargs: dict[str, Any]) -> Any:
    g = ctx.g
    t = node.target
    name = node.name
    if t in (operator.getitem,) and not isinstance(args[0], Value):
        return args[0][args[1]]
    if t in (getattr,):
        return getattr(args[0], args[1])
    shape = (
        _engine_shape(_shape_of(node))
        if "tensor_meta" in node.meta and hasattr(node.meta["tensor_meta"], "shape")
        else None
    )
    if t in (operator.add, torch.add) and all(isinstance(a, Value) for a in args[:2]):
        a, b = args[0], args[1]
        if a.shape != b.shape:
            raise ExportError(
                f"{name}: add of shapes {a.shape} and {b.shape} (no broadcasting in the engine)"
            )
        return g.add("add", [a, b], "float", shape, name)
    if t in (operator.add, operator.sub, operator.mul, operator.truediv, torch.add, torch.mul, torch.sub):
        a, b = args[0], args[1]
        if isinstance(a, Value) and not isinstance(b, Value):
            const = b
            x = a
        elif isinstance(b, Value) and t in (operator.add, operator.mul, torch.add, torch.mul):
            const, x = a, b
        else:
            raise ExportError(f"{name}: {getattr(t, '__name__', t)} of two computed tensors is not supported")
        c = (
            _np(const).reshape(-1)
            if isinstance(const, torch.Tensor)
            else np.array([float(const)], np.float32)
        )
        ch = x.shape[-1]
        if c.size == 1:
            c = np.full(ch, c[0], np.float32)
        if c.size != ch:
            raise ExportError(f"{name}: constant of {c.size} values does not broadcast per channel over {ch}")
        c = _per_feature(c, x)
        one, zero = np.ones(ch, np.float32), np.zeros(ch, np.float32)
        if t in (operator.add, torch.add):
            sc, sh = one, c
        elif t in (operator.sub, torch.sub):
            sc, sh = one, -c
        elif t in (operator.mul, torch.mul):
            sc, sh = c, zero
        else:
            sc, sh = 1.0 / c, zero
        return g.add(
            "affine", [x], "float", shape, name, params={"scale": sc, "shift": sh}, torch_order=x.torch_order
        )
    if t in (torch.cat, torch.concat):
        tensors = args[0]
        dim = kwargs.get("dim", args[1] if len(args) > 1 else 0)
        if dim not in (1, -3) or not all(isinstance(v, Value) and len(v.shape) == 4 for v in tensors):
            raise ExportError(f"{name}: only channel concatenation (dim=1) of 4-D tensors is supported")
        kinds = {v.kind for v in tensors}
        return g.add("concat", list(tensors), kinds.pop() if len(kinds) == 1 else "float", shape, name)
    if t in (torch.flatten,):
        start = kwargs.get("start_dim", args[1] if len(args) > 1 else 0)
        if start != 1:
            raise ExportError(f"{name}: only torch.flatten(x, 1) is supported")
        return _flatten(ctx, name, args[0], shape)
    if t in (F.relu, torch.relu):
        return g.add("relu", [args[0]], "float", shape, name, torch_order=args[0].torch_order)
    if t in (F.avg_pool2d, F.max_pool2d, F.adaptive_avg_pool2d):
        raise ExportError(f"{name}: use the nn.Module form of {t.__name__} for export")
    raise ExportError(f"cannot export function {getattr(t, '__name__', t)!r} (node {name})")


def _lower_method(ctx: _Ctx, node: fx.Node, args: list[Any], kwargs: dict[str, Any]) -> Any:
    self_ = args[0]
    m = node.target
    if m == "size":
        return _torch_shape_of_value(node.args[0], args[1] if len(args) > 1 else None)
    if not isinstance(self_, Value):
        if m in ("view", "reshape") or m == "__getitem__":
            raise ExportError(f"cannot export method {m!r} on a parameter")
        return getattr(self_, m)(*args[1:], **kwargs)
    shape = _engine_shape(_shape_of(node))
    if m in ("view", "reshape", "flatten"):
        return _flatten(ctx, node.name, self_, shape)
    if m in ("relu", "relu_"):
        return ctx.g.add("relu", [self_], "float", shape, node.name, torch_order=self_.torch_order)
    if m in ("contiguous",):
        return self_
    if m == "repeat":
        reps = [int(r) for r in args[1:]] if len(args) > 2 else list(args[1])
        if len(self_.shape) != 4 or reps[0] != 1 or reps[2:] != [1, 1]:
            raise ExportError(f"{node.name}: only x.repeat(1, r, 1, 1) (channel repetition) is supported")
        return ctx.g.add("concat", [self_] * reps[1], self_.kind, shape, node.name)
    raise ExportError(f"cannot export tensor method {m!r} (node {node.name})")


def _torch_shape_of_value(fx_node: Any, dim: int | None) -> Any:
    shape = tuple(int(s) for s in fx_node.meta["tensor_meta"].shape)
    return shape if dim is None else shape[dim]


# --------------------------------------------------------------------------- #
# Folding passes
# --------------------------------------------------------------------------- #


def _sole_consumer(g: Graph, value: str) -> dict[str, Any] | None:
    users = g.consumers(value)
    return users[0] if len(users) == 1 and users[0]["op"] != "<output>" else None


def _rename_input(g: Graph, old: str, new: str) -> None:
    for n in g.nodes:
        n["inputs"] = [new if i == old else i for i in n["inputs"]]
    for o in g.outputs:
        if o["name"] == old:
            o["name"] = new


def _remove(g: Graph, node: dict[str, Any]) -> None:
    for role in list(node["params"]):
        g.drop_param(node, role)
    g.nodes.remove(node)


def fold_maxpool_sign(g: Graph) -> None:
    """maxpool(float) -> sign  ==>  sign -> bmaxpool (sign(max x - t) = max sign(x - t))."""
    for node in list(g.nodes):
        if node["op"] != "maxpool" or g.values[node["inputs"][0]].kind != "float":
            continue
        sign = _sole_consumer(g, node["outputs"][0])
        if sign is None or sign["op"] != "sign":
            continue
        x = g.values[node["inputs"][0]]
        pooled_float = node["outputs"][0]
        sign_out = sign["outputs"][0]
        new_sign_out = g.fresh(sign["source"])
        g.values[new_sign_out] = Value(new_sign_out, "binary", x.shape)
        sign["inputs"] = [x.name]
        sign["outputs"] = [new_sign_out]
        node["op"] = "bmaxpool"
        node["inputs"] = [new_sign_out]
        node["outputs"] = [sign_out]
        del g.values[pooled_float]
        g.nodes.remove(sign)
        g.nodes.insert(g.nodes.index(node), sign)


def fold_flatten_sign(g: Graph) -> None:
    """flatten -> sign  ==>  sign -> flatten (when the threshold is per channel, not per position)."""
    for node in list(g.nodes):
        if node["op"] != "flatten" or g.values[node["inputs"][0]].kind != "float":
            continue
        x = g.values[node["inputs"][0]]
        sign = _sole_consumer(g, node["outputs"][0])
        if sign is None or sign["op"] != "sign" or len(x.shape) != 4:
            continue
        _, h, w, c = x.shape
        t = g.tensors[sign["params"]["threshold"]].reshape(h, w, c)
        if not np.all(t == t[:1, :1, :]):
            continue
        g.tensors[sign["params"]["threshold"]] = np.ascontiguousarray(t[0, 0])
        flat_out = node["outputs"][0]
        sign_out = sign["outputs"][0]
        new_sign_out = g.fresh(sign["source"])
        g.values[new_sign_out] = Value(new_sign_out, "binary", x.shape)
        sign["inputs"], sign["outputs"] = [x.name], [new_sign_out]
        node["inputs"], node["outputs"] = [new_sign_out], [sign_out]
        g.values[sign_out].torch_order = g.values.pop(flat_out).torch_order
        g.nodes.remove(sign)
        g.nodes.insert(g.nodes.index(node), sign)


def _f32_at_least(u: np.ndarray) -> np.ndarray:
    """Smallest float32 >= u (elementwise), so ``x >= result`` equals ``x >= u`` for float32 x."""
    r = u.astype(np.float32)
    return np.where(r.astype(np.float64) < u, np.nextafter(r, np.float32(np.inf)), r).astype(np.float32)


def _f32_at_most(u: np.ndarray) -> np.ndarray:
    """Largest float32 <= u (elementwise)."""
    r = u.astype(np.float32)
    return np.where(r.astype(np.float64) > u, np.nextafter(r, np.float32(-np.inf)), r).astype(np.float32)


def fold_affine_sign(g: Graph) -> None:
    """affine(s, c) -> sign(t)  ==>  sign with per-channel threshold and direction on the affine's input.

    ``s*x + c >= t``  <=>  ``x >= (t - c)/s`` where s > 0, ``x <= (t - c)/s`` where s < 0
    (``flip``), constant where s = 0. Thresholds are rounded to float32 so that the
    comparison on float32 inputs is the real-arithmetic one. Saves a pass over the
    tensor before every binary layer fed by a BatchNorm that could not fold upstream
    (DenseNet's BN after a concat, BN after a residual add).
    """
    for node in list(g.nodes):
        if node["op"] != "affine" or g.values[node["inputs"][0]].kind != "float":
            continue
        sign = _sole_consumer(g, node["outputs"][0])
        if sign is None or sign["op"] != "sign" or "flip" in sign["params"]:
            continue
        sc = g.tensors[node["params"]["scale"]].astype(np.float64)
        sh = g.tensors[node["params"]["shift"]].astype(np.float64)
        t = g.tensors[sign["params"]["threshold"]].astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            u = (t - sh) / sc
        thr = np.where(sc > 0, _f32_at_least(np.nan_to_num(u)), _f32_at_most(np.nan_to_num(u)))
        const_pos = (sc == 0) & (sh - t >= 0)
        thr = np.where(const_pos, -np.inf, np.where(sc == 0, np.inf, thr)).astype(np.float32)
        g.tensors[sign["params"]["threshold"]] = thr
        owner = sign["outputs"][0].split(":")[0]
        sign["params"]["flip"] = g.param(owner, "flip", (sc < 0).astype(np.uint8))
        sign["inputs"] = list(node["inputs"])
        g.values.pop(node["outputs"][0], None)
        _remove(g, node)


def fold_affines(g: Graph) -> None:
    """Fold a per-channel affine into the multiplier and bias of the op that produced its input."""
    changed = True
    while changed:
        changed = False
        for node in list(g.nodes):
            if node["op"] != "affine":
                continue
            prod = g.producer(node["inputs"][0])
            if prod is None or _sole_consumer(g, prod["outputs"][0]) is not node:
                continue
            scale = g.tensors[node["params"]["scale"]].astype(np.float64)
            shift = g.tensors[node["params"]["shift"]].astype(np.float64)
            if (
                prod["op"] in ("conv2d", "dense", "bconv2d", "bdense")
                and prod["attrs"].get("output", "float") == "float"
            ):
                mult = g.tensors[prod["params"]["multiplier"]].astype(np.float64)
                bias = g.tensors[prod["params"]["bias"]].astype(np.float64)
                g.tensors[prod["params"]["multiplier"]] = (mult * scale).astype(np.float32)
                g.tensors[prod["params"]["bias"]] = (bias * scale + shift).astype(np.float32)
            elif prod["op"] == "affine":
                s0 = g.tensors[prod["params"]["scale"]].astype(np.float64)
                b0 = g.tensors[prod["params"]["shift"]].astype(np.float64)
                g.tensors[prod["params"]["scale"]] = (s0 * scale).astype(np.float32)
                g.tensors[prod["params"]["shift"]] = (b0 * scale + shift).astype(np.float32)
            else:
                continue
            out = node["outputs"][0]
            _remove(g, node)
            _rename_input(g, out, prod["outputs"][0])
            changed = True


def _k_max(node: dict[str, Any]) -> int:
    if node["op"] == "bconv2d":
        kh, kw = node["attrs"]["kernel"]
        return int(node["attrs"]["in_channels"]) * kh * kw
    return int(node["attrs"]["in_channels"])


def _int_thresholds(m: np.ndarray, b: np.ndarray, t: np.ndarray, k_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer (threshold, direction): sign(m*acc + b - t) = +1  <=>  direction*(acc - threshold) >= 0.

    m > 0: acc >= ceil((t - b) / m); m < 0: acc <= floor((t - b) / m); m = 0: a constant
    channel, encoded with direction +1 and a threshold below (always +1) or above (always -1)
    every reachable acc in [-k_max, k_max].
    """
    m, b, t = (np.asarray(a, np.float64) for a in (m, b, t))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (t - b) / m
    thr = np.where(m > 0, np.ceil(ratio), np.where(m < 0, np.floor(ratio), 0.0))
    const_pos = (m == 0) & (b - t >= 0)
    thr = np.where(const_pos, -(k_max + 1), thr)
    thr = np.where((m == 0) & ~const_pos, k_max + 1, thr)
    direction = np.where(m < 0, -1, 1)
    thr = np.clip(np.nan_to_num(thr), -(k_max + 1), k_max + 1)
    return thr.astype(np.int32), direction.astype(np.int32)


def _set_binary_output(
    g: Graph, node: dict[str, Any], thr: np.ndarray, direction: np.ndarray, out: str
) -> None:
    g.drop_param(node, "multiplier")
    g.drop_param(node, "bias")
    owner = node["outputs"][0].split(":")[0]
    node["params"]["threshold"] = g.param(owner, "threshold", thr)
    node["params"]["direction"] = g.param(owner, "direction", direction)
    node["attrs"]["output"] = "binary"
    g.values[out] = Value(out, "binary", g.values[out].shape, g.values[out].torch_order)
    node["outputs"] = [out]


def fold_sign_into_bconv(g: Graph) -> None:
    """bconv(float out) -> sign(t)  ==>  bconv with binary output via integer thresholds."""
    for node in list(g.nodes):
        if node["op"] not in ("bconv2d", "bdense") or node["attrs"].get("output") != "float":
            continue
        if node["attrs"].get("residual_bits", 1) > 1:
            continue  # a scaled sum of plane results: no integer threshold
        sign = _sole_consumer(g, node["outputs"][0])
        if sign is None or sign["op"] != "sign":
            continue
        thr, direction = _int_thresholds(
            g.tensors[node["params"]["multiplier"]],
            g.tensors[node["params"]["bias"]],
            g.tensors[sign["params"]["threshold"]],
            _k_max(node),
        )
        _set_binary_output(g, node, thr, direction, sign["outputs"][0])
        _remove(g, sign)


def fold_bconv_pool_affine_sign(g: Graph) -> None:
    """bconv -> maxpool -> [affine] -> sign  ==>  bconv(bits) -> bmaxpool [-> bnot].

    The bconv output ``y = m*acc + b`` and the affine ``z = s*y + c`` are monotone per
    channel, so the pooled sign is decided by per-pixel bits: where ``s > 0``,
    sign(max z) = max of the per-pixel signs (a binary max-pool); where ``s < 0``,
    max over y becomes min over z: the bconv emits negated bits, the binary max-pool
    takes their max, and ``bnot`` negates those channels back (min b = -max(-b)).
    """
    for node in list(g.nodes):
        if node["op"] != "bconv2d" or node["attrs"].get("output") != "float":
            continue
        if node["attrs"].get("residual_bits", 1) > 1:
            continue  # a scaled sum of plane results: no integer threshold
        pool = _sole_consumer(g, node["outputs"][0])
        if pool is None or pool["op"] != "maxpool":
            continue
        nxt = _sole_consumer(g, pool["outputs"][0])
        affine = None
        if nxt is not None and nxt["op"] == "affine":
            affine = nxt
            nxt = _sole_consumer(g, affine["outputs"][0])
        if nxt is None or nxt["op"] != "sign":
            continue
        sign = nxt
        m = g.tensors[node["params"]["multiplier"]].astype(np.float64)
        b = g.tensors[node["params"]["bias"]].astype(np.float64)
        s_ = np.ones_like(m) if affine is None else g.tensors[affine["params"]["scale"]].astype(np.float64)
        c_ = np.zeros_like(m) if affine is None else g.tensors[affine["params"]["shift"]].astype(np.float64)
        thr, direction = _int_thresholds(
            s_ * m, s_ * b + c_, g.tensors[sign["params"]["threshold"]], _k_max(node)
        )
        neg = s_ < 0
        # negated bits: not(d * (acc - thr) >= 0)  <=>  -d * (acc - (thr - d)) >= 0
        thr = np.where(neg, thr - direction, thr).astype(np.int32)
        direction = np.where(neg, -direction, direction).astype(np.int32)
        bits_out = g.fresh(node["source"])
        g.values[bits_out] = Value(bits_out, "binary", g.values[node["outputs"][0]].shape)
        del g.values[node["outputs"][0]]
        _set_binary_output(g, node, thr, direction, bits_out)
        final = sign["outputs"][0]
        pooled = g.values.pop(pool["outputs"][0])
        pool["op"] = "bmaxpool"
        pool["inputs"] = [bits_out]
        if neg.any():
            mid = g.fresh(pool["source"])
            g.values[mid] = Value(mid, "binary", pooled.shape)
            pool["outputs"] = [mid]
            idx = g.nodes.index(sign)
            _remove(g, sign)
            g.nodes.insert(
                idx,
                {
                    "op": "bnot",
                    "inputs": [mid],
                    "outputs": [final],
                    "attrs": {},
                    "params": {"mask": g.param(final.split(":")[0], "mask", neg.astype(np.uint8))},
                    "source": pool["source"],
                },
            )
        else:
            pool["outputs"] = [final]
            _remove(g, sign)
        if affine is not None:
            g.values.pop(affine["outputs"][0], None)
            _remove(g, affine)


# --------------------------------------------------------------------------- #
# Driver
# --------------------------------------------------------------------------- #


def lower(model: nn.Module, example_input: torch.Tensor, fold: bool = True) -> Graph:
    """Capture ``model`` and return its engine graph (see the module docstring)."""
    if example_input.dim() not in (2, 4):
        raise ExportError(
            f"example input must be (N, C, H, W) or (N, C), got shape {tuple(example_input.shape)}"
        )
    _register_zoo_blocks()
    was_training = model.training
    model.eval()
    try:
        gm = capture(model, example_input)
        g = Graph()
        ctx = _Ctx(g)
        env: dict[str, Any] = {}
        modules = dict(gm.named_modules())

        def load(a: Any) -> Any:
            return fx.node.map_arg(a, lambda n: env[n.name])

        for node in gm.graph.nodes:
            if node.op == "placeholder":
                if g.inputs:
                    raise ExportError("the engine runs models with exactly one input tensor")
                shape = _engine_shape(_shape_of(node))
                v = Value("input", "float", shape)
                g.values["input"] = v
                g.inputs.append(
                    {
                        "name": "input",
                        "shape": list(_shape_of(node)),
                        "dtype": "float32",
                        "layout": "NCHW" if len(shape) == 4 else "NC",
                    }
                )
                env[node.name] = v
            elif node.op == "get_attr":
                obj: Any = gm
                for part in node.target.split("."):
                    obj = getattr(obj, part)
                env[node.name] = obj
            elif node.op == "call_module":
                m = modules[node.target]
                try:
                    env[node.name] = _lower_module(ctx, node.target, m, list(load(node.args)), node)
                except ExportError:
                    raise
                except Exception as e:
                    raise ExportError(f"{node.target} ({type(m).__name__}): {type(e).__name__}: {e}") from e
            elif node.op == "call_function":
                env[node.name] = _lower_function(ctx, node, list(load(node.args)), dict(load(node.kwargs)))
            elif node.op == "call_method":
                env[node.name] = _lower_method(ctx, node, list(load(node.args)), dict(load(node.kwargs)))
            elif node.op == "output":
                out = load(node.args[0])
                if not isinstance(out, Value):
                    raise ExportError("the engine runs models with exactly one output tensor")
                if out.kind != "float":
                    raise ExportError("the model's output is binary; the engine returns float outputs")
                g.outputs.append(
                    {"name": out.name, "shape": list(_shape_of(node.args[0])), "dtype": "float32"}
                )
        if fold:
            fold_affines(g)
            fold_bconv_pool_affine_sign(g)
            fold_maxpool_sign(g)
            fold_flatten_sign(g)
            fold_sign_into_bconv(g)
            fold_affine_sign(g)
        return g
    finally:
        model.train(was_training)


# --------------------------------------------------------------------------- #
# Lowerings of the zoo's own blocks
# --------------------------------------------------------------------------- #

_ZOO_REGISTERED = False


def _register_zoo_blocks() -> None:
    global _ZOO_REGISTERED
    if _ZOO_REGISTERED:
        return
    from onebit.models import _blocks as B

    @register_module_lowering(B.LearnableBias)
    def _learnable_bias(ctx: _Ctx, name: str, m: nn.Module, args: list[Any], shape: tuple[int, ...]) -> Value:
        x = args[0]
        b = _per_feature(_np(m.bias).reshape(-1), x)
        return ctx.g.add(
            "affine",
            [x],
            "float",
            shape,
            name,
            params={"scale": np.ones_like(b), "shift": b},
            torch_order=x.torch_order,
        )

    @register_module_lowering(B.BlurPool)
    def _blur_pool(ctx: _Ctx, name: str, m: nn.Module, args: list[Any], shape: tuple[int, ...]) -> Value:
        x = args[0]
        k = int(m.weight.shape[-1])
        p = int(m.padding)
        c = int(m.channels)
        attrs = {
            "kernel": [k, k],
            "stride": [int(m.stride)] * 2,
            "padding": [p, p, p, p],
            "dilation": [1, 1],
            "groups": c,
        }
        return ctx.g.add(
            "conv2d",
            [x],
            "float",
            shape,
            name,
            attrs,
            {
                "weight": _np(m.weight).transpose(0, 2, 3, 1),
                "multiplier": np.ones(c, np.float32),
                "bias": np.zeros(c, np.float32),
            },
        )

    _ZOO_REGISTERED = True
