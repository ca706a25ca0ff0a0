"""A run killed with SIGKILL mid-epoch and resumed ends with the weights of an uninterrupted run."""

import json
import os
import signal

import torch
from conftest import run_killed_after, tiny_cfg

from onebit.training.checkpoint import load_checkpoint
from onebit.training.loop import train

# tiny_mlp has BatchNorm and dropout (the torch RNG state matters), Adam + warm-up + cosine.
OVER = {
    "train.epochs": "3",
    "train.ckpt_every_steps": "5",
    "schedule.name": '"cosine"',
    "schedule.warmup_epochs": "0.5",
    "optim.lr": "0.01",
    "optim.bipolar": "1e-4",
}


def test_sigkill_mid_epoch_then_resume_is_exact(tmp_path):
    ref = train(tiny_cfg(tmp_path / "ref", **OVER), quiet=True)
    # 8 steps per epoch: die after step 13 (epoch 2, batch 5 of 8); last checkpoint after step 10.
    cfg = tiny_cfg(tmp_path / "crash", **OVER)
    p = run_killed_after(cfg, 13)
    assert p.returncode == -signal.SIGKILL, p.stderr.decode()[-2000:]
    last = os.path.join(cfg["train"]["out_dir"], "run", "last.pt")
    ck = load_checkpoint(last)
    assert (ck["epoch"], ck["step_in_epoch"], ck["global_step"]) == (1, 2, 10)

    cfg["train"]["resume"] = "auto"
    res = train(cfg, quiet=True)
    assert res["global_step"] == ref["global_step"] == 24
    a, b = ref["model"].state_dict(), res["model"].state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert res["metrics"]["test_acc"] == ref["metrics"]["test_acc"]
    assert res["metrics"]["train_loss"] == ref["metrics"]["train_loss"]  # epoch sums survive the crash
    recs = [json.loads(x) for x in open(os.path.join(res["run_dir"], "metrics.jsonl"))]
    assert [r["epoch"] for r in recs] == [0, 1, 2]


def test_best_and_last_checkpoints_and_resume_of_finished_run(tmp_path):
    cfg = tiny_cfg(tmp_path)
    res = train(cfg, quiet=True)
    d = res["run_dir"]
    assert os.path.exists(os.path.join(d, "last.pt")) and os.path.exists(os.path.join(d, "best.pt"))
    assert not [f for f in os.listdir(d) if ".tmp" in f]  # atomic writes leave no temporaries
    ck = load_checkpoint(os.path.join(d, "last.pt"))
    assert ck["epoch"] == 2 and ck["step_in_epoch"] == 0
    assert ck["model_name"] == "tiny_mlp" and tuple(ck["input_size"]) == (1, 12, 12)
    cfg["train"]["resume"] = "auto"
    res2 = train(cfg, quiet=True)  # nothing left to do: same weights
    for k, v in res["model"].state_dict().items():
        assert torch.equal(v, res2["model"].state_dict()[k])
