"""What a .onebit file records besides the graph, and what `onebit run` does with it.

`onebit export CHECKPOINT` records the recipe's evaluation preprocessing
(channels, resize, center crop, mean/std) and its data set's class names;
`onebit run` applies the first and prints the second. Checked against the
training side itself: the recorded mean/std reproduce onebit.data.Normalize,
the resize/crop reproduce torchvision's evaluation transforms, and the class
names are what onebit.data loads.
"""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
import torch
from PIL import Image

import onebit
from onebit.cli import main
from onebit.export import DATASET_CLASSES, model_cfg_preprocess, recipe_labels, recipe_preprocess
from onebit.runtime.format import read_model_file
from onebit.runtime.tools import DEFAULT_PREPROCESS, preprocess_image
from onebit.training.checkpoint import build_model, save_checkpoint
from onebit.training.config import load_config

DATA = os.environ.get("ONEBIT_DATA") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data")
)


def _recipe(data: str, **sets: str) -> dict:
    over = ['model.name="tiny_cnn"', f'data.name="{data}"', *(f"{k}={v}" for k, v in sets.items())]
    return load_config(None, over)


def _checkpoint(path, data: str, size: tuple[int, int, int], **sets: str) -> str:
    """A onebit checkpoint of a tiny CNN (random weights, randomized BN) trained, nominally, on ``data``."""
    cfg = _recipe(data, **sets)
    torch.manual_seed(0)
    model = build_model("tiny_cnn", 10, {"in_chans": size[0]})
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    state = {
        "model": model.state_dict(),
        "model_name": "tiny_cnn",
        "model_kwargs": {"in_chans": size[0]},
        "input_size": size,
        "num_classes": 10,
        "config": cfg,
    }
    save_checkpoint(str(path), state)
    return str(path)


def _png(path, size: tuple[int, int], mode: str, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path)
    return str(path)


# --------------------------------------------------------------------------- #
# what the recipe implies
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "data, normalize, channels",
    [
        ("mnist", "standard", 1),
        ("mnist", "pm1", 1),
        ("fashion_mnist", "none", 1),
        ("cifar10", "standard", 3),
        ("cifar10", "pm1", 3),
        ("synthetic", "standard", 1),
    ],
)
def test_recorded_mean_std_is_the_training_normalization(data, normalize, channels):
    from onebit.data import Normalize

    size = (channels, 28, 28) if channels == 1 else (channels, 32, 32)
    spec = recipe_preprocess(_recipe(data, **{"data.normalize": f'"{normalize}"'}), size)
    assert spec["channels"] == channels and spec["resize"] == size[1] and spec["crop"] == size[1]
    assert spec["dataset"] == data and spec["normalize"] == normalize
    pixels = torch.randint(0, 256, (4, channels, 5, 5), dtype=torch.uint8)
    want = Normalize(normalize, data, channels)(pixels).numpy()
    mean = np.asarray(spec["mean"], np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(spec["std"], np.float32).reshape(1, -1, 1, 1)
    got = (pixels.numpy().astype(np.float32) / 255.0 - mean) / std
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_imagenet_recipe_preprocess_follows_its_loader():
    cfg = _recipe(
        "imagenet", **{"data.image_size": "192", "data.resize_size": "220", "data.normalize": '"pm1"'}
    )
    spec = recipe_preprocess(cfg, (3, 192, 192))
    assert (spec["resize"], spec["crop"]) == (220, 192)
    assert spec["mean"] == pytest.approx([0.485, 0.456, 0.406])  # imagenet_transforms ignore normalize
    # exported at another size (--input-size 96): the resize keeps its ratio to the crop
    assert (recipe_preprocess(cfg, (3, 96, 96))["resize"], recipe_preprocess(cfg, (3, 96, 96))["crop"]) == (
        110,
        96,
    )
    assert recipe_preprocess(cfg, (784,)) is None and recipe_preprocess({}, (3, 32, 32)) is None


def test_zoo_cfg_preprocess():
    spec = model_cfg_preprocess(onebit.models.get_cfg("binary_resnet_e18"), (3, 64, 64))
    assert (spec["resize"], spec["crop"], spec["channels"]) == (73, 64, 3)
    spec = model_cfg_preprocess(onebit.models.get_cfg("binarynet_mlp"), (1, 28, 28))
    assert (spec["resize"], spec["mean"], spec["std"]) == (28, [0.1307], [0.3081])


@pytest.mark.parametrize(
    "name, folder", [("mnist", "mnist"), ("fashion_mnist", "fashion-mnist"), ("cifar10", "cifar10")]
)
def test_dataset_class_names_are_what_onebit_data_loads(name, folder, tmp_path):
    from onebit.data import load_arrays

    if not os.path.exists(os.path.join(DATA, folder)):
        pytest.fail(f"{DATA}/{folder} not found: point ONEBIT_DATA at the shared data directory")
    data = load_arrays(name, DATA, str(tmp_path), False, 20, False)
    assert list(data.classes) == DATASET_CLASSES[name] == recipe_labels(_recipe(name))


def test_synthetic_class_names():
    from onebit.data import load_arrays

    assert list(load_arrays("synthetic", "", "", False, 8).classes) == DATASET_CLASSES["synthetic"]


def test_imagefolder_labels_are_its_sorted_class_folders(tmp_path):
    for split in ("train", "val"):
        for c in ("zebra", "apple", "mango"):
            (tmp_path / "imagenet" / split / c).mkdir(parents=True)
    (tmp_path / "imagenet" / "train" / "notes.txt").write_text("not a class")
    cfg = _recipe("imagenet")
    assert recipe_labels(cfg, data_dir=str(tmp_path)) == ["apple", "mango", "zebra"]
    assert recipe_labels(cfg, data_dir=str(tmp_path / "nowhere")) is None  # tree not on this machine


def test_run_matches_torchvision_evaluation_transforms():
    """resize (short side, bilinear) + center crop + normalize, as the ImageNet recipes evaluate."""
    from torchvision import transforms as T

    files = sorted(glob.glob(os.path.join(DATA, "imagenet-sample", "*", "*.JPEG")))[:4]
    if not files:
        pytest.fail(f"no ImageNet sample images under {DATA}; set ONEBIT_DATA")
    spec = dict(DEFAULT_PREPROCESS, resize=73, crop=64)
    tv = T.Compose([T.Resize(73), T.CenterCrop(64), T.ToTensor(), T.Normalize(spec["mean"], spec["std"])])
    for f in files:
        with Image.open(f) as im:
            want = tv(im.convert("RGB")).numpy()
        np.testing.assert_allclose(preprocess_image(f, spec, 3, (64, 64)), want, atol=1e-5)


# --------------------------------------------------------------------------- #
# onebit export CHECKPOINT -> onebit run
# --------------------------------------------------------------------------- #


def test_cifar_checkpoint_run_prints_class_names(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "cifar.pt", "cifar10", (3, 32, 32))
    out = tmp_path / "cifar.onebit"
    assert main(["export", ckpt, "-o", str(out)]) == 0
    meta = read_model_file(str(out)).meta
    assert meta["labels"] == DATASET_CLASSES["cifar10"]
    assert meta["preprocess"] == recipe_preprocess(_recipe("cifar10"), (3, 32, 32))
    capsys.readouterr()
    photo = _png(tmp_path / "photo.png", (48, 40), "RGB")
    assert main(["run", str(out), photo, "--top", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [ln.split() for ln in lines[1:4]]
    assert all(len(r) >= 3 and " ".join(r[2:]) == DATASET_CLASSES["cifar10"][int(r[1])] for r in rows), lines


def test_run_feeds_the_engine_what_training_fed_the_model(tmp_path):
    """A 32x32 image goes through `onebit run` exactly as onebit.data normalized CIFAR-10 in training."""
    from onebit.data import Normalize
    from onebit.training.checkpoint import load_model

    ckpt = _checkpoint(tmp_path / "cifar.pt", "cifar10", (3, 32, 32))
    out = tmp_path / "cifar.onebit"
    assert main(["export", ckpt, "-o", str(out)]) == 0
    img = _png(tmp_path / "x.png", (32, 32), "RGB", seed=3)
    spec = read_model_file(str(out)).meta["preprocess"]
    x = preprocess_image(img, spec, 3, (32, 32))
    pixels = torch.from_numpy(np.asarray(Image.open(img)).transpose(2, 0, 1).copy())[None]
    want = Normalize("standard", "cifar10", 3)(pixels)
    np.testing.assert_allclose(x[None], want.numpy(), atol=1e-5)
    model, _ = load_model(ckpt)
    with torch.no_grad():
        ref = model(want).numpy()
    got = onebit.runtime.load(str(out)).run(x[None])
    assert int(np.argmax(got)) == int(np.argmax(ref))


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_one_channel_model_runs_on_gray_and_color_images(tmp_path, capsys, mode):
    ckpt = _checkpoint(tmp_path / "mnist.pt", "mnist", (1, 28, 28), **{"data.normalize": '"pm1"'})
    out = tmp_path / "mnist.onebit"
    assert main(["export", ckpt, "-o", str(out)]) == 0
    assert read_model_file(str(out)).meta["preprocess"]["mean"] == [0.5]
    capsys.readouterr()
    assert main(["run", str(out), _png(tmp_path / "digit.png", (28, 28), mode), "--top", "1"]) == 0
    cap = capsys.readouterr()
    assert " - " in cap.out.splitlines()[1] and cap.err == ""  # "  41.00%     4  4 - four"


def test_file_without_preprocessing_one_channel(tmp_path, capsys):
    """Files exported without preprocess (the Python API, older onebit): 1-channel models still run."""
    torch.manual_seed(0)
    model = build_model("tiny_cnn", 10, {"in_chans": 1}).eval()
    out = tmp_path / "old.onebit"
    onebit.export(model, torch.randn(1, 1, 28, 28), str(out))
    assert main(["run", str(out), _png(tmp_path / "g.png", (30, 30), "L")]) == 0
    cap = capsys.readouterr()
    assert "records no preprocessing" in cap.err
    rows = [ln.split() for ln in cap.out.splitlines()[1:6]]
    assert all(len(r) == 2 for r in rows), cap.out  # "  41.00%     4": the class number once


def test_export_labels_file_and_inspect(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "c.pt", "synthetic", (1, 12, 12))
    names = tmp_path / "names.txt"
    names.write_text("".join(f"pattern {i}\n" for i in range(10)) + "\n")
    out = tmp_path / "s.onebit"
    assert main(["export", ckpt, "-o", str(out), "--labels", str(names)]) == 0
    assert read_model_file(str(out)).meta["labels"] == [f"pattern {i}" for i in range(10)]
    capsys.readouterr()
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "labels: 10 (pattern 0, pattern 1" in text
    assert "preprocess: grayscale, short side to 12, center crop 12x12" in text
    names.write_text("a\nb\n")
    assert main(["export", ckpt, "-o", str(out), "--labels", str(names)]) == 2
    assert "2 labels for a model with 10 outputs" in capsys.readouterr().err


def test_export_api_checks_preprocess_and_labels(tmp_path):
    torch.manual_seed(0)
    model = build_model("tiny_cnn", 10, {"in_chans": 1}).eval()
    x = torch.randn(1, 1, 28, 28)
    with pytest.raises(ValueError, match="expected 1 finite number for a 1-channel input"):
        onebit.export(model, x, tmp_path / "a.onebit", preprocess=dict(DEFAULT_PREPROCESS))
    with pytest.raises(ValueError, match="std"):
        onebit.export(model, x, tmp_path / "a.onebit", preprocess={"mean": [0.0], "std": [0.0]})
    with pytest.raises(ValueError, match="3 labels for a model with 10 outputs"):
        onebit.export(model, x, tmp_path / "a.onebit", labels=["a", "b", "c"])
    onebit.export(
        model, x, tmp_path / "a.onebit", preprocess={"resize": 32, "crop": 28, "mean": (0.5,), "std": (0.5,)}
    )
    assert read_model_file(str(tmp_path / "a.onebit")).meta["preprocess"] == {
        "resize": 32,
        "crop": 28,
        "mean": [0.5],
        "std": [0.5],
        "channels": 1,
    }
