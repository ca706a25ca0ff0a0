"""`onebit eval`: top-1 / top-5 of a checkpoint on a data set's test split.

ImageNet is evaluated as the papers do: resize the short side to 256, one
224x224 center crop (``data.resize_size`` / ``data.image_size`` of the recipe).
"""

from __future__ import annotations

from typing import Any

from onebit.training.checkpoint import load_model

__all__ = ["evaluate_checkpoint"]


def evaluate_checkpoint(
    path: str,
    data: str | None = None,
    data_dir: str | None = None,
    val_dir: str | None = None,
    batch_size: int = 0,
    subset: int = 0,
    device: str = "auto",
    *,
    trust_code: bool = False,
) -> dict[str, Any]:
    """Top-1/top-5/loss of checkpoint ``path`` on the test split of its data set (or ``data``).

    ``trust_code`` lets a ``"module:callable"`` model name recorded in the file be imported
    (see :func:`onebit.training.checkpoint.build_model`); without it only registered models load.
    """
    from dataclasses import replace

    from onebit.data import build_loaders
    from onebit.data.datasets import DATASETS
    from onebit.training.config import DataConfig
    from onebit.training.loop import evaluate, pick_device

    # the model first: a file that is refused or does not fit fails before any data is read
    model, meta = load_model(path, trust_code=trust_code)
    recorded = meta.get("config") or {}
    if not isinstance(recorded, dict) or not isinstance(recorded.get("data", {}), dict):
        raise ValueError(f"{path}: the recorded recipe is not a table; pass --data")
    # the file's [data] table is checked like a recipe's (types, ranges) before any loader sees it
    dc = DataConfig.from_dict(recorded.get("data", {}), f"{path}: recorded recipe")
    if data:
        if data not in DATASETS:
            raise ValueError(f"unknown data set {data!r}; known: {', '.join(DATASETS)}")
        dc = replace(dc, name=data)
    if not dc.name:
        raise ValueError(f"{path}: checkpoint does not record its data set; pass --data")
    if data_dir:
        dc = replace(dc, data_dir=data_dir)
    if val_dir:  # the loader wants both trees; only val is read
        dc = replace(dc, val_dir=val_dir, train_dir=dc.train_dir or val_dir)
    if batch_size:
        dc = replace(dc, eval_batch_size=batch_size)
    dc = replace(dc, test_subset=subset, train_subset=1 if dc.name != "imagenet" else dc.train_subset)
    dev = pick_device(device)
    _, test_loader, info = build_loaders(dc.to_dict(), 0, 0, 1, dev)
    if meta["num_classes"] != info["num_classes"]:
        raise ValueError(f"{path}: model has {meta['num_classes']} classes, {dc.name} {info['num_classes']}")
    model.to(dev)
    r = evaluate(model, test_loader, dev)
    r["data"] = dc.name
    return r
