"""One call converts a float model into a binarized one: :func:`binarize_`.

Modelled on torchao's ``quantize_(model, config)``: the configuration is a
validated, versioned dataclass (no closures), the conversion happens in place
and ``print(model)`` shows what was converted (the quantized layers' repr names
their quantizers).

By default the first and the last ``Conv2d``/``Linear`` of the model (in
registration order, which for ordinary models is the order of the forward
pass) stay float, as XNOR-Net and every later binary network keep them: the
first sees raw pixels, the last produces the logits.

A float model's ReLUs are a trap for a binary network: ``sign(relu(x))`` is
+1 everywhere (``sign(0) = +1``), so a binary layer behind a ReLU computes a
constant and the network cannot learn (torchvision's ResNet-18 converted as it
is trains to chance accuracy with exploding logits). :func:`binarize_`
therefore traces the converted model with ``torch.fx``, finds every sign
quantizer whose input is non-negative by construction (behind a ReLU, possibly
through pooling, flattening, dropout or sums of non-negative values) and, by
default, replaces the ReLU modules responsible by the identity, as Bi-Real Net
and ReActNet do (the sign is the binary body's nonlinearity; the residual
stream stays real-valued). Whatever it cannot fix (``activation="keep"``, a
functional ``F.relu`` in ``forward``) it reports with a warning.
:func:`nonnegative_sign_inputs` runs the same check on any model.

:func:`float_twin` goes the other way: the same architecture with float
layers, the honest baseline for timing a binary network against PyTorch.
"""

from __future__ import annotations

import copy
import operator
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from onebit import quantizers as Q
from onebit._errors import VersionMismatchError
from onebit.nn.constraints import get_constraint
from onebit.nn.layers import SCALINGS, QuantConv2d, QuantLinear, QuantMixin, Scale

__all__ = [
    "ACTIVATIONS",
    "BinarizeConfig",
    "NonNegativeSignInput",
    "VersionMismatchError",
    "binarize_",
    "config_from_dict",
    "float_twin",
    "nonnegative_sign_inputs",
]

#: Values of :attr:`BinarizeConfig.activation`.
ACTIVATIONS = ("identity", "prelu", "hardtanh", "keep")


@dataclass
class BinarizeConfig:
    """How :func:`binarize_` converts layers.

    Attributes:
        input_quantizer: quantizer of the converted layers' inputs (name or
            config dict; ``None`` gives binary-weight networks as in XNOR-Net's BWN).
        weight_quantizer: quantizer of their weights.
        weight_constraint: ``"weight_clip"`` (BinaryNet) or ``None``.
        scaling: ``None``, ``"xnor"``, ``"alpha"`` or ``"channel"`` (see :class:`QuantConv2d`).
        pad_value: padding value of converted convolutions (``1.0`` / ``-1.0`` for
            exact binary padding; ``None`` keeps zero padding).
        keep_first: leave the first Conv2d/Linear float.
        keep_last: leave the last Conv2d/Linear float.
        activation: what replaces a ``nn.ReLU``/``nn.ReLU6`` module whose output reaches
            a sign quantizer of the model (where ``sign`` would be +1 everywhere):
            ``"identity"`` (default; Bi-Real Net / ReActNet style: the sign is the
            nonlinearity and the residual stream stays real), ``"prelu"`` (one
            learned slope, initialized to 0.25), ``"hardtanh"`` (clip to [-1, 1],
            BinaryNet / XNOR-Net style) or ``"keep"`` (leave the model's
            activations; :func:`binarize_` then warns about each dead sign).
            A module used at several places is replaced at all of them.
            Added in version 2; a version-1 dict reads as ``"keep"``, the conversion
            it described.
    """

    VERSION = 2

    input_quantizer: Any = "ste_sign"
    weight_quantizer: Any = "ste_sign"
    weight_constraint: Any = "weight_clip"
    scaling: str | None = None
    pad_value: float | None = None
    keep_first: bool = True
    keep_last: bool = True
    activation: str = "identity"

    def __post_init__(self) -> None:
        # Resolve once so that a bad name fails here, not deep inside the conversion.
        Q.get(self.input_quantizer)
        Q.get(self.weight_quantizer)
        get_constraint(self.weight_constraint)
        if self.scaling not in SCALINGS:
            raise ValueError(f"unknown scaling {self.scaling!r}; expected one of {SCALINGS}")
        if self.pad_value is not None and float(self.pad_value) not in (0.0, 1.0, -1.0):
            raise ValueError(f"pad_value must be None, 0.0, 1.0 or -1.0, got {self.pad_value!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; expected one of {ACTIVATIONS}")

    def to_dict(self) -> dict[str, Any]:
        """Serializable form, with the class version."""
        return {"_version": self.VERSION, **asdict(self)}


# Fields each version introduced; a dict of an older version may not name later ones.
_ADDED_IN = {"activation": 2}
# What an older dict meant for a field it could not name (version 1 kept every activation).
_OLD_DEFAULTS = {1: {"activation": "keep"}}


def config_from_dict(d: dict[str, Any]) -> BinarizeConfig:
    """Rebuild a :class:`BinarizeConfig`; raises on unknown keys or an unknown version.

    Dicts of version 1 (before ``activation`` existed) still load and convert as they
    did then: their ``activation`` is ``"keep"``.
    """
    d = dict(d)
    version = d.pop("_version", BinarizeConfig.VERSION)
    if version not in (1, BinarizeConfig.VERSION):
        raise VersionMismatchError(
            f"BinarizeConfig version {version} cannot be read by version {BinarizeConfig.VERSION}"
        )
    known = {f.name for f in fields(BinarizeConfig) if _ADDED_IN.get(f.name, 1) <= version}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown BinarizeConfig fields (version {version}): {sorted(unknown)}")
    return BinarizeConfig(**{**_OLD_DEFAULTS.get(version, {}), **d})


def _is_float_layer(module: nn.Module) -> bool:
    return type(module) in (nn.Conv2d, nn.Linear)


def _convert(module: nn.Module, config: BinarizeConfig) -> nn.Module:
    common = dict(
        input_quantizer=Q.get(config.input_quantizer),
        weight_quantizer=Q.get(config.weight_quantizer),
        weight_constraint=config.weight_constraint,
        scaling=config.scaling,
    )
    w = module.weight
    if isinstance(module, nn.Conv2d):
        new: nn.Module = QuantConv2d(
            module.in_channels,
            module.out_channels,
            module.kernel_size,
            stride=module.stride,
            padding=module.padding,
            dilation=module.dilation,
            groups=module.groups,
            bias=module.bias is not None,
            padding_mode=module.padding_mode,
            device=w.device,
            dtype=w.dtype,
            pad_value=config.pad_value,
            **common,
        )
    else:
        new = QuantLinear(
            module.in_features,
            module.out_features,
            bias=module.bias is not None,
            device=w.device,
            dtype=w.dtype,
            **common,
        )
    # Keep the float model's weights (and so its training state) as the latent weights.
    state = {k: v for k, v in module.state_dict().items()}
    missing, unexpected = new.load_state_dict(state, strict=False)
    if unexpected or set(missing) - {"scale"}:
        raise RuntimeError(f"weight transfer failed: missing={missing}, unexpected={unexpected}")
    new.train(module.training)
    if new.weight_constraint is not None:
        new.weight_constraint(new.weight)
    return new


# --------------------------------------------------------------------------- #
# Signs that see only non-negative values
# --------------------------------------------------------------------------- #

# Quantizers computing sign(x) with threshold 0 (a non-negative input makes them constant):
# those whose export protocol gives a fixed threshold of 0 (``sign_threshold() == 0``, a
# number: a learned per-channel threshold such as RSign's can move), the functions below,
# and MagnitudeAwareSign (alpha * sign(x), alpha >= 0).
_SIGN_FUNCTIONS = (Q.sign, Q.ste_sign, Q.approx_sign, Q.swish_sign, Q.magnitude_aware_sign)
# Modules binarize_ may replace (their only job here is to clamp at 0).
_REPLACEABLE = (nn.ReLU, nn.ReLU6)
# Outputs >= 0 whatever the input.
_NONNEG_MODULES = (nn.ReLU, nn.Sigmoid, nn.Hardsigmoid, nn.Softmax, nn.Softmax2d, nn.Softplus)
_NONNEG_FUNCTIONS = {
    torch.relu,
    torch.relu_,
    F.relu,
    F.relu_,
    F.relu6,
    torch.sigmoid,
    F.sigmoid,
    F.hardsigmoid,
    torch.abs,
    torch.exp,
    torch.square,
    torch.softmax,
    F.softmax,
    F.softplus,
}
_NONNEG_METHODS = {"relu", "relu_", "abs", "abs_", "sigmoid", "sigmoid_", "exp", "softmax", "square"}
# Non-negative in, non-negative out: pooling, reshaping, dropout, zero padding.
_KEEP_MODULES = (
    nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd,
    nn.modules.dropout._DropoutNd,
    nn.Flatten,
    nn.Unflatten,
    nn.Identity,
    nn.Upsample,
    nn.PixelShuffle,
    nn.PixelUnshuffle,
    nn.ChannelShuffle,
)
_KEEP_FUNCTIONS = {
    torch.flatten,
    torch.reshape,
    torch.squeeze,
    torch.unsqueeze,
    torch.transpose,
    torch.permute,
    torch.mean,
    torch.sum,
    torch.cat,
    torch.stack,
    torch.chunk,
    torch.split,
    operator.getitem,
    F.max_pool1d,
    F.max_pool2d,
    F.max_pool3d,
    F.avg_pool1d,
    F.avg_pool2d,
    F.avg_pool3d,
    F.adaptive_avg_pool1d,
    F.adaptive_avg_pool2d,
    F.adaptive_max_pool2d,
    F.dropout,
    F.interpolate,
}
_KEEP_METHODS = {
    "view",
    "reshape",
    "flatten",
    "permute",
    "transpose",
    "contiguous",
    "squeeze",
    "unsqueeze",
    "mean",
    "sum",
    "clone",
    "chunk",
    "split",
    "expand",
    "repeat",
    "float",
    "to",
}
# Sums and products of non-negative values (numbers included) are non-negative.
_ARITH_FUNCTIONS = {operator.add, operator.iadd, operator.mul, operator.imul, torch.add, torch.mul}
_ARITH_METHODS = {"add", "add_", "mul", "mul_"}


@dataclass(frozen=True)
class NonNegativeSignInput:
    """A sign quantizer whose input is >= 0 by construction, so its output is +1 everywhere.

    Attributes:
        layer: module path of the quantized layer (or standalone sign quantizer), or the
            fx node name of a functional sign in ``forward``.
        sources: what makes the input non-negative, e.g. ``"layer1.0.relu (ReLU)"`` or
            ``"relu() in forward (node relu_1)"``.
    """

    layer: str
    sources: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.layer} (input from {', '.join(self.sources)})"


class _Tracer(fx.Tracer):
    """Keeps onebit's layers and quantizers whole, like the exporter's capture."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, (QuantMixin, Q.Quantizer, Scale)):
            return True
        return super().is_leaf_module(m, qualname)


def _is_sign(q: Any) -> bool:
    if any(q is f for f in _SIGN_FUNCTIONS) or isinstance(q, Q.MagnitudeAwareSign):
        return True
    threshold = getattr(q, "sign_threshold", None)
    t = threshold() if isinstance(q, nn.Module) and callable(threshold) else None
    return isinstance(t, (int, float)) and t == 0


def _node_args(a: Any) -> list[fx.Node]:
    if isinstance(a, fx.Node):
        return [a]
    if isinstance(a, (list, tuple)):
        return [n for x in a for n in _node_args(x)]
    if isinstance(a, dict):
        return [n for x in a.values() for n in _node_args(x)]
    return []


def _numbers_nonneg(node: fx.Node) -> bool:
    vals = list(node.args) + list(node.kwargs.values())
    return all(v >= 0 for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool))


class _NonNeg:
    """Which fx nodes are >= 0 by construction, and which nodes make them so."""

    def __init__(self, gm: fx.GraphModule) -> None:
        self.modules = dict(gm.named_modules())
        self.memo: dict[fx.Node, tuple[str, list[fx.Node]]] = {}
        for node in gm.graph.nodes:  # topological order: inputs are classified first
            self.memo[node] = self._classify(node)

    def _classify(self, node: fx.Node) -> tuple[str, list[fx.Node]]:
        """("source" | "keep" | "no", the inputs that must be non-negative for "keep")."""
        kind = "no"
        inputs: list[fx.Node] = []
        if node.op == "call_module":
            m = self.modules[node.target]
            if isinstance(m, _NONNEG_MODULES) or (isinstance(m, nn.Hardtanh) and m.min_val >= 0):
                kind = "source"
            elif isinstance(m, _KEEP_MODULES) or (
                isinstance(m, nn.modules.padding._ConstantPadNd) and m.value >= 0
            ):
                kind, inputs = "keep", _node_args(node.args[:1])
        elif node.op in ("call_function", "call_method"):
            t = node.target
            fn = node.op == "call_function"
            if (t in _NONNEG_FUNCTIONS) if fn else (t in _NONNEG_METHODS):
                kind = "source"
            elif (t in _KEEP_FUNCTIONS) if fn else (t in _KEEP_METHODS):
                kind, inputs = "keep", _node_args(node.args[:1])
            elif ((t in _ARITH_FUNCTIONS) if fn else (t in _ARITH_METHODS)) and _numbers_nonneg(node):
                kind, inputs = "keep", _node_args(node.args) + _node_args(node.kwargs)
        if kind == "keep" and not (inputs and all(self.nonneg(n) for n in inputs)):
            kind = "no"
        return kind, inputs

    def nonneg(self, node: fx.Node) -> bool:
        return self.memo[node][0] != "no"

    def sources(self, node: fx.Node) -> list[fx.Node]:
        kind, inputs = self.memo[node]
        if kind == "source":
            return [node]
        out: list[fx.Node] = []
        for n in inputs:
            out += [s for s in self.sources(n) if s not in out]
        return out


def _describe(node: fx.Node, modules: dict[str, nn.Module]) -> str:
    if node.op == "call_module":
        return f"{node.target} ({type(modules[node.target]).__name__})"
    name = getattr(node.target, "__name__", str(node.target))
    return f"{name}() in forward (node {node.name})"


def _find(model: nn.Module) -> tuple[list[NonNegativeSignInput], set[str]]:
    """The dead signs and the replaceable activation modules feeding them (raises if untraceable)."""
    gm = fx.GraphModule(model, _Tracer().trace(model))
    nn_ = _NonNeg(gm)
    modules = nn_.modules
    found: list[NonNegativeSignInput] = []
    replaceable: set[str] = set()
    for node in gm.graph.nodes:
        x = node.args[0] if node.args and isinstance(node.args[0], fx.Node) else None
        if x is None:
            continue
        if node.op == "call_module":
            m = modules[node.target]
            q = m.input_quantizer if isinstance(m, QuantMixin) else m
            if not _is_sign(q):
                continue
            where = str(node.target)
        elif node.op == "call_function" and _is_sign(node.target):
            where = f"{node.target.__name__}() in forward (node {node.name})"
        else:
            continue
        if not nn_.nonneg(x):
            continue
        srcs = nn_.sources(x)
        found.append(NonNegativeSignInput(where, tuple(_describe(s, modules) for s in srcs)))
        replaceable |= {
            str(s.target) for s in srcs if s.op == "call_module" and type(modules[s.target]) in _REPLACEABLE
        }
    return found, replaceable


def nonnegative_sign_inputs(model: nn.Module) -> list[NonNegativeSignInput]:
    """Every sign quantizer of ``model`` whose input is non-negative by construction.

    ``sign(x)`` is +1 for every ``x >= 0``, so such a sign is a constant: its layer
    cannot tell inputs apart and gets no useful gradient (a float model's ReLU in
    front of a binary layer is the usual cause). Found by tracing the model with
    ``torch.fx`` (no forward pass runs) and following ReLU-like outputs through
    pooling, reshaping, dropout, zero padding, concatenation and sums or products
    of non-negative values. Checks sign input quantizers of :class:`QuantConv2d` /
    :class:`QuantLinear`, standalone sign quantizer modules and functional signs.

    Raises whatever ``torch.fx`` raises for a model it cannot trace (data-dependent
    control flow in ``forward``).
    """
    return _find(model)[0]


def _make_activation(name: str, like: nn.Module) -> nn.Module:
    p = next(like.parameters(), None)
    factory = {"device": p.device, "dtype": p.dtype} if p is not None else {}
    if name == "identity":
        return nn.Identity()
    if name == "prelu":
        return nn.PReLU(1, init=0.25, **factory)
    if name == "hardtanh":
        return nn.Hardtanh(-1.0, 1.0)
    raise ValueError(f"unknown activation {name!r}; expected one of {ACTIVATIONS}")


def _warn_dead_signs(found: list[NonNegativeSignInput], config: BinarizeConfig) -> None:
    shown = "; ".join(str(f) for f in found[:6])
    more = f"; and {len(found) - 6} more" if len(found) > 6 else ""
    if config.activation == "keep":
        hint = "BinarizeConfig(activation='identity') (the default) replaces ReLU/ReLU6 modules"
    else:
        hint = "only ReLU/ReLU6 modules can be replaced: use a module instead of the function, or drop it"
    warnings.warn(
        f"binarize_: {len(found)} sign quantizer(s) see only non-negative inputs, so sign(x) = +1 "
        f"everywhere and their layers compute constants and do not learn: {shown}{more}. {hint}",
        UserWarning,
        stacklevel=3,
    )


def _fix_activations(model: nn.Module, config: BinarizeConfig) -> None:
    """Replace the activations that make signs constant (per ``config.activation``); warn about the rest."""
    try:
        found, replaceable = _find(model)
    except Exception as e:  # fx raises many types for data-dependent control flow
        warnings.warn(
            f"binarize_: cannot trace {type(model).__name__} with torch.fx ({type(e).__name__}: {e}); "
            "the activations in front of its binary layers were neither checked nor replaced",
            UserWarning,
            stacklevel=3,
        )
        return
    if found and config.activation != "keep" and replaceable:
        for fqn in sorted(replaceable):
            parent_name, _, child = fqn.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, _make_activation(config.activation, model))
        found = _find(model)[0]
    if found:
        _warn_dead_signs(found, config)


# --------------------------------------------------------------------------- #
# Conversion
# --------------------------------------------------------------------------- #


def binarize_(
    model: nn.Module,
    config: BinarizeConfig | None = None,
    filter_fn: Callable[[nn.Module, str], bool] | None = None,
) -> nn.Module:
    """Replace the model's ``nn.Conv2d`` / ``nn.Linear`` layers by quantized ones, in place.

    Args:
        model: any float model.
        config: how to convert (default: BinaryNet-style ``ste_sign`` inputs and
            weights with weight clipping, first and last layer float, ReLUs in
            front of signs replaced by the identity).
        filter_fn: ``filter_fn(module, fully_qualified_name) -> bool`` chooses the
            layers to convert among plain Conv2d/Linear; it overrides
            ``keep_first``/``keep_last`` when given.

    Returns:
        The same model object, converted. Existing weights become the latent
        weights (clipped when the config asks for weight clipping).

    Warns (``UserWarning``) when a sign quantizer of the converted model still sees
    only non-negative values (see :func:`nonnegative_sign_inputs`), or when the model
    cannot be traced to check it.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"binarize_ expects an nn.Module, got {type(model).__name__}")
    config = config if config is not None else BinarizeConfig()
    if not isinstance(config, BinarizeConfig):
        raise TypeError(f"config must be a BinarizeConfig, got {type(config).__name__}")

    # The root itself cannot be replaced in place; a bare Conv2d has nothing to keep float anyway.
    candidates = [n for n, m in model.named_modules() if n and _is_float_layer(m)]
    if filter_fn is None:
        skip = set()
        if candidates and config.keep_first:
            skip.add(candidates[0])
        if candidates and config.keep_last:
            skip.add(candidates[-1])
        chosen = [n for n in candidates if n not in skip]
    else:
        modules = dict(model.named_modules())
        chosen = [n for n in candidates if filter_fn(modules[n], n)]

    for fqn in chosen:
        parent_name, _, child = fqn.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, _convert(getattr(parent, child), config))
    if any(isinstance(m, QuantMixin) and _is_sign(m.input_quantizer) for m in model.modules()):
        _fix_activations(model, config)
    return model


# --------------------------------------------------------------------------- #
# The float twin
# --------------------------------------------------------------------------- #


def _plain_layer(m: QuantMixin) -> nn.Module:
    w = m.weight
    if isinstance(m, QuantConv2d):
        new: nn.Module = nn.Conv2d(
            m.in_channels,
            m.out_channels,
            m.kernel_size,
            stride=m.stride,
            padding=m.padding,
            dilation=m.dilation,
            groups=m.groups,
            bias=m.bias is not None,
            padding_mode=m.padding_mode,
            device=w.device,
            dtype=w.dtype,
        )
    else:
        new = nn.Linear(
            m.in_features, m.out_features, bias=m.bias is not None, device=w.device, dtype=w.dtype
        )
    with torch.no_grad():
        new.weight.copy_(w)
        if m.bias is not None:
            new.bias.copy_(m.bias)
    new.train(m.training)
    return new


def float_twin(model: nn.Module, activation: Callable[[], nn.Module] | None = nn.ReLU) -> nn.Module:
    """The same architecture with float layers: the honest PyTorch baseline of a binary model.

    Timing a binary model in PyTorch measures fake quantization (signs recomputed in
    fp32 on every call), not a float network; compare the engine with this twin
    instead. It is a deep copy of ``model`` (the original is untouched) in which every
    :class:`QuantConv2d` / :class:`QuantLinear` becomes a plain ``nn.Conv2d`` /
    ``nn.Linear`` of the same shapes (latent weights and bias copied; learned
    scales, XNOR-Net factors and binary padding dropped) and every standalone
    quantizer module becomes ``nn.Identity``.

    Args:
        model: a binary (or partly binary) model.
        activation: factory of the nonlinearity that takes the place of each input
            quantizer (``nn.ReLU`` by default, as BinaryNet's float twin: the sign
            was the binary network's nonlinearity, and without one the twin would
            be a linear network). The twin layer becomes
            ``nn.Sequential(activation(), layer)``. ``None`` drops the quantizers
            without replacement.

    Returns:
        A new float model, in the same train/eval mode. Its weights are the binary
        model's latent weights: good for timing; train it to compare accuracy.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"float_twin expects an nn.Module, got {type(model).__name__}")
    twin = copy.deepcopy(model)
    if isinstance(twin, (QuantMixin, Q.Quantizer)):
        raise TypeError("float_twin needs a model that contains quantized layers, not a bare layer")
    targets = [
        (parent, name, child)
        for parent in twin.modules()
        for name, child in parent.named_children()
        if isinstance(child, (QuantMixin, Q.Quantizer))
    ]
    for parent, name, child in targets:
        if isinstance(child, Q.Quantizer):
            new: nn.Module = nn.Identity()
        else:
            new = _plain_layer(child)
            if activation is not None and child.input_quantizer is not None:
                new = nn.Sequential(activation(), new).train(child.training)
        setattr(parent, name, new)
    return twin
