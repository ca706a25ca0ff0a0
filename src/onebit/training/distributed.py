"""Data-parallel training: one code path from 1 CPU process to many GPUs on many nodes.

``torchrun --nproc_per_node N -m onebit train ...`` sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:func:`setup` sees them and joins the process group (NCCL when the process
has a GPU, gloo otherwise). Without them it is a no-op and the run is a
plain single process. Rank 0 logs and checkpoints; every rank loads the
same checkpoint on resume.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "all_reduce_sum", "barrier", "broadcast_object", "cleanup", "setup"]


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def setup(device_pref: str = "auto") -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), local, False)
    use_cuda = torch.cuda.is_available() and device_pref in ("auto", "cuda") or device_pref.startswith("cuda")
    backend = os.environ.get("ONEBIT_DIST_BACKEND") or ("nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local)
    _import_group_defaults()
    dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistInfo(rank, world, local, True)


def _import_group_defaults() -> None:
    """Import ``torch.distributed.nn`` while no process group exists. Call before ``init_process_group``.

    Its functions take ``group=group.WORLD`` as default arguments, evaluated at import. DDP imports
    it lazily, i.e. after ``init_process_group``, so those defaults would hold the live world group
    for good: ``destroy_process_group`` then cannot free it and gloo's worker threads outlive it.
    At interpreter exit a worker still releasing the last collective's tensors needs the GIL,
    gets ``pthread_exit`` inside a C++ destructor instead, and the rank dies with SIGABRT
    ("terminate called without an active exception"), at random, more often on busy cores.
    Imported first, the defaults are ``None`` and ``destroy_process_group`` joins the workers.
    """
    import importlib

    importlib.import_module("torch.distributed.nn")


def cleanup(info: DistInfo, *, finished: bool = False) -> None:
    """Leave and destroy the process group this process joined in :func:`setup`.

    ``finished``: every rank got here normally, so wait for all of them first (no rank tears
    down its side while rank 0 is still writing the checkpoint). After an error, no barrier: the
    other ranks may never arrive, and leaving lets their next collective fail instead of hang.
    """
    if info.initialized_here and dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every rank (picklable; a no-op without a process group)."""
    if info.enabled and dist.is_initialized():
        box = [obj if info.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]
    return obj


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled and dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawned(rank: int, cfg: dict, world: int, port: int, threads: int) -> None:
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    if threads:
        torch.set_num_threads(threads)
    from onebit.training.loop import train

    train(cfg, quiet=rank != 0)


def launch(cfg: dict, nprocs: int, threads: int = 1) -> None:
    """Run ``train(cfg)`` in ``nprocs`` local processes (what torchrun does, without torchrun).

    Rank 0 writes the run directory and checkpoints, as under torchrun.
    """
    import torch.multiprocessing as mp

    mp.spawn(_spawned, args=(cfg, nprocs, _free_port(), threads), nprocs=nprocs, join=True)
