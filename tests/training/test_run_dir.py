"""A second run never silently reuses runs/NAME: refuse, --overwrite, a fresh NAME-2, or --resume."""

import json
import os

import pytest
from conftest import tiny_cfg, tiny_train_args

from onebit.training.loop import train
from onebit.training.rundir import resolve_run_dir


def _read(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _epochs(run_dir) -> list[int]:
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(ln)["epoch"] for ln in f if ln.strip()]


def test_second_run_is_refused_and_the_first_is_untouched(tmp_path):
    cfg = tiny_cfg(tmp_path, **{"diagnostics.tensorboard": "true"})
    first = train(cfg, quiet=True)
    d = first["run_dir"]
    before = {f: _read(os.path.join(d, f)) for f in ("best.pt", "last.pt", "metrics.jsonl")}
    with pytest.raises(ValueError) as ei:
        train(tiny_cfg(tmp_path, **{"train.max_steps": "2"}), quiet=True)
    msg = str(ei.value)
    assert "already holds a run" in msg and "best.pt" in msg and "--resume" in msg and "--overwrite" in msg
    assert {f: _read(os.path.join(d, f)) for f in before} == before
    assert len(os.listdir(os.path.join(d, "tb"))) == 1


def test_overwrite_replaces_the_whole_run(tmp_path):
    train(tiny_cfg(tmp_path, **{"diagnostics.tensorboard": "true", "train.epochs": "3"}), quiet=True)
    cfg = tiny_cfg(tmp_path, **{"diagnostics.tensorboard": "true", "train.if_exists": '"overwrite"'})
    res = train(cfg, quiet=True)
    assert _epochs(res["run_dir"]) == [0, 1]  # only the new run's records
    assert len(os.listdir(os.path.join(res["run_dir"], "tb"))) == 1  # one event file, not two runs'


def test_new_picks_a_fresh_suffixed_directory(tmp_path, capsys):
    first = train(tiny_cfg(tmp_path), quiet=True)
    best = _read(os.path.join(first["run_dir"], "best.pt"))
    res = train(tiny_cfg(tmp_path, **{"train.if_exists": '"new"'}))
    assert res["run_dir"] == first["run_dir"] + "-2"
    assert f"writing to {res['run_dir']}" in capsys.readouterr().out
    assert _read(os.path.join(first["run_dir"], "best.pt")) == best
    res3 = train(tiny_cfg(tmp_path, **{"train.if_exists": '"new"'}), quiet=True)
    assert res3["run_dir"] == first["run_dir"] + "-3"


def test_cli_refusal_is_one_line_and_overwrite_flag_works(tmp_path, capsys):
    from onebit.cli import main

    args = tiny_train_args(tmp_path)
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "already holds a run" in err
    assert main([*args, "--overwrite"]) == 0
    assert main([*args, "--resume", "--overwrite"]) == 2
    assert "pass one" in capsys.readouterr().err


def test_resume_auto_without_checkpoint_starts_clean(tmp_path):
    """A run killed before its first checkpoint: --resume starts over in the same directory, and
    records of the epoch that never checkpointed are dropped instead of mixed in."""
    d = tmp_path / "run"
    d.mkdir()
    (d / "metrics.jsonl").write_text(json.dumps({"kind": "epoch", "epoch": 0, "train_loss": 9.0}) + "\n")
    res = train(tiny_cfg(tmp_path, **{"train.resume": '"auto"'}), quiet=True)
    assert _epochs(res["run_dir"]) == [0, 1]


def test_resolve_run_dir_rules(tmp_path):
    d = str(tmp_path / "r")
    assert resolve_run_dir(d, "").path == d  # nothing there
    os.makedirs(d)
    open(os.path.join(d, "best.pt"), "w").close()
    with pytest.raises(ValueError, match="already holds a run"):
        resolve_run_dir(d, "auto")  # a best.pt without last.pt is still an earlier result
    with pytest.raises(ValueError, match="if_exists"):
        resolve_run_dir(d, "", "replace")
    with pytest.raises(FileNotFoundError):
        resolve_run_dir(d, str(tmp_path / "missing.pt"))
    open(os.path.join(d, "notes.txt"), "w").close()
    assert resolve_run_dir(d, "", "overwrite").path == d
    assert os.listdir(d) == ["notes.txt"]  # only onebit's own files are removed
