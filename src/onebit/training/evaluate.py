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
    from onebit.data import build_loaders
    from onebit.data.datasets import DATASETS
    from onebit.training.config import DEFAULTS, merge
    from onebit.training.loop import evaluate, pick_device

    # the model first: a file that is refused or does not fit fails before any data is read
    model, meta = load_model(path, trust_code=trust_code)
    recorded = meta.get("config") or {}
    if not isinstance(recorded, dict) or not isinstance(recorded.get("data", {}), dict):
        raise ValueError(f"{path}: the recorded recipe is not a table; pass --data")
    cfg = merge(DEFAULTS, {"data": recorded.get("data", {})})
    dc = dict(cfg["data"])
    if data:
        if data not in DATASETS:
            raise ValueError(f"unknown data set {data!r}; known: {', '.join(DATASETS)}")
        dc["name"] = data
    if not dc.get("name"):
        raise ValueError(f"{path}: checkpoint does not record its data set; pass --data")
    if data_dir:
        dc["data_dir"] = data_dir
    if val_dir:
        dc["val_dir"] = val_dir
        dc["train_dir"] = dc.get("train_dir") or val_dir  # the loader wants both trees; only val is read
    if batch_size:
        dc["eval_batch_size"] = batch_size
    dc["test_subset"] = subset
    dc["train_subset"] = 1 if dc["name"] != "imagenet" else dc.get("train_subset", 0)
    dev = pick_device(device)
    _, test_loader, info = build_loaders(dc, 0, 0, 1, dev)
    if meta["num_classes"] != info["num_classes"]:
        raise ValueError(
            f"{path}: model has {meta['num_classes']} classes, {dc['name']} {info['num_classes']}"
        )
    model.to(dev)
    r = evaluate(model, test_loader, dev)
    r["data"] = dc["name"]
    return r
