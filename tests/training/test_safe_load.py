"""Loading a checkpoint never runs code from it, through any entry point.

Three crafted files, each a complete onebit checkpoint apart from its trap:

* ``pickle``: a pickled ``os.system("touch MARKER")`` in place of the weights
  (zip format as ``torch.save`` writes, and a bare legacy pickle);
* ``hub``: ``model_name = "torch.hub:load"`` with kwargs pointing at a local
  directory whose ``hubconf.py`` touches the marker;
* ``shell``: ``model_name = "subprocess:check_call"`` with a shell command.

Every entry point (``onebit eval``, ``export``, ``summary``, ``train --resume``
and a distillation teacher) must leave the marker absent and fail with one
line naming the problem.
"""

import os
import pickle

import pytest
import torch
from conftest import tiny_cfg, tiny_train_args

from onebit.training.checkpoint import FORMAT, load_checkpoint, load_model
from onebit.training.loop import train

GADGETS = ["pickle", "pickle_legacy", "hub", "shell"]


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def honest(tmp_path_factory):
    """A real tiny_mlp checkpoint (1 epoch on synthetic data) to graft the traps onto."""
    d = tmp_path_factory.mktemp("honest")
    res = train(tiny_cfg(d, **{"train.epochs": "1"}), quiet=True)
    return load_checkpoint(res["checkpoint"])


def _craft(kind: str, honest: dict, d) -> tuple[str, str]:
    """Write the trapped checkpoint ``kind`` into ``d``; return (path, marker path)."""
    marker = str(d / f"PWNED-{kind}")
    ck = dict(honest)
    path = str(d / f"{kind}.pt")
    if kind.startswith("pickle"):
        ck["model"] = _Payload(marker)
        if kind == "pickle_legacy":
            with open(path, "wb") as f:
                pickle.dump(ck, f, protocol=2)  # torch's legacy format; reaches the GLOBAL
        else:
            torch.save(ck, path)
        return path, marker
    if kind == "hub":
        hub = d / "hubrepo"
        hub.mkdir(exist_ok=True)
        (hub / "hubconf.py").write_text(
            f"open({marker!r}, 'w').close()\n\ndef m(num_classes=10):\n    import torch\n"
            "    return torch.nn.Linear(144, num_classes)\n"
        )
        ck["model_name"] = "torch.hub:load"
        ck["model_kwargs"] = {"repo_or_dir": str(hub), "model": "m", "source": "local"}
    else:
        ck["model_name"] = "subprocess:check_call"
        ck["model_kwargs"] = {"args": f"touch {marker}", "shell": True}
    torch.save(ck, path)
    return path, marker


def _train_args(tmp_path, *extra: str) -> list[str]:
    return tiny_train_args(tmp_path / "runs", *extra)


ENTRY_POINTS = {
    "eval": lambda p, tmp: ["eval", p],
    "export": lambda p, tmp: ["export", p, "-o", str(tmp / "m.onebit")],
    "summary": lambda p, tmp: ["summary", p],
    "train_resume": lambda p, tmp: [*_train_args(tmp), "--resume", p],
    "distill_teacher": lambda p, tmp: _train_args(tmp, f'distill.teacher="{p}"'),
}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("kind", GADGETS)
def test_trapped_checkpoint_never_runs(kind, entry, honest, tmp_path, capsys):
    from onebit.cli import main

    path, marker = _craft(kind, honest, tmp_path)
    rc = main(ENTRY_POINTS[entry](path, tmp_path))
    err = capsys.readouterr().err
    assert not os.path.exists(marker), f"{entry} ran the {kind} payload"
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("onebit "), err  # one clear line, no traceback
    if kind.startswith("pickle"):
        assert "refused, not loaded" in err and "system" in err and "nothing in it was run" in err
    elif entry == "train_resume":  # the model is built from the recipe; the file's name only mismatches
        assert "checkpoint is a" in err and ":" in err
    else:
        assert "'module:callable' import" in err and "--trust-code" in err


def test_trust_code_is_the_only_way_in(honest, tmp_path):
    """The hub gadget is live: with an explicit opt-in it does run (so the tests above would see it)."""
    path, marker = _craft("hub", honest, tmp_path)
    with pytest.raises(ValueError, match="module:callable"):
        load_model(path)
    assert not os.path.exists(marker)
    try:
        load_model(path, trust_code=True)
    except Exception:
        pass  # the weights do not fit the Linear: irrelevant, the import already happened
    assert os.path.exists(marker)


def test_module_callable_from_the_recipe_and_from_a_trusted_file(tmp_path):
    """A recipe's own "module:callable" is the user's choice: honoured; a file naming one needs trust."""
    res = train(tiny_cfg(tmp_path, **{"model.name": '"onebit.training.tiny:tiny_mlp"', "train.epochs": "1"}))
    with pytest.raises(ValueError, match="--trust-code"):
        load_model(res["checkpoint"])
    model, meta = load_model(res["checkpoint"], trust_code=True)
    assert meta["model_name"] == "onebit.training.tiny:tiny_mlp"
    for k, v in res["model"].state_dict().items():
        assert torch.equal(v, model.state_dict()[k])


def test_saved_checkpoints_are_plain_data(tmp_path):
    """What onebit writes loads with torch's own weights_only=True and no allowlist."""
    res = train(tiny_cfg(tmp_path, **{"train.epochs": "1"}), quiet=True)
    for name in ("last.pt", "best.pt"):
        ck = torch.load(os.path.join(res["run_dir"], name), weights_only=True)
        assert ck["format"] == FORMAT and ck["version"] == 2
        assert isinstance(ck["rng"]["numpy"][1], list)


def test_bad_files_give_one_clear_error(tmp_path, honest, capsys):
    from onebit.cli import main

    (tmp_path / "text.pt").write_text("not a checkpoint")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    torch.save({k: v for k, v in honest.items() if k != "model"}, tmp_path / "incomplete.pt")
    torch.save(dict(honest, model={"0.weight": torch.zeros(1)}), tmp_path / "misfit.pt")
    torch.save(dict(honest, model_name=7), tmp_path / "badname.pt")
    expect = {
        "text.pt": "not a readable checkpoint",
        "other.pt": "not a onebit training checkpoint",
        "incomplete.pt": "no 'model' entry",
        "misfit.pt": "weights do not fit model 'tiny_mlp'",
        "badname.pt": "model name must be a non-empty string",
    }
    for name, msg in expect.items():
        for cmd in ("eval", "summary", "export"):
            extra = ["-o", str(tmp_path / "m.onebit")] if cmd == "export" else []
            rc = main([cmd, str(tmp_path / name), *extra])
            err = capsys.readouterr().err
            assert rc == 2 and msg in err and len(err.strip().splitlines()) == 1, (name, cmd, err)
