"""`onebit export`, `inspect`, `run` and `bench` on zoo models and real images."""

from __future__ import annotations

import glob
import os

import pytest

from onebit.cli import main

DATA = os.environ.get(
    "ONEBIT_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data")
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "bre18.onebit"
    assert main(["export", "binary_resnet_e18", "--input-size", "64", "-o", str(path)]) == 0
    return path


def test_inspect(exported, capsys):
    assert main(["inspect", str(exported)]) == 0
    out = capsys.readouterr().out
    assert "bconv2d" in out and "packed binary" in out and "binary_resnet_e18" in out


def test_run_real_images(exported, capsys):
    images = sorted(glob.glob(os.path.join(DATA, "imagenet-sample", "*", "*.JPEG")))[:3]
    if not images:
        pytest.fail(f"no ImageNet sample images under {DATA}; set ONEBIT_DATA")
    assert main(["run", str(exported), *images, "--top", "5"]) == 0
    out = capsys.readouterr().out
    assert out.count("%") == 15 and "image(s) in" in out


def test_bench(exported, capsys):
    assert main(["bench", str(exported), "--runs", "3"]) == 0
    out = capsys.readouterr().out
    assert "p50" in out and "bconv2d" in out


def test_cli_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.onebit"
    bad.write_bytes(b"garbage" * 20)
    assert main(["inspect", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "not a .onebit file" in err and "Traceback" not in err
    assert main(["run", str(tmp_path / "missing.onebit"), "x.jpg"]) == 2
    assert "not found" in capsys.readouterr().err
