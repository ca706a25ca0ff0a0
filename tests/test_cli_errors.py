"""User mistakes give one line naming the problem, never a traceback.

Each case is something a user did (a recipe whose ``base`` loops, a bad flag
value, a hostile image, a checkpoint that does not fit its model) and checks
the exit status and the one-line message on stderr.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib

import numpy as np
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


# --------------------------------------------------------------------------- #
# run / bench / inspect / export
# --------------------------------------------------------------------------- #


def _png_header_only(path, width: int, height: int) -> str:
    """A small PNG that declares ``width`` x ``height`` pixels (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    body = zlib.compress(b"\0" * 65536, 9)  # the start of the image: all it takes to look real
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return str(path)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> str:
    import torch

    import onebit
    from onebit.training.tiny import tiny_cnn

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("m") / "tiny.onebit"
    onebit.export(tiny_cnn(in_chans=3).eval(), torch.randn(1, 3, 16, 16), str(path))
    return str(path)


@pytest.mark.parametrize("side, pixels", [(20000, "400,000,000"), (10000, "100,000,000")])
def test_decompression_bomb_is_refused_naming_the_file(tmp_path, capsys, model_file, side, pixels):
    """Above twice Pillow's limit Pillow raises; between once and twice it only warns and would
    decode it all (100 MP = 100 MB here, 300 MB as RGB): both are refused before decoding."""
    bomb = _png_header_only(tmp_path / "bomb.png", side, side)
    assert os.path.getsize(bomb) < 1000
    assert main(["run", model_file, bomb]) == 2
    err = capsys.readouterr().err
    _one_clean_line(err.split("\n", 1)[1] if err.startswith("note:") else err, "bomb.png", pixels, "bomb")


@pytest.mark.parametrize(
    "content, msg",
    [(b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "cannot read image"), (b"hello", "cannot identify image file")],
)
def test_broken_images(tmp_path, capsys, model_file, content, msg):
    bad = tmp_path / "bad.png"
    bad.write_bytes(content)
    assert main(["run", model_file, str(bad)]) == 2
    err = capsys.readouterr().err
    _one_clean_line(err.split("\n", 1)[1] if err.startswith("note:") else err, "bad.png", msg)


def test_truncated_and_missing_images(tmp_path, capsys, model_file):
    from PIL import Image

    full = tmp_path / "full.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(full)
    cut = tmp_path / "cut.png"
    cut.write_bytes(full.read_bytes()[:2000])
    for path, needle in (
        (cut, "cut.png"),
        (tmp_path / "gone.jpg", "image not found"),
        (tmp_path, "not a file"),
    ):
        assert main(["run", model_file, str(path)]) == 2
        err = capsys.readouterr().err
        _one_clean_line(err.split("\n", 1)[1] if err.startswith("note:") else err, needle)


@pytest.mark.parametrize(
    "argv, msg",
    [
        (["bench", "{m}", "--runs", "0"], "argument --runs: must be >= 1, got 0"),
        (["bench", "{m}", "--batch", "-1"], "argument --batch: must be >= 1, got -1"),
        (["bench", "{m}", "--warmup", "-1"], "argument --warmup: must be >= 0, got -1"),
        (["bench", "{m}", "--threads", "-3"], "argument --threads: must be >= 1, got -3"),
        (["run", "{m}", "x.png", "--threads", "-3"], "argument --threads: must be >= 1, got -3"),
        (["run", "{m}", "x.png", "--top", "0"], "argument --top: must be >= 1, got 0"),
        (["run", "{m}", "x.png", "--threads", "two"], "argument --threads: expected an integer, got 'two'"),
        (["export", "tiny", "-o", "x", "--input-size", "0"], "argument --input-size: must be >= 1, got 0"),
        (["bench", "{m}", "--precision", "fp16"], "argument --precision: invalid choice: 'fp16'"),
        (["run", "{m}", "x.png", "--precision", "int4"], "argument --precision: invalid choice: 'int4'"),
    ],
)
def test_bad_numbers_are_usage_errors(argv, msg, capsys, model_file):
    with pytest.raises(SystemExit) as e:
        main([a.replace("{m}", model_file) for a in argv])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err


def test_bench_api_checks_its_numbers(model_file):
    from onebit.runtime.tools import bench

    for kw in ({"runs": 0}, {"warmup": -1}, {"batch": 0}):
        with pytest.raises(ValueError, match="must be an integer >="):
            bench(model_file, **kw)


def test_bench_and_run_take_the_float_precision(capsys, model_file):
    from onebit.cli import FLOAT_PRECISIONS
    from onebit.runtime import FLOAT_PRECISIONS as ENGINE_PRECISIONS

    assert FLOAT_PRECISIONS == ENGINE_PRECISIONS  # the parser's copy of the engine's list
    assert main(["bench", model_file, "--runs", "2", "--precision", "bf16_emulated"]) == 0
    assert "float layers in bf16_emulated" in capsys.readouterr().out


def test_export_to_a_missing_folder(tmp_path, capsys):
    out = tmp_path / "no" / "such" / "dir" / "m.onebit"
    assert main(["export", "binarynet_cifar", "--num-classes", "10", "-o", str(out)]) == 2
    _one_clean_line(capsys.readouterr().err, "m.onebit")


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> tuple[str, dict]:
    import torch

    from onebit.training.checkpoint import build_model, save_checkpoint

    torch.manual_seed(0)
    state = {
        "model": build_model("tiny_cnn", 10, {"width": 16}).state_dict(),
        "model_name": "tiny_cnn",
        "model_kwargs": {"width": 16},
        "input_size": (1, 16, 16),
        "num_classes": 10,
        "config": {},
    }
    path = tmp_path_factory.mktemp("ck") / "good.pt"
    save_checkpoint(str(path), state)
    return str(path), state


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"model_kwargs": {"width": 8}}, "do not fit model 'tiny_cnn'"),  # size mismatch
        ({"model_name": "tiny_mlp", "model_kwargs": {}}, "do not fit model 'tiny_mlp'"),  # another model
        ({"model_kwargs": {"widht": 16}}, "widht"),  # a kwarg the model does not take
        ({"num_classes": 7}, "do not fit"),
    ],
)
@pytest.mark.parametrize("command", [["export", "{ck}", "-o", "{out}"], ["summary", "{ck}"]])
def test_checkpoint_that_does_not_fit_its_model(tmp_path, capsys, tiny_checkpoint, change, needle, command):
    from onebit.training.checkpoint import save_checkpoint

    path, state = tiny_checkpoint
    bad = tmp_path / "bad.pt"
    save_checkpoint(str(bad), {**state, **change})
    argv = [a.replace("{ck}", str(bad)).replace("{out}", str(tmp_path / "x.onebit")) for a in command]
    assert main(argv) == 2
    _one_clean_line(capsys.readouterr().err, needle)
    assert not (tmp_path / "x.onebit").exists()


def test_checkpoint_with_num_classes_flag(capsys, tiny_checkpoint, tmp_path):
    assert main(["export", tiny_checkpoint[0], "-o", str(tmp_path / "x.onebit"), "--num-classes", "3"]) == 2
    _one_clean_line(capsys.readouterr().err, "--num-classes is for registered names")


def test_commands_needing_torch_say_which_extra(tmp_path):
    """Without torch (the plain `pip install onebit`), `onebit train` says to install onebit[train]."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from onebit.cli import main\n"
        "sys.exit(main(['train', '-c', 'binarynet_mnist_cpu', '--epochs', '1']))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    _one_clean_line(r.stderr, "needs torch", "pip install 'onebit[train]'")
