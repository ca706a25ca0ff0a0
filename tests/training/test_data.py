import os

import pytest
import torch
from conftest import DATA, need_data

from onebit.data import TensorLoader, build_loaders, epoch_permutation, random_crop_flip


def _data(name, **kw):
    d = {
        "name": name,
        "data_dir": "",
        "cache_dir": "",
        "download": False,
        "batch_size": 32,
        "eval_batch_size": 100,
        "augment": True,
        "workers": 0,
        "train_subset": 200,
        "test_subset": 100,
        "image_size": 224,
        "resize_size": 256,
        "train_dir": "",
        "val_dir": "",
        "normalize": "standard",
    }
    d.update(kw)
    return d


@pytest.mark.parametrize(
    "name, folder, shape",
    [
        ("mnist", "mnist", (1, 28, 28)),
        ("fashion_mnist", "fashion-mnist", (1, 28, 28)),
        ("cifar10", "cifar10", (3, 32, 32)),
    ],
)
def test_in_memory_loaders_on_real_data(name, folder, shape):
    need_data(folder)
    tr, te, info = build_loaders(_data(name))
    assert info["num_classes"] == 10 and info["input_size"] == shape and len(info["classes"]) == 10
    x, y, idx = next(tr.batches(0))
    assert x.shape == (32, *shape) and x.dtype == torch.float32 and y.dtype == torch.long
    assert abs(float(x.mean())) < 1.0  # normalized
    assert len(te) == 1 and te.num_samples == 100
    labels = torch.cat([b[1] for b in te.batches()])
    assert len(labels.unique()) == 10  # the subset spans every class


def test_mnist_augmentation_shifts_but_never_flips():
    need_data("mnist")
    tr, _, _ = build_loaders(_data("mnist", normalize="none", train_subset=64))
    plain, _, _ = build_loaders(_data("mnist", normalize="none", train_subset=64, augment=False))
    xa, ya, ia = next(tr.batches(0))
    xp, yp, ip = next(plain.batches(0))
    assert torch.equal(ia, ip) and torch.equal(ya, yp)  # same samples, only the pixels move
    assert not torch.equal(xa, xp)
    for a, p in zip(xa, xp, strict=True):  # every augmented digit is its original shifted by <= 2 px
        padded = torch.nn.functional.pad(p, (2, 2, 2, 2))
        shifts = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(padded[:, dy : dy + 28, dx : dx + 28], a)
        ]
        assert shifts, "an augmented MNIST image is not a <=2-pixel shift of its original"


def test_cifar10_cache_is_reused(cache_dir):
    need_data("cifar10")
    build_loaders(_data("cifar10", train_subset=50, test_subset=50))
    cached = [f for f in os.listdir(os.path.join(cache_dir, "tensors")) if f.startswith("cifar10_train_50")]
    assert cached


def test_imagenet_sample_folder():
    need_data("imagenet-sample")
    sample = os.path.join(DATA, "imagenet-sample")
    d = _data(
        "imagenet",
        train_dir=sample,
        val_dir=sample,
        image_size=64,
        resize_size=73,
        batch_size=8,
        eval_batch_size=16,
        train_subset=16,
        test_subset=16,
    )
    tr, te, info = build_loaders(d)
    assert info["num_classes"] == 103
    x, y, _ = next(tr.batches(0))
    assert x.shape == (8, 3, 64, 64)
    x, y, _ = next(te.batches(0))
    assert x.shape == (16, 3, 64, 64)  # single center crop, grayscale JPEGs converted to RGB


@pytest.mark.parametrize(
    "name, layout",
    [
        ("mnist", "train-images-idx3-ubyte.gz"),
        ("fashion_mnist", "fashion-mnist"),
        ("cifar10", "cifar10-jpg.zip"),
        ("imagenet", "train/<wnid>"),
    ],
)
def test_missing_data_names_expected_layout(tmp_path, name, layout):
    with pytest.raises(FileNotFoundError, match=layout.replace("<", ".").replace(">", ".")):
        build_loaders(_data(name, data_dir=str(tmp_path / "d"), cache_dir=str(tmp_path / "c")))


def test_order_reproducible_resumable_and_sharded():
    imgs = torch.arange(64, dtype=torch.uint8).view(64, 1, 1, 1).expand(64, 1, 4, 4).contiguous()
    labels = torch.arange(64)
    aug = lambda x, g, total, off: random_crop_flip(x, 1, True, g, total=total, offset=off)  # noqa: E731
    full = TensorLoader(imgs, labels, 16, train=True, seed=3, augment=aug)
    a = list(full.batches(epoch=2))
    b = list(full.batches(epoch=2, start=2))
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a[2:], b, strict=True))
    assert not torch.equal(torch.cat([t[1] for t in a]), torch.cat([t[1] for t in full.batches(epoch=3)]))
    assert torch.equal(epoch_permutation(64, 3, 2), epoch_permutation(64, 3, 2))
    # two ranks see the two halves of every global batch, pixels included
    r0 = list(TensorLoader(imgs, labels, 16, train=True, seed=3, augment=aug, rank=0, world=2).batches(2))
    r1 = list(TensorLoader(imgs, labels, 16, train=True, seed=3, augment=aug, rank=1, world=2).batches(2))
    for (x, y, _), (x0, y0, _), (x1, y1, _) in zip(a, r0, r1, strict=True):
        assert torch.equal(torch.cat([y0, y1]), y) and torch.equal(torch.cat([x0, x1]), x)


def test_crop_flip_keeps_content():
    x = torch.randint(0, 255, (5, 3, 8, 8), dtype=torch.uint8)
    g = torch.Generator().manual_seed(0)
    y = random_crop_flip(x, 0, True, g)
    for i in range(5):
        assert torch.equal(y[i], x[i]) or torch.equal(y[i], x[i].flip(2))
    y = random_crop_flip(x, 4, False, torch.Generator().manual_seed(1))
    assert y.shape == x.shape
