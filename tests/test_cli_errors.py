"""User mistakes give one line naming the problem, never a traceback.

Each case is something a user did (a recipe whose ``base`` loops, a bad flag
value, a hostile image, a checkpoint that does not fit its model) and checks
the exit status and the one-line message on stderr.
"""

from __future__ import annotations

import pytest

from onebit.cli import main


def _one_clean_line(err: str, *needles: str) -> None:
    assert "Traceback" not in err, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], err


# --------------------------------------------------------------------------- #
# recipes
# --------------------------------------------------------------------------- #


def test_recipe_whose_base_is_itself(tmp_path, capsys):
    (tmp_path / "self.toml").write_text('base = "self.toml"\n[model]\nname = "tiny_mlp"\n')
    assert main(["train", "-c", str(tmp_path / "self.toml"), "--print-config"]) == 2
    _one_clean_line(capsys.readouterr().err, "includes itself", "self.toml -> self.toml")


def test_recipe_base_loop_through_another(tmp_path, capsys):
    (tmp_path / "a.toml").write_text('base = "b.toml"\n')
    (tmp_path / "b.toml").write_text('base = "a.toml"\n[data]\nname = "mnist"\n')
    assert main(["train", "-c", str(tmp_path / "a.toml"), "--print-config"]) == 2
    _one_clean_line(capsys.readouterr().err, "a.toml -> b.toml -> a.toml")


@pytest.mark.parametrize("base, msg", [("3", "expected the file name"), ('"gone.toml"', "gone.toml")])
def test_recipe_bad_base(tmp_path, capsys, base, msg):
    (tmp_path / "r.toml").write_text(f"base = {base}\n")
    assert main(["train", "-c", str(tmp_path / "r.toml"), "--print-config"]) == 2
    _one_clean_line(capsys.readouterr().err, msg)


def test_recipe_not_found_suggests_shipped_names(capsys):
    assert main(["train", "-c", "binarynet_mnist_cp", "--print-config"]) == 2
    _one_clean_line(capsys.readouterr().err, "recipe not found", "binarynet_mnist_cpu")
