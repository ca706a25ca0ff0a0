"""Reproducible, resumable, shardable batch iterators.

Both loaders share one contract, which resume and DDP rely on:

* the sample order of epoch ``e`` is a pure function of ``(seed, e)``;
* ``batches(epoch, start)`` yields the epoch's global batches from number
  ``start`` on (a resumed run skips the consumed ones without touching them);
* ``batch_size`` is the GLOBAL batch; rank ``r`` of ``world`` ranks takes the
  ``r``-th contiguous slice of every global batch (what DistributedSampler
  does, but batch-aligned), so N processes see exactly the samples one
  process would, and averaged gradients equal the one-process gradient.

:class:`TensorLoader` holds uint8 tensors in memory and augments on tensors;
its augmentation randomness comes from a generator seeded with
``(seed, epoch, batch)`` and drawn for the whole global batch, so it too is
identical across resumes and world sizes. :class:`FolderLoader` decodes
images with DataLoader workers (PIL augmentation: the order is reproducible,
the random crops are not).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from onebit.data.transforms import Normalize

__all__ = ["FolderLoader", "TensorLoader", "epoch_permutation", "mix_seed"]


def mix_seed(*parts: int) -> int:
    """A stable 63-bit seed from integers (splitmix-style mixing, no Python hash randomization)."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h ^= (int(p) + 0x9E3779B97F4A7C15 + ((h << 6) & 0xFFFFFFFFFFFFFFFF) + (h >> 2)) & 0xFFFFFFFFFFFFFFFF
        h = (h * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    return h & 0x7FFFFFFFFFFFFFFF


def epoch_permutation(n: int, seed: int, epoch: int, shuffle: bool = True) -> Tensor:
    if not shuffle:
        return torch.arange(n)
    g = torch.Generator().manual_seed(mix_seed(seed, epoch, 17))
    return torch.randperm(n, generator=g)


def _rank_slice(global_bs: int, rank: int, world: int) -> tuple[int, int]:
    local = global_bs // world
    return rank * local, (rank + 1) * local


class TensorLoader:
    """Batches of an in-memory uint8 data set, augmented and normalized on tensors.

    Args:
        images, labels: uint8 (N, C, H, W) and int64 (N,).
        batch_size: global batch size (must divide by ``world`` when training).
        train: shuffle + drop the last partial batch + augment; else fixed order, all samples.
        augment: ``(x_uint8_batch, gen, total, offset) -> x`` or None.
        normalize: uint8 -> float32.
        rank, world: this process's place in data-parallel training.
        device: where batches go (the tensors stay on the CPU unless ``device`` holds them).
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        batch_size: int,
        *,
        train: bool,
        seed: int = 0,
        augment: Callable[..., Tensor] | None = None,
        normalize: Normalize | None = None,
        rank: int = 0,
        world: int = 1,
        device: torch.device | str = "cpu",
    ) -> None:
        if train and batch_size % world:
            raise ValueError(f"data.batch_size={batch_size} must be divisible by the world size {world}")
        self.images, self.labels = images, labels
        self.batch_size, self.train, self.seed = batch_size, train, seed
        self.augment, self.normalize = augment, normalize
        self.rank, self.world = rank, world
        self.device = torch.device(device)
        self.n = int(labels.shape[0])

    def __len__(self) -> int:
        if self.train:
            return self.n // self.batch_size
        return (self.n + self.batch_size - 1) // self.batch_size

    @property
    def num_samples(self) -> int:
        return len(self) * self.batch_size if self.train else self.n

    def batches(self, epoch: int = 0, start: int = 0) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """Yield ``(x, y, idx)`` for global batches ``start..len-1`` of ``epoch`` (this rank's slice)."""
        perm = epoch_permutation(self.n, self.seed, epoch, self.train)
        non_blocking = self.device.type == "cuda"
        for b in range(start, len(self)):
            gidx = perm[b * self.batch_size : (b + 1) * self.batch_size]
            total = gidx.numel()
            if self.train:
                lo, hi = _rank_slice(total, self.rank, self.world)
            else:  # evaluation: interleaved shards, every sample exactly once
                lo, hi = 0, total
                gidx = gidx[self.rank :: self.world]
            idx = gidx[lo:hi]
            x = self.images[idx]
            if self.augment is not None and self.train:
                gen = torch.Generator().manual_seed(mix_seed(self.seed, epoch, b, 99))
                x = self.augment(x, gen, total, lo)
            x = x.to(self.device, non_blocking=non_blocking)
            if self.normalize is not None:
                x = self.normalize(x)
            yield x, self.labels[idx].to(self.device, non_blocking=non_blocking), idx


class _IndexedDataset(torch.utils.data.Dataset):
    def __init__(self, ds: torch.utils.data.Dataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)  # type: ignore[arg-type]

    def __getitem__(self, i: int):
        x, y = self.ds[i]
        return x, y, i


class FolderLoader:
    """Batches of an on-disk (ImageFolder) data set decoded by DataLoader workers.

    Same contract as :class:`TensorLoader`.
    """

    def __init__(
        self,
        dataset: torch.utils.data.Dataset,
        batch_size: int,
        *,
        train: bool,
        seed: int = 0,
        workers: int = 2,
        rank: int = 0,
        world: int = 1,
        device: torch.device | str = "cpu",
    ) -> None:
        if train and batch_size % world:
            raise ValueError(f"data.batch_size={batch_size} must be divisible by the world size {world}")
        self.ds = _IndexedDataset(dataset)
        self.batch_size, self.train, self.seed = batch_size, train, seed
        self.workers, self.rank, self.world = workers, rank, world
        self.device = torch.device(device)
        self.n = len(dataset)  # type: ignore[arg-type]
        self.normalize = None

    def __len__(self) -> int:
        if self.train:
            return max(1, self.n // self.batch_size) if self.n >= self.batch_size else 0
        return (self.n + self.batch_size - 1) // self.batch_size

    @property
    def num_samples(self) -> int:
        return len(self) * self.batch_size if self.train else self.n

    def batches(self, epoch: int = 0, start: int = 0) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        perm = epoch_permutation(self.n, self.seed, epoch, self.train)
        plan = []
        for b in range(start, len(self)):
            gidx = perm[b * self.batch_size : (b + 1) * self.batch_size]
            if self.train:
                lo, hi = _rank_slice(gidx.numel(), self.rank, self.world)
                plan.append(gidx[lo:hi].tolist())
            else:
                plan.append(gidx[self.rank :: self.world].tolist())
        plan = [p for p in plan if p]
        if not plan:
            return
        dl = torch.utils.data.DataLoader(
            self.ds,
            batch_sampler=plan,
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )
        nb = self.device.type == "cuda"
        for x, y, idx in dl:
            yield x.to(self.device, non_blocking=nb), y.to(self.device, non_blocking=nb), idx
