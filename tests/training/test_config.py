import glob
import os

import pytest

from onebit.training.cli import split_dotted_flags
from onebit.training.config import DEFAULTS, apply_overrides, load_config, parse_value

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECIPES = sorted(glob.glob(os.path.join(ROOT, "recipes", "*.toml")))


def test_recipes_exist():
    names = {os.path.basename(p) for p in RECIPES}
    for want in ("binarynet_mnist.toml", "binarynet_cifar10.toml", "tang_alexnet.toml"):
        assert want in names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: os.path.basename(p))
def test_every_recipe_parses(path):
    cfg = load_config(path)
    assert cfg["model"]["name"] and cfg["data"]["name"]
    assert set(cfg) >= set(DEFAULTS)


def test_parse_value_types():
    assert parse_value("1e-3") == 1e-3
    assert parse_value("64") == 64
    assert parse_value("true") is True
    assert parse_value("[30, 60]") == [30, 60]
    assert parse_value('"x"') == "x"
    assert parse_value("binarynet_mlp") == "binarynet_mlp"  # bare strings stay strings


def test_overrides_and_defaults(tmp_path):
    p = tmp_path / "r.toml"
    p.write_text('[model]\nname = "tiny_mlp"\n[data]\nname = "mnist"\n[optim]\nlr = 0.1\n')
    cfg = load_config(str(p), ["optim.lr=1e-3", "data.batch_size=64", "model.kwargs.hidden=32"])
    assert cfg["optim"]["lr"] == 1e-3
    assert cfg["data"]["batch_size"] == 64
    assert cfg["model"]["kwargs"] == {"hidden": 32}
    assert cfg["optim"]["name"] == "adam"  # default filled in
    assert cfg["name"] == "r"


def test_base_inheritance(tmp_path):
    (tmp_path / "big.toml").write_text(
        '[model]\nname = "tiny_mlp"\n[data]\nname = "mnist"\n[train]\nepochs = 100\n'
    )
    (tmp_path / "small.toml").write_text('base = "big.toml"\n[train]\nepochs = 2\n')
    cfg = load_config(str(tmp_path / "small.toml"))
    assert cfg["train"]["epochs"] == 2 and cfg["data"]["name"] == "mnist"


@pytest.mark.parametrize(
    "override, msg",
    [
        ("optim.lrr=1", "did you mean 'lr'"),
        ("optimizer.lr=1", "unknown section [optimizer]"),
        ("optim.lr=fast", "wrong type"),
        ("optim.name=rmsprop", "expected one of"),
        ("data.batch_size=0", "must be > 0"),
        ("nodot=1", "section.key"),
        ("distill.alpha=2.0", "alpha"),
    ],
)
def test_bad_config_errors(override, msg):
    with pytest.raises(ValueError, match=msg.replace("[", r"\[").replace("]", r"\]")):
        load_config(None, ["model.name=tiny_mlp", "data.name=mnist", override])


def test_missing_recipe_and_required_fields(tmp_path):
    with pytest.raises(FileNotFoundError, match="recipe not found"):
        load_config(str(tmp_path / "nope.toml"))
    with pytest.raises(ValueError, match="model.name is required"):
        load_config(None, ["data.name=mnist"])
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\nname=")
    with pytest.raises(ValueError, match="invalid TOML"):
        load_config(str(bad))


def test_dotted_flags():
    assert split_dotted_flags(["--optim.lr", "1e-3", "--data.batch_size=64", "--train.compile"]) == [
        "optim.lr=1e-3",
        "data.batch_size=64",
        "train.compile=true",
    ]
    assert apply_overrides({}, ["a.b.c=1"]) == {"a": {"b": {"c": 1}}}


def test_cli_print_config_and_clean_errors(capsys):
    from onebit.cli import main

    rc = main(
        [
            "train",
            "--config",
            RECIPES[0],
            "--set",
            "optim.lr=0.5",
            "--data.batch_size",
            "32",
            "--print-config",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0 and '"lr": 0.5' in out and '"batch_size": 32' in out
    rc = main(["train", "--config", RECIPES[0], "--set", "optim.lrr=1"])
    err = capsys.readouterr().err
    assert rc == 2 and "did you mean 'lr'" in err and len(err.strip().splitlines()) == 1
