"""What a ``.onebit`` file records besides the graph: preprocessing and class labels.

``preprocess`` (channels, resize, center crop, mean/std; the keys are
:func:`onebit.runtime.tools.check_preprocess`'s) and ``labels`` (class names in output
order) tell `onebit run` how to use the model on an image. :func:`recipe_preprocess` and
:func:`recipe_labels` derive both from a training recipe, as ``onebit export CHECKPOINT``
does, and :func:`model_cfg_preprocess` from a zoo model's default config.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = [
    "DATASET_CLASSES",
    "checked_labels",
    "checked_preprocess",
    "model_cfg_preprocess",
    "recipe_labels",
    "recipe_preprocess",
]

#: Class names of the built-in data sets, in label order: exactly what :mod:`onebit.data` gives
#: (torchvision's names for MNIST and Fashion-MNIST, the folder names of CIFAR-10's
#: ImageFolder tree, which are also its ``batches.meta`` names).
DATASET_CLASSES: dict[str, list[str]] = {
    "mnist": [
        f"{i} - {w}" for i, w in enumerate("zero one two three four five six seven eight nine".split())
    ],
    "fashion_mnist": "T-shirt/top|Trouser|Pullover|Dress|Coat|Sandal|Shirt|Sneaker|Bag|Ankle boot".split("|"),
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
    "synthetic": [str(i) for i in range(10)],
}


def _mean_std(normalize: str, dataset: str, channels: int) -> tuple[list[float], list[float]]:
    """The mean/std that :class:`onebit.data.Normalize` applies for a recipe's ``data.normalize``."""
    from onebit.data.transforms import STATS

    if normalize == "standard":
        mean, std = STATS.get(dataset, ((0.5,) * channels, (0.5,) * channels))
    elif normalize == "pm1":
        mean, std = (0.5,) * channels, (0.5,) * channels
    elif normalize == "none":
        mean, std = (0.0,) * channels, (1.0,) * channels
    else:
        raise ValueError(f"unknown data.normalize {normalize!r}")
    return [float(m) for m in mean], [float(s) for s in std]


def _scaled(resize: int, trained: int, now: int) -> int:
    return resize if now == trained else max(now, round(resize * now / trained))


def recipe_preprocess(config: dict[str, Any], input_size: tuple[int, ...]) -> dict[str, Any] | None:
    """The evaluation preprocessing of a training recipe, for a model whose input is ``input_size``.

    ``config`` is the recipe a checkpoint records (``load_model(path)[1]["config"]``);
    ``input_size`` is (C, H, W). In-memory data sets (MNIST, Fashion-MNIST, CIFAR-10,
    synthetic) are evaluated at their native size with ``data.normalize``'s mean/std: an image
    of another size has its short side resized to H and is center-cropped to H x W. ImageNet
    (ImageFolder) data is evaluated as its loader does: resize ``data.resize_size``, center crop
    ``data.image_size``, ImageNet mean/std whatever ``data.normalize`` says (its transforms
    ignore it). When ``input_size`` differs from the trained size (``onebit export
    --input-size``), the resize keeps its ratio to the crop. ``None`` for a flat input or a
    recipe without a data set.
    """
    dc = (config or {}).get("data") or {}
    name = dc.get("name")
    if not name or len(input_size) != 3:
        return None
    c, h, w = (int(s) for s in input_size)
    spec: dict[str, Any] = {"channels": c, "dataset": name}
    if name == "imagenet":
        crop = int(dc.get("image_size", 224))
        spec["resize"] = _scaled(int(dc.get("resize_size", 256)), crop, min(h, w))
        spec["normalize"] = "standard"  # ImageNet's mean/std: imagenet_transforms ignore data.normalize
        mean, std = _mean_std("standard", "imagenet", c)
    else:
        spec["resize"] = min(h, w)
        spec["normalize"] = dc.get("normalize", "standard")
        mean, std = _mean_std(spec["normalize"], name, c)
    spec["crop"] = h if h == w else [h, w]
    spec["mean"], spec["std"] = mean, std
    return spec


def recipe_labels(config: dict[str, Any], data_dir: str = "") -> list[str] | None:
    """The class names of a recipe's data set, in label order, or ``None`` when unknown.

    Built-in data sets: :data:`DATASET_CLASSES`. ImageFolder data (``data.name = "imagenet"``,
    or ``data.train_dir``): the class folders of the training tree, sorted as ImageFolder sorts
    them, read from the data root (``data_dir``, else the recipe's ``data.data_dir``, else
    ``$ONEBIT_DATA``); ``None`` when that tree is not on this machine.
    """
    dc = (config or {}).get("data") or {}
    name = dc.get("name")
    if name in DATASET_CLASSES:
        return list(DATASET_CLASSES[name])
    if name != "imagenet":
        return None
    from onebit.data.datasets import data_dir as resolve_data_dir
    from onebit.data.datasets import imagenet_folders

    root = resolve_data_dir(data_dir or dc.get("data_dir", ""))
    try:
        train_dir, _ = imagenet_folders(root, dc.get("train_dir", ""), dc.get("val_dir", ""))
        with os.scandir(train_dir) as it:
            return sorted(e.name for e in it if e.is_dir())
    except OSError:
        return None


def model_cfg_preprocess(cfg: dict[str, Any], input_size: tuple[int, ...]) -> dict[str, Any] | None:
    """The preprocessing a zoo model's default config implies (``onebit.models.get_cfg(name)``).

    Its ``mean``/``std``; ImageNet models resize to 256/224 of the crop, others (CIFAR-10,
    MNIST) resize the short side to the input side. ``None`` for a flat input.
    """
    if len(input_size) != 3:
        return None
    c, h, w = (int(s) for s in input_size)
    mean, std = [float(m) for m in cfg["mean"]], [float(s) for s in cfg["std"]]
    if len(mean) != c:  # e.g. an ImageNet model exported with in_chans=1
        mean, std = [0.0] * c, [1.0] * c
    spec: dict[str, Any] = {"channels": c}
    if cfg.get("dataset"):
        spec["dataset"] = cfg["dataset"]
    spec["resize"] = round(min(h, w) * 256 / 224) if cfg.get("dataset") == "imagenet" else min(h, w)
    spec["crop"] = h if h == w else [h, w]
    spec["mean"], spec["std"] = mean, std
    return spec


def checked_preprocess(preprocess: dict[str, Any], input_shape: tuple[int, ...]) -> dict[str, Any]:
    """``preprocess`` validated for an (N, C, H, W) input, with ``channels`` filled in: a plain copy."""
    from onebit.runtime.tools import check_preprocess

    if len(input_shape) != 4:
        raise ValueError(f"preprocess is for image inputs (N, C, H, W); the example input is {input_shape}")
    spec = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(preprocess).items()}
    spec.setdefault("channels", int(input_shape[1]))
    return check_preprocess(spec, int(input_shape[1]))


def checked_labels(labels: Any, outputs: list[dict[str, Any]]) -> list[str]:
    """``labels`` as a list of strings, one per class output of the model."""
    if isinstance(labels, str) or not all(isinstance(s, str) for s in labels):
        raise ValueError("labels must be a sequence of class names (strings)")
    labels = list(labels)
    n_out = int(np.prod(outputs[0]["shape"][1:])) if outputs else 0
    if len(labels) != n_out:
        raise ValueError(f"{len(labels)} labels for a model with {n_out} outputs; give one name per class")
    return labels
