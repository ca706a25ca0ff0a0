"""One call converts a float model into a binarized one: :func:`binarize_`.

Modelled on torchao's ``quantize_(model, config)``: the configuration is a
validated, versioned dataclass (no closures), the conversion happens in place
and ``print(model)`` shows what was converted (the quantized layers' repr names
their quantizers).

By default the first and the last ``Conv2d``/``Linear`` of the model (in
registration order, which for ordinary models is the order of the forward
pass) stay float, as XNOR-Net and every later binary network keep them: the
first sees raw pixels, the last produces the logits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

from torch import nn

from onebit import quantizers as Q
from onebit.nn.constraints import get_constraint
from onebit.nn.layers import SCALINGS, QuantConv2d, QuantLinear

__all__ = ["BinarizeConfig", "VersionMismatchError", "binarize_", "config_from_dict"]


class VersionMismatchError(ValueError):
    """A serialized config was written by an incompatible version of its class."""


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
    """

    VERSION = 1

    input_quantizer: Any = "ste_sign"
    weight_quantizer: Any = "ste_sign"
    weight_constraint: Any = "weight_clip"
    scaling: str | None = None
    pad_value: float | None = None
    keep_first: bool = True
    keep_last: bool = True

    def __post_init__(self) -> None:
        # Resolve once so that a bad name fails here, not deep inside the conversion.
        Q.get(self.input_quantizer)
        Q.get(self.weight_quantizer)
        get_constraint(self.weight_constraint)
        if self.scaling not in SCALINGS:
            raise ValueError(f"unknown scaling {self.scaling!r}; expected one of {SCALINGS}")
        if self.pad_value is not None and float(self.pad_value) not in (0.0, 1.0, -1.0):
            raise ValueError(f"pad_value must be None, 0.0, 1.0 or -1.0, got {self.pad_value!r}")

    def to_dict(self) -> dict[str, Any]:
        """Serializable form, with the class version."""
        return {"_version": self.VERSION, **asdict(self)}


def config_from_dict(d: dict[str, Any]) -> BinarizeConfig:
    """Rebuild a :class:`BinarizeConfig`; raises on unknown keys or another version."""
    d = dict(d)
    version = d.pop("_version", BinarizeConfig.VERSION)
    if version != BinarizeConfig.VERSION:
        raise VersionMismatchError(
            f"BinarizeConfig version {version} cannot be read by version {BinarizeConfig.VERSION}"
        )
    known = {f.name for f in fields(BinarizeConfig)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown BinarizeConfig fields: {sorted(unknown)}")
    return BinarizeConfig(**d)


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


def binarize_(
    model: nn.Module,
    config: BinarizeConfig | None = None,
    filter_fn: Callable[[nn.Module, str], bool] | None = None,
) -> nn.Module:
    """Replace the model's ``nn.Conv2d`` / ``nn.Linear`` layers by quantized ones, in place.

    Args:
        model: any float model.
        config: how to convert (default: BinaryNet-style ``ste_sign`` inputs and
            weights with weight clipping, first and last layer float).
        filter_fn: ``filter_fn(module, fully_qualified_name) -> bool`` chooses the
            layers to convert among plain Conv2d/Linear; it overrides
            ``keep_first``/``keep_last`` when given.

    Returns:
        The same model object, converted. Existing weights become the latent
        weights (clipped when the config asks for weight clipping).
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
    return model
