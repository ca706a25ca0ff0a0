"""Weight constraints: projections applied to latent weights after each optimizer step.

BinaryNet keeps the real-valued ("latent") weights behind binary weights in
[-1, 1]: outside that range the straight-through gradient is zero and a weight
could drift away for ever ("starved" weights). A constraint is a callable that
rewrites a parameter in place; layers hold one in ``weight_constraint`` and
:func:`apply_constraints` (or :func:`onebit.optim.constrain`) runs them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["WeightClip", "apply_constraints", "get_constraint"]


class WeightClip:
    """Clip a parameter in place to ``[-clip_value, clip_value]``."""

    name = "weight_clip"

    def __init__(self, clip_value: float = 1.0) -> None:
        if clip_value <= 0:
            raise ValueError(f"weight_clip: clip_value must be > 0, got {clip_value}")
        self.clip_value = float(clip_value)

    @torch.no_grad()
    def __call__(self, w: Tensor) -> None:
        w.clamp_(-self.clip_value, self.clip_value)

    def get_config(self) -> dict[str, Any]:
        return {"clip_value": self.clip_value}

    def __repr__(self) -> str:
        return f"WeightClip(clip_value={self.clip_value})"


_CONSTRAINTS: dict[str, type] = {"weight_clip": WeightClip}


def get_constraint(identifier: Any) -> Callable[[Tensor], None] | None:
    """Resolve ``None``, ``"weight_clip"``, ``{"name": "weight_clip", "clip_value": 1.3}``
    or a callable ``f(param) -> None`` into a constraint; ``ValueError`` for unknown names."""
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        cfg = dict(identifier)
        name = cfg.pop("name", None)
        if name not in _CONSTRAINTS:
            raise ValueError(f"unknown weight constraint {name!r}; known: {', '.join(sorted(_CONSTRAINTS))}")
        return _CONSTRAINTS[name](**cfg)
    if isinstance(identifier, str):
        if identifier not in _CONSTRAINTS:
            raise ValueError(
                f"unknown weight constraint {identifier!r}; known: {', '.join(sorted(_CONSTRAINTS))}"
            )
        return _CONSTRAINTS[identifier]()
    if callable(identifier):
        return identifier
    raise ValueError(f"cannot interpret {identifier!r} as a weight constraint")


@torch.no_grad()
def apply_constraints(model: nn.Module) -> None:
    """Run every layer's ``weight_constraint`` on its weight (call after ``optimizer.step()``)."""
    for m in model.modules():
        c = getattr(m, "weight_constraint", None)
        if c is not None and isinstance(getattr(m, "weight", None), Tensor):
            c(m.weight)
