"""The engine's outputs on every zoo model and the trained MNIST MLP are bit-identical to golden files.

The goldens (tests/runtime/golden/) were recorded by ``golden/make_golden.py`` with the
Python executor over the C++ kernels, for each ISA (avx512, avx2, portable, reference) and
1 and 2 threads. Floating-point summation order differs between ISAs, so each ISA has its own
outputs; within an ISA any later engine must reproduce them exactly (compared as uint32 bits).
(Outputs bit-identical to the 1-thread ones are stored once: ``make_golden.expected``.)

Each zoo case is re-exported here exactly as it was when recorded (seed 0, one PyTorch thread,
and the BatchNorm statistics its calibration gave when recorded, stored in ``calibration.npz``:
calibrating again would make the file depend on how this CPU's PyTorch kernels round) and its
export hashed: if the hash changed, the exporter (or PyTorch) changed, not the engine, and the
case fails saying so.
The trained MLP is a committed file (also a format-compatibility fixture: files written by
the exporter of that time must keep loading).

The ``reference`` ISA runs naive kernels (about 100x slower than ``portable``: the batch-1 run
of one 32x32 zoo model takes seconds to tens of seconds), so only its batch-1 run on one thread
is recorded (``make_golden.reference_runs``). By default it is checked only on the cases where
that took well under a second (``REFERENCE_BUDGET_S``); ``ONEBIT_GOLDEN_REFERENCE=1`` checks it
on every case (several minutes). The manifest notes, per case, which ISAs' outputs differed
from the reference's when recorded (float summation order) and whether a thread count changed
a bit.

``KNOWN_DIVERGENCES`` lists where the current engine does not reproduce the goldens (strict
xfail, so an entry fails once it is fixed). The AlexNet-style cases (exports of 5-12 s) and the
224x224 cases are marked slow.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable

import numpy as np
import pytest

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")


def _load_make_golden():
    spec = importlib.util.spec_from_file_location(
        "onebit_golden_make", os.path.join(GOLDEN, "make_golden.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mg = _load_make_golden()
with open(mg.MANIFEST) as _f:
    MANIFEST = json.load(_f)
CASES: dict = MANIFEST["cases"]
RECORDED_ISAS: list[str] = MANIFEST["recorded_with"]["isas"]
#: the reference ISA is checked by default on cases whose recorded batch-1 run took less than
#: this many seconds
REFERENCE_BUDGET_S = 0.5
REFERENCE_MODE = os.environ.get("ONEBIT_GOLDEN_REFERENCE", "")
#: cases whose export took longer than this when recorded (AlexNet-style models with huge dense
#: layers: 5-12 s each) are marked slow, as are the 224x224 cases
SLOW_EXPORT_S = 3.0


#: (case, isa) pairs on which the current engine is known not to reproduce the goldens. Strict:
#: an entry fails once the outputs match again, so that it gets removed.
KNOWN_DIVERGENCES: dict[tuple[str, str], str] = {}


def _plan(case: str, isa: str) -> tuple[tuple[int, ...], list[str]] | str:
    """(thread counts, runs) to check for ``case`` on ``isa``, or why it is not checked."""
    spec = CASES[case]
    runs = list(spec["runs"])
    if isa != "reference":
        return mg.THREADS, runs
    if REFERENCE_MODE or spec["run_seconds"]["reference"] < REFERENCE_BUDGET_S:
        return (1,), list(mg.reference_runs(spec["runs"]))
    return (
        f"reference ISA on {case} would take ~{spec['run_seconds']['reference']:.0f} s "
        "(naive kernels); ONEBIT_GOLDEN_REFERENCE=1 checks it"
    )


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint32)


def _params() -> list:
    params = []
    for case, spec in CASES.items():  # case-major, so one exported file is alive at a time
        for isa in mg.ISAS:
            slow = spec["slow"] or spec.get("export_seconds", 0) > SLOW_EXPORT_S
            marks = [pytest.mark.slow] if slow else []
            if (case, isa) in KNOWN_DIVERGENCES:
                marks.append(pytest.mark.xfail(reason=KNOWN_DIVERGENCES[case, isa], strict=True))
            params.append(pytest.param(case, isa, id=f"{case}-{isa}", marks=marks))
    return params


@pytest.fixture(scope="module")
def inputs() -> dict[str, np.ndarray]:
    with np.load(mg.INPUTS) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def golden() -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for isa in RECORDED_ISAS:
        with np.load(mg.golden_path(isa)) as z:
            out[isa] = {k: z[k] for k in z.files}
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory, inputs) -> Callable[[str], str]:
    """``exported(case)``: the case's .onebit file, exported once and checked against its hash.

    Exported from the BatchNorm statistics stored when the goldens were recorded
    (``calibration.npz``), so the file does not depend on how this CPU's PyTorch kernels round.
    """
    with np.load(mg.CALIBRATION) as z:
        calibration = {k: z[k] for k in z.files}
    tmp = tmp_path_factory.mktemp("golden")
    cache: dict[str, tuple[str, str | None]] = {}

    def _evict() -> None:
        for path, _ in cache.values():
            if path != mg.TRAINED and os.path.exists(path):  # never the committed file
                os.unlink(path)
        cache.clear()

    def get(case: str) -> str:
        if case not in cache:
            _evict()  # keep one (possibly 70 MB) exported file at a time
            spec = CASES[case]
            if case == mg.TRAINED_CASE:
                path = mg.TRAINED
                got = mg.file_sha256(path)
                want = spec["file_sha256"]
                what = "the committed file changed"
            else:
                path = str(tmp / (case.replace("@", "_") + ".onebit"))
                mg.export_case(spec, mg.case_buffers(calibration, case), inputs, path)
                got = mg.content_sha256(path)
                want = spec["content_sha256"]
                what = (
                    "onebit.export (or model building or PyTorch) no longer writes the file the goldens "
                    "were recorded from, so they cannot judge the engine on it"
                )
            error = None if got == want else f"{case}: {what} (sha256 {got[:16]}, recorded {want[:16]})"
            cache[case] = (path, error)
        path, error = cache[case]
        if error:
            pytest.fail(f"{error}; recorded on {MANIFEST['recorded_with'].get('cpu_signature')!r}, this is "
                        f"{mg.cpu_signature()!r}")
        return path

    yield get
    _evict()


@pytest.mark.parametrize(("case", "isa"), _params())
def test_outputs_bit_identical_to_golden(case, isa, exported, inputs, golden):
    if isa not in mg.supported_isas():
        pytest.skip(f"this CPU lacks {isa}: its golden outputs are not checked")
    if isa not in RECORDED_ISAS:
        pytest.skip(f"no golden outputs were recorded for {isa}")
    from onebit.runtime import load

    plan = _plan(case, isa)
    if isinstance(plan, str):
        pytest.skip(plan)
    thread_counts, runs = plan
    spec = CASES[case]
    path = exported(case)
    wrong = []
    with mg.isa(isa):
        for threads in thread_counts:
            model = load(path, num_threads=threads)
            for run in runs:
                key = spec["runs"][run]
                want = mg.expected(golden[isa], case, run, threads)
                got = model.run(inputs[key])
                if got.dtype != np.float32 or got.shape != want.shape:
                    wrong.append(
                        f"{run}, {threads} thread(s): got {got.dtype} {got.shape}, want {want.shape}"
                    )
                elif not np.array_equal(_bits(got), _bits(want)):
                    n = int((_bits(got) != _bits(want)).sum())
                    rel = float(np.abs(got - want).max() / (np.abs(want).max() + 1e-30))
                    wrong.append(
                        f"{run}, {threads} thread(s): {n}/{want.size} values differ (max rel {rel:.1e})"
                    )
    assert not wrong, f"{case} on {isa}: outputs differ from the golden ones: " + "; ".join(wrong)


def test_trained_mnist_fixture_is_a_trained_model(inputs):
    """The committed file loads and classifies the recorded MNIST test images."""
    from onebit.runtime import load

    spec = CASES[mg.TRAINED_CASE]
    assert os.path.getsize(mg.TRAINED) < 2**20
    assert mg.file_sha256(mg.TRAINED) == spec["file_sha256"]
    model = load(mg.TRAINED)
    assert model.meta["model"]["name"] == "binarynet_mlp"
    y = model.run(inputs[spec["runs"]["b64"]])
    acc = float((y.argmax(1) == inputs[spec["labels"]]).mean())
    assert acc > 0.9, acc
