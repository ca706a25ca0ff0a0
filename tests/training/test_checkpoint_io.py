"""Checkpoint writing loses nothing (full disk, interrupts, killed writers); old files still load."""

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from conftest import tiny_cfg, tiny_train_args

import onebit.training.checkpoint as C
from onebit.training.loop import train


def _full_disk_open(after_bytes: int = 1000, fail_from_call: int = 1):
    """An ``open`` for checkpoint.py whose ``"wb"`` files hit ENOSPC after ``after_bytes``
    (from the ``fail_from_call``-th such file on), like a disk filling up mid-write."""
    real_open = open
    calls = {"wb": 0}

    class Full:
        def __init__(self, f):
            self.f, self.n = f, 0

        def write(self, b):
            if self.n + len(b) > after_bytes:
                self.f.write(bytes(b)[: max(0, after_bytes - self.n)])  # a partial file, as on a real disk
                self.n = after_bytes
                raise OSError(errno.ENOSPC, "No space left on device")
            self.n += len(b)
            return self.f.write(b)

        def __getattr__(self, k):
            return getattr(self.f, k)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()

    def fake_open(path, mode="r", *a, **k):
        f = real_open(path, mode, *a, **k)
        if mode == "wb":
            calls["wb"] += 1
            if calls["wb"] >= fail_from_call:
                return Full(f)
        return f

    return fake_open


def _temps(d) -> list[str]:
    return [f for f in os.listdir(d) if ".tmp" in f]


def test_disk_full_removes_temp_and_names_the_path(tmp_path, monkeypatch):
    path = str(tmp_path / "last.pt")
    C.save_checkpoint(path, {"w": torch.zeros(10)})  # the previous checkpoint
    monkeypatch.setattr(C, "open", _full_disk_open(), raising=False)
    with pytest.raises(OSError) as ei:
        C.save_checkpoint(path, {"w": torch.zeros(100_000)})
    assert ei.value.errno == errno.ENOSPC
    msg = str(ei.value)
    assert "disk full" in msg and path in msg and "previous file is intact" in msg
    assert "unexpected pos" not in msg
    assert _temps(tmp_path) == []
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.zeros(10))


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_any_failure_removes_the_temp_file(tmp_path, monkeypatch, exc):
    def boom(*a, **k):
        raise exc("interrupted")

    monkeypatch.setattr(C.torch, "save", boom)
    with pytest.raises(exc):
        C.save_checkpoint(str(tmp_path / "last.pt"), {"w": torch.zeros(3)})
    assert os.listdir(tmp_path) == []


def test_real_tmpfs_fills_up(tmp_path):
    """A 256 KiB tmpfs (in a private mount namespace): torch's own ENOSPC failure, end to end."""
    if not shutil.which("unshare"):
        pytest.skip("needs unshare(1) for a private tmpfs")
    mnt = tmp_path / "small"
    mnt.mkdir()
    code = textwrap.dedent(
        f"""
        import json, os, torch
        from onebit.training.checkpoint import save_checkpoint
        p = os.path.join({str(mnt)!r}, "last.pt")
        save_checkpoint(p, {{"w": torch.zeros(1000)}})
        try:
            save_checkpoint(p, {{"w": torch.zeros(1_000_000)}})  # 4 MB into 256 KiB
            out = {{"raised": None}}
        except OSError as e:
            out = {{"raised": e.errno, "msg": str(e)}}
        out["files"] = sorted(os.listdir({str(mnt)!r}))
        out["old_ok"] = torch.load(p, weights_only=True)["w"].numel() == 1000
        print(json.dumps(out))
        """
    )
    inner = f'mount -t tmpfs -o size=256k tmpfs {mnt} || exit 77; exec {sys.executable} -c "$0"'
    p = subprocess.run(
        ["unshare", "-rm", "sh", "-c", inner, code], capture_output=True, text=True, timeout=120
    )
    if p.returncode == 77 or "unshare failed" in p.stderr or "Operation not permitted" in p.stderr:
        pytest.skip(f"cannot mount a private tmpfs here: {p.stderr.strip()[-200:]}")
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["raised"] == errno.ENOSPC and "disk full" in out["msg"], out
    assert out["files"] == ["last.pt"] and out["old_ok"], out


def test_train_on_a_full_disk_fails_in_one_line_then_resumes(tmp_path, monkeypatch, capsys):
    from onebit.cli import main

    args = tiny_train_args(tmp_path, epochs=2)
    monkeypatch.setattr(C, "open", _full_disk_open(fail_from_call=2), raising=False)  # epoch 2's last.pt
    rc = main(args)
    err = capsys.readouterr().err
    run = tmp_path / "run"
    assert rc == 1 and len(err.strip().splitlines()) == 1, err
    assert "disk full" in err and str(run / "last.pt") in err
    assert _temps(run) == []
    assert C.load_checkpoint(str(run / "last.pt"))["epoch"] == 1  # epoch 1's checkpoint survives
    monkeypatch.undo()  # space freed
    rc = main([*args, "--resume"])
    assert rc == 0 and C.load_checkpoint(str(run / "last.pt"))["epoch"] == 2


def test_stale_temp_files_are_swept_at_start(tmp_path, capsys):
    cfg = tiny_cfg(tmp_path, **{"train.epochs": "1"})
    res = train(cfg, quiet=True)
    run = res["run_dir"]
    for name in ("last.pt.tmp4242", "best.pt.tmp", "metrics.jsonl.tmp77"):
        with open(os.path.join(run, name), "wb") as f:
            f.write(b"partial")
    with open(os.path.join(run, "notes.tmp1"), "w") as f:  # not ours: left alone
        f.write("mine")
    cfg["train"]["resume"] = "auto"
    train(cfg)
    out = capsys.readouterr().out
    assert _temps(run) == ["notes.tmp1"]
    assert out.count("removed a stale temporary file") == 3


def test_rng_state_round_trip_is_plain_data():
    st = C.capture_rng()
    a = (np.random.rand(3), torch.rand(3), __import__("random").random())  # noqa: NPY002
    C.restore_rng(st)
    b = (np.random.rand(3), torch.rand(3), __import__("random").random())  # noqa: NPY002
    assert np.array_equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[2] == b[2]
    kind, keys, pos, has_gauss, cached = st["numpy"]
    assert isinstance(keys, list) and all(isinstance(k, int) for k in keys[:5])


def _as_version_1(path: str) -> None:
    """Rewrite a checkpoint as onebit version 1 did: NumPy RNG states as ndarrays."""
    ck = torch.load(path, weights_only=True)

    def old(st):
        kind, keys, pos, has_gauss, cached = st["numpy"]
        return dict(st, numpy=(kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))

    ck["version"] = 1
    ck["rng"] = old(ck["rng"])
    ck["rng_per_rank"] = {r: old(s) for r, s in ck["rng_per_rank"].items()}
    torch.save(ck, path)


def test_version_1_checkpoint_loads_and_resumes_exactly(tmp_path):
    """Older onebit stored np.random.get_state() (an ndarray): read under weights_only with exactly
    the NumPy array types allowed, converted to lists, and the resume is still exact."""
    over = {"train.epochs": "2", "optim.lr": "0.01"}
    ref = train(tiny_cfg(tmp_path / "ref", **over), quiet=True)
    cfg = tiny_cfg(tmp_path / "old", **over, **{"train.max_steps": "8"})  # stop after epoch 1 of 2
    train(cfg, quiet=True)
    last = os.path.join(cfg["train"]["out_dir"], "run", "last.pt")
    _as_version_1(last)
    with pytest.raises(Exception, match="numpy"):
        torch.load(last, weights_only=True)  # what torch alone says about it
    ck = C.load_checkpoint(last)
    assert ck["version"] == 1 and isinstance(ck["rng"]["numpy"][1], list)
    cfg["train"]["max_steps"], cfg["train"]["resume"] = 0, "auto"
    res = train(cfg, quiet=True)
    for k, v in ref["model"].state_dict().items():
        assert torch.equal(v, res["model"].state_dict()[k]), k


def test_numpy_allowance_is_only_uint32_arrays(tmp_path):
    path = str(tmp_path / "obj.pt")
    ck = {"format": C.FORMAT, "version": 1, "model": {}, "x": np.array([1, "a"], dtype=object)}
    torch.save(ck, path)
    with pytest.raises(ValueError, match="refused, not loaded"):
        C.load_checkpoint(path)
