"""Two gloo processes with a global batch of B train like one process with batch B."""

import json
import os

import pytest
import torch
from conftest import tiny_cfg

from onebit.training.checkpoint import load_checkpoint
from onebit.training.distributed import launch
from onebit.training.loop import train


def test_two_process_gloo_matches_one_process(tmp_path):
    # no BatchNorm / dropout: per-rank BN statistics would differ from one process (use SyncBatchNorm there)
    over = {
        "model.kwargs.bn": "false",
        "model.kwargs.dropout": "0.0",
        "optim.name": '"sgd"',
        "optim.lr": "0.05",
        "train.epochs": "2",
        "train.max_steps": "12",
        "data.batch_size": "64",
    }
    ref = train(tiny_cfg(tmp_path / "one", **over), quiet=True)
    cfg = tiny_cfg(tmp_path / "two", **over)
    launch(cfg, nprocs=2, threads=1)
    ck = load_checkpoint(os.path.join(cfg["train"]["out_dir"], "run", "last.pt"))
    assert ck["global_step"] == 12
    for k, v in ref["model"].state_dict().items():
        assert torch.allclose(v, ck["model"][k], atol=1e-5), k
    assert abs(ck["metrics"]["test_acc"] - ref["metrics"]["test_acc"]) < 1e-6


def _gloo_threads() -> int:
    names = []
    for t in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{t}/comm") as f:
                names.append(f.read().strip())
        except OSError:
            pass
    return sum(n.startswith(("pt_gloo", "gloo")) for n in names)


def _rank_threads_after_cleanup(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from onebit.training import distributed as D

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    info = D.setup("cpu")
    model = DDP(torch.nn.Linear(4, 2))
    model(torch.randn(3, 4)).sum().backward()
    gathered: list = [None] * world
    dist.all_gather_object(gathered, {"rank": rank})  # the last collective, as in checkpoint()
    during = _gloo_threads()
    del model
    D.cleanup(info, finished=True)
    with open(os.path.join(out, f"{rank}.json"), "w") as f:
        json.dump({"during": during, "after": _gloo_threads()}, f)


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads through /proc")
def test_cleanup_joins_gloo_workers_after_ddp(tmp_path):
    """The root cause of the 'terminate called without an active exception' flake: once DDP had
    imported torch.distributed.nn (default args group=group.WORLD), destroy_process_group could
    not free the group, gloo's workers survived into interpreter exit and one, still releasing the
    last collective's tensors, aborted the rank. After cleanup no gloo thread may be left."""
    import torch.multiprocessing as mp

    from onebit.training.distributed import _free_port

    mp.spawn(_rank_threads_after_cleanup, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    for r in (0, 1):
        with open(tmp_path / f"{r}.json") as f:
            n = json.load(f)
        assert n["during"] > 0 and n["after"] == 0, (r, n)
