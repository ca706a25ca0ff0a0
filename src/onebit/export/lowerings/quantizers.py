"""A standalone 1-bit quantizer module (``SteSign()`` in a ``forward``) -> ``sign``."""

from __future__ import annotations

from typing import Any

from onebit import quantizers as Q
from onebit.export.graph import ExportError, Value
from onebit.export.lowerings.common import lower_sign
from onebit.export.registry import LoweringContext, register_module_lowering


@register_module_lowering(Q.Quantizer)
def lower_quantizer(
    ctx: LoweringContext, name: str, m: Q.Quantizer, args: list[Any], out_shape: tuple[int, ...]
) -> Value:
    """A 1-bit quantizer becomes a ``sign`` with its per-channel threshold."""
    if m.precision != 1:
        raise ExportError(f"{name}: standalone {type(m).__name__} ({m.precision}-bit) cannot be exported")
    return lower_sign(ctx, name, m, args[0])
