"""onebit for people outside this repository: the torch-free install, shipped recipes, build trees.

The torch-free install (``pip install onebit``: numpy and Pillow) is tested here
by running ``python -m onebit.cli`` in a subprocess whose ``torch``,
``torchvision``, ``rich``, ``tqdm``, ``matplotlib`` and ``tensorboard``
imports fail (``sys.modules[name] = None``), not by building a wheel: a wheel
build compiles the C++ engine from scratch, over two minutes on this 2-core
machine. ``scripts/check_wheel.sh`` does the real thing (wheel, clean venv with
numpy + Pillow only, the commands, the dev tree untouched), run by hand.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, "tests", "runtime", "golden", "mnist_mlp.onebit")
#: What the [train] extra brings; none of it may be needed by the deployment commands.
TRAIN_ONLY = ("torch", "torchvision", "rich", "tqdm", "matplotlib", "tensorboard")

_BLOCK = "import sys\nfor _m in {mods!r}:\n    sys.modules[_m] = None\n"


def _pyproject() -> dict:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def _without_train_extra(code: str, cwd: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter in which every [train] module fails to import."""
    prelude = _BLOCK.format(mods=TRAIN_ONLY)
    check = (
        "\nbad = sorted(m for m in sys.modules if m.split('.')[0] in {mods!r} and sys.modules[m] is not None)"
    )
    check += "\nassert not bad, bad\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + code + check.format(mods=TRAIN_ONLY)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def _cli(argv: list[str]) -> str:
    return f"from onebit.cli import main\nrc = main({argv!r})\nassert rc == 0, rc\n"


# --------------------------------------------------------------------------- #
# the torch-free install
# --------------------------------------------------------------------------- #


def test_core_dependencies_are_numpy_and_pillow():
    project = _pyproject()["project"]
    names = [re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0].lower() for d in project["dependencies"]]
    assert names == ["numpy", "pillow"]
    train = [
        re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0].lower() for d in project["optional-dependencies"]["train"]
    ]
    assert set(TRAIN_ONLY) <= set(train)


@pytest.fixture(scope="module")
def digit(tmp_path_factory) -> str:
    from PIL import Image

    path = tmp_path_factory.mktemp("img") / "digit.png"
    img = np.zeros((28, 28), np.uint8)
    img[6:22, 12:16] = 255  # a "1"
    Image.fromarray(img, "L").save(path)
    return str(path)


@pytest.mark.parametrize(
    "argv, expect",
    [
        (["info"], "kernel path"),
        (["inspect", GOLDEN], "bdense"),
        (["bench", GOLDEN, "--runs", "3", "--warmup", "1", "--threads", "1"], "share of time"),
        (["run", GOLDEN, "{digit}", "--top", "3"], " - "),
    ],
    ids=lambda v: v[0] if isinstance(v, list) else None,
)
def test_runtime_commands_without_the_train_extra(argv, expect, digit, tmp_path):
    r = _without_train_extra(_cli([a.replace("{digit}", digit) for a in argv]), str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert expect in r.stdout and "Traceback" not in r.stderr
    if argv[0] in ("inspect", "bench"):  # rich is absent: plain aligned tables
        assert "---" in r.stdout and "┃" not in r.stdout


def test_runtime_api_without_the_train_extra(tmp_path):
    code = (
        "import numpy as np, onebit, onebit.runtime as rt\n"
        f"m = rt.load({GOLDEN!r}, num_threads=1)\n"
        "y = m.run(np.zeros(m.input_shape, np.float32))\n"
        "assert y.shape == (1, 10), y.shape\n"
        "assert 'bdense' in rt.ops()\n"
    )
    r = _without_train_extra(code, str(tmp_path))
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize(
    "argv", [["train", "-c", "binarynet_mnist_cpu"], ["export", "binarynet_mlp", "-o", "x"]]
)
def test_training_commands_name_the_extra(argv, tmp_path):
    r = _without_train_extra(
        f"from onebit.cli import main\nsys.exit(main({argv!r}))\n".replace("sys.exit", "rc = "),
        str(tmp_path),
    )
    assert r.returncode == 0, r.stderr
    assert "pip install 'onebit[train]'" in r.stderr and "Traceback" not in r.stderr


def test_recipe_reading_needs_no_torch(tmp_path):
    """`onebit train --print-config` (recipes, overrides, validation) runs in the plain install."""
    r = _without_train_extra(_cli(["train", "-c", "binarynet_mnist_cpu", "--print-config"]), str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert '"binarynet_mlp"' in r.stdout


def test_env_script_installs_what_the_tests_import():
    """scripts/_env.sh installs with --no-deps: it must name every [train] and dev dependency itself."""
    with open(os.path.join(ROOT, "scripts", "_env.sh")) as f:
        script = f.read()
    with open(os.path.join(ROOT, "requirements", "dev.txt")) as f:
        dev = {ln.split(">")[0].split("=")[0].strip().lower() for ln in f if ln.strip() and ln[0] != "#"}
    installed = set(
        re.findall(r"[A-Za-z][\w.-]*", " ".join(ln for ln in script.splitlines() if "install" in ln))
    )
    project = _pyproject()["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["train"]]
    for req in wanted:
        name = re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0]
        assert name in installed or name.lower() in dev, f"scripts/_env.sh does not install {name}"
    for tool in ("pytest", "hypothesis", "ruff", "scikit-build-core", "nanobind"):
        assert tool in dev


# --------------------------------------------------------------------------- #
# recipes as package data
# --------------------------------------------------------------------------- #


def test_wheel_ships_the_recipes():
    packages = _pyproject()["tool"]["scikit-build"]["wheel"]["packages"]
    assert packages == {"onebit": "src/onebit", "onebit/recipes": "recipes"}


def test_every_recipe_is_listed_and_found_by_name(tmp_path, monkeypatch):
    from onebit.training.recipes import find_recipe, list_recipes

    monkeypatch.chdir(tmp_path)  # outside the checkout: names, not paths
    on_disk = sorted(
        os.path.relpath(os.path.join(d, f), os.path.join(ROOT, "recipes"))[: -len(".toml")].replace(
            os.sep, "/"
        )
        for d, _, files in os.walk(os.path.join(ROOT, "recipes"))
        for f in files
        if f.endswith(".toml") and not f.startswith("_")
    )
    assert list_recipes() == on_disk and "binarynet_mnist_cpu" in on_disk
    want = os.path.join(ROOT, "recipes", "binarynet_mnist_cpu.toml")
    for name in ("binarynet_mnist_cpu", "binarynet_mnist_cpu.toml", "recipes/binarynet_mnist_cpu.toml"):
        assert os.path.samefile(find_recipe(name), want)
    assert os.path.samefile(
        find_recipe("experiments/cifar_base"), os.path.join(ROOT, "recipes", "experiments", "cifar_base.toml")
    )
    with pytest.raises(FileNotFoundError, match="recipe not found"):
        find_recipe("../pyproject")  # names never leave the recipes folder


def test_own_recipe_inherits_a_shipped_one(tmp_path, monkeypatch):
    from onebit.training.config import load_config

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.toml").write_text('base = "binarynet_mnist_cpu.toml"\n[train]\nepochs = 1\n')
    cfg = load_config("mine.toml")
    assert cfg["train"]["epochs"] == 1 and cfg["model"]["name"] == "binarynet_mlp" and cfg["name"] == "mine"


def test_installed_layout_finds_packaged_recipes(tmp_path):
    """onebit/recipes/ inside the package (the wheel's layout), no checkout around it."""
    site = tmp_path / "site"
    shutil.copytree(
        os.path.join(ROOT, "src", "onebit"), site / "onebit", ignore=shutil.ignore_patterns("*.so")
    )
    shutil.copytree(os.path.join(ROOT, "recipes"), site / "onebit" / "recipes")
    code = (
        "import os, onebit\n"
        f"assert onebit.__file__.startswith({str(site)!r}), onebit.__file__\n"
        "from onebit.training.recipes import recipes_dir\n"
        "from onebit.training.config import load_config\n"
        f"assert recipes_dir() == os.path.join({str(site)!r}, 'onebit', 'recipes'), recipes_dir()\n"
        "cfg = load_config('recipes/binarynet_cifar10_cpu60.toml')\n"  # a two-level base chain
        "print(cfg['name'], cfg['model']['name'], cfg['train']['time_limit_min'])\n"
    )
    # -S: no site-packages, so the checkout's editable install cannot redirect `import onebit`
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(site)},
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:2] == ["binarynet_cifar10_cpu60", "binarynet_cifar"]


def test_recipes_command_lists_shipped_recipes(capsys):
    from onebit.cli import main

    assert main(["recipes", "*mnist_cpu*"]) == 0
    cap = capsys.readouterr()
    assert cap.out.split() == ["binarynet_mnist_cpu"] and "1 recipes in" in cap.err


# --------------------------------------------------------------------------- #
# build trees
# --------------------------------------------------------------------------- #


def test_wheel_builds_never_share_the_editable_build_tree():
    """Only the editable install keeps build/<wheel tag>; wheels build in a temporary directory."""
    skb = _pyproject()["tool"]["scikit-build"]
    assert "build-dir" not in skb  # wheels, sdists, `pip install .`: a fresh temporary tree
    editable = [o for o in skb.get("overrides", []) if o.get("if", {}).get("state") == "editable"]
    assert len(editable) == 1 and editable[0]["build-dir"] == "build/{wheel_tag}"
    assert all("build-dir" not in o or o in editable for o in skb.get("overrides", []))
