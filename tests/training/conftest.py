import os

import pytest

# The real data sets beside the checkout (scripts/test exports ONEBIT_DATA to the same place).
DATA = os.environ.get("ONEBIT_DATA") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data")
)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One cache for the session (MNIST extraction, decoded CIFAR subsets)."""
    return str(tmp_path_factory.mktemp("onebit_cache"))


@pytest.fixture(autouse=True)
def _env(monkeypatch, cache_dir):
    monkeypatch.setenv("ONEBIT_DATA", DATA)
    monkeypatch.setenv("ONEBIT_CACHE", cache_dir)


def need_data(sub: str) -> None:
    """The loader tests run on the real data: its absence is a failure, not a skip."""
    if not os.path.exists(os.path.join(DATA, sub)):
        pytest.fail(f"{DATA}/{sub} not found: point ONEBIT_DATA at the shared data directory")


def tiny_cfg(tmp_path, **over):
    """A small, fast, fully specified recipe on the synthetic data set."""
    from onebit.training.config import load_config

    sets = {
        "model.name": '"tiny_mlp"',
        "data.name": '"synthetic"',
        "data.batch_size": "64",
        "data.train_subset": "512",
        "data.test_subset": "256",
        "train.epochs": "2",
        "train.out_dir": f'"{tmp_path}"',
        "train.progress": "false",
        "diagnostics.tensorboard": "false",
        "diagnostics.plots": "false",
        "train.threads": "1",
    }
    sets.update({k: v for k, v in over.items()})
    return load_config(None, [f"{k}={v}" for k, v in sets.items()])


def tiny_train_args(out_dir, *extra: str, epochs: int = 1) -> list[str]:
    """`onebit train` arguments for the tiny synthetic run the CLI tests use."""
    return [
        "train",
        "--set",
        "model.name=tiny_mlp",
        "data.name=synthetic",
        "data.train_subset=256",
        "data.test_subset=128",
        "data.batch_size=64",
        f"train.epochs={epochs}",
        "train.progress=false",
        "diagnostics.tensorboard=false",
        "diagnostics.plots=false",
        f"train.out_dir={out_dir}",
        *extra,
    ]


#: Run in a fresh interpreter by :func:`run_killed_after`: train the recipe in argv[1] and
#: SIGKILL the process after argv[2] optimizer steps (after that step's periodic checkpoint),
#: as a preempted job dies. A test-only callback: the hook is in no recipe.
_KILL_AFTER = """
import json, os, signal, sys
from onebit.training import Callback, Trainer

class KillAfterSteps(Callback):
    def __init__(self, n):
        self.n = n

    def on_step_end(self, trainer, step):
        if step.global_step >= self.n:
            os.kill(os.getpid(), signal.SIGKILL)

Trainer(json.loads(sys.argv[1]), quiet=True, callbacks=[KillAfterSteps(int(sys.argv[2]))]).fit()
"""


def run_killed_after(cfg, steps: int):
    """Train ``cfg`` (a load_config dict) in a subprocess that SIGKILLs itself after ``steps`` steps."""
    import json
    import subprocess
    import sys

    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-c", _KILL_AFTER, json.dumps(cfg), str(steps)],
        env=env,
        capture_output=True,
        timeout=300,
    )
