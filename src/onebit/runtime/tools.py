"""What `onebit inspect`, `onebit run` and `onebit bench` do (numpy, Pillow for images; no torch).

These commands are the torch-free side of onebit: they need only numpy, the
compiled engine and, to decode images, Pillow. Tables use ``rich`` when it is
installed and plain aligned text otherwise, so ``pip install onebit`` (without
the ``[train]`` extra) runs all three.

``onebit run`` turns each image into the model's input the way the recipe's
evaluation did, from the ``preprocess`` entry that ``onebit export`` records
(see :func:`check_preprocess` for its keys), and prints the recorded class
``labels``. Image files are untrusted input: anything Pillow cannot decode, and
any image larger than Pillow's decompression-bomb limit
(``PIL.Image.MAX_IMAGE_PIXELS``), is one ``ValueError`` naming the file.
"""

from __future__ import annotations

import os
import re
import sys
import time
import warnings
from typing import Any

import numpy as np

from onebit.runtime.model import Model, load

__all__ = [
    "DEFAULT_PREPROCESS",
    "bench",
    "check_preprocess",
    "default_preprocess",
    "describe_preprocess",
    "inspect",
    "preprocess_image",
    "read_image",
    "run_images",
]

#: ImageNet-style preprocessing for 224x224 RGB models (what `onebit run` assumes for such a
#: model when its file records none); :func:`default_preprocess` scales it to other sizes.
DEFAULT_PREPROCESS = {
    "resize": 256,
    "crop": 224,
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
}

#: Keys of a ``preprocess`` entry that `onebit run` acts on; others are descriptive.
_PREPROCESS_KEYS = ("channels", "resize", "crop", "mean", "std")


def _table(rows: list[list[str]], headers: list[str]) -> None:
    """Print a table: with rich when installed, else as plain aligned columns."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
        for line in (headers, ["-" * w for w in widths], *rows):
            print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
        return
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    t = Table(*headers)
    for r in rows:
        t.add_row(*r)
    console.print(t)


def _crop_hw(spec: dict[str, Any], size: tuple[int, int]) -> tuple[int, int]:
    crop = spec.get("crop", list(size))
    if isinstance(crop, (list, tuple)):
        return int(crop[0]), int(crop[1])
    return int(crop), int(crop)


def default_preprocess(channels: int, size: tuple[int, int]) -> dict[str, Any]:
    """What `onebit run` does for a file that records no preprocessing.

    Resize the short side to 256/224 of the input side and center-crop the input's H x W (the
    ImageNet evaluation shape at any size); ImageNet mean/std for 3 channels, none otherwise
    (there is no standard for 1-channel images, and a 3-value mean must not broadcast a
    grayscale image to 3 channels).
    """
    h, w = size
    spec: dict[str, Any] = {"channels": channels, "resize": round(min(h, w) * 256 / 224), "crop": [h, w]}
    if channels == 3:
        spec["mean"], spec["std"] = list(DEFAULT_PREPROCESS["mean"]), list(DEFAULT_PREPROCESS["std"])
    else:
        spec["mean"], spec["std"] = [0.0] * channels, [1.0] * channels
    return spec


def _positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def check_preprocess(spec: Any, channels: int, where: str = "preprocess") -> dict[str, Any]:
    """Validate a ``preprocess`` entry for a model with ``channels`` input channels; return it.

    Keys (all optional): ``channels`` (1: the image is converted to grayscale, 3: to RGB; must
    equal the model's), ``resize`` (the short side is resized to it, bilinear), ``crop`` (center
    crop: one side or ``[h, w]``), ``mean`` and ``std`` (per channel, on pixels scaled to [0, 1]:
    one value or one per channel). Descriptive keys (``normalize``, ``dataset``) are kept as
    they are. Raises ``ValueError`` naming ``where`` and the key.
    """
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: must be a table, got {type(spec).__name__}")
    if "channels" in spec and spec["channels"] != channels:
        raise ValueError(f"{where}: channels = {spec['channels']!r}, but the model takes {channels} channels")
    if "resize" in spec and not _positive_int(spec["resize"]):
        raise ValueError(f"{where}: resize = {spec['resize']!r}; expected a positive integer")
    if "crop" in spec:
        crop = spec["crop"]
        ok = _positive_int(crop) or (
            isinstance(crop, (list, tuple)) and len(crop) == 2 and all(_positive_int(c) for c in crop)
        )
        if not ok:
            raise ValueError(f"{where}: crop = {crop!r}; expected a positive integer or [height, width]")
    for key in ("mean", "std"):
        if key not in spec:
            continue
        v = spec[key]
        if not (
            isinstance(v, (list, tuple))
            and len(v) in (1, channels)
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x) for x in v)
        ):
            want = "1 finite number" if channels == 1 else f"1 or {channels} finite numbers (one per channel)"
            raise ValueError(f"{where}: {key} = {v!r}; expected {want} for a {channels}-channel input")
        if key == "std" and any(x <= 0 for x in v):
            raise ValueError(f"{where}: std = {v!r}; every value must be > 0")
    return spec


def describe_preprocess(spec: dict[str, Any], size: tuple[int, int] | None = None) -> str:
    """One line saying what the preprocessing does, e.g. ``RGB, resize 36, center crop 32x32, ...``."""
    parts = []
    if "channels" in spec:
        parts.append({1: "grayscale", 3: "RGB"}.get(spec["channels"], f"{spec['channels']} channels"))
    if "resize" in spec:
        parts.append(f"short side to {spec['resize']}")
    if "crop" in spec or size is not None:
        h, w = _crop_hw(spec, size or (0, 0))
        parts.append(f"center crop {h}x{w}")

    def fmt(v: list[float]) -> str:
        return "[" + ", ".join(f"{x:.4g}" for x in v) + "]"

    if "mean" in spec or "std" in spec:
        parts.append(f"mean {fmt(spec.get('mean', [0.0]))} std {fmt(spec.get('std', [1.0]))}")
    extra = ", ".join(str(spec[k]) for k in ("dataset", "normalize") if k in spec)
    return ", ".join(parts) + (f" ({extra})" if extra else "")


def read_image(path: str, channels: int) -> Any:
    """Decode an image file into a Pillow image with ``channels`` (1: grayscale, 3: RGB).

    Refuses, as ``ValueError`` naming the file, any file Pillow cannot decode and any image
    above ``PIL.Image.MAX_IMAGE_PIXELS`` pixels (89.5 million by default; Pillow only warns up
    to twice that and decodes the whole thing): a small crafted file can declare a huge size
    and make decoding take gigabytes (a decompression bomb).
    """
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency of onebit
        raise ValueError("`onebit run` decodes images with Pillow: pip install pillow") from None
    if not os.path.exists(path):
        raise ValueError(f"image not found: {path}")
    if not os.path.isfile(path):
        raise ValueError(f"cannot read image {path}: not a file")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as img:
                return img.convert("L" if channels == 1 else "RGB")
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            m = re.search(r"\((\d+) pixels\)", str(e))
            size = f"{int(m.group(1)):,} pixels" if m else "its size"
            raise ValueError(
                f"cannot read image {path}: {size} is more than the {Image.MAX_IMAGE_PIXELS:,} allowed "
                "(PIL.Image.MAX_IMAGE_PIXELS); refused as a possible decompression bomb"
            ) from None
        except MemoryError:
            raise ValueError(f"cannot read image {path}: out of memory while decoding it") from None
        except Exception as e:  # anything a malformed file makes a decoder raise
            raise ValueError(f"cannot read image {path}: {type(e).__name__}: {e}") from None


def preprocess_image(path: str, spec: dict[str, Any], channels: int, size: tuple[int, int]) -> np.ndarray:
    """Decode an image file and apply resize (short side) + center crop + normalization: CHW float32.

    The resize and crop follow torchvision's ``Resize(int)`` and ``CenterCrop`` (the recipes'
    evaluation transforms), so an exported ImageNet model sees what it saw in evaluation. A crop
    that differs from the model's H x W is resized to it. ``spec`` is checked with
    :func:`check_preprocess`.
    """
    from PIL import Image

    check_preprocess(spec, channels)
    img = read_image(path, channels)
    h_out, w_out = size
    ch, cw = _crop_hw(spec, size)
    resize = int(spec.get("resize", min(ch, cw)))
    w, h = img.size
    if w <= h:  # torchvision: the short side becomes `resize`, the long side int(resize * long / short)
        new = (resize, int(resize * h / w))
    else:
        new = (int(resize * w / h), resize)
    if new != img.size:
        img = img.resize((max(1, new[0]), max(1, new[1])), Image.BILINEAR)
    w, h = img.size
    top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
    img = img.crop((left, top, left + cw, top + ch))
    if img.size != (w_out, h_out):
        img = img.resize((w_out, h_out), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    if arr.ndim == 2:
        arr = arr[:, :, None]
    mean = np.asarray(spec.get("mean", [0.0]), np.float32)
    std = np.asarray(spec.get("std", [1.0]), np.float32)
    return ((arr - mean) / std).transpose(2, 0, 1).astype(np.float32)


def _labels_of(meta: dict[str, Any], n_out: int, path: str) -> list[str] | None:
    labels = meta.get("labels")
    if labels is None:
        return None
    if not (isinstance(labels, list) and all(isinstance(s, str) for s in labels)):
        raise ValueError(f"{path}: labels must be a list of class names")
    if len(labels) != n_out:
        print(
            f"note: {path} records {len(labels)} labels for {n_out} outputs; printing class numbers",
            file=sys.stderr,
        )
        return None
    return labels


def inspect(path: str) -> dict[str, Any]:
    """Print a .onebit file's provenance, inputs/outputs, preprocessing, labels and layers."""
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
    if len(m.input_shape) == 4:
        c, h, w = m.input_shape[1:]
        if "preprocess" in meta:
            print(f"preprocess: {describe_preprocess(meta['preprocess'], (h, w))}")
        else:
            print(
                f"preprocess: not recorded (`onebit run` assumes "
                f"{describe_preprocess(default_preprocess(c, (h, w)))})"
            )
    labels = meta.get("labels")
    if isinstance(labels, list) and labels:
        shown = ", ".join(map(str, labels[:5])) + (", ..." if len(labels) > 5 else "")
        print(f"labels: {len(labels)} ({shown})")
    else:
        print("labels: not recorded (`onebit run` prints class numbers)")
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
    return {
        "file_bytes": file_size,
        **{f"{k}_bytes": v for k, v in sizes.items()},
        "ops": len(rows),
        "preprocess": meta.get("preprocess"),
        "labels": labels,
    }


def run_images(
    path: str,
    images: list[str],
    top: int = 5,
    num_threads: int | None = None,
    float_precision: str = "fp32",
) -> list[list[tuple[int, str, float]]]:
    """Classify image files; print and return the top-k ``(class, name, probability)`` of each.

    Images are preprocessed as the file records (:func:`check_preprocess`), else as
    :func:`default_preprocess` says, with a note on stderr. ``name`` is the recorded label, or
    the class number as text when the file records none. ``float_precision`` is the load
    option of :func:`onebit.runtime.load`.
    """
    if not isinstance(top, int) or top < 1:
        raise ValueError(f"top must be a positive integer, got {top!r}")
    if not images:
        raise ValueError("no images given")
    m = load(path, num_threads=num_threads, float_precision=float_precision)
    if len(m.input_shape) != 4:
        raise ValueError(f"{path}: model input {m.input_shape} is not an image")
    c, h, w = m.input_shape[1:]
    if "preprocess" in m.meta:
        spec = check_preprocess(m.meta["preprocess"], c, where=f"{path}: recorded preprocess")
    else:
        spec = default_preprocess(c, (h, w))
        print(
            f"note: {path} records no preprocessing; using {describe_preprocess(spec)} "
            "(`onebit export CHECKPOINT` records the recipe's)",
            file=sys.stderr,
        )
    n_out = int(np.prod(m.output_shape[1:]))
    labels = _labels_of(m.meta, n_out, path)
    x = np.stack([preprocess_image(p, spec, c, (h, w)) for p in images])
    t0 = time.perf_counter()
    logits = m.run(x).reshape(len(images), -1)
    dt = time.perf_counter() - t0
    z = logits - logits.max(axis=1, keepdims=True)
    prob = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    results = []
    for img, p in zip(images, prob, strict=True):
        idx = np.argsort(-p, kind="stable")[:top]
        res = [(int(i), labels[i] if labels else str(int(i)), float(p[i])) for i in idx]
        results.append(res)
        print(img)
        for i, name, pr in res:
            print(f"  {pr:7.2%}  {i:4d}  {name}" if labels else f"  {pr:7.2%}  {i:4d}")
    print(
        f"{len(images)} image(s) in {dt * 1e3:.1f} ms ({m.num_threads} thread(s), "
        f"float layers in {m.float_precision})"
    )
    return results


def bench(
    path: str,
    runs: int = 50,
    warmup: int = 5,
    batch: int = 1,
    num_threads: int | None = None,
    float_precision: str = "fp32",
) -> dict[str, Any]:
    """Latency percentiles of ``run`` and the time per op type (from a profiled pass).

    ``float_precision`` is the load option of :func:`onebit.runtime.load`.
    """
    for name, v, least in (("runs", runs, 1), ("warmup", warmup, 0), ("batch", batch, 1)):
        if not isinstance(v, int) or isinstance(v, bool) or v < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {v!r}")
    m: Model = load(path, num_threads=num_threads, float_precision=float_precision)
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
    print(
        f"{path}: batch {batch}, {m.num_threads} thread(s), {runs} runs, float layers in {m.float_precision}"
    )
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
        "float_precision": m.float_precision,
        "by_op": {k: v / total for k, v in by_op.items()},
    }
