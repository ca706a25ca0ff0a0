"""Regularizers for binary networks."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from onebit.nn.layers import QuantMixin

__all__ = ["bipolar"]


def bipolar(model: nn.Module, lam: float = 5e-7) -> Tensor:
    r"""Tang et al.'s bipolar regularizer: pulls latent binary weights toward :math:`\pm 1`.

    .. math::
        R(W) = \lambda \sum_{l} \sum_{i} \left(1 - w_{l,i}^2\right)

    summed over the latent weights of every layer whose weight quantizer is
    1-bit. L2 decay pulls weights toward 0, where their sign is least certain
    and flips most easily; this term's gradient :math:`-2\lambda w` pushes each
    weight away from 0 toward the nearer of -1 and +1 (weight clipping keeps
    it there), so the binarization error shrinks during training. Add the
    returned scalar to the loss.

    References: Tang, Hua, Wang, *How to Train a Compact Binary Neural Network
    with High Accuracy?*, AAAI 2017 (lambda = 5e-7 in their experiments).
    """
    if lam < 0:
        raise ValueError(f"bipolar: lam must be >= 0, got {lam}")
    terms = [
        (1.0 - m.weight.pow(2)).sum()
        for m in model.modules()
        if isinstance(m, QuantMixin) and m.weight_precision == 1
    ]
    if not terms:
        param = next(model.parameters(), None)
        return torch.zeros((), device=param.device if param is not None else None)
    return lam * torch.stack(terms).sum()
