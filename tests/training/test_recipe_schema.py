"""The typed recipe sections: every shipped recipe parses unchanged; bad keys, types and ranges are named."""

import dataclasses
import glob
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

from onebit.training.config import (
    DEFAULTS,
    SECTIONS,
    DataConfig,
    ModelConfig,
    OptimConfig,
    Recipe,
    RecipeError,
    ScheduleConfig,
    TrainConfig,
    _read_toml,
    load_config,
    load_recipe,
)
from onebit.training.recipes import list_recipes

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ALL_FILES = sorted(glob.glob(os.path.join(ROOT, "recipes", "**", "*.toml"), recursive=True))


def _same(a, b) -> bool:
    """Equal as recipe values: 1 == 1.0, a list equals the tuple of its values, tables by key."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b and isinstance(a, bool) == isinstance(b, bool)


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: os.path.relpath(p, os.path.join(ROOT, "recipes")))
def test_every_recipe_file_parses_to_its_own_values(path):
    """Each file in recipes/ (bases included) parses; every key it sets keeps its value, the rest
    are the defaults, and the plain form parses back to the same Recipe."""
    raw = _read_toml(path)
    r = Recipe.from_dict(raw, path)
    plain = r.to_dict()
    for sec, table in raw.items():
        if sec in ("name", "description"):
            assert plain[sec] == table
            continue
        for k, v in table.items():
            assert _same(plain[sec][k], v), (sec, k, plain[sec][k], v)
    for sec, defaults in DEFAULTS.items():
        for k, d in defaults.items():
            if k not in raw.get(sec, {}):
                assert _same(plain[sec][k], d), (sec, k)
    assert Recipe.from_dict(plain, path) == r
    assert json.loads(json.dumps(plain)) == plain  # plain data: what --print-config and checkpoints hold


@pytest.mark.parametrize("name", list_recipes())
def test_every_shipped_recipe_is_complete(name):
    r = load_recipe(name)
    assert r.model.name and r.data.name and r.name == os.path.basename(name)
    assert isinstance(r.optim.lr, float) and isinstance(r.train.epochs, int)
    assert r.train.channels_last in ("auto", True, False) and isinstance(r.optim.betas, tuple)


def test_packaged_recipes_parse_like_the_checkout(tmp_path):
    """The wheel's layout (recipes as package data in onebit/recipes, no checkout, no torch on the
    path): every shipped recipe gives the same plain recipe as here."""
    site = tmp_path / "site"
    shutil.copytree(
        os.path.join(ROOT, "src", "onebit"), site / "onebit", ignore=shutil.ignore_patterns("*.so")
    )
    shutil.copytree(os.path.join(ROOT, "recipes"), site / "onebit" / "recipes")
    code = (
        "import json, onebit\n"
        f"assert onebit.__file__.startswith({str(site)!r}), onebit.__file__\n"
        "from onebit.training.recipes import list_recipes, recipes_dir\n"
        "from onebit.training.config import load_config\n"
        "print(json.dumps({'dir': recipes_dir(), 'recipes': {n: load_config(n) for n in list_recipes()}}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    p = subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(site)},
        timeout=120,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout)
    assert out["dir"] == str(site / "onebit" / "recipes")
    assert sorted(out["recipes"]) == list_recipes() and len(out["recipes"]) >= 40
    for name, plain in out["recipes"].items():
        assert plain == load_config(name), name


def test_values_are_typed_once():
    r = load_recipe(
        None,
        [
            "model.name=tiny_mlp",
            "data.name=synthetic",
            "train.epochs=3.0",  # an integral float is an int
            "optim.lr=1",  # an int is a float
            'train.channels_last="true"',  # the strings of the "auto" switches become bools
            "train.progress=false",
            "schedule.milestones=[1, 2.5]",
            "optim.betas=[0.5, 0.9]",
        ],
    )
    assert r.train.epochs == 3 and type(r.train.epochs) is int
    assert r.optim.lr == 1.0 and type(r.optim.lr) is float
    assert r.train.channels_last is True and r.train.progress is False
    assert r.schedule.milestones == (1, 2.5) and r.optim.betas == (0.5, 0.9)
    assert r.to_dict()["optim"]["betas"] == [0.5, 0.9]  # the plain form has lists, as TOML
    assert set(r.to_dict()) == {"_version", "name", "description", *SECTIONS}


@pytest.mark.parametrize(
    "override, msg",
    [
        ("train.epochs=2.5", "train.epochs = 2.5 has the wrong type; expected an integer"),
        ("train.compile=1", "train.compile = 1 has the wrong type; expected true or false"),
        ("data.augment=yes", "data.augment = 'yes' has the wrong type"),
        ('train.channels_last="on"', "train.channels_last = 'on' has the wrong type"),
        ("model.kwargs=3", "model.kwargs = 3 has the wrong type; expected a table"),
        ('schedule.milestones=["a"]', "schedule.milestones"),
        ("optim.betas=[0.9]", "optim.betas = [0.9]; expected 2 values"),
        ("optim.betas=[0.9, 1.0]", "optim.betas must be in [0.0, 1.0), got 1.0"),
        ("optim.label_smoothing=1.0", "optim.label_smoothing must be in [0, 1)"),
        ("optim.weight_decay=-1e-4", "optim.weight_decay must be >= 0"),
        ("train.eval_every=0", "train.eval_every must be >= 1, got 0"),
        ("train.time_limit_min=-1", "train.time_limit_min must be >= 0"),
        ("diagnostics.histogram_bins=0", "diagnostics.histogram_bins must be > 0"),
        ('schedule.monitor="val_loss"', "schedule.monitor = 'val_loss'; expected one of"),
        ('train.if_exists="append"', "train.if_exists"),
        ("train.seeds=1", "unknown key train.seeds (did you mean 'seed'?)"),
        ("train.device=gpu", "train.device = 'gpu'; expected auto, cpu, cuda, cuda:N"),
    ],
)
def test_bad_values_name_the_key(override, msg):
    with pytest.raises(RecipeError, match=f"^config: .*{re.escape(msg)}"):
        load_recipe(None, ["model.name=tiny_mlp", "data.name=synthetic", override])


def test_cross_section_check_fails_before_anything_runs():
    with pytest.raises(RecipeError, match="distill.cache_logits needs data.augment = false"):
        load_recipe(
            None,
            ["model.name=tiny_mlp", "data.name=cifar10", "distill.teacher=x.pt", "distill.cache_logits=true"],
        )


def test_direct_construction_is_validated_and_frozen():
    with pytest.raises(RecipeError, match="optim.lr must be > 0"):
        OptimConfig(lr=0.0)
    with pytest.raises(RecipeError, match="data.batch_size = '64' has the wrong type"):
        DataConfig(batch_size="64")
    with pytest.raises(RecipeError, match=r"\[optim\] must be a OptimConfig"):
        Recipe(optim={"lr": 1e-3})
    o = OptimConfig(lr=3e-3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.lr = 1.0
    assert dataclasses.replace(o, lr=1e-2).lr == 1e-2
    with pytest.raises(RecipeError, match="optim.lr must be > 0"):
        dataclasses.replace(o, lr=-1.0)  # a changed copy is validated again
    with pytest.raises(RecipeError, match=r"^r.toml: \[schedule\] must be a table, got 3"):
        Recipe.from_dict({"schedule": 3}, "r.toml")
    r = Recipe(model=ModelConfig(name="tiny_mlp"), data=DataConfig(name="synthetic"))
    assert r.require() is r and Recipe.from_dict(r.to_dict()) == r
    with pytest.raises(RecipeError, match="model.name is required"):
        Recipe().require()


def test_schema_version():
    plain = load_config(None, ["model.name=tiny_mlp", "data.name=synthetic"])
    assert plain["_version"] == Recipe.VERSION == 2
    from onebit.nn import VersionMismatchError

    with pytest.raises(VersionMismatchError, match="schema version 3"):
        Recipe.from_dict({**plain, "_version": 3})
    with pytest.raises(RecipeError, match="`base` is resolved when a recipe file is read"):
        Recipe.from_dict({**plain, "base": "other.toml"})


def test_crash_hook_is_out_of_the_schema():
    """train.crash_after_steps was a SIGKILL hook in the production schema (version 1). Version 2
    has no such key: a version-1 dict (no _version, as old checkpoints recorded) with its harmless
    value 0 still reads, any other value is refused, and a version-2 dict does not know the key."""
    assert "crash_after_steps" not in DEFAULTS["train"]
    assert "crash_after_steps" not in {f.name for f in dataclasses.fields(TrainConfig)}
    base = ["model.name=tiny_mlp", "data.name=synthetic"]
    old = load_config(None, [*base, "train.crash_after_steps=0"])
    assert "crash_after_steps" not in old["train"]
    with pytest.raises(RecipeError, match="train.crash_after_steps = 13: this testing hook is no longer"):
        load_config(None, [*base, "train.crash_after_steps=13"])
    plain = load_config(None, base)
    plain["train"]["crash_after_steps"] = 0
    with pytest.raises(RecipeError, match="unknown key train.crash_after_steps"):
        Recipe.from_dict(plain)


def test_schedule_and_optimizer_take_typed_sections_or_tables():
    from onebit.training.loop import build_optimizer
    from onebit.training.schedule import LRSchedule
    from onebit.training.tiny import tiny_mlp

    def lrs(cfg):
        p = torch.nn.Parameter(torch.zeros(1))
        s = LRSchedule(torch.optim.SGD([p], lr=0.1), cfg, 10, 3)
        return [s.apply(i) for i in range(30)]

    table = {"name": "cosine", "warmup_epochs": 0.5, "min_lr": 1e-4}
    assert lrs(table) == lrs(ScheduleConfig(**table))
    with pytest.raises(RecipeError, match="unknown key schedule.warmup"):
        lrs({"name": "cosine", "warmup": 1})
    torch.manual_seed(0)
    m = tiny_mlp()
    a = build_optimizer(m, {"name": "sgd", "lr": 0.5, "momentum": 0.8})
    b = build_optimizer(m, OptimConfig(name="sgd", lr=0.5, momentum=0.8))
    assert type(a) is type(b) is torch.optim.SGD
    assert [(g["lr"], g["momentum"]) for g in a.param_groups] == [
        (g["lr"], g["momentum"]) for g in b.param_groups
    ]


def test_eval_checks_the_recorded_data_table(tmp_path):
    """A checkpoint is an untrusted file: its recorded [data] table goes through DataConfig
    before any loader sees it, and a bad value is named with the file."""
    from conftest import tiny_cfg

    from onebit.training.evaluate import evaluate_checkpoint
    from onebit.training.loop import train

    res = train(tiny_cfg(tmp_path, **{"train.epochs": "1"}), quiet=True)
    good = evaluate_checkpoint(res["checkpoint"], subset=100)
    assert good["data"] == "synthetic" and good["n"] == 100
    ck = torch.load(res["checkpoint"], weights_only=True)
    for key, value, msg in [
        ("eval_batch_size", -5, "data.eval_batch_size must be > 0, got -5"),
        ("normalize", "../../etc", "data.normalize = '../../etc'; expected one of"),
        ("loader", "x", "unknown key data.loader"),
    ]:
        bad = {**ck, "config": {**ck["config"], "data": {**ck["config"]["data"], key: value}}}
        path = str(tmp_path / f"bad_{key}.pt")
        torch.save(bad, path)
        with pytest.raises(RecipeError, match=re.escape(f"{path}: recorded recipe: {msg}")):
            evaluate_checkpoint(path, subset=100)
    with pytest.raises(RecipeError, match="data.test_subset must be >= 0"):
        evaluate_checkpoint(res["checkpoint"], subset=-1)
