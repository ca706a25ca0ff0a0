"""Two gloo processes with a global batch of B train like one process with batch B."""

import os

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
