"""The README quick start (examples/quickstart.py) learns on real CIFAR-10 and runs the same in the engine.

The README's version converts torchvision's ResNet-18 and trains 300 steps of 128
images; here :func:`main` runs on a narrower, shallower ResNet built from
torchvision's own BasicBlock (so with the same ReLUs in front of every binary
conv) for 200 steps of 64 images from 5,000 training images, on one thread
(31-33% on 1,000 test images with seeds 0 and 1).
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import re

import pytest
import torch
from torch import nn
from torchvision.models.resnet import BasicBlock

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "quickstart.py"
DATA = os.environ.get("ONEBIT_DATA") or str(ROOT.parent / "shared" / "data")


def _example():
    spec = importlib.util.spec_from_file_location("onebit_quickstart", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _readme_quick_start() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def small_resnet(width: int = 16) -> nn.Module:
    """A float ResNet of torchvision BasicBlocks: 3x3/2 stem + BN + ReLU, 3 blocks, avgpool, fc."""

    def down(cin: int, cout: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(cin, cout, 1, stride=2, bias=False), nn.BatchNorm2d(cout))

    w = width
    return nn.Sequential(
        nn.Conv2d(3, w, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(w),
        nn.ReLU(inplace=True),
        BasicBlock(w, w),
        BasicBlock(w, 2 * w, 2, down(w, 2 * w)),
        BasicBlock(2 * w, 4 * w, 2, down(2 * w, 4 * w)),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4 * w, 10),
    )


def test_quickstart_learns_and_the_engine_agrees(tmp_path, monkeypatch):
    if not os.path.exists(os.path.join(DATA, "cifar10")):
        pytest.fail(f"{DATA}/cifar10 not found: point ONEBIT_DATA at the shared data directory")
    monkeypatch.setenv("ONEBIT_DATA", DATA)
    monkeypatch.setenv("ONEBIT_CACHE", str(tmp_path / "cache"))
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res = _example().main(
            steps=200,
            batch_size=64,
            train_images=5_000,
            test_images=1_000,
            path=str(tmp_path / "quickstart.onebit"),
            model=small_resnet(),
            verbose=False,
        )
    finally:
        torch.set_num_threads(prev)
    assert res["torch_acc"] > 0.20, res  # chance is 10%; with the ReLUs kept it stays there
    assert abs(res["engine_acc"] - res["torch_acc"]) <= 0.01, res
    assert res["same_prediction"] >= 0.98, res
    assert (tmp_path / "quickstart.onebit").stat().st_size > 0


def test_readme_quick_start_is_the_example():
    """The README's code compiles and makes the same onebit calls as examples/quickstart.py."""
    code = _readme_quick_start()
    compile(code, "README.md quick start", "exec")
    example = EXAMPLE.read_text()
    calls = re.findall(r"onebit(?:\.\w+)+\(|BinarizeConfig\([^)]*\)|from onebit[\w.]* import [\w, ]+", code)
    assert len(calls) >= 8
    for call in calls:
        assert call in example, f"README quick start uses {call!r}, examples/quickstart.py does not"
    for api in ("onebit.binarize_(", "onebit.export(", "onebit.runtime.load(", "load_arrays("):
        assert api in code
