"""Resizing: ``nn.Upsample`` (and ``nn.UpsamplingNearest2d`` / ``nn.UpsamplingBilinear2d``) and
``F.interpolate`` in modes ``nearest``, ``nearest-exact`` and ``bilinear`` -> ``upsample``.

``size`` or ``scale_factor`` (one or per axis, ``recompute_scale_factor`` either way), and for
bilinear either ``align_corners``. The op's ``scale_h`` / ``scale_w`` are the float32
source-per-output ratios PyTorch's CPU kernels use: ``1 / scale_factor`` when one is given
(and not recomputed), else ``in / out``, and ``(in - 1) / (out - 1)`` with ``align_corners``.
Other modes and antialiasing raise ExportError.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch.nn.functional as F
from torch import nn

from onebit.export.graph import ExportError, Value
from onebit.export.lowerings.common import bind_call, float_input
from onebit.export.registry import LoweringContext, register_function_lowering, register_module_lowering


def _ratio(n_in: int, n_out: int, scale_factor: float | None, mode: str, align_corners: bool) -> float:
    """Source pixels per output pixel in float32, as torch's CPU kernels compute it."""
    if mode == "bilinear" and align_corners:
        # (in - 1) / (out - 1); with one output pixel only index 0 exists and any ratio gives it
        return float(np.float32(n_in - 1) / np.float32(n_out - 1)) if n_out > 1 else 1.0
    if scale_factor is not None and scale_factor > 0:
        return float(np.float32(1.0 / scale_factor))
    return float(np.float32(n_in) / np.float32(n_out))


def _upsample(
    ctx: LoweringContext,
    name: str,
    x: Any,
    out_shape: tuple[int, ...],
    scale_factor: Any,
    mode: str,
    align_corners: bool | None,
    recompute_scale_factor: bool | None,
    antialias: bool,
) -> Value:
    where = ctx.call_site()
    if mode not in ("nearest", "nearest-exact", "bilinear"):
        raise ExportError(
            f"{where}: interpolation mode {mode!r} has no engine op (nearest, nearest-exact, bilinear)"
        )
    if antialias:
        raise ExportError(f"{where}: antialiased interpolation has no engine op")
    x = float_input(x, where, "upsample")
    if len(x.shape) != 4 or len(out_shape) != 4:
        raise ExportError(f"{where}: upsample takes (N, C, H, W) tensors, got engine shape {x.shape}")
    _, h, w, _ = x.shape
    _, oh, ow, _ = out_shape
    if scale_factor is None or recompute_scale_factor:
        sf: tuple[float | None, float | None] = (None, None)
    elif isinstance(scale_factor, (tuple, list)):
        sf = (float(scale_factor[0]), float(scale_factor[-1]))
    else:
        sf = (float(scale_factor), float(scale_factor))
    align = bool(align_corners) if mode == "bilinear" else False
    attrs: dict[str, Any] = {
        "mode": mode.replace("-", "_"),
        "size": [int(oh), int(ow)],
        "scale_h": _ratio(h, oh, sf[0], mode, align),
        "scale_w": _ratio(w, ow, sf[1], mode, align),
    }
    if align:
        attrs["align_corners"] = True
    return ctx.graph.add("upsample", [x], "float", out_shape, name, attrs)


@register_module_lowering(nn.Upsample)
def lower_upsample(
    ctx: LoweringContext, name: str, m: nn.Upsample, args: list[Any], out_shape: tuple[int, ...]
) -> Value:
    """``nn.Upsample`` (``UpsamplingNearest2d`` / ``UpsamplingBilinear2d`` too) -> ``upsample``."""
    return _upsample(
        ctx,
        name,
        args[0],
        out_shape,
        m.scale_factor,
        m.mode,
        m.align_corners,
        m.recompute_scale_factor,
        False,
    )


@register_function_lowering(F.interpolate, F.upsample)
def lower_interpolate(
    ctx: LoweringContext, name: str, args: list[Any], kwargs: dict[str, Any], out_shape: tuple[int, ...]
) -> Value:
    """``F.interpolate(x, size | scale_factor, mode, align_corners, ...)`` -> ``upsample``."""
    a = bind_call(ctx.node.target, args, kwargs)
    return _upsample(
        ctx,
        name,
        a["input"],
        out_shape,
        a["scale_factor"],
        a["mode"],
        a["align_corners"],
        a.get("recompute_scale_factor"),
        bool(a.get("antialias", False)),
    )
