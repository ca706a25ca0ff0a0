"""Data sets: MNIST, Fashion-MNIST, CIFAR-10 (in memory) and ImageNet (ImageFolder).

Where the data comes from, in order (``DATA`` = ``data.data_dir``, else
``$ONEBIT_DATA``; ``CACHE`` = ``data.cache_dir``, else ``$ONEBIT_CACHE``,
else ``~/.cache/onebit``):

* MNIST / Fashion-MNIST: the official IDX ``*.gz`` files in ``DATA/mnist/``
  (``DATA/fashion-mnist/``) or ``DATA/MNIST/raw/`` (``DATA/FashionMNIST/raw/``).
  They are linked into ``CACHE/torchvision/<Name>/raw`` and read with
  torchvision (which verifies their checksums); without them, torchvision
  downloads into the cache. Nothing is ever written into ``DATA``.
* CIFAR-10: ``DATA/cifar10/cifar10-jpg.zip`` (an ImageFolder tree
  ``train/<class>/*.jpg``, ``test/<class>/*.jpg`` in a zip, read in place),
  an extracted tree ``DATA/cifar10/{train,test}/<class>/``, the official
  ``cifar-10-batches-py`` folder, or torchvision's download into the cache.
  JPEGs are decoded once into a uint8 tensor cached under ``CACHE/tensors``.
* ImageNet: ImageFolder trees ``DATA/imagenet/train/<wnid>/*.JPEG`` and
  ``DATA/imagenet/val/<wnid>/*.JPEG`` (``data.train_dir``/``data.val_dir``
  override them), decoded per batch by DataLoader workers.

Missing data raises ``FileNotFoundError`` naming the expected layout.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "ArrayData",
    "DATASETS",
    "cache_dir",
    "data_dir",
    "load_arrays",
    "num_classes_of",
]

DATASETS = ("mnist", "fashion_mnist", "cifar10", "imagenet", "synthetic")
_NUM_CLASSES = {"mnist": 10, "fashion_mnist": 10, "cifar10": 10, "imagenet": 1000, "synthetic": 10}
_INPUT = {
    "mnist": (1, 28, 28),
    "fashion_mnist": (1, 28, 28),
    "cifar10": (3, 32, 32),
    "synthetic": (1, 12, 12),
}


@dataclass
class ArrayData:
    """A data set held in memory: uint8 images (N, C, H, W) and int64 labels (N,)."""

    images: Tensor
    labels: Tensor
    classes: list[str]

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def num_classes_of(name: str) -> int:
    if name not in _NUM_CLASSES:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    return _NUM_CLASSES[name]


def input_size_of(name: str, image_size: int = 224) -> tuple[int, int, int]:
    return _INPUT.get(name, (3, image_size, image_size))


def data_dir(cfg_value: str = "") -> str:
    """The data root: the config/CLI value, else ``$ONEBIT_DATA``, else ``CACHE/data``."""
    d = cfg_value or os.environ.get("ONEBIT_DATA", "")
    return os.path.expanduser(d) if d else os.path.join(cache_dir(), "data")


def cache_dir(cfg_value: str = "") -> str:
    d = cfg_value or os.environ.get("ONEBIT_CACHE", "") or os.path.join("~", ".cache", "onebit")
    d = os.path.expanduser(d)
    os.makedirs(d, exist_ok=True)
    return d


def _subset_indices(n: int, subset: int) -> np.ndarray:
    """An evenly spread, deterministic subset (covers all classes of class-sorted data)."""
    if subset <= 0 or subset >= n:
        return np.arange(n)
    return np.linspace(0, n - 1, subset).round().astype(np.int64)


def _take(data: ArrayData, subset: int) -> ArrayData:
    if subset <= 0 or subset >= len(data):
        return data
    idx = torch.from_numpy(_subset_indices(len(data), subset))
    return ArrayData(data.images[idx].contiguous(), data.labels[idx].contiguous(), data.classes)


def _atomic_torch_save(obj: Any, path: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    torch.save(obj, tmp)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- #
# MNIST / Fashion-MNIST
# --------------------------------------------------------------------------- #

_IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _missing_mnist(name: str, root: str, folder: str, why: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"{name}: data not found ({why}). Expected the official IDX files "
        f"{', '.join(f + '.gz' for f in _IDX_FILES)} in {os.path.join(root, folder)}/ "
        f"(set --data-dir or ONEBIT_DATA to the data root)"
    )


def _load_mnist_like(name: str, root: str, cache: str, train: bool, download: bool = True) -> ArrayData:
    from torchvision import datasets

    tv_name, folder, cls = {
        "mnist": ("MNIST", "mnist", datasets.MNIST),
        "fashion_mnist": ("FashionMNIST", "fashion-mnist", datasets.FashionMNIST),
    }[name]
    tv_root = os.path.join(cache, "torchvision")
    raw = os.path.join(tv_root, tv_name, "raw")
    os.makedirs(raw, exist_ok=True)
    for src_dir in (os.path.join(root, folder), os.path.join(root, tv_name, "raw"), root):
        if all(os.path.exists(os.path.join(src_dir, f + ".gz")) for f in _IDX_FILES):
            for f in _IDX_FILES:
                dst = os.path.join(raw, f + ".gz")
                if not os.path.exists(dst):
                    try:
                        os.symlink(os.path.abspath(os.path.join(src_dir, f + ".gz")), dst)
                    except OSError:
                        import shutil

                        shutil.copyfile(os.path.join(src_dir, f + ".gz"), dst)
            break
    have = all(
        os.path.exists(os.path.join(raw, f + ".gz")) or os.path.exists(os.path.join(raw, f))
        for f in _IDX_FILES
    )
    if not have and not download:
        raise _missing_mnist(name, root, folder, "download disabled")
    try:
        ds = cls(tv_root, train=train, download=True)
    except Exception as e:  # network failure, bad checksum, ...
        raise _missing_mnist(name, root, folder, f"download failed: {type(e).__name__}: {e}") from None
    images = ds.data.unsqueeze(1).contiguous()  # (N, 1, 28, 28) uint8
    return ArrayData(images, ds.targets.long(), list(ds.classes))


# --------------------------------------------------------------------------- #
# CIFAR-10
# --------------------------------------------------------------------------- #


def _decode_jpegs(blobs: list[bytes], desc: str) -> np.ndarray:
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    def dec(b: bytes) -> np.ndarray:
        with Image.open(io.BytesIO(b)) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)

    import sys

    from tqdm import tqdm

    show = sys.stderr.isatty() and "PYTEST_CURRENT_TEST" not in os.environ and len(blobs) > 2000
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as ex:
        it = ex.map(dec, blobs, chunksize=256)
        arrs = list(tqdm(it, total=len(blobs), desc=f"decoding {desc} (once)", unit="img", disable=not show))
    out = np.stack(arrs).transpose(0, 3, 1, 2) if arrs else np.zeros((0, 3, 32, 32), np.uint8)
    return np.ascontiguousarray(out)


def _cifar_from_zip(path: str, split: str, subset: int) -> ArrayData:
    with zipfile.ZipFile(path) as z:
        members = []
        for info in z.infolist():
            parts = info.filename.strip("/").split("/")
            if info.is_dir() or len(parts) < 3:
                continue
            # tolerate a leading folder: .../<split>/<class>/<file>
            if parts[-3] == split and parts[-1].lower().endswith((".jpg", ".jpeg", ".png")):
                members.append((parts[-2], info.filename))
        if not members:
            raise FileNotFoundError(f"{path}: no {split}/<class>/*.jpg images inside the zip")
        members.sort()
        classes = sorted({c for c, _ in members})
        idx = _subset_indices(len(members), subset)
        chosen = [members[i] for i in idx]
        blobs = [z.read(fn) for _, fn in chosen]
    images = _decode_jpegs(blobs, f"cifar10 {split}")
    labels = np.array([classes.index(c) for c, _ in chosen], dtype=np.int64)
    return ArrayData(torch.from_numpy(images), torch.from_numpy(labels), classes)


def _cifar_from_tree(root: str, split: str, subset: int) -> ArrayData:
    d = os.path.join(root, split)
    classes = sorted(c for c in os.listdir(d) if os.path.isdir(os.path.join(d, c)))
    members = [
        (c, os.path.join(d, c, f))
        for c in classes
        for f in sorted(os.listdir(os.path.join(d, c)))
        if f.lower().endswith((".jpg", ".jpeg", ".png"))
    ]
    idx = _subset_indices(len(members), subset)
    chosen = [members[i] for i in idx]
    blobs = []
    for _, p in chosen:
        with open(p, "rb") as f:
            blobs.append(f.read())
    images = _decode_jpegs(blobs, f"cifar10 {split}")
    labels = np.array([classes.index(c) for c, _ in chosen], dtype=np.int64)
    return ArrayData(torch.from_numpy(images), torch.from_numpy(labels), classes)


def _cifar_from_batches(folder: str, split: str) -> ArrayData:
    files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    xs, ys = [], []
    for f in files:
        with open(os.path.join(folder, f), "rb") as fh:
            d = pickle.load(fh, encoding="latin1")
        xs.append(np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(d["labels"], dtype=np.int64))
    with open(os.path.join(folder, "batches.meta"), "rb") as fh:
        classes = list(pickle.load(fh, encoding="latin1")["label_names"])
    return ArrayData(torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys)), classes)


def _load_cifar10(root: str, cache: str, train: bool, subset: int, download: bool = True) -> ArrayData:
    split = "train" if train else "test"
    zips = [os.path.join(root, "cifar10", "cifar10-jpg.zip"), os.path.join(root, "cifar10-jpg.zip")]
    trees = [os.path.join(root, "cifar10"), root]
    batches = [
        os.path.join(root, "cifar-10-batches-py"),
        os.path.join(root, "cifar10", "cifar-10-batches-py"),
    ]
    src: tuple[str, str] | None = None
    for z in zips:
        if os.path.isfile(z):
            src = ("zip", z)
            break
    if src is None:
        for t in trees:
            if os.path.isdir(os.path.join(t, split)) and os.path.isdir(os.path.join(t, "test")):
                src = ("tree", t)
                break
    if src is None:
        for b in batches:
            if os.path.isfile(os.path.join(b, "test_batch")):
                src = ("batches", b)
                break
    if src is None:
        return _cifar_download(root, cache, train, subset, download)
    st = os.stat(src[1])
    key = hashlib.sha1(f"{src}|{st.st_size}|{int(st.st_mtime)}|{split}|{subset}".encode()).hexdigest()[:12]
    tdir = os.path.join(cache, "tensors")
    os.makedirs(tdir, exist_ok=True)
    path = os.path.join(tdir, f"cifar10_{split}_{subset or 'all'}_{key}.pt")
    if os.path.exists(path):
        d = torch.load(path, weights_only=True)
        return ArrayData(d["images"], d["labels"], list(d["classes"]))
    if src[0] == "zip":
        data = _cifar_from_zip(src[1], split, subset)
    elif src[0] == "tree":
        data = _cifar_from_tree(src[1], split, subset)
    else:
        data = _take(_cifar_from_batches(src[1], split), subset)
    _atomic_torch_save({"images": data.images, "labels": data.labels, "classes": data.classes}, path)
    return data


def _cifar_download(root: str, cache: str, train: bool, subset: int, download: bool) -> ArrayData:
    from torchvision import datasets

    try:
        if not download and not os.path.isdir(os.path.join(cache, "torchvision", "cifar-10-batches-py")):
            raise RuntimeError("download disabled")
        ds = datasets.CIFAR10(os.path.join(cache, "torchvision"), train=train, download=download)
    except Exception as e:
        raise FileNotFoundError(
            f"cifar10: data not found under {root} ({type(e).__name__}: {e}). "
            f"Expected {root}/cifar10/cifar10-jpg.zip (ImageFolder tree "
            f"train/<class>/*.jpg, test/<class>/*.jpg in a zip), or the extracted tree "
            f"{root}/cifar10/{{train,test}}/<class>/, or {root}/cifar-10-batches-py/"
        ) from None
    images = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
    return _take(ArrayData(images, torch.tensor(ds.targets, dtype=torch.long), list(ds.classes)), subset)


# --------------------------------------------------------------------------- #
# Synthetic (tests, benchmarks)
# --------------------------------------------------------------------------- #


def _synthetic(train: bool, n: int) -> ArrayData:
    """Ten learnable classes of noisy 12x12 patterns (deterministic; no files needed)."""
    g = torch.Generator().manual_seed(1234)
    protos = (torch.rand(10, 1, 12, 12, generator=g) * 255).round()
    g2 = torch.Generator().manual_seed(1 if train else 2)
    n = n or (2048 if train else 512)
    labels = torch.randint(0, 10, (n,), generator=g2)
    noise = torch.randn(n, 1, 12, 12, generator=g2) * 60
    images = (protos[labels] + noise).clamp(0, 255).to(torch.uint8)
    return ArrayData(images, labels, [str(i) for i in range(10)])


def load_arrays(
    name: str, root: str, cache: str, train: bool, subset: int = 0, download: bool = True
) -> ArrayData:
    """Load an in-memory data set split as uint8 (N, C, H, W) + labels."""
    if name in ("mnist", "fashion_mnist"):
        return _take(_load_mnist_like(name, root, cache, train, download), subset)
    if name == "cifar10":
        return _load_cifar10(root, cache, train, subset, download)
    if name == "synthetic":
        return _synthetic(train, subset)
    raise ValueError(
        f"{name!r} is not an in-memory data set; in-memory: mnist, fashion_mnist, cifar10, synthetic"
    )


# --------------------------------------------------------------------------- #
# ImageNet (ImageFolder)
# --------------------------------------------------------------------------- #


def imagenet_folders(root: str, train_dir: str = "", val_dir: str = "") -> tuple[str, str]:
    """The ImageFolder trees of ImageNet; ``FileNotFoundError`` with the layout when missing."""
    base = os.path.join(root, "imagenet") if os.path.isdir(os.path.join(root, "imagenet")) else root
    tr = train_dir or os.path.join(base, "train")
    va = val_dir or os.path.join(base, "val")
    for d, what in ((tr, "train"), (va, "val")):
        if not os.path.isdir(d) or not any(os.path.isdir(os.path.join(d, c)) for c in os.listdir(d)):
            raise FileNotFoundError(
                f"imagenet: no {what} ImageFolder tree at {d}. Expected {base}/train/<wnid>/*.JPEG and "
                f"{base}/val/<wnid>/*.JPEG (validation images sorted into class folders), or set "
                f"data.train_dir / data.val_dir"
            )
    return tr, va


def imagenet_transforms(train: bool, image_size: int = 224, resize_size: int = 256, augment: bool = True):
    """Standard ImageNet transforms.

    Training: RandomResizedCrop + flip; evaluation: resize + one center crop.
    """
    from torchvision import transforms as T

    from onebit.data.transforms import STATS

    mean, std = STATS["imagenet"]
    if train and augment:
        ops = [T.RandomResizedCrop(image_size), T.RandomHorizontalFlip()]
    else:
        ops = [T.Resize(resize_size), T.CenterCrop(image_size)]
    return T.Compose([*ops, T.ToTensor(), T.Normalize(mean, std)])
