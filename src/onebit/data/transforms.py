"""Batch augmentation and normalization on in-memory uint8 tensors.

Small data sets (MNIST, CIFAR-10) live in memory as one uint8 tensor
(N, C, H, W). Augmenting a whole batch with tensor ops (random crop with zero
padding, horizontal flip) is far cheaper than PIL per image, and makes the
randomness a pure function of a ``torch.Generator``: a batch's augmentation
depends only on (seed, epoch, step), so a resumed run sees the same pixels.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["Normalize", "random_crop_flip", "STATS"]

#: Per-channel mean/std (of [0, 1] pixels) of the data sets.
STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def random_crop_flip(
    x: Tensor,
    pad: int,
    flip: bool,
    gen: torch.Generator,
    crop: bool = True,
    total: int | None = None,
    offset: int = 0,
) -> Tensor:
    """Random ``pad``-padded crop back to the input size and random horizontal flip, per sample.

    ``x``: (N, C, H, W) of any dtype. Offsets and flips are drawn from ``gen``
    (on the CPU) for ``total`` samples (default: the batch) and samples
    ``offset..offset+N`` of them are used: a DDP rank holding a slice of the
    global batch gets exactly the pixels one process would.
    """
    n, _c, h, w = x.shape
    total = n if total is None else total
    sl = slice(offset, offset + n)
    if crop and pad > 0:
        oy = torch.randint(0, 2 * pad + 1, (total,), generator=gen)[sl]
        ox = torch.randint(0, 2 * pad + 1, (total,), generator=gen)[sl]
    if flip:
        fl = (torch.rand(total, generator=gen) < 0.5)[sl]
    if crop and pad > 0:
        xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        oy, ox = oy.to(x.device), ox.to(x.device)
        rows = oy[:, None] + torch.arange(h, device=x.device)[None, :]  # (N, H)
        cols = ox[:, None] + torch.arange(w, device=x.device)[None, :]  # (N, W)
        idx_n = torch.arange(n, device=x.device)[:, None, None]
        # (N, H, W, C) gather, then back to NCHW
        x = xp.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    if flip:
        fl = fl.to(x.device)
        x = torch.where(fl[:, None, None, None], x.flip(3), x)
    return x.contiguous()


class Normalize:
    """uint8 (N, C, H, W) -> float32.

    Modes: ``standard`` (mean/std), ``pm1`` ([-1, 1]) or ``none`` ([0, 1]).
    """

    def __init__(self, mode: str, dataset: str, channels: int) -> None:
        self.mode = mode
        if mode == "standard":
            mean, std = STATS.get(dataset, ((0.5,) * channels, (0.5,) * channels))
        elif mode == "pm1":
            mean, std = (0.5,) * channels, (0.5,) * channels
        elif mode == "none":
            mean, std = (0.0,) * channels, (1.0,) * channels
        else:
            raise ValueError(f"unknown normalization {mode!r}")
        # x/255 then (x - mean)/std  ==  x * a + b
        self.a = torch.tensor([1.0 / (255.0 * s) for s in std]).view(1, -1, 1, 1)
        self.b = torch.tensor([-m / s for m, s in zip(mean, std, strict=True)]).view(1, -1, 1, 1)

    def __call__(self, x: Tensor) -> Tensor:
        a, b = self.a.to(x.device), self.b.to(x.device)
        return x.float() * a + b
