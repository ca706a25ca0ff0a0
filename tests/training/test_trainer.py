"""The Trainer's pieces: docs/training.md's snippets run, an own loop over the pieces equals fit(),
overridden pieces and callbacks are used."""

import os
import pathlib
import re

import pytest
import torch
from conftest import need_data, tiny_cfg

from onebit.training import Callback, Recipe, Trainer
from onebit.training.checkpoint import load_checkpoint
from onebit.training.loop import train

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _trainer_snippets() -> list[str]:
    text = (ROOT / "docs" / "training.md").read_text()
    section = text.split("## The Trainer: your own step, callbacks or loop", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_docs_snippets_run(tmp_path, monkeypatch, capsys):
    need_data("mnist")
    snippets = _trainer_snippets()
    assert len(snippets) == 2
    monkeypatch.chdir(tmp_path)
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    subclass: dict = {}
    own: dict = {}
    try:
        exec(compile(snippets[0], "docs/training.md: Trainer subclass", "exec"), subclass)
        exec(compile(snippets[1], "docs/training.md: own loop", "exec"), own)
    finally:
        torch.set_num_threads(prev)
    m = subclass["result"]["metrics"]
    # StopAt(0.80) ends the 5-epoch run at the first epoch that reaches 80%
    assert m["test_acc"] >= 0.80 or m["epoch"] == 4, m
    assert m["epoch"] < 4, f"the focal-loss MLP did not reach 80% on MNIST in 5 epochs: {m}"
    assert load_checkpoint("runs/focal/last.pt")["epoch"] == m["epoch"] + 1
    assert own["record"]["epoch"] == 1 and own["record"]["test_acc"] > 0.5
    assert load_checkpoint("runs/own_loop/last.pt")["global_step"] == 2 * 20  # 2000 images, batch 100
    out = capsys.readouterr().out
    assert "epochs, test top-1" in out and "loss" in out


def test_own_loop_over_the_pieces_equals_fit(tmp_path):
    over = {"train.epochs": "2", "optim.lr": "0.01", "schedule.name": '"cosine"', "optim.bipolar": "1e-4"}
    ref = train(tiny_cfg(tmp_path / "fit", **over), quiet=True)
    cfg = tiny_cfg(tmp_path / "own", **over)
    with Trainer(cfg, quiet=True) as t:
        for epoch in range(t.start_epoch, t.recipe.train.epochs):
            start = t.begin_epoch(epoch)
            for batch, (x, y, idx) in enumerate(t.train_loader.batches(epoch, start), start):
                t.train_step(x, y, idx, batch)
            rec = t.end_epoch(epoch)
        res = t.finish()
    for k, v in ref["model"].state_dict().items():
        assert torch.equal(v, res["model"].state_dict()[k]), k
    assert rec["test_acc"] == ref["metrics"]["test_acc"] and res["global_step"] == ref["global_step"]


def test_overridden_loss_is_the_one_trained(tmp_path):
    class NoLearning(Trainer):
        def compute_loss(self, output, x, y, idx):
            return output.float().sum() * 0.0  # zero gradients: Adam moves nothing

    t = NoLearning(tiny_cfg(tmp_path, **{"train.epochs": "1", "optim.weight_clip": "false"}), quiet=True)
    t.setup()
    before = {n: p.detach().clone() for n, p in t.model.named_parameters()}
    res = t.fit()  # setup() already done: fit() does not repeat it
    assert res["global_step"] == 8
    for n, p in res["model"].named_parameters():
        assert torch.equal(p, before[n]), n
    assert res["metrics"]["train_loss"] == 0.0


def test_callbacks_see_every_step_and_can_stop_the_run(tmp_path):
    seen: list = []

    class Spy(Callback):
        def on_fit_start(self, trainer):
            seen.append(("start", trainer.global_step))

        def on_step_end(self, trainer, step):
            seen.append(("step", step.epoch, step.batch, step.global_step))
            assert step.output.shape == (step.target.numel(), 10) and not step.output.requires_grad
            if step.global_step == 11:
                trainer.request_stop()

        def on_epoch_end(self, trainer, record):
            seen.append(("epoch", record["epoch"], "test_acc" in record))

        def on_fit_end(self, trainer, result):
            seen.append(("end", result["global_step"]))

    res = Trainer(tiny_cfg(tmp_path, **{"train.epochs": "3"}), quiet=True, callbacks=[Spy()]).fit()
    steps = [s for s in seen if s[0] == "step"]
    assert steps[0] == ("step", 0, 0, 1) and steps[-1] == ("step", 1, 2, 11) and len(steps) == 11
    assert seen[0] == ("start", 0) and seen[-1] == ("end", 11)
    assert [s for s in seen if s[0] == "epoch"] == [
        ("epoch", 0, True),
        ("epoch", 1, True),
    ]  # evaluated at the stop
    ck = load_checkpoint(os.path.join(res["run_dir"], "last.pt"))
    assert (ck["epoch"], ck["step_in_epoch"], ck["global_step"]) == (1, 3, 11)  # resumable where it stopped


def test_an_error_in_a_piece_leaves_nothing_open(tmp_path):
    class Broken(Trainer):
        def train_step(self, x, y, idx, batch=0):
            raise RuntimeError("boom")

    t = Broken(tiny_cfg(tmp_path), quiet=True)
    with pytest.raises(RuntimeError, match="boom"):
        t.fit()
    assert t.logger is None and t._undo_fast is None  # logger closed, fast_ste undone
    t.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed; make a new one"):
        t.fit()


def test_time_budget_stops_checkpointed_and_evaluated(tmp_path):
    """A budget used up after the first step: the run stops there, evaluates, and its checkpoint
    resumes at batch 1 with the elapsed time carried over (so a resume stops again at once)."""
    cfg = tiny_cfg(
        tmp_path, **{"train.time_limit_min": "1e-9", "schedule.name": '"cosine"', "schedule.by_time": "true"}
    )
    res = train(cfg, quiet=True)
    assert res["global_step"] == 1 and "test_acc" in res["metrics"]
    ck = load_checkpoint(res["checkpoint"])
    assert (ck["epoch"], ck["step_in_epoch"], ck["global_step"]) == (0, 1, 1)
    assert ck["extra"]["elapsed_s"] > 0
    assert Recipe.from_dict(ck["config"]) == Recipe.from_dict(cfg)  # the recorded recipe, whole
    cfg["train"]["resume"] = "auto"
    again = train(cfg, quiet=True)
    assert again["global_step"] == 2  # one more step, then out of time again


def test_a_failed_setup_closes_and_a_trainer_sets_up_once(tmp_path):
    class NoData(Trainer):
        def build_data(self):
            raise FileNotFoundError("no data here")

    t = NoData(tiny_cfg(tmp_path), quiet=True)
    with pytest.raises(FileNotFoundError, match="no data here"), t:
        pass
    assert t._closed  # left the process group, closed the logger
    with pytest.raises(RuntimeError, match="runs once"):
        t.setup()
