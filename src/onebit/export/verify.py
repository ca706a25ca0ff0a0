"""Check an exported model against PyTorch: accuracy, agreement, latency and size.

Latency is reported against the **float twin** (the same architecture with float
layers, :func:`onebit.nn.float_twin`) in PyTorch fp32: that is what the binary
network replaces. The binary model itself in PyTorch is a fake-quantized
network (signs recomputed in fp32 on every call, +-1 values multiplied in fp32
layers); it is timed too, and labelled as such, but it is no deployment baseline.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = [
    "DeployReport",
    "calibrate_batchnorm",
    "compare_engine",
    "interleaved_median_ms",
    "median_ms",
    "pinned",
    "test_split_of",
]


@dataclass
class DeployReport:
    """What `compare_engine` measured (accuracies in [0, 1], times in ms, sizes in bytes).

    ``torch_acc``/``torch_ms``: the binary model in PyTorch (fake quantization, eager);
    ``engine_acc``/``engine_ms``: the exported file in the onebit engine;
    ``twin_ms``: the float twin in PyTorch fp32 (``twin_acc`` only when a trained twin
    was given); ``fp32_bytes``: the float twin's fp32 state_dict. ``pinned_cpu`` is
    the CPU the timing thread was pinned to (None: not pinned).
    """

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
    twin_ms: float = math.nan
    twin_acc: float | None = None
    runs: int = 0
    pinned_cpu: int | None = None

    @property
    def speedup(self) -> float:
        """How many times faster the engine runs than the float twin in PyTorch fp32."""
        return self.twin_ms / self.engine_ms

    def lines(self) -> list[str]:
        """The report as printable lines, each number labelled with what produced it."""
        twin_acc = (
            f"; float twin in PyTorch fp32 {100 * self.twin_acc:.2f}%" if self.twin_acc is not None else ""
        )
        pin = f", pinned to CPU {self.pinned_cpu}" if self.pinned_cpu is not None else ""
        return [
            f"accuracy on {self.images} test images: binary model in PyTorch {100 * self.torch_acc:.2f}%, "
            f"in the onebit engine {100 * self.engine_acc:.2f}% "
            f"(same prediction on {100 * self.same_prediction:.2f}% of images, "
            f"largest logit difference {self.max_rel_logit_diff:.1e} relative){twin_acc}",
            f"latency, batch 1, {self.threads} thread(s){pin}, medians of {self.runs} interleaved runs:",
            f"  onebit engine, 1-bit weights and activations: {self.engine_ms:.3f} ms",
            f"  float twin in PyTorch fp32 (same layers, float weights and activations): "
            f"{self.twin_ms:.3f} ms -> the engine is {self.speedup:.1f}x faster",
            f"  (the binary model in PyTorch eager, fake-quant signs in fp32: {self.torch_ms:.3f} ms; "
            f"a training-time form, not a baseline)",
            f"size: {self.file_bytes / 2**20:.2f} MiB .onebit file vs {self.fp32_bytes / 2**20:.2f} MiB "
            f"fp32 state_dict of the float twin ({self.fp32_bytes / self.file_bytes:.1f}x smaller)",
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


def median_ms(fn: Callable[[], object], runs: int, warmup: int = 3) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``runs`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(ts)


def interleaved_median_ms(
    fns: dict[str, Callable[[], object]],
    runs: int,
    warmup: int = 3,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, float]:
    """Median time in ms of each function, timed one call of each per round over ``runs`` rounds.

    Interleaving exposes every contender to the same machine state (frequency, other
    load, cache pressure), so their ratio is fairer than that of separate loops.
    ``clock`` is wall time by default; ``time.thread_time`` measures the CPU time of the
    calling thread instead, which other jobs on a shared machine do not inflate (valid
    for single-threaded code only: work on other threads is not counted).
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    ts: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(runs):
        for k, fn in fns.items():
            t0 = clock()
            fn()
            ts[k].append(clock() - t0)
    return {k: 1e3 * statistics.median(v) for k, v in ts.items()}


@contextlib.contextmanager
def pinned(threads: int) -> Iterator[int | None]:
    """Pin the calling thread to one CPU while timing single-threaded code; yields the CPU or None.

    Only for ``threads == 1`` (PyTorch with one intra-op thread and the engine with one
    thread both compute on the calling thread) and where ``os.sched_setaffinity``
    exists (Linux); the previous affinity is restored.
    """
    if threads != 1 or not hasattr(os, "sched_setaffinity"):
        yield None
        return
    before = os.sched_getaffinity(0)
    cpu = max(before)
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError:
        yield None
        return
    try:
        yield cpu
    finally:
        os.sched_setaffinity(0, before)


def _fp32_state_bytes(model: nn.Module) -> int:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()


def compare_engine(
    model: nn.Module,
    path: str | os.PathLike,
    images: torch.Tensor,
    labels: torch.Tensor,
    num_threads: int | None = None,
    runs: int = 50,
    twin: nn.Module | None = None,
) -> DeployReport:
    """Run ``images`` (float NCHW) through ``model`` and through the exported file at ``path``.

    Accuracy and agreement on all images; latency at batch 1 of three contenders timed
    interleaved (:func:`interleaved_median_ms`, ``runs`` rounds), the timing thread pinned
    to one CPU when single-threaded (:func:`pinned`):

    * the onebit engine running ``path``;
    * the float twin in PyTorch fp32: ``twin`` if given (a trained float model of the same
      architecture; its accuracy is reported too), else :func:`onebit.nn.float_twin` of
      ``model`` (timed only: its weights are the latent ones);
    * ``model`` itself in PyTorch eager: fake quantization, reported for reference only.

    Torch runs with the engine's thread count (``torch.set_num_threads``), so latencies
    compare like for like; the previous setting is restored.
    """
    from onebit.nn import float_twin
    from onebit.runtime import load

    rt = load(path, num_threads=num_threads)
    threads = rt.num_threads
    trained_twin = twin is not None
    twin = twin if twin is not None else float_twin(model)
    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model.eval()
        twin.eval()
        x = images.float().contiguous()
        xn = x.numpy()
        with torch.inference_mode():
            ref = torch.cat([model(x[i : i + 500]) for i in range(0, len(x), 500)]).numpy()
            twin_acc = None
            if trained_twin:
                tw = torch.cat([twin(x[i : i + 500]) for i in range(0, len(x), 500)]).argmax(1)
                twin_acc = float((tw == labels).float().mean())
            y = np.concatenate([rt.run(xn[i : i + 500]) for i in range(0, len(xn), 500)])
            x1, xn1 = x[:1], xn[:1]
            with pinned(threads) as cpu:
                ms = interleaved_median_ms(
                    {"engine": lambda: rt.run(xn1), "twin": lambda: twin(x1), "torch": lambda: model(x1)},
                    runs,
                )
    finally:
        torch.set_num_threads(prev)
    lab = labels.numpy()
    rel = np.abs(y - ref).max() / (np.abs(ref).max() + 1e-12)
    return DeployReport(
        images=len(lab),
        torch_acc=float(np.mean(ref.argmax(1) == lab)),
        engine_acc=float(np.mean(y.argmax(1) == lab)),
        same_prediction=float(np.mean(ref.argmax(1) == y.argmax(1))),
        max_rel_logit_diff=float(rel),
        torch_ms=ms["torch"],
        engine_ms=ms["engine"],
        threads=threads,
        file_bytes=os.path.getsize(path),
        fp32_bytes=_fp32_state_bytes(twin),
        twin_ms=ms["twin"],
        twin_acc=twin_acc,
        runs=runs,
        pinned_cpu=cpu,
    )
