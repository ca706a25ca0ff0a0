"""Data for training: in-memory MNIST / Fashion-MNIST / CIFAR-10, ImageFolder ImageNet.

:func:`build_loaders` turns a recipe's ``[data]`` table into a train and a test
loader (see :mod:`onebit.data.loaders` for the reproducibility contract) and
the facts the model needs (number of classes, input size).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch

from onebit.data.datasets import (
    DATASETS,
    ArrayData,
    cache_dir,
    data_dir,
    imagenet_folders,
    imagenet_transforms,
    input_size_of,
    load_arrays,
    num_classes_of,
)
from onebit.data.loaders import FolderLoader, TensorLoader, epoch_permutation, mix_seed
from onebit.data.transforms import Normalize, random_crop_flip

__all__ = [
    "DATASETS",
    "ArrayData",
    "FolderLoader",
    "Normalize",
    "TensorLoader",
    "build_loaders",
    "cache_dir",
    "data_dir",
    "epoch_permutation",
    "input_size_of",
    "load_arrays",
    "mix_seed",
    "num_classes_of",
    "random_crop_flip",
]


def _augment_fn(name: str):
    """The standard augmentation of each in-memory data set.

    CIFAR-10: pad-4 random crop + horizontal flip. MNIST and Fashion-MNIST: random shifts of up
    to 2 pixels (pad-2 random crop, no flip: a flipped digit is another symbol). ``synthetic``: none.
    """
    if name == "cifar10":
        return partial(_crop_flip, pad=4, flip=True)
    if name in ("mnist", "fashion_mnist"):
        return partial(_crop_flip, pad=2, flip=False)
    return None


def _crop_flip(x: torch.Tensor, gen: torch.Generator, total: int, offset: int, pad: int, flip: bool):
    from onebit.data.transforms import random_crop_flip as rcf

    return rcf(x, pad, flip, gen, total=total, offset=offset)


def build_loaders(
    data: dict[str, Any], seed: int = 0, rank: int = 0, world: int = 1, device: Any = "cpu"
) -> tuple[Any, Any, dict[str, Any]]:
    """Train and test loaders for a recipe's ``[data]`` table.

    Also returns ``{"num_classes", "input_size", "classes"}``.
    """
    name = data["name"]
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    root = data_dir(data.get("data_dir", ""))
    cache = cache_dir(data.get("cache_dir", ""))
    if name == "imagenet":
        from torchvision.datasets import ImageFolder

        tr_dir, va_dir = imagenet_folders(root, data.get("train_dir", ""), data.get("val_dir", ""))
        size, rsize = int(data["image_size"]), int(data["resize_size"])
        tr = ImageFolder(tr_dir, transform=imagenet_transforms(True, size, rsize, data["augment"]))
        va = ImageFolder(va_dir, transform=imagenet_transforms(False, size, rsize))
        if data.get("train_subset"):
            tr = torch.utils.data.Subset(tr, list(range(min(len(tr), data["train_subset"]))))
        if data.get("test_subset"):
            va = torch.utils.data.Subset(va, list(range(min(len(va), data["test_subset"]))))
        common = dict(seed=seed, workers=int(data["workers"]), rank=rank, world=world, device=device)
        train = FolderLoader(tr, int(data["batch_size"]), train=True, **common)
        test = FolderLoader(va, int(data["eval_batch_size"]), train=False, **common)
        classes = tr.dataset.classes if isinstance(tr, torch.utils.data.Subset) else tr.classes
        info = {
            "num_classes": 1000 if len(classes) > 100 else len(classes),
            "input_size": (3, size, size),
            "classes": classes,
        }
        if len(classes) != 1000:
            info["num_classes"] = len(classes)
        return train, test, info
    dl = bool(data.get("download", True))
    tr_data = load_arrays(name, root, cache, True, int(data.get("train_subset", 0)), dl)
    te_data = load_arrays(name, root, cache, False, int(data.get("test_subset", 0)), dl)
    channels = int(tr_data.images.shape[1])
    norm = Normalize(data.get("normalize", "standard"), name, channels)
    aug = _augment_fn(name) if data.get("augment", True) else None
    common = dict(seed=seed, normalize=norm, rank=rank, world=world, device=device)
    train = TensorLoader(
        tr_data.images, tr_data.labels, int(data["batch_size"]), train=True, augment=aug, **common
    )
    test = TensorLoader(te_data.images, te_data.labels, int(data["eval_batch_size"]), train=False, **common)
    info = {
        "num_classes": num_classes_of(name),
        "input_size": tuple(int(s) for s in tr_data.images.shape[1:]),
        "classes": tr_data.classes,
    }
    return train, test, info
