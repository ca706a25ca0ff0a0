"""What `onebit inspect`, `onebit run` and `onebit bench` do (numpy + Pillow, no torch)."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from onebit.runtime.model import Model, load

__all__ = ["bench", "inspect", "preprocess_image", "run_images"]

#: ImageNet-style preprocessing used when the file records none.
DEFAULT_PREPROCESS = {
    "resize": 256,
    "crop": 224,
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
}


def _table(rows: list[list[str]], headers: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    t = Table(*headers)
    for r in rows:
        t.add_row(*r)
    console.print(t)


def inspect(path: str) -> dict[str, Any]:
    """Print a .onebit file's provenance, inputs/outputs and layers; return the numbers."""
    m = load(path)
    meta = m.meta
    enc = meta.get("encodings", {})
    sizes = {"binary": 0, "float": 0, "other": 0}
    for name, spec in meta["tensors"].items():
        kind = (
            "binary"
            if enc.get(name, {}).get("encoding") == "packed_sign"
            else ("float" if spec["dtype"] in ("float32", "float16") else "other")
        )
        sizes[kind] += int(spec["nbytes"])
    file_size = os.path.getsize(path)
    prod = meta.get("producer", {})
    print(f"{path}: {file_size:,} bytes, format version {meta.get('format_version')}")
    print(
        f"model: {meta.get('model', {}).get('name', '?')}; made by onebit {prod.get('onebit', '?')} "
        f"(torch {prod.get('torch', '?')}) on {prod.get('date', '?')}"
    )
    print(f"input {m.input_name}: {tuple(m.input_shape)} float32 NCHW; output: {tuple(m.output_shape)}")
    print(
        f"weights: {sizes['binary']:,} bytes packed binary, {sizes['float']:,} bytes float, "
        f"{sizes['other']:,} bytes thresholds/other"
    )
    rows = []
    for r in m.describe():
        node = meta["nodes"][r["index"]]
        nbytes = sum(int(meta["tensors"][t]["nbytes"]) for t in node["params"].values())
        kind = r["op"] + (" -> bits" if r["output"] == "binary" else "")
        rows.append([str(r["index"]), kind, r["source"], str(r["shape"]), r["dtype"], f"{nbytes:,}"])
    _table(rows, ["#", "op", "from module", "output (batch 1, NHWC)", "dtype", "param bytes"])
    return {"file_bytes": file_size, **{f"{k}_bytes": v for k, v in sizes.items()}, "ops": len(rows)}


def preprocess_image(path: str, spec: dict[str, Any], channels: int, size: tuple[int, int]) -> np.ndarray:
    """Decode an image file and apply resize (short side) + center crop + normalization, CHW float32."""
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover
        raise RuntimeError("`onebit run` decodes images with Pillow: pip install pillow") from e
    try:
        img = Image.open(path)
        img = img.convert("L" if channels == 1 else "RGB")
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read image {path}: {e}") from None
    resize = int(spec.get("resize", max(size)))
    w, h = img.size
    scale = resize / min(w, h)
    img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR)
    ch, cw = int(spec.get("crop", size[0])), int(spec.get("crop", size[1]))
    w, h = img.size
    left, top = (w - cw) // 2, (h - ch) // 2
    img = img.crop((left, top, left + cw, top + ch))
    if img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    if arr.ndim == 2:
        arr = arr[:, :, None]
    mean = np.asarray(spec.get("mean", [0.0] * channels), np.float32)
    std = np.asarray(spec.get("std", [1.0] * channels), np.float32)
    return ((arr - mean) / std).transpose(2, 0, 1).astype(np.float32)


def run_images(
    path: str, images: list[str], top: int = 5, num_threads: int | None = None
) -> list[list[tuple]]:
    """Classify image files; print and return the top-k (class, probability) of each."""
    m = load(path, num_threads=num_threads)
    if len(m.input_shape) != 4:
        raise ValueError(f"{path}: model input {m.input_shape} is not an image")
    spec = m.meta.get("preprocess", DEFAULT_PREPROCESS)
    labels = m.meta.get("labels")
    c, h, w = m.input_shape[1:]
    x = np.stack([preprocess_image(p, spec, c, (h, w)) for p in images])
    t0 = time.perf_counter()
    logits = m.run(x)
    dt = time.perf_counter() - t0
    z = logits - logits.max(axis=1, keepdims=True)
    prob = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    results = []
    for img, p in zip(images, prob, strict=True):
        idx = np.argsort(-p)[:top]
        res = [(int(i), labels[i] if labels and i < len(labels) else str(int(i)), float(p[i])) for i in idx]
        results.append(res)
        print(img)
        for i, name, pr in res:
            print(f"  {pr:7.2%}  {i:4d}  {name}")
    print(f"{len(images)} image(s) in {dt * 1e3:.1f} ms ({m.num_threads} thread(s))")
    return results


def bench(path: str, runs: int = 50, warmup: int = 5, batch: int = 1, num_threads: int | None = None) -> dict:
    """Latency percentiles of ``run`` and the time per op type (from a profiled pass)."""
    m: Model = load(path, num_threads=num_threads)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, *m.input_shape[1:])).astype(np.float32)
    for _ in range(warmup):
        m.run(x)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        m.run(x)
        times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1e3
    m.layer_times.clear()
    n_prof = max(5, runs // 5)
    for _ in range(n_prof):
        m.run(x, profile=True)
    op_ms = sum(m.layer_times.values()) / n_prof * 1e3
    by_op: dict[str, float] = {}
    for i, t in m.layer_times.items():
        node = m.meta["nodes"][i]
        key = node["op"] + (" -> bits" if node["attrs"].get("output") == "binary" else "")
        by_op[key] = by_op.get(key, 0.0) + t
    total = sum(by_op.values()) or 1.0
    print(f"{path}: batch {batch}, {m.num_threads} thread(s), {runs} runs")
    print(
        f"latency ms: p50 {np.percentile(ms, 50):.2f}  p90 {np.percentile(ms, 90):.2f}  "
        f"p99 {np.percentile(ms, 99):.2f}  min {ms.min():.2f}"
    )
    # what the call costs beyond its ops: input/output layout, planning lookup, binding
    overhead_us = max(0.0, float(np.percentile(ms, 50)) - op_ms) * 1e3
    print(f"ops {op_ms:.3f} ms per call; engine overhead outside the ops {overhead_us:.1f} us per call")
    rows = [[op, f"{100 * t / total:.1f}%"] for op, t in sorted(by_op.items(), key=lambda kv: -kv[1])]
    _table(rows, ["op", "share of time"])
    return {
        "overhead_us": overhead_us,
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "min_ms": float(ms.min()),
        "by_op": {k: v / total for k, v in by_op.items()},
    }
