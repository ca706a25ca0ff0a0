"""Record the engine's outputs on every zoo model and the trained MNIST MLP (golden files).

``tests/runtime/test_golden.py`` holds later engines to these outputs bit for bit. Run this
script only with the engine whose outputs are to be recorded; it refuses to replace existing
goldens without ``--overwrite``::

    .venv/bin/python tests/runtime/golden/make_golden.py [--train] [--only CASE ...] [--overwrite]
    .venv/bin/python tests/runtime/golden/make_golden.py --rehash WHY
    .venv/bin/python tests/runtime/golden/make_golden.py --add-isa avx512

``--rehash`` is for an exporter change meant to keep every output (a fusion pass): it
re-exports the zoo cases and records only their new export hashes (``rehashed_at`` says
when and why), leaving every golden output as recorded. test_golden.py then proves the claim:
the new files must reproduce the old outputs bit for bit.

``--add-isa`` records one more ISA's outputs (one the recording CPU lacked) from the stored
calibration, after checking that every export reproduces its recorded hash.

The committed goldens were recorded on 2026-12-02 (``--overwrite``) on an AVX2-only Zen 3
(avx2, portable, reference; the avx512 outputs were added the same day with ``--add-isa avx512``
on an AMD Zen 5, family 26 model 2, where every export reproduced its recorded hash), after the
cases were made CPU-independent (numpy-drawn weights, stored calibration, float64 filter means
in the exporter): the earlier recording, calibrated on a Zen 4, could not be reproduced here.
The first recording was made (``--train``) with the Python executor over the C++
kernels (src/onebit/runtime/model.py before commit beaacce replaced it with a binding to the
C++ engine), tree at 33f86b9. Afterwards that executor (model.py and reference.py of
beaacce~1), run on the later kernels, reproduced every golden output that was re-checked
(every case on avx512, avx2 and portable with 1 and 2 threads; reference on the cases where it
is cheap).

What it writes next to itself:

* ``inputs.npz``: every input, exactly (float32 NCHW): the photos each model's BatchNorms are
  calibrated on and the batches that are run (ISA-independent, so stored once, not per ISA).
  The test needs neither the data folder nor Pillow (recording calibrated on these arrays).
* ``golden_<isa>.npz``: per ISA the engine supports here, the outputs of every case and
  run, key ``<case>/<run>/t<threads>``.
* ``manifest.json``: per case how it is built (zoo name, kwargs, calibration and run
  inputs), the hash of its exported file and what else was observed while recording.
* ``mnist_mlp.onebit`` (only with ``--train``): the demo MLP trained briefly on real MNIST
  and exported; committed, it is also a format-compatibility fixture. Without ``--train`` the
  committed file is used as it is.

* ``calibration.npz``: per zoo case the buffers (BatchNorm running statistics) its model had
  after calibration when recorded, key ``<case>/<buffer name>``. Cases are exported from these,
  not calibrated again: calibrating runs PyTorch's convolutions and reductions, whose rounding
  depends on the CPU (oneDNN and ATen pick kernels by instruction set: an AVX2-only Zen 3 and
  an AVX-512 Zen 4 gave different statistics in the last bits, hence different files, and the
  goldens could not judge the engine on the other CPU). Building (seeded init) and exporting
  (element-wise folding) round the same everywhere.

A case is a model built deterministically (numpy-drawn weights, see ``_build``), its BatchNorm
statistics calibrated on real images (as tests/export/test_zoo_export.py does), exported with
``onebit.export`` and run with ``onebit.runtime.load(path, num_threads=n).run(x)`` for every
ISA and ``n`` in 1, 2. Building and exporting run with one PyTorch thread: with two, the
reductions of BatchNorm calibration change the last bits of some statistics (seen in
binary_resnet_e18's shortcut BNs, whose means are pure rounding noise), hence the exported file.

The file itself is not reproducible byte for byte: ``producer`` records the export date (to
the second) and the onebit, torch and Python versions. :func:`content_sha256` hashes every
other part (the JSON without ``producer``, and every tensor's bytes), which is reproducible.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import gzip
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from onebit.demo import RECIPE_SETS

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
DATA = os.environ.get("ONEBIT_DATA", os.path.join(ROOT, "..", "shared", "data"))

INPUTS = os.path.join(HERE, "inputs.npz")
CALIBRATION = os.path.join(HERE, "calibration.npz")
MANIFEST = os.path.join(HERE, "manifest.json")
TRAINED = os.path.join(HERE, "mnist_mlp.onebit")
TRAINED_CASE = "mnist_mlp_trained"

ISAS = ("avx512", "avx2", "portable", "reference")
THREADS = (1, 2)
#: zoo models also recorded at their default 224x224 size (batch 1)
FULL_SIZE = ("binary_resnet_e18", "birealnet18", "quicknet", "binary_densenet28")

N_PHOTOS32 = 24  # calibration photos at 32x32 (as tests/export/test_zoo_export.py)
N_PHOTOS224 = 4  # calibration photos at 224x224 (more would only make the inputs file bigger)
N_MNIST = 64


def golden_path(isa: str) -> str:
    return os.path.join(HERE, f"golden_{isa}.npz")


def output_key(case: str, run: str, threads: int) -> str:
    return f"{case}/{run}/t{threads}"


def expected(outputs: dict[str, np.ndarray], case: str, run: str, threads: int) -> np.ndarray:
    """The golden output: stored under its thread count, or under t1 if it was bit-identical to it."""
    key = output_key(case, run, threads)
    return outputs[key] if key in outputs else outputs[output_key(case, run, 1)]


def compact(outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Drop outputs bit-identical to the 1-thread output of the same run (see :func:`expected`)."""
    out = {}
    for key, y in outputs.items():
        base, threads = key.rsplit("/t", 1)
        one = outputs.get(f"{base}/t1")
        if threads != "1" and one is not None and np.array_equal(one.view(np.uint32), y.view(np.uint32)):
            continue
        out[key] = y
    return out


# ---------------------------------------------------------------------------- hashing


def file_sha256(path: str | os.PathLike) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def content_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a .onebit file without its ``producer`` metadata (export date and versions).

    Covers the JSON description (nodes, inputs/outputs, tensor table with offsets, encodings,
    model name, ...), canonically serialized, and the bytes of every tensor in table order.
    """
    from onebit.runtime.format import read_model_file

    mf = read_model_file(path)
    meta = {k: v for k, v in mf.meta.items() if k != "producer"}
    h = hashlib.sha256(json.dumps(meta, sort_keys=True, separators=(",", ":")).encode())
    for name in mf.meta["tensors"]:
        h.update(b"\0" + name.encode() + b"\0")
        h.update(np.ascontiguousarray(mf.tensors[name]).view(np.uint8).tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------- building


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def isa(name: str) -> Iterator[None]:
    """Force the engine's instruction set (in-process, as ONEBIT_ISA does) and restore it."""
    from onebit import _C

    before = _C.active_isa()
    _C.set_isa(name)
    try:
        yield
    finally:
        _C.set_isa(before)


def supported_isas() -> list[str]:
    from onebit import _C

    return [name for name in ISAS if _C.isa_supported(name)]


def _build(spec: dict[str, Any]) -> Any:
    """The case's model with weights drawn by numpy (seed 0), the same bits on every CPU.

    PyTorch's own initializers are not: their kernels are compiled per instruction set, and
    ``ATEN_CPU_CAPABILITY=default`` already changes the last bits of ``uniform_`` (an FMA where
    the AVX2 build contracts one). So every conv / dense weight is drawn uniformly in
    ``+-1/sqrt(fan_in)`` (PyTorch's default range), every other non-constant parameter (biases)
    in ``+-0.1``; constant ones (BatchNorm's 1 and 0, PReLU's 0.25, ...) keep PyTorch's value.
    (A conv weight whose init happened to be constant would keep it too: none of the zoo's is.)
    """
    import torch

    import onebit

    torch.manual_seed(0)
    model = onebit.models.create(spec["model"], **spec["kwargs"])
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for _, p in model.named_parameters():
            if p.numel() <= 1 or bool((p == p.reshape(-1)[0]).all()):
                continue  # constant-initialized
            bound = 1.0 / float(np.sqrt(p[0].numel())) if p.dim() >= 2 else 0.1
            p.copy_(torch.from_numpy(rng.uniform(-bound, bound, tuple(p.shape)).astype(np.float32)))
    return model


def calibrate_case(spec: dict[str, Any], inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Build the zoo case ``spec``, calibrate its BatchNorms on its photos; returns its buffers."""
    import torch

    from onebit.export.verify import calibrate_batchnorm

    with torch_threads(1):
        model = _build(spec)
        before = {k: v.clone() for k, v in model.named_parameters()}
        calibrate_batchnorm(model, torch.from_numpy(np.ascontiguousarray(inputs[spec["calibration"]])),
                            batch=len(inputs[spec["calibration"]]))
        # only buffers may change (no backward runs), or storing buffers would not be enough
        assert all(torch.equal(before[k], v) for k, v in model.named_parameters()), spec["model"]
        return {name: b.detach().numpy().copy() for name, b in model.named_buffers()}


def case_buffers(calibration: dict[str, np.ndarray], case: str) -> dict[str, np.ndarray]:
    """The stored buffers of ``case`` from a loaded calibration.npz."""
    prefix = case + "/"
    return {k[len(prefix):]: v for k, v in calibration.items() if k.startswith(prefix)}


def export_case(
    spec: dict[str, Any],
    buffers: dict[str, np.ndarray],
    inputs: dict[str, np.ndarray],
    path: str | os.PathLike,
) -> int:
    """Build the zoo case ``spec``, set its calibrated ``buffers``, export it to ``path``; returns bytes."""
    import torch

    import onebit

    with torch_threads(1):
        model = _build(spec)
        names = {name for name, _ in model.named_buffers()}
        if names != set(buffers):
            raise ValueError(
                f"{spec['model']}: stored calibration has buffers {sorted(set(buffers) ^ names)[:5]} "
                "the model does not (or lacks some it has): record the case again"
            )
        with torch.no_grad():
            for name, b in model.named_buffers():
                b.copy_(torch.from_numpy(buffers[name]))
        for m in model.modules():  # as calibrate_batchnorm leaves them
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.momentum = None
        model.eval()
        x = torch.from_numpy(np.ascontiguousarray(inputs[spec["calibration"]][:1]))
        return onebit.export(model, x, path)


def run_engine(path: str | os.PathLike, x: np.ndarray, threads: int) -> np.ndarray:
    """Outputs of the engine on ``x`` under the active ISA (loaded after the ISA was set)."""
    from onebit.runtime import load

    return load(path, num_threads=threads).run(np.ascontiguousarray(x))


# ---------------------------------------------------------------------------- inputs


def _photos(size: int, n: int) -> np.ndarray:
    from onebit.runtime.tools import DEFAULT_PREPROCESS, preprocess_image

    files = sorted(glob.glob(os.path.join(DATA, "imagenet-sample", "*", "*.JPEG")))[::4][:n]
    if len(files) < n:
        sys.exit(f"need {n} ImageNet sample photos under {DATA}/imagenet-sample; set ONEBIT_DATA")
    spec = DEFAULT_PREPROCESS if size == 224 else dict(DEFAULT_PREPROCESS, resize=size + size // 8, crop=size)
    return np.stack([preprocess_image(f, spec, 3, (size, size)) for f in files])


def _mnist_test_u8(n: int) -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(os.path.join(DATA, "mnist", "t10k-images-idx3-ubyte.gz")) as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(os.path.join(DATA, "mnist", "t10k-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    return images[:n], labels[:n]


def make_inputs() -> dict[str, np.ndarray]:
    import onebit

    p32 = _photos(32, N_PHOTOS32)
    p224 = _photos(224, N_PHOTOS224)
    u8, labels = _mnist_test_u8(N_MNIST)
    cfg = onebit.models.get_cfg("binarynet_mlp")
    mean, std = np.float32(cfg["mean"][0]), np.float32(cfg["std"][0])
    mnist_std = ((u8.astype(np.float32) / np.float32(255.0) - mean) / std)[:, None]
    return {
        "photos32": p32,
        "photos32_b4": p32[0:4].copy(),
        "photos32_b1": p32[4:5].copy(),
        "photos224": p224,
        "photos224_b1": p224[0:1].copy(),
        # MNIST test images normalized as the zoo config says (mean/std), for the zoo MLP
        "mnist_std": mnist_std,
        "mnist_std_b4": mnist_std[0:4].copy(),
        "mnist_std_b1": mnist_std[4:5].copy(),
        "mnist_labels": labels.astype(np.int64),
    }


def trained_inputs() -> dict[str, np.ndarray]:
    """The first 64 MNIST test images preprocessed as the trained model's recipe does (pm1)."""
    from onebit.export.verify import test_split_of
    from onebit.training.checkpoint import load_model

    _, meta = load_model(os.path.join(_TRAIN_DIR, "last.pt"))
    x, labels, _ = test_split_of(meta, DATA)
    return {
        "mnist_pm1_b64": x[:N_MNIST].numpy().astype(np.float32),
        "mnist_pm1_b1": x[N_MNIST : N_MNIST + 1].numpy().astype(np.float32),
        "mnist_pm1_labels": labels[:N_MNIST].numpy().astype(np.int64),
    }


# ---------------------------------------------------------------------------- cases


def zoo_cases() -> dict[str, dict[str, Any]]:
    import onebit

    cases: dict[str, dict[str, Any]] = {}
    for name in onebit.models.list():
        size = onebit.models.get_cfg(name)["input_size"]
        if len(size) == 3 and size[0] == 3:
            cases[f"{name}@32"] = {
                "model": name,
                "kwargs": {"input_size": 32} if size[1] > 64 else {},
                "calibration": "photos32",
                "runs": {"b4": "photos32_b4", "b1": "photos32_b1"},
                "slow": False,
            }
        else:  # the MNIST MLP (1x28x28, flattened)
            cases[f"{name}@{size[-1]}"] = {
                "model": name,
                "kwargs": {},
                "calibration": "mnist_std",
                "runs": {"b4": "mnist_std_b4", "b1": "mnist_std_b1"},
                "slow": False,
            }
    for name in FULL_SIZE:
        assert onebit.models.get_cfg(name)["input_size"] == (3, 224, 224), name
        cases[f"{name}@224"] = {
            "model": name,
            "kwargs": {},
            "calibration": "photos224",
            "runs": {"b1": "photos224_b1"},
            "slow": True,
        }
    return cases


# ---------------------------------------------------------------------------- training

_TRAIN_DIR = os.path.join(tempfile.gettempdir(), "onebit-golden-train", "mnist_mlp")

#: the demo's recipe (src/onebit/demo.py), 3 epochs or 1.5 minutes
TRAIN_SETS = [
    *RECIPE_SETS,
    "train.epochs=3",
    "train.time_limit_min=1.5",
    "train.seed=0",
]


def train_and_export() -> dict[str, Any]:
    out, run = os.path.split(_TRAIN_DIR)
    cmd = [sys.executable, "-m", "onebit", "train", "--data-dir", DATA, "--out-dir", out, "--set"]
    cmd += [*TRAIN_SETS, f'train.run_name="{run}"']
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return export_trained()


def export_trained() -> dict[str, Any]:
    """Export the trained checkpoint to mnist_mlp.onebit (as `onebit demo` does)."""
    import torch

    from onebit.export import export
    from onebit.export.verify import test_split_of
    from onebit.training.checkpoint import load_model

    model, meta = load_model(os.path.join(_TRAIN_DIR, "last.pt"))
    x = trained_inputs()["mnist_pm1_b64"]
    _, _, classes = test_split_of(meta, DATA)
    export(model, torch.from_numpy(x[:1]), TRAINED, model_name="binarynet_mlp", labels=classes)
    os.chmod(TRAINED, 0o644)  # written via mkstemp (0600)
    with torch.no_grad():
        torch_pred = model.eval()(torch.from_numpy(x)).argmax(1).numpy()
    return {"train_metrics": meta.get("metrics", {}), "torch_pred_b64": "".join(map(str, torch_pred))}


def _engine_accuracy(path: str, data_dir: str) -> float:
    """Test accuracy of the exported file in the engine on all 10,000 MNIST test images."""
    from onebit.export.verify import test_split_of
    from onebit.runtime import load
    from onebit.training.checkpoint import load_model

    _, meta = load_model(os.path.join(_TRAIN_DIR, "last.pt"))
    x, labels, _ = test_split_of(meta, data_dir)
    y = load(path).run(x.numpy())
    return float((y.argmax(1) == labels.numpy()).mean())


# ---------------------------------------------------------------------------- main


def _bytes(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).reshape(-1).view(np.uint8)


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def reference_runs(runs: dict[str, str]) -> dict[str, str]:
    """The runs recorded (and checked) on the reference ISA: the batch-1 one."""
    return {"b1": runs["b1"]} if "b1" in runs else dict(list(runs.items())[:1])


def record_case(
    case: str, path: str, runs: dict[str, str], inputs: dict[str, np.ndarray], isas: list[str]
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
    """Run every run input under every ISA and thread count; returns outputs per ISA and notes."""
    outputs: dict[str, dict[str, np.ndarray]] = {name: {} for name in isas}
    notes: dict[str, Any] = {"threads_differ": [], "isas_differ_from_reference": {}, "run_seconds": {}}
    for name in isas:
        # the naive reference kernels (~100x slower than portable) run the batch-1 input on one
        # thread only: what test_golden.py checks of them
        here = reference_runs(runs) if name == "reference" else runs
        threads = (1,) if name == "reference" else THREADS
        with isa(name):
            t0 = time.perf_counter()
            for run, key in here.items():
                for n in threads:
                    y = run_engine(path, inputs[key], n)
                    assert y.dtype == np.float32 and np.isfinite(y).all(), (case, name, run, n)
                    outputs[name][output_key(case, run, n)] = y
                if len(threads) > 1 and not np.array_equal(
                    *(_bits(outputs[name][output_key(case, run, n)]) for n in threads)
                ):
                    notes["threads_differ"].append(f"{name}/{run}")
            notes["run_seconds"][name] = round(time.perf_counter() - t0, 3)
    if "reference" in isas:
        ref = outputs["reference"]
        for name in isas:
            differ = [
                k.split("/", 1)[1]
                for k, y in outputs[name].items()
                if k in ref and not np.array_equal(_bits(y), _bits(ref[k]))
            ]
            if differ:
                rel = max(
                    float(np.abs(outputs[name][k] - ref[k]).max() / (np.abs(ref[k]).max() + 1e-30))
                    for k in outputs[name]
                    if k in ref
                )
                notes["isas_differ_from_reference"][name] = {"runs": differ, "max_rel_diff": rel}
    return outputs, notes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", action="store_true", help="train and export mnist_mlp.onebit anew")
    ap.add_argument("--only", nargs="*", help="record only these cases (others keep their golden)")
    ap.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing golden outputs (they hold the engine they were recorded with to account)",
    )
    ap.add_argument(
        "--rehash",
        metavar="WHY",
        help="record only the zoo cases' new export hashes (the outputs stay as recorded); WHY goes "
        "into the manifest",
    )
    ap.add_argument(
        "--add-isa",
        metavar="ISA",
        help="record the outputs of one more ISA (one this CPU has, e.g. avx512 on an AVX-512 machine) "
        "for every case, from the stored calibration; the other ISAs' outputs stay as recorded",
    )
    args = ap.parse_args(argv)
    if args.rehash:
        return rehash(args.rehash)
    if args.add_isa:
        return add_isa(args.add_isa)
    if os.path.exists(MANIFEST) and not args.overwrite:
        sys.exit(
            f"{MANIFEST} exists: recording again replaces the outputs of the engine the goldens came from "
            "with this engine's; pass --overwrite if that is what you want"
        )

    import torch

    import onebit

    # the tree when the engine is imported (others may commit while this runs)
    head = _head()
    import onebit.runtime  # noqa: F401  (the engine to record, fixed from here on)

    isas = supported_isas()
    print(f"ISAs on this CPU: {isas}; torch {torch.__version__}; onebit {onebit.__version__}", flush=True)
    manifest: dict[str, Any] = {"cases": {}}
    old_out: dict[str, dict[str, np.ndarray]] = {}
    calibration: dict[str, np.ndarray] = {}
    if args.only:
        with open(MANIFEST) as f:
            manifest = json.load(f)
        with np.load(CALIBRATION) as z:
            calibration = {k: z[k] for k in z.files if k.split("/", 1)[0] not in args.only}
        for name in isas:
            with np.load(golden_path(name)) as z:
                old_out[name] = {k: z[k] for k in z.files if k.split("/", 1)[0] not in args.only}

    trained: dict[str, Any] = {}
    if args.train:
        trained = train_and_export()
    inputs = make_inputs()
    if os.path.isdir(_TRAIN_DIR):
        inputs.update(trained_inputs())
    elif os.path.exists(INPUTS):
        with np.load(INPUTS) as z:
            inputs.update({k: z[k] for k in z.files if k.startswith("mnist_pm1")})
    if os.path.exists(INPUTS):  # the recorded inputs stay what they were
        with np.load(INPUTS) as z:
            for k in z.files:
                if k in inputs and not np.array_equal(_bytes(inputs[k]), _bytes(z[k])):
                    print(f"WARNING: input {k} decodes differently now (Pillow? data?): kept", flush=True)
                inputs[k] = z[k]

    cases = zoo_cases()
    selected = args.only or [*cases, TRAINED_CASE]
    outputs: dict[str, dict[str, np.ndarray]] = {name: {} for name in isas}
    with tempfile.TemporaryDirectory() as tmp:
        for case in selected:
            t0 = time.perf_counter()
            if case == TRAINED_CASE:
                spec = {
                    "file": os.path.basename(TRAINED),
                    "runs": {"b64": "mnist_pm1_b64", "b1": "mnist_pm1_b1"},
                    "labels": "mnist_pm1_labels",
                    "slow": False,
                    "file_sha256": file_sha256(TRAINED),
                    "content_sha256": content_sha256(TRAINED),
                    "file_bytes": os.path.getsize(TRAINED),
                }
                old = manifest["cases"].get(TRAINED_CASE, {})
                spec.update({k: old[k] for k in ("train", "engine_test_acc", "note") if k in old})
                if args.train:
                    spec["train"] = {"sets": TRAIN_SETS, **trained}
                    spec["engine_test_acc"] = _engine_accuracy(TRAINED, DATA)
                path = TRAINED
                t_export = 0.0
            else:
                spec = dict(cases[case])
                path = os.path.join(tmp, case.replace("@", "_") + ".onebit")
                buffers = calibrate_case(spec, inputs)
                calibration.update({f"{case}/{k}": v for k, v in buffers.items()})
                nbytes = export_case(spec, buffers, inputs, path)
                again = os.path.join(tmp, "again.onebit")
                export_case(spec, calibrate_case(spec, inputs), inputs, again)
                t_export = time.perf_counter() - t0
                spec["content_sha256"] = content_sha256(path)
                # calibrating and exporting twice in this process gives the same file
                spec["export_reproducible"] = content_sha256(again) == spec["content_sha256"]
                spec["file_sha256_when_recorded"] = file_sha256(path)
                spec["file_bytes"] = nbytes
                spec["export_seconds"] = round(t_export / 2, 2)
                os.unlink(again)
            out, notes = record_case(case, path, spec["runs"], inputs, isas)
            spec.update(notes)
            for name in isas:
                outputs[name].update(out[name])
            manifest["cases"][case] = spec
            if path != TRAINED:
                os.unlink(path)
            print(
                f"{case:34s} export {spec.get('export_seconds', 0):6.2f}s  runs {notes['run_seconds']}  "
                f"threads differ: {notes['threads_differ'] or 'no'}  "
                f"ISAs differ from reference: {sorted(notes['isas_differ_from_reference']) or 'none'}",
                flush=True,
            )

    used = {"photos32", "photos224", "mnist_std", "mnist_labels"}
    used |= {key for spec in manifest["cases"].values() for key in spec["runs"].values()}
    used |= {spec["calibration"] for spec in manifest["cases"].values() if "calibration" in spec}
    used |= {spec["labels"] for spec in manifest["cases"].values() if "labels" in spec}
    np.savez_compressed(INPUTS, **{k: v for k, v in inputs.items() if k in used})
    np.savez_compressed(CALIBRATION, **dict(sorted(calibration.items())))
    for name in isas:
        merged = {**old_out.get(name, {}), **outputs[name]}
        np.savez_compressed(golden_path(name), **compact(merged))
    manifest["recorded_with"] = {
        "onebit": onebit.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "git_head": head,
        "engine": "onebit.runtime.load (the C++ engine)",
        "isas": isas,
        "threads": list(THREADS),
        "cpu": _cpu_name(),
        "cpu_signature": cpu_signature(),
    }
    manifest["cases"] = dict(sorted(manifest["cases"].items()))
    _write_manifest(manifest)
    print(f"wrote {INPUTS}, {MANIFEST} and golden_<isa>.npz for {isas}")
    return 0


def add_isa(name: str) -> int:
    """Record ``name``'s outputs of every case (the exports must reproduce the recorded hashes)."""
    if name not in supported_isas():
        sys.exit(f"this CPU cannot run {name} (it has {supported_isas()})")
    manifest, inputs, calibration = _load_recorded()
    outputs: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for case, spec in manifest["cases"].items():
            path = TRAINED if case == TRAINED_CASE else os.path.join(tmp, "case.onebit")
            if case != TRAINED_CASE:
                export_case(spec, case_buffers(calibration, case), inputs, path)
                if content_sha256(path) != spec["content_sha256"]:
                    sys.exit(
                        f"{case}: the export no longer reproduces the recorded file; record every ISA again"
                    )
            out, notes = record_case(case, path, spec["runs"], inputs, [name])
            outputs.update(out[name])
            spec.setdefault("run_seconds", {})[name] = notes["run_seconds"][name]
            spec.setdefault("threads_differ", []).extend(notes["threads_differ"])
            print(f"{case:34s} {name} runs {notes['run_seconds'][name]} s", flush=True)
    np.savez_compressed(golden_path(name), **compact(outputs))
    rec = manifest["recorded_with"]
    rec["isas"] = [i for i in ISAS if i in {*rec["isas"], name}]
    rec.setdefault("added", []).append({"isa": name, "cpu_signature": cpu_signature(), "git_head": _head()})
    _write_manifest(manifest)
    print(f"wrote {golden_path(name)}; manifest lists {rec['isas']}")
    return 0


def _head() -> str:
    git = ["git", "-C", ROOT, "rev-parse", "HEAD"]
    return subprocess.run(git, capture_output=True, text=True).stdout.strip()


def _load_recorded() -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The committed manifest, inputs and calibration."""
    with open(MANIFEST) as f:
        manifest = json.load(f)
    with np.load(INPUTS) as z:
        inputs = {k: z[k] for k in z.files}
    with np.load(CALIBRATION) as z:
        calibration = {k: z[k] for k in z.files}
    return manifest, inputs, calibration


def _write_manifest(manifest: dict[str, Any]) -> None:
    with open(MANIFEST, "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


def rehash(why: str) -> int:
    """Re-export every zoo case and store its new content hash; the golden outputs are untouched."""
    manifest, inputs, calibration = _load_recorded()
    head = _head()
    changed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for case, spec in manifest["cases"].items():
            if case == TRAINED_CASE:
                continue
            path = os.path.join(tmp, "case.onebit")
            spec["file_bytes"] = export_case(spec, case_buffers(calibration, case), inputs, path)
            new = content_sha256(path)
            differs = new != spec["content_sha256"]
            if differs:
                changed += 1
                was = spec["content_sha256"]
                spec.setdefault("rehashed_at", []).append({"git_head": head, "why": why, "was": was})
                spec["content_sha256"] = new
                spec["file_sha256_when_recorded"] = file_sha256(path)
            print(f"{case:34s} {'new export hash' if differs else 'same export'}", flush=True)
    _write_manifest(manifest)
    print(f"{changed} export hash(es) changed; golden outputs kept: run tests/runtime/test_golden.py")
    return 0


def cpu_signature() -> str:
    """``family/model/stepping`` and the vector extensions PyTorch's kernels dispatch on.

    The model name alone does not tell CPUs apart ("AMD EPYC" is both Zen 3 and Zen 4).
    """
    fields = _cpuinfo()
    if not fields:
        return platform.processor()
    flags = set(fields.get("flags", "").split())
    vec = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if f in flags]
    where = "/".join(fields.get(k, "?") for k in ("cpu family", "model", "stepping"))
    return f"{where} {' '.join(vec)}"


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo ({} where there is none)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip() and fields:
                    break
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def _cpu_name() -> str:
    return _cpuinfo().get("model name") or platform.processor()


if __name__ == "__main__":
    sys.exit(main())
