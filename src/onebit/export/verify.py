"""Check an exported model against PyTorch: accuracy, agreement, latency and size."""

from __future__ import annotations

import io
import os
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = ["DeployReport", "calibrate_batchnorm", "compare_engine", "median_ms", "test_split_of"]


@dataclass
class DeployReport:
    """What `compare_engine` measured (accuracies in [0, 1], times in ms, sizes in bytes)."""

    images: int
    torch_acc: float
    engine_acc: float
    same_prediction: float
    max_rel_logit_diff: float
    torch_ms: float
    engine_ms: float
    threads: int
    file_bytes: int
    fp32_bytes: int

    def lines(self) -> list[str]:
        return [
            f"accuracy on {self.images} test images: PyTorch {100 * self.torch_acc:.2f}%, "
            f"onebit engine {100 * self.engine_acc:.2f}% "
            f"(same prediction on {100 * self.same_prediction:.2f}% of images, "
            f"largest logit difference {self.max_rel_logit_diff:.1e} relative)",
            f"latency, batch 1, {self.threads} thread(s), median: onebit {self.engine_ms:.3f} ms, "
            f"PyTorch fp32 {self.torch_ms:.3f} ms ({self.torch_ms / self.engine_ms:.1f}x faster)",
            f"size: {self.file_bytes / 2**20:.2f} MiB .onebit file vs {self.fp32_bytes / 2**20:.2f} MiB "
            f"fp32 state_dict ({self.fp32_bytes / self.file_bytes:.1f}x smaller)",
        ]


def calibrate_batchnorm(model: nn.Module, images: torch.Tensor, batch: int = 16) -> None:
    """Set every BatchNorm's running statistics from ``images`` (cumulative average), then eval().

    Gives untrained (random-weight) models realistic activation scales, so that
    benchmarks and agreement checks on them see the distributions a trained model would.
    """
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        for i in range(0, len(images), batch):
            model(images[i : i + batch])
    model.eval()


def test_split_of(meta: dict, data_dir: str = "") -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """The test split a training checkpoint was trained for, preprocessed as its recipe did.

    ``meta`` is the second value of :func:`onebit.training.checkpoint.load_model`; its recipe
    names the in-memory data set (MNIST, Fashion-MNIST, CIFAR-10) and its normalization.
    Returns float NCHW images, labels and class names.
    """
    from onebit.data import Normalize, cache_dir, load_arrays
    from onebit.data import data_dir as resolve_data_dir

    dc = (meta.get("config") or {}).get("data") or {}
    name = dc.get("name")
    if not name:
        raise ValueError("checkpoint does not record its data set (no data.name in its recipe)")
    test = load_arrays(
        name, resolve_data_dir(data_dir or dc.get("data_dir", "")), cache_dir(dc.get("cache_dir", "")), False
    )
    x = Normalize(dc.get("normalize", "standard"), name, test.images.shape[1])(test.images)
    return x, test.labels, list(test.classes)


def median_ms(fn, runs: int, warmup: int = 3) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``runs`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(ts)


def compare_engine(
    model: nn.Module,
    path: str | os.PathLike,
    images: torch.Tensor,
    labels: torch.Tensor,
    num_threads: int | None = None,
    runs: int = 50,
) -> DeployReport:
    """Run ``images`` (float NCHW) through ``model`` and through the exported file at ``path``.

    Torch runs with ``num_threads`` too (``torch.set_num_threads``), so latencies compare like
    for like; the previous setting is restored.
    """
    from onebit.runtime import load

    rt = load(path, num_threads=num_threads)
    threads = rt.num_threads
    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model.eval()
        x = images.float().contiguous()
        with torch.inference_mode():
            ref = torch.cat([model(x[i : i + 500]) for i in range(0, len(x), 500)]).numpy()
            x1 = x[:1]
            torch_ms = median_ms(lambda: model(x1), runs)
        xn = x.numpy()
        y = np.concatenate([rt.run(xn[i : i + 500]) for i in range(0, len(xn), 500)])
        xn1 = xn[:1]
        engine_ms = median_ms(lambda: rt.run(xn1), runs)
    finally:
        torch.set_num_threads(prev)
    lab = labels.numpy()
    rel = np.abs(y - ref).max() / (np.abs(ref).max() + 1e-12)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return DeployReport(
        images=len(lab),
        torch_acc=float(np.mean(ref.argmax(1) == lab)),
        engine_acc=float(np.mean(y.argmax(1) == lab)),
        same_prediction=float(np.mean(ref.argmax(1) == y.argmax(1))),
        max_rel_logit_diff=float(rel),
        torch_ms=torch_ms,
        engine_ms=engine_ms,
        threads=threads,
        file_bytes=os.path.getsize(path),
        fp32_bytes=buf.tell(),
    )
