"""Knowledge distillation (Hinton et al. 2015; Wu et al.'s schedule for binary students).

Loss, with student logits ``s``, teacher logits ``t``, labels ``y``::

    L = alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y)

(``F.kl_div(log_softmax(s/T), softmax(t/T))``, batch-mean; the T^2 keeps the
soft term's gradient scale independent of T). Wu et al. first train on the
soft targets only (``alpha = 1`` for ``soft_only_epochs``), then on both.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["LogitCache", "alpha_for_epoch", "distillation_loss", "load_teacher"]


def distillation_loss(
    student: Tensor,
    teacher: Tensor,
    target: Tensor | None,
    alpha: float = 0.9,
    temperature: float = 4.0,
    label_smoothing: float = 0.0,
) -> Tensor:
    """``alpha * T^2 * KL(p_teacher^T || p_student^T) + (1 - alpha) * CE(student, target)``."""
    T = float(temperature)
    soft = F.kl_div(
        F.log_softmax(student.float() / T, dim=1),
        F.log_softmax(teacher.float() / T, dim=1),
        reduction="batchmean",
        log_target=True,
    ) * (T * T)
    if alpha >= 1.0 or target is None:
        return soft
    hard = F.cross_entropy(student.float(), target, label_smoothing=label_smoothing)
    return alpha * soft + (1.0 - alpha) * hard


def alpha_for_epoch(alpha: float, soft_only_epochs: int, epoch: int) -> float:
    """Wu et al.'s schedule: soft targets only (alpha = 1) first, then the mix."""
    return 1.0 if epoch < soft_only_epochs else alpha


def load_teacher(
    spec: str, num_classes: int, weights: str = "DEFAULT", device: Any = "cpu", *, trust_code: bool = False
) -> nn.Module:
    """A frozen teacher in eval mode: a onebit checkpoint path or ``torchvision:NAME``.

    A checkpoint is read like any other (:func:`onebit.training.checkpoint.load_model`): no code
    from it runs, and a ``"module:callable"`` model name is imported only with ``trust_code``
    (``distill.trust_code = true``).
    """
    if spec.startswith("torchvision:"):
        import torchvision

        name = spec.split(":", 1)[1]
        try:
            model = torchvision.models.get_model(name, weights=weights or None)
        except Exception as e:
            raise ValueError(
                f"teacher {spec!r}: cannot build torchvision model ({type(e).__name__}: {e})"
            ) from None
    else:
        from onebit.training.checkpoint import load_model

        model, meta = load_model(spec, trust_code=trust_code)
        if meta.get("num_classes") not in (None, num_classes):
            raise ValueError(f"teacher {spec} has {meta['num_classes']} classes, the data set {num_classes}")
    model.eval().to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


class LogitCache:
    """Teacher logits per training sample, computed once (valid only without augmentation)."""

    def __init__(self, n: int, num_classes: int) -> None:
        self.logits = torch.zeros(n, num_classes)
        self.have = torch.zeros(n, dtype=torch.bool)

    @torch.no_grad()
    def get(self, teacher: nn.Module, x: Tensor, idx: Tensor) -> Tensor:
        idx = idx.cpu()
        miss = ~self.have[idx]
        if bool(miss.any()):
            out = teacher(x[miss.to(x.device)]).float().cpu()
            self.logits[idx[miss]] = out
            self.have[idx[miss]] = True
        return self.logits[idx].to(x.device)
