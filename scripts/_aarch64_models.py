"""Models for scripts/test-aarch64: export them, run them in the x86 engine, compare the aarch64 outputs.

    python scripts/_aarch64_models.py prepare DIR  # .onebit files, inputs, x86 outputs, DIR/cases.json
    python scripts/_aarch64_models.py compare DIR  # DIR/<case>.<isa>.out.f32 (qemu) against the x86 ones

Cases (DIR/cases.json lists them with the instruction sets to run under emulation):

* the zoo's binary_resnet_e18, birealnet18, quicknet and binary_densenet28 at 224x224, batch 1, once
  (NEON: emulated 224 models are slow);
* the same four at 64x64, batch 2, under NEON and the portable kernels;
* the README demo's model (BinaryNet MLP 784-512-512-512-10) trained on MNIST for about 20 seconds,
  on 1,000 test images (batch 1000), under NEON and portable.

Zoo weights are random (seed 0) with BatchNorm statistics calibrated on the real photos of
$ONEBIT_DATA/imagenet-sample (random images if it is missing), as in benchmarks/end_to_end.py;
inputs are real photos too. The x86 references come from the installed engine
(onebit.runtime, one thread) under the portable kernels and under the best x86 instruction set.

Criteria (`compare`): aarch64 portable equals x86 portable bit for bit (the same C++ and the same
rounding); NEON equals the x86 run of the same float summation order (AVX-512: NEON's float kernels
reproduce it) bit for bit, which makes every binary layer exact too; against any x86 reference the
top-1 class of every sample is the same and the logits agree within float tolerance (1e-4 of the
largest logit). Exit status 1 if a criterion fails.
"""

from __future__ import annotations

import glob
import json
import os
import sys
import time

import numpy as np

ZOO = ["binary_resnet_e18", "birealnet18", "quicknet", "binary_densenet28"]
TOL = 1e-4  # relative to the largest |logit| of the sample


def _data_dir() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    return os.environ.get("ONEBIT_DATA", os.path.join(here, "..", "..", "shared", "data"))


def _photos(size: int, limit: int) -> np.ndarray | None:
    from onebit.runtime.tools import DEFAULT_PREPROCESS, preprocess_image

    files = sorted(glob.glob(os.path.join(_data_dir(), "imagenet-sample", "*", "*.JPEG")))[:limit]
    if not files:
        return None
    spec = dict(DEFAULT_PREPROCESS, resize=round(size * 256 / 224), crop=size)
    return np.stack([preprocess_image(f, spec, 3, (size, size)) for f in files]).astype(np.float32)


def _x86_references(path: str, x: np.ndarray) -> dict[str, np.ndarray]:
    """The installed (x86) engine's outputs under portable and under the best ISA of this CPU."""
    from onebit import _C
    from onebit.runtime import load

    before = _C.active_isa()
    out = {}
    try:
        for isa in dict.fromkeys(["portable", _C.best_isa()]):
            _C.set_isa(isa)
            out[isa] = np.ascontiguousarray(load(path, num_threads=1).run(x), dtype=np.float32)
    finally:
        _C.set_isa(before)
    return out


def _write_case(cases: list, d: str, name: str, path: str, x: np.ndarray, isas: list[str], **extra) -> None:
    x = np.ascontiguousarray(x, dtype=np.float32)
    x.tofile(os.path.join(d, f"{name}.in.f32"))
    refs = _x86_references(path, x)
    for isa, y in refs.items():
        y.tofile(os.path.join(d, f"{name}.x86-{isa}.f32"))
    cases.append(
        {
            "name": name,
            "model": os.path.basename(path),
            "batch": int(x.shape[0]),
            "outputs": int(refs["portable"].size),
            "isas": isas,
            "x86": sorted(refs),
            **extra,
        }
    )
    print(f"  {name}: batch {x.shape[0]}, x86 references under {', '.join(sorted(refs))}", flush=True)


def _zoo(cases: list, d: str) -> None:
    import torch

    import onebit
    from onebit.export.verify import calibrate_batchnorm

    for size, batch, isas in ((224, 1, ["neon"]), (64, 2, ["neon", "portable"])):
        photos = _photos(size, 16)
        if photos is None:
            print(f"  (no imagenet-sample photos under {_data_dir()}: random {size}x{size} images)")
            photos = np.random.default_rng(0).standard_normal((16, 3, size, size)).astype(np.float32)
        for name in ZOO:
            torch.manual_seed(0)
            model = onebit.models.create(name)
            calibrate_batchnorm(model, torch.from_numpy(photos))
            path = os.path.join(d, f"{name}_{size}.onebit")
            onebit.export(model, torch.from_numpy(photos[:1]), path, model_name=name)
            _write_case(cases, d, f"{name}_{size}", path, photos[1 : 1 + batch], isas, kind="zoo")


def _mnist(cases: list, d: str, seconds: float) -> None:
    from onebit.export import export
    from onebit.export.verify import test_split_of
    from onebit.training.checkpoint import load_model
    from onebit.training.config import load_config
    from onebit.training.loop import train

    data = _data_dir()
    if not os.path.isdir(os.path.join(data, "mnist")):
        print(f"  SKIP mnist_demo: no MNIST under {data}")
        return
    sets = [  # the README demo's model and recipe (onebit/demo.py), trained for `seconds`
        'model.name="binarynet_mlp"',
        "model.kwargs.hidden=512",
        "model.kwargs.num_hidden=3",
        'data.name="mnist"',
        f'data.data_dir="{data}"',
        "data.batch_size=100",
        "data.augment=false",
        'data.normalize="pm1"',
        'optim.name="adam"',
        "optim.lr=2e-3",
        "train.epochs=1",
        f"train.time_limit_min={seconds / 60:.4f}",
        f'train.out_dir="{d}/runs"',
        'train.run_name="mnist_demo"',
        'train.progress="false"',
        "diagnostics.plots=false",
        "diagnostics.tensorboard=false",
        "diagnostics.histograms=false",
    ]
    t0 = time.time()
    res = train(load_config(None, sets), quiet=True)
    model, meta = load_model(res["checkpoint"])
    x, labels, classes = test_split_of(meta, data)
    path = os.path.join(d, "mnist_demo.onebit")
    export(model, x[:1], path, model_name="binarynet_mlp", labels=classes)
    acc = 100 * res["metrics"]["test_acc"]
    print(f"  mnist_demo: trained {time.time() - t0:.0f} s, test accuracy {acc:.2f}%")
    n = 1000
    np.asarray(labels[:n], dtype=np.int64).tofile(os.path.join(d, "mnist_demo.labels.i64"))
    _write_case(cases, d, "mnist_demo", path, x[:n].numpy(), ["neon", "portable"], kind="mnist")


def prepare(d: str) -> int:
    os.makedirs(d, exist_ok=True)
    cases: list = []
    t0 = time.time()
    _zoo(cases, d)
    _mnist(cases, d, float(os.environ.get("ONEBIT_AARCH64_MNIST_SECONDS", "20")))
    with open(os.path.join(d, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1)
    print(f"prepared {len(cases)} models in {time.time() - t0:.0f} s")
    return 0


def _load(d: str, name: str, shape: tuple[int, int]) -> np.ndarray | None:
    path = os.path.join(d, name)
    if not os.path.exists(path):
        return None
    y = np.fromfile(path, np.float32)
    return y.reshape(shape) if y.size == shape[0] * shape[1] else None


def compare(d: str) -> int:
    with open(os.path.join(d, "cases.json")) as f:
        cases = json.load(f)
    passed = failed = 0
    head = ("case", "aarch64", "x86", "bit-identical", "max rel diff", "same top-1", "accuracy")
    rows = [head]

    def check(ok: bool, what: str) -> None:
        nonlocal passed, failed
        passed += ok
        failed += not ok
        if not ok:
            print(f"FAIL {what}")

    for c in cases:
        name = c["name"]
        shape = (c["batch"], c["outputs"] // c["batch"])
        refs = {isa: _load(d, f"{name}.x86-{isa}.f32", shape) for isa in c["x86"]}
        labels = None
        if c.get("kind") == "mnist":
            labels = np.fromfile(os.path.join(d, "mnist_demo.labels.i64"), np.int64)[: shape[0]]
        for isa in c["isas"]:
            y = _load(d, f"{name}.{isa}.out.f32", shape)
            check(y is not None, f"{name} {isa}: no output of {c['outputs']} floats from qemu")
            if y is None:
                continue
            # The bit-for-bit twin on x86: portable <-> portable, NEON <-> AVX-512 (same float order).
            twin = "portable" if isa == "portable" else ("avx512" if "avx512" in refs else None)
            for ref_isa, ref in refs.items():
                exact = bool(np.array_equal(y.view(np.uint32), ref.view(np.uint32)))
                rel = float((np.abs(y - ref) / (np.abs(ref).max(axis=1, keepdims=True) + 1e-30)).max())
                top1 = float(np.mean(y.argmax(1) == ref.argmax(1)))
                what = f"{name}: aarch64 {isa} vs x86 {ref_isa}"
                if ref_isa == twin:
                    check(exact, f"{what}: not bit-identical (max relative difference {rel:.2e})")
                if ref_isa == twin or (isa != "portable" and ref_isa != "portable"):
                    check(top1 == 1.0, f"{what}: top-1 agrees on {100 * top1:.1f}% of samples")
                    check(rel <= TOL, f"{what}: max relative difference {rel:.2e} > {TOL}")
                acc = "" if labels is None else f"{100 * float(np.mean(y.argmax(1) == labels)):.1f}%"
                rows.append(
                    (name, isa, ref_isa, "yes" if exact else "no", f"{rel:.1e}", f"{100 * top1:.1f}%", acc)
                )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    for r in rows:
        print("  " + "  ".join(v.ljust(widths[i]) for i, v in enumerate(r)).rstrip())
    print(f"models: {passed} passed, {failed} failed")
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in ("prepare", "compare"):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    return prepare(argv[2]) if argv[1] == "prepare" else compare(argv[2])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
