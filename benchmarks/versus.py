"""onebit against other CPU runtimes: the binary zoo models in the engine, float networks elsewhere.

    python benchmarks/versus.py --setup              # pip-install requirements/bench.txt, nothing else
    python benchmarks/versus.py                      # the tables of docs/performance.md (~8 min)
    python benchmarks/versus.py --quick              # one model, few runs (development)
    python benchmarks/versus.py --isa-class avx512   # every engine capped to a hardware class
    python benchmarks/versus.py --isa-class all      # one table per class this CPU can emulate

Rows, at 224x224, batch 1, on 1 and 2 threads:

* each binary model (binary_resnet_e18, birealnet18, quicknet, binary_densenet28) in the
  onebit engine;
* its **float twin** (``onebit.nn.float_twin``: the same architecture with every binary
  layer made a float Conv2d/Linear, each sign replaced by a ReLU) and torchvision's **resnet18** in
  PyTorch fp32 and bf16 (channels_last), ONNX Runtime fp32 and int8 (static QDQ,
  per-channel weights, calibrated on the real photos of imagenet-sample) and
  OpenVINO fp32, bf16 and int8 (NNCF post-training quantization on the same photos).

Weights are random (nothing pretrained can be downloaded here): BatchNorm statistics
are calibrated on the real photos, as benchmarks/end_to_end.py does, so activations
and int8 ranges have realistic scales. Latency does not depend on the weight values;
the accuracy column is each model's *published* ImageNet top-1, never measured here.
The binary model run in PyTorch (fake quantization: signs computed in fp32) is not
a baseline anyone deploys and is left out; end_to_end.py reports it, labelled.

Every runtime is timed in this one process, pinned to the first CPUs, with its
thread count set explicitly, interleaved row by row (round-robin). Each visit of a
row is one untimed call and two timed ones, back to back (2 ms apart); at two or more
threads a 150 ms pause comes first, because ONNX Runtime's intra-op workers keep
spinning about 0.1 s after each of its calls (the run measures and prints how long
each runtime's threads stay busy after a call) and took a core from whichever row
came next. The untimed call absorbs what the pause and the previous row leave behind
(cold caches, sleeping threads); the run prints how much slower it was per runtime.
The table gives medians and each row's ratio to the onebit model it is compared
with (row ms / onebit ms: above 1, onebit is faster).

``--isa-class`` caps every engine to a hardware class, in a fresh process (the caps are
environment variables read once): oneDNN's ``ONEDNN_MAX_CPU_ISA`` for OpenVINO and
PyTorch, ``ATEN_CPU_CAPABILITY`` for PyTorch's own kernels, ``ONEBIT_ISA`` for onebit.
ONNX Runtime's kernels (MLAS) dispatch on cpuid with no cap, so its rows appear only
in uncapped tables. A class this CPU lacks is skipped with a message.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import hashlib
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_REQUIREMENTS = os.path.join(ROOT, "requirements", "bench.txt")
CONSTRAINTS = os.path.join(ROOT, "requirements", "constraints.txt")
DEFAULT_MODELS = ["binary_resnet_e18", "birealnet18", "quicknet", "binary_densenet28"]
REFERENCE_MODEL = "binary_resnet_e18"  # resnet18's rows are compared with it: the same topology
CHILD_ENV = "ONEBIT_VERSUS_CLASS"  # set in the re-executed process that carries the caps

#: Published ImageNet top-1 (%) and where it was published. Not measured here.
PUBLISHED_TOP1 = {
    "binary_resnet_e18": (58.32, "larq zoo"),
    "birealnet18": (57.47, "larq zoo"),
    "binary_densenet28": (60.91, "larq zoo"),
    "quicknet": (63.3, "larq zoo (sota)"),
    "resnet18": (69.758, "torchvision IMAGENET1K_V1"),
    # torchvision's own int8 resnet18 (FBGEMM post-training quantization): what int8 costs a
    # ResNet-18 in accuracy; our int8 rows use other quantizers, so this is indicative.
    "resnet18 int8": (69.494, "torchvision quantized FBGEMM_V1"),
}


# --------------------------------------------------------------------------- the machine


@dataclasses.dataclass(frozen=True)
class IsaClass:
    """A hardware class and how each engine is capped to it."""

    name: str
    description: str
    needs: tuple[str, ...]  # lscpu flags a CPU of the class has
    onednn: str | None  # ONEDNN_MAX_CPU_ISA (OpenVINO, PyTorch); None: no cap
    aten: str | None  # ATEN_CPU_CAPABILITY (PyTorch's own vectorized kernels)
    onebit: str | None  # ONEBIT_ISA
    bf16: bool  # the class computes bf16 natively

    @property
    def capped(self) -> bool:
        return self.onednn is not None


_AVX512 = ("avx512f", "avx512bw", "avx512vl", "avx512dq")
#: From most to least capable. onebit's binary layers are XNOR-popcount on every AVX-512
#: class (its avx512 path); only its opt-in bf16 / int8 float layers need BF16 / VNNI, and
#: it has no AMX kernels.
ISA_CLASSES = {
    c.name: c
    for c in (
        IsaClass("amx", "AMX (full: AMX-INT8/BF16 + AVX-512 VNNI/BF16), e.g. Xeon Sapphire Rapids",
                 _AVX512 + ("avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16"),
                 None, None, None, True),
        IsaClass("avx512_bf16", "AVX-512 with VNNI and BF16, no AMX, e.g. AMD Zen 4 and 5, Xeon Cooper Lake",
                 _AVX512 + ("avx512_vnni", "avx512_bf16"), "AVX512_CORE_BF16", "avx512", "avx512", True),
        IsaClass("avx512_vnni", "AVX-512 VNNI without AMX or BF16, e.g. Xeon Cascade/Ice Lake",
                 _AVX512 + ("avx512_vnni",), "AVX512_CORE_VNNI", "avx512", "avx512", False),
        IsaClass("avx512", "AVX-512 without VNNI, e.g. Xeon Skylake-SP",
                 _AVX512, "AVX512_CORE", "avx512", "avx512", False),
        IsaClass("avx2", "AVX2 + FMA, no AVX-512, e.g. most desktop CPUs before 2022",
                 ("avx2", "fma"), "AVX2", "avx2", "avx2", False),
    )
}


def lscpu() -> tuple[str, set[str]]:
    """(model name, flags) from lscpu, else /proc/cpuinfo."""
    text = ""
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    if "Flags" not in text:
        with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
            text = f.read()
    return parse_cpu_info(text)


def parse_cpu_info(text: str) -> tuple[str, set[str]]:
    """Model name (with the CPU family and model numbers where given) and flags from
    lscpu's or /proc/cpuinfo's text. The numbers tell CPUs apart that a guest names
    alike: "AMD EPYC" has been a Zen 3 (family 25 model 1), a Zen 4 (25/17) and a
    Zen 5 (26/2) here."""
    name, flags = "unknown CPU", set()
    family = model = None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "model name" and name == "unknown CPU":
            name = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
        elif key == "cpu family" and family is None:
            family = value.strip()
        elif key == "model" and model is None:
            model = value.strip()
    if family and model and name != "unknown CPU":
        name += f" (family {family} model {model})"
    return name, flags


def class_of(flags: set[str]) -> IsaClass | None:
    """The most capable class whose features this CPU has (None: below AVX2)."""
    return next((c for c in ISA_CLASSES.values() if set(c.needs) <= flags), None)


def available_classes(flags: set[str]) -> dict[str, str | None]:
    """Each class name -> None when this CPU can run it, else why not."""
    out: dict[str, str | None] = {}
    for c in ISA_CLASSES.values():
        missing = sorted(set(c.needs) - flags)
        out[c.name] = None if not missing else "this CPU lacks " + ", ".join(missing)
    return out


def pin_to(cpus: Sequence[int]) -> None:
    """Pin every thread of this process (and so the threads it creates later) to ``cpus``."""
    tids = [int(t) for t in os.listdir("/proc/self/task")] if os.path.isdir("/proc/self/task") else [0]
    for tid in tids:
        with contextlib.suppress(OSError):  # a thread that has just exited
            os.sched_setaffinity(tid, cpus)


# --------------------------------------------------------------------------- set-up


def bench_requirements(path: str = BENCH_REQUIREMENTS) -> list[str]:
    """Requirement lines of requirements/bench.txt (comments and blanks dropped)."""
    with open(path) as f:
        lines = [ln.split("#", 1)[0].strip() for ln in f]
    return [ln for ln in lines if ln]


def pip_commands(requirements: list[str], python: str = sys.executable) -> list[list[str]]:
    """One pip command per package, so that one that cannot be installed spoils no other."""
    return [[python, "-m", "pip", "install", "-q", "-c", CONSTRAINTS, req] for req in requirements]


def setup(run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> dict[str, str | None]:
    """pip-install requirements/bench.txt into this environment: package -> None or the error."""
    result: dict[str, str | None] = {}
    for req, cmd in zip(bench_requirements(), pip_commands(bench_requirements()), strict=True):
        log(f"set-up: {' '.join(cmd[1:])}")
        try:
            p = run(cmd, capture_output=True, text=True, timeout=900)
            err = (p.stderr or p.stdout).strip().splitlines()[-1:] if p.returncode else None
            result[req] = None if err is None else (err[0] if err else f"pip exited {p.returncode}")
        except (OSError, subprocess.TimeoutExpired) as e:
            result[req] = str(e)
        if result[req]:
            log(f"set-up: {req} could not be installed: {result[req]}")
    importlib.invalidate_caches()
    return result


def import_runtimes(auto_setup: bool) -> dict[str, object]:
    """The optional runtimes' modules by name; missing ones are installed once if allowed."""
    names = {"onnx": "onnx", "onnxruntime": "onnxruntime", "openvino": "openvino", "nncf": "nncf"}

    def attempt() -> tuple[dict[str, object], dict[str, str]]:
        mods, errors = {}, {}
        for key, mod in names.items():
            try:
                mods[key] = importlib.import_module(mod)
            except Exception as e:  # ImportError, or a broken wheel's OSError
                errors[key] = f"{type(e).__name__}: {e}"
        return mods, errors

    mods, errors = attempt()
    if errors and auto_setup:
        log(f"optional runtimes missing ({', '.join(errors)}): running the set-up once")
        setup()
        mods, errors = attempt()
    for key, err in errors.items():
        log(f"SKIP {key}: not importable ({err}); its rows are skipped")
    return mods


# --------------------------------------------------------------------------- networks


@dataclasses.dataclass
class Network:
    """A float network and the files the other runtimes run."""

    name: str  # "quicknet float twin", "resnet18"
    family: str  # the binary model its rows are compared with
    top1: str  # published top-1 as printed ("-": none published)
    top1_int8: str
    module: object  # torch fp32, eval
    onnx_path: str | None = None
    ort_int8_path: str | None = None
    ov_fp32: object = None
    ov_int8: object = None
    problems: dict = dataclasses.field(default_factory=dict)  # row key -> why it is skipped


def top1_text(key: str) -> str:
    if key not in PUBLISHED_TOP1:
        return "-"
    value, source = PUBLISHED_TOP1[key]
    return f"{value:.2f}% ({source})"


def export_onnx(module, x, path: str) -> None:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), path, dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["logits"])


def cache_dir_for(cache: str | None, slug: str, onnx_path: str | None, calib: np.ndarray,
                  versions: Sequence[object]) -> str | None:
    """Where a quantized model of this exact float network, calibration set and tools is kept."""
    if not cache or not onnx_path:
        return None
    h = hashlib.sha256()
    with open(onnx_path, "rb") as f:
        h.update(f.read())
    h.update(np.ascontiguousarray(calib).tobytes())
    h.update(repr([str(v) for v in versions]).encode())
    path = os.path.join(cache, slug, h.hexdigest()[:16])
    os.makedirs(path, exist_ok=True)
    return path


def quantize_ort(src: str, dst: str, calib: np.ndarray, work: str) -> None:
    """Static QDQ int8: per-channel int8 weights, uint8 activations, min-max ranges on ``calib``."""
    from onnxruntime import quantization as oq

    class Reader(oq.CalibrationDataReader):
        def __init__(self) -> None:
            self.i = 0

        def get_next(self):
            if self.i >= len(calib):
                return None
            self.i += 1
            return {"input": calib[self.i - 1 : self.i]}

    pre = os.path.join(work, "pre.onnx")
    oq.quant_pre_process(src, pre)
    oq.quantize_static(pre, dst, Reader(), quant_format=oq.QuantFormat.QDQ, per_channel=True,
                       activation_type=oq.QuantType.QUInt8, weight_type=oq.QuantType.QInt8)


def quantize_ov(ov_model, calib: np.ndarray, mods: dict):
    nncf = mods["nncf"]
    data = nncf.Dataset([calib[i : i + 1] for i in range(len(calib))])
    with contextlib.redirect_stdout(sys.stderr):  # NNCF's progress bars
        return nncf.quantize(ov_model, data, subset_size=len(calib))


def prepare(net: Network, x, calib: np.ndarray, mods: dict, work: str, cache: str | None,
            want: set[str]) -> None:
    """Export ``net`` to ONNX and OpenVINO and quantize it; failures become skip reasons."""
    t0 = time.perf_counter()
    slug = net.name.replace(" ", "_")
    need_onnx = want & {"ort", "openvino"}
    if need_onnx and "onnx" in mods:
        path = os.path.join(work, f"{slug}.onnx")
        try:
            export_onnx(net.module, x, path)
            net.onnx_path = path
        except Exception as e:
            net.problems["onnx"] = f"ONNX export failed: {type(e).__name__}: {e}"
    elif need_onnx:
        net.problems["onnx"] = "onnx is not installed"

    def version(key: str) -> object:
        return getattr(mods.get(key), "__version__", None)

    if "ort" in want and net.onnx_path and "onnxruntime" in mods:
        store = cache_dir_for(cache, slug, net.onnx_path, calib, ["ort", version("onnxruntime")])
        dst = os.path.join(store or work, "ort_int8.onnx")
        try:
            if not os.path.exists(dst):
                with tempfile.TemporaryDirectory(dir=work) as scratch:
                    quantize_ort(net.onnx_path, dst + ".part", calib, scratch)
                os.replace(dst + ".part", dst)
            net.ort_int8_path = dst
        except Exception as e:
            net.problems["ort int8"] = f"ONNX Runtime quantization failed: {type(e).__name__}: {e}"
    if "openvino" in want and "openvino" in mods:
        ov = mods["openvino"]
        try:
            src = net.onnx_path if net.onnx_path else net.module
            kwargs = {} if net.onnx_path else {"example_input": x}
            net.ov_fp32 = ov.convert_model(src, **kwargs)
        except Exception as e:
            net.problems["openvino"] = f"OpenVINO conversion failed: {type(e).__name__}: {e}"
        if net.ov_fp32 is not None and "nncf" in mods:
            store = cache_dir_for(cache, slug, net.onnx_path, calib,
                                  ["ov", version("openvino"), version("nncf")])
            xml = os.path.join(store or work, "ov_int8.xml")
            try:
                if os.path.exists(xml):
                    net.ov_int8 = ov.Core().read_model(xml)
                else:
                    net.ov_int8 = quantize_ov(net.ov_fp32, calib, mods)
                    if store:
                        ov.save_model(net.ov_int8, xml, compress_to_fp16=False)
            except Exception as e:
                net.problems["openvino int8"] = f"NNCF quantization failed: {type(e).__name__}: {e}"
        elif net.ov_fp32 is not None:
            net.problems["openvino int8"] = "nncf is not installed"
    log(f"prepared {net.name} in {time.perf_counter() - t0:.0f} s")


# --------------------------------------------------------------------------- timing


@dataclasses.dataclass
class Row:
    network: str
    family: str
    runtime: str
    precision: str
    top1: str
    ms: dict = dataclasses.field(default_factory=dict)  # threads -> median wall ms
    iqr: dict = dataclasses.field(default_factory=dict)  # threads -> (p75 - p25) / median
    # threads -> median CPU ms of the whole process per call: at 1 thread the work itself,
    # without the time other jobs held the core (the robust measure on a shared machine)
    cpu_ms: dict = dataclasses.field(default_factory=dict)
    note: str = ""


def interleaved(fns: Sequence[Callable[[], object]], runs: int, warmup: int = 2,
                gap_s: float = 0.002, settle_s: float = 0.0, lead: int = 0, burst: int = 1,
                clock: Callable[[], float] = time.perf_counter,
                cpu_clock: Callable[[], float] = time.process_time,
                sleep: Callable[[float], None] = time.sleep,
                lead_wall: list[list[float]] | None = None) -> tuple[list[list[float]], list[list[float]]]:
    """Wall and process-CPU seconds of the timed calls of each fn, round-robin, the first fn rotating.

    Each visit of a fn in a round: a ``settle_s`` pause, ``lead`` untimed calls, then ``burst``
    timed calls, every call after a ``gap_s`` pause. The first ``warmup`` rounds are not timed.
    ``lead_wall``, if given, receives each fn's lead calls' wall seconds (timed rounds only).
    """
    n = len(fns)
    wall: list[list[float]] = [[] for _ in fns]
    cpu: list[list[float]] = [[] for _ in fns]
    if lead_wall is not None:
        lead_wall[:] = [[] for _ in fns]
    for r in range(warmup + runs):
        for k in range(n):
            i = (r + k) % n
            if settle_s > 0:
                sleep(settle_s)
            for b in range(lead + burst):
                sleep(gap_s)
                t0, c0 = clock(), cpu_clock()
                fns[i]()
                t1, c1 = clock(), cpu_clock()
                if r < warmup:
                    continue
                if b >= lead:
                    wall[i].append(t1 - t0)
                    cpu[i].append(c1 - c0)
                elif lead_wall is not None:
                    lead_wall[i].append(t1 - t0)
    return wall, cpu


def report_lead_calls(rows: Sequence[Row], leads: Sequence[Sequence[float]],
                      timed: Sequence[Sequence[float]]) -> None:
    """Logs, per runtime, how much slower the untimed first call of a visit was than the timed ones
    (median over that runtime's rows of lead median / timed median)."""
    by_runtime: dict[str, list[float]] = {}
    for row, ls, ts in zip(rows, leads, timed, strict=True):
        if ls and ts:
            by_runtime.setdefault(row.runtime, []).append(statistics.median(ls) / statistics.median(ts))
    if by_runtime:
        log("first call of a visit (untimed) / timed calls: " + ", ".join(
            f"{rt} {statistics.median(v):.2f}x" for rt, v in by_runtime.items()))


def thread_run_ns() -> dict[int, int]:
    """Run time so far of each thread of this process, ns (/proc/self/task/*/schedstat)."""
    out: dict[int, int] = {}
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                out[int(tid)] = int(f.read().split()[0])
    return out


def after_call_activity(fn: Callable[[], object], window_s: float = 0.25, repeats: int = 3,
                        settle_s: float = 0.3) -> tuple[float, float]:
    """CPU ms that threads other than the caller run in the ``window_s`` after ``fn`` returns, and
    how long after the call the last of it ran (medians of ``repeats``): a runtime whose workers
    spin-wait after its calls takes a core from whatever the process runs next."""
    me = threading.get_native_id()
    totals, lasts = [], []
    for _ in range(repeats):
        time.sleep(settle_s)
        fn()
        start, t0 = thread_run_ns(), time.perf_counter()
        latest = dict(start)  # a thread that exits in the window keeps its last reading
        samples = []
        while time.perf_counter() - t0 < window_s:
            time.sleep(0.001)
            latest.update(thread_run_ns())
            busy = sum(v - start.get(tid, 0) for tid, v in latest.items() if tid != me) / 1e6
            samples.append((time.perf_counter() - t0, busy))
        total = samples[-1][1] if samples else 0.0
        totals.append(total)
        lasts.append(1e3 * next((t for t, v in samples if v >= total - 0.05), 0.0))
    return statistics.median(totals), statistics.median(lasts)


def report_after_call_activity(cands: Candidates) -> None:
    """Print after_call_activity for the first row of each runtime (Linux only)."""
    if not os.path.isdir("/proc/self/task"):
        return
    seen: set[str] = set()
    for row, fn in zip(cands.rows, cands.fns, strict=True):
        if row.runtime in seen:
            continue
        seen.add(row.runtime)
        busy, last = after_call_activity(fn)
        log(f"after a call of {row.runtime} ({row.network} {row.precision}): its threads run {busy:.1f} ms "
            f"of CPU in the next 250 ms, the last of it {last:.0f} ms after the call")


def median_and_iqr_ms(ts: Sequence[float]) -> tuple[float, float]:
    """Median in ms and the interquartile range relative to it."""
    med = statistics.median(ts)
    if len(ts) < 4:
        return 1e3 * med, 0.0
    q = statistics.quantiles(ts, n=4)
    return 1e3 * med, (q[2] - q[0]) / med


def ov_kernels(compiled) -> str:
    """The most common primitive OpenVINO chose for the convolutions, with its precision."""
    count: Counter = Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if "layerType" in info and info["layerType"].astype(str) == "Convolution":
            count[f"{info['primitiveType'].astype(str)} {info['runtimePrecision'].astype(str)}"] += 1
    return count.most_common(1)[0][0] if count else "?"


class Candidates:
    """The callables of one thread count, with their rows; skips are logged once."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.fns: list[Callable[[], object]] = []
        self.skipped: dict[tuple[str, str, str], str] = {}

    def add(self, row: Row, fn: Callable[[], object]) -> None:
        self.rows.append(row)
        self.fns.append(fn)

    def skip(self, network: str, runtime: str, precision: str, why: str) -> None:
        self.skipped[(network, runtime, precision)] = why


def build_candidates(threads: int, engines: dict, nets: list[Network], x: np.ndarray,
                     isa: IsaClass | None, mods: dict, want: set[str]) -> Candidates:
    """Every (network, runtime, precision) at ``threads`` threads, ready to call."""
    import torch

    from onebit.runtime import load

    torch.set_num_threads(threads)
    xt = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
    c = Candidates()
    for name, path in engines.items():
        rt = load(path, num_threads=threads)
        c.add(Row(name, name, "onebit", "1-bit", top1_text(name)), lambda rt=rt: rt.run(x))
        # the same file with its float layers (stem, 1x1 shortcuts, dense) in bf16 / int8: the
        # load option float_precision, opt-in (top-1 agreement: docs/performance.md)
        for prec, flag in (("bf16", "avx512_bf16"), ("int8", "avx512_vnni")):
            label = ONEBIT_LOW_PRECISION[prec]
            if isa is not None and flag not in isa.needs:
                c.skip(name, "onebit", label, f"class {isa.name} has no {flag}")
                continue
            try:
                rl = load(path, num_threads=threads, float_precision=prec)
            except (ValueError, RuntimeError) as e:  # this CPU lacks the instructions
                c.skip(name, "onebit", label, str(e).splitlines()[0])
                continue
            c.add(Row(name, name, "onebit", label, top1_text(name)), lambda rt=rl: rt.run(x))
    bf16_native = isa.bf16 if isa else True
    for net in nets:
        if "torch" in want:
            m32 = net.module.to(memory_format=torch.channels_last)
            c.add(Row(net.name, net.family, "PyTorch", "fp32", net.top1),
                  lambda m=m32: _torch_call(m, xt))
            m16 = copy.deepcopy(net.module).to(memory_format=torch.channels_last, dtype=torch.bfloat16)
            x16 = xt.to(torch.bfloat16)
            note = "" if bf16_native else "emulated: no native bf16 in this class"
            c.add(Row(net.name, net.family, "PyTorch", "bf16", net.top1, note=note),
                  lambda m=m16, x16=x16: _torch_call(m, x16))
        if "ort" in want:
            _add_ort(c, net, threads, x, isa, mods)
        if "openvino" in want:
            _add_openvino(c, net, threads, x, isa, mods, bf16_native)
    return c


def _torch_call(module, x):
    import torch

    with torch.inference_mode():
        return module(x)


def _add_ort(c: Candidates, net: Network, threads: int, x: np.ndarray, isa: IsaClass | None,
             mods: dict) -> None:
    for prec in ("fp32", "int8"):
        path = net.onnx_path if prec == "fp32" else net.ort_int8_path
        if isa is not None and isa.capped:
            c.skip(net.name, "ONNX Runtime", prec, "MLAS dispatches on cpuid and cannot be capped")
        elif "onnxruntime" not in mods:
            c.skip(net.name, "ONNX Runtime", prec, "onnxruntime is not installed")
        elif path is None:
            why = net.problems.get("onnx") or net.problems.get("ort int8", "no model")
            c.skip(net.name, "ONNX Runtime", prec, why)
        else:
            ort = mods["onnxruntime"]
            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
            so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            note = "static QDQ, per-channel weights" if prec == "int8" else ""
            top1 = net.top1_int8 if prec == "int8" else net.top1
            c.add(Row(net.name, net.family, "ONNX Runtime", prec, top1, note=note),
                  lambda s=sess: s.run(None, {"input": x}))


def _add_openvino(c: Candidates, net: Network, threads: int, x: np.ndarray, isa: IsaClass | None,
                  mods: dict, bf16_native: bool) -> None:
    if "openvino" not in mods:
        for prec in ("fp32", "bf16", "int8"):
            c.skip(net.name, "OpenVINO", prec, "openvino is not installed")
        return
    ov = mods["openvino"]
    core = ov.Core()
    base = {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
            "ENABLE_CPU_PINNING": True}
    # OpenVINO decides bf16 from cpuid, not from the oneDNN cap: on a class without bf16 it
    # would emulate it, which a CPU of that class never does (it runs fp32 instead).
    int8_rest = None if bf16_native else "f32"
    plans = [("fp32", net.ov_fp32, "f32"), ("bf16", net.ov_fp32, "bf16"), ("int8", net.ov_int8, int8_rest)]
    for prec, model, hint in plans:
        if model is None:
            why = net.problems.get("openvino int8" if prec == "int8" else "openvino", "no model")
            c.skip(net.name, "OpenVINO", prec, why)
            continue
        if prec == "bf16" and not bf16_native:
            c.skip(net.name, "OpenVINO", prec, "no native bf16 in this class (OpenVINO would run fp32)")
            continue
        cfg = dict(base, **({"INFERENCE_PRECISION_HINT": hint} if hint else {}))
        compiled = core.compile_model(model, "CPU", cfg)
        req = compiled.create_infer_request()
        note = ov_kernels(compiled)
        if prec == "int8":
            rest = str(compiled.get_property("INFERENCE_PRECISION_HINT")).replace("<Type: '", "").rstrip("'>")
            note = f"NNCF PTQ; {note}; other layers {rest}"
        top1 = net.top1_int8 if prec == "int8" else net.top1
        c.add(Row(net.name, net.family, "OpenVINO", prec, top1, note=note),
              lambda r=req: r.infer({0: x}, share_inputs=True, share_outputs=True))


def as_array(out) -> np.ndarray:
    """The logits of any runtime's result as a float32 numpy array."""
    if hasattr(out, "detach"):  # torch
        return out.detach().float().numpy()
    if hasattr(out, "to_tuple"):  # OpenVINO's OVDict
        out = out.to_tuple()
    if isinstance(out, (list, tuple)):  # ONNX Runtime
        out = out[0]
    return np.asarray(out, dtype=np.float32)


def relative_error(y: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(y - ref).max() / (np.abs(ref).max() + 1e-12))


def check_fp32(c: Candidates, tolerance: float = 1e-3) -> None:
    """ONNX Runtime's and OpenVINO's fp32 logits against PyTorch's: the same network ran."""
    ref = {r.network: as_array(f()) for r, f in zip(c.rows, c.fns, strict=True)
           if r.runtime == "PyTorch" and r.precision == "fp32"}
    for r, f in zip(c.rows, c.fns, strict=True):
        if r.precision == "fp32" and r.runtime != "PyTorch" and r.network in ref:
            err = relative_error(as_array(f()), ref[r.network])
            if err > tolerance:
                r.note = f"fp32 logits differ from PyTorch's by {err:.1e} (relative)" + (
                    f"; {r.note}" if r.note else "")
                log(f"WARNING {r.network}, {r.runtime}: {r.note}")


# --------------------------------------------------------------------------- output


def ratio_text(ms: float | None, ref: float | None) -> str:
    """Row ms over onebit ms: '6.03x' (onebit faster above 1)."""
    if ms is None or not ref:
        return "-"
    return f"{ms / ref:.2f}x"


def ms_text(ms: float | None) -> str:
    return "-" if ms is None else (f"{ms:.2f}" if ms < 100 else f"{ms:.0f}")


def table(rows: list[Row], threads: list[int], ref_of: Callable[[Row], Row | None]) -> list[str]:
    head = "| network | published top-1 | runtime | precision |"
    rule = "|---|---|---|---|"
    for t in threads:
        head += f" {t} thr ms | vs onebit |"
        rule += "---:|---:|"
    out = [head + " notes |", rule + "---|"]
    for r in rows:
        ref = ref_of(r)
        line = f"| {r.network} | {r.top1} | {r.runtime} | {r.precision} |"
        for t in threads:
            line += f" {ms_text(r.ms.get(t))} | {ratio_text(r.ms.get(t), ref.ms.get(t) if ref else None)} |"
        out.append(line + f" {r.note} |")
    return out


#: onebit's rows with its float layers in lower precision (load option float_precision)
ONEBIT_LOW_PRECISION = {"bf16": "1-bit + bf16 float layers", "int8": "1-bit + int8 float layers"}

#: The columns of :func:`matrix`: runtime and precision.
COLUMNS = [("onebit", "1-bit"), *(("onebit", p) for p in ONEBIT_LOW_PRECISION.values()),
           ("PyTorch", "fp32"), ("PyTorch", "bf16"), ("ONNX Runtime", "fp32"),
           ("ONNX Runtime", "int8"), ("OpenVINO", "fp32"), ("OpenVINO", "bf16"), ("OpenVINO", "int8")]


def matrix(rows: list[Row], t: int, ref_of: Callable[[Row], Row | None], field: str = "ms") -> list[str]:
    """One line per binary model (its onebit time, then its float twin's) and one for resnet18.

    Cells are "ms (row ms / onebit ms)" of ``field`` ("ms": wall, "cpu_ms": process CPU time);
    columns no row has are left out.
    """
    cell = {("resnet18" if r.network == "resnet18" else r.family, r.runtime, r.precision): r
            for r in rows if t in getattr(r, field)}
    cols = [c for c in COLUMNS if any((k[1], k[2]) == c for k in cell)]
    what = "CPU ms" if field == "cpu_ms" else "ms"
    lines = ["| " + f"{t} thread{'s' if t > 1 else ''}, {what} | published top-1 | "
             + " | ".join(f"{rt} {prec}" for rt, prec in cols) + " |",
             "|---|---|" + "---:|" * len(cols)]
    families = list(dict.fromkeys(r.family for r in rows if r.runtime == "onebit"))
    has_r18 = any(r.network == "resnet18" for r in rows)
    for fam in families + (["resnet18"] if has_r18 else []):
        texts = []
        for rt, prec in cols:
            r = cell.get((fam, rt, prec))
            ref = ref_of(r) if r else None
            ms = getattr(r, field).get(t) if r else None
            ref_ms = getattr(ref, field).get(t) if ref else None
            texts.append("-" if ms is None else f"{ms_text(ms)} ({ratio_text(ms, ref_ms)})")
        label = fam if fam == "resnet18" else f"{fam} (onebit) / its float twin"
        lines.append(f"| {label} | {top1_text(fam)} | " + " | ".join(texts) + " |")
    return lines


def skip_lines(skipped: dict[tuple[str, str, str], str], networks: set[str]) -> list[str]:
    """One line per runtime and reason: '* ONNX Runtime fp32, int8 (every network): why'."""
    groups: dict[tuple[str, str], dict[str, set[str]]] = {}
    for (net, rt, prec), why in skipped.items():
        groups.setdefault((rt, why), {}).setdefault(prec, set()).add(net)
    out = []
    for (rt, why), precs in sorted(groups.items()):
        nets = set().union(*precs.values())
        where = "every network" if nets >= networks else ", ".join(sorted(nets))
        out.append(f"* {rt} {', '.join(sorted(precs))} ({where}): {why}")
    return out


def log(msg: str) -> None:
    print(f"[versus] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--setup", action="store_true", help="pip-install requirements/bench.txt and exit")
    ap.add_argument("--no-setup", action="store_true", help="never pip-install missing runtimes")
    ap.add_argument("--quick", action="store_true",
                    help="binary_resnet_e18 only, 5 runs, 16 calibration photos")
    ap.add_argument("--models", nargs="+", default=None, help=f"binary zoo models (default {DEFAULT_MODELS})")
    ap.add_argument("--no-resnet18", action="store_true", help="leave torchvision's resnet18 out")
    ap.add_argument("--runtimes", nargs="+", default=["onebit", "torch", "ort", "openvino"],
                    choices=["onebit", "torch", "ort", "openvino"])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--runs", type=int, default=None, help="timed rounds (default 20, --quick 5)")
    ap.add_argument("--calib-images", type=int, default=None,
                    help="photos for int8 calibration (default all 103, --quick 16)")
    ap.add_argument("--bn-images", type=int, default=None,
                    help="photos for BatchNorm statistics (default 32, --quick 16; latency does not "
                         "depend on them, and the binary models in PyTorch take ~1 s per photo here)")
    ap.add_argument("--gap-ms", type=float, default=2.0, help="pause before each call")
    ap.add_argument("--settle-ms", type=float, default=150.0,
                    help="pause before each visit of a row at two or more threads: ONNX Runtime's workers "
                         "keep spinning ~0.1 s after its calls (measured and printed by the run), which "
                         "would take a core from whichever row is timed next")
    ap.add_argument("--lead", type=int, default=1,
                    help="untimed calls at the start of each visit of a row: after the settle pause (or "
                         "another runtime's calls) a first call finds cold caches and sleeping threads; "
                         "the run prints how much slower it is")
    ap.add_argument("--burst", type=int, default=2, help="timed calls per visit of a row, back to back")
    ap.add_argument("--isa-class", default=None, choices=[*ISA_CLASSES, "all"],
                    help="cap every engine to a hardware class ('all': each class this CPU has)")
    ap.add_argument("--cache-dir", default=os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser(
        "~/.cache")), "onebit", "versus"), help="where quantized models are kept between runs")
    ap.add_argument("--no-cache", action="store_true")
    ap.add_argument("--json", default=None, help="write the rows here")
    ap.add_argument("--from-json", default=None, help="print the tables of an earlier --json, run nothing")
    args = ap.parse_args(argv)
    args.models = args.models or (["binary_resnet_e18"] if args.quick else DEFAULT_MODELS)
    args.runs = args.runs or (5 if args.quick else 20)
    args.calib_images = args.calib_images or (16 if args.quick else None)
    args.bn_images = args.bn_images or (16 if args.quick else 32)
    return args


def without_option(argv: Sequence[str], option: str) -> list[str]:
    """``argv`` less ``option VALUE`` and ``option=VALUE``."""
    rest, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == option:
            skip = True
        elif not a.startswith(option + "="):
            rest.append(a)
    return rest


def run_all_classes(argv: list[str], flags: set[str]) -> None:
    """``--isa-class all``: one child process per class this CPU has."""
    args = parse_args(argv)
    rest = without_option(without_option(argv, "--isa-class"), "--json")
    for name, why in available_classes(flags).items():
        if why:
            print(f"\n## class {name}: skipped ({why})\n", flush=True)
            continue
        print(f"\n## class {name}\n", flush=True)
        out = []
        if args.json:  # one file per class: FILE.json -> FILE.CLASS.json
            stem, ext = os.path.splitext(args.json)
            out = ["--json", f"{stem}.{name}{ext}"]
        subprocess.run([sys.executable, os.path.abspath(__file__), *rest, *out, "--isa-class", name],
                       check=False)


def cap_environment(c: IsaClass) -> dict[str, str]:
    env = {CHILD_ENV: c.name}
    if c.onednn:
        env["ONEDNN_MAX_CPU_ISA"] = c.onednn
    if c.aten:
        env["ATEN_CPU_CAPABILITY"] = c.aten
    if c.onebit:
        env["ONEBIT_ISA"] = c.onebit
    return env


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.from_json:
        reprint(args.from_json)
        return
    if args.setup:
        failed = {k: v for k, v in setup().items() if v}
        print("set-up done" + (f"; not installed: {', '.join(failed)}" if failed else ""))
        return
    model_name, flags = lscpu()
    avail = available_classes(flags)
    isa = ISA_CLASSES.get(args.isa_class or "")
    if isa is not None and not avail[isa.name] and os.environ.get(CHILD_ENV) != isa.name:
        # the caps must be in the environment before any library reads them: start afresh
        cmd = [sys.executable, os.path.abspath(__file__), *argv]
        os.execve(sys.executable, cmd, {**os.environ, **cap_environment(isa)})
    print(f"Model name: {model_name}\nFlags: {' '.join(sorted(flags))}", flush=True)
    native = class_of(flags)
    print(f"this CPU's class: {native.name if native else 'below AVX2'}; classes available: "
          + ", ".join(f"{k}" + (f" (no: {v})" if v else " (yes)") for k, v in avail.items()), flush=True)
    if args.isa_class == "all":
        run_all_classes(argv, flags)
        return
    if isa is not None and avail[isa.name]:
        print(f"class {isa.name} skipped: {avail[isa.name]}")
        return
    run_table(args, isa, native)


def run_table(args: argparse.Namespace, isa: IsaClass | None, native: IsaClass | None) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    threads = [t for t in args.threads if t <= len(cpus)]
    for t in sorted(set(args.threads) - set(threads)):
        log(f"SKIP {t} threads: only {len(cpus)} CPUs available")
    cpus = cpus[: max(threads)]
    pin_to(cpus)
    import torch

    import onebit
    from end_to_end import real_images
    from onebit.export.verify import calibrate_batchnorm

    torch.set_num_interop_threads(1)
    want = set(args.runtimes)
    mods = import_runtimes(auto_setup=not args.no_setup) if want & {"ort", "openvino"} else {}
    if isa is not None and isa.onebit:
        onebit.runtime.kernels.set_isa(isa.onebit)
    images = real_images(224, args.calib_images)
    x = np.ascontiguousarray(images[:1])
    xt = torch.from_numpy(x)
    print(f"pinned to CPUs {cpus}; class {isa.name if isa else 'uncapped'}"
          + (f" ({isa.description})" if isa else f" (this CPU: {native.description if native else '?'})"))
    print(f"onebit isa {onebit.runtime.kernels.active_isa()} (binary layers XNOR-popcount; float layers "
          f"fp32, or bf16/int8 in the rows so labelled; no AMX kernels); "
          f"torch {torch.__version__} ATen {torch.backends.cpu.get_cpu_capability()}; "
          + ", ".join(f"{k} {getattr(m, '__version__', '?')}" for k, m in mods.items())
          + (f"; ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA')}" if isa and isa.capped else ""))
    bn = torch.from_numpy(images[: args.bn_images])
    print(f"batch 1, 224x224; real photos for BatchNorm statistics {len(bn)}, for int8 calibration "
          f"{len(images)}; "
          f"medians of {args.runs} interleaved rounds; load average at start "
          f"{' '.join(f'{v:.1f}' for v in os.getloadavg())}\n", flush=True)

    cache = None if args.no_cache else args.cache_dir
    engines: dict[str, str] = {}
    nets: list[Network] = []
    with tempfile.TemporaryDirectory() as work:
        for name in args.models:
            torch.manual_seed(0)
            model = onebit.models.create(name)
            calibrate_batchnorm(model, bn)
            if "onebit" in want:
                engines[name] = os.path.join(work, f"{name}.onebit")
                onebit.export(model, xt, engines[name], model_name=name)
            if want & {"torch", "ort", "openvino"}:
                twin = onebit.nn.float_twin(model)  # float layers, a ReLU for each sign
                calibrate_batchnorm(twin, bn)
                nets.append(Network(f"{name} float twin", name, "-", "-", twin))
        if not args.no_resnet18 and want & {"torch", "ort", "openvino"}:
            import torchvision

            torch.manual_seed(0)
            r18 = torchvision.models.resnet18()
            calibrate_batchnorm(r18, bn)
            ref = REFERENCE_MODEL if REFERENCE_MODEL in args.models else args.models[0]
            nets.append(Network("resnet18", ref, top1_text("resnet18"), top1_text("resnet18 int8"), r18))
        for net in nets:
            prepare(net, xt, images, mods, work, cache, want)

        results: dict[tuple[str, str, str], Row] = {}
        skipped: dict[tuple[str, str, str], str] = {}
        for t in threads:
            cands = build_candidates(t, engines, nets, x, isa, mods, want)
            skipped.update(cands.skipped)
            if t == threads[0]:
                check_fp32(cands)
            pin_to(cpus)  # threads the runtimes created inherit it; this catches any that did not
            settle_ms = 0.0 if t == 1 else args.settle_ms
            if t > 1:
                report_after_call_activity(cands)
            log(f"{t} thread(s): timing {len(cands.fns)} rows x {args.runs} rounds; each visit of a row: "
                f"{settle_ms:g} ms pause, {args.lead} untimed and {args.burst} timed call(s), "
                f"{args.gap_ms:g} ms before each call")
            t0 = time.perf_counter()
            leads: list[list[float]] = []
            wall, cpu = interleaved(cands.fns, args.runs, gap_s=args.gap_ms / 1e3, settle_s=settle_ms / 1e3,
                                    lead=args.lead, burst=args.burst, lead_wall=leads)
            log(f"{t} thread(s): {time.perf_counter() - t0:.0f} s")
            report_lead_calls(cands.rows, leads, wall)
            for row, ts, cs in zip(cands.rows, wall, cpu, strict=True):
                key = (row.network, row.runtime, row.precision)
                kept = results.setdefault(key, row)
                kept.ms[t], kept.iqr[t] = median_and_iqr_ms(ts)
                kept.cpu_ms[t] = 1e3 * statistics.median(cs)
            del cands
    rows = list(results.values())
    print_tables(rows, threads, skipped)
    print(f"load average at end {' '.join(f'{a:.1f}' for a in os.getloadavg())}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"class": isa.name if isa else None, "threads": threads,
                       "rows": [dataclasses.asdict(r) for r in rows],
                       "skipped": [[*k, v] for k, v in skipped.items()]}, f, indent=1)


def reprint(path: str) -> None:
    """The tables of a --json file."""
    with open(path) as f:
        data = json.load(f)
    rows = []
    for d in data["rows"]:
        d["ms"] = {int(k): v for k, v in d["ms"].items()}
        d["iqr"] = {int(k): v for k, v in d["iqr"].items()}
        d["cpu_ms"] = {int(k): v for k, v in d.get("cpu_ms", {}).items()}
        rows.append(Row(**d))
    print(f"class {data['class'] or 'uncapped'}\n")
    print_tables(rows, data["threads"], {tuple(s[:3]): s[3] for s in data["skipped"]})


def print_tables(rows: list[Row], threads: list[int], skipped: dict) -> None:
    by_engine = {r.network: r for r in rows if r.runtime == "onebit" and r.precision == "1-bit"}

    def ref_of(r: Row) -> Row | None:
        return by_engine.get(r.family)

    summary = [r for r in rows if r.runtime == "onebit" or r.network == "resnet18"]
    twins = [r for r in rows if r.network.endswith("float twin")]
    print("### onebit against resnet18 (ratio: row ms / onebit "
          f"{REFERENCE_MODEL if REFERENCE_MODEL in by_engine else next(iter(by_engine), '-')} ms)\n")
    print("\n".join(table(summary, threads, ref_of)))
    if twins:
        print("\n### each binary model against its float twin (ratio: row ms / that model's onebit ms)\n")
        print("\n".join(table(twins, threads, ref_of)))
    ref_name = REFERENCE_MODEL if REFERENCE_MODEL in by_engine else next(iter(by_engine), "-")
    for t in threads:
        print(f"\n### in one table, {t} thread{'s' if t > 1 else ''}, wall-clock medians "
              f"(resnet18's ratios: to onebit {ref_name})\n")
        print("\n".join(matrix(rows, t, ref_of)))
    if 1 in threads and any(r.cpu_ms for r in rows):
        print(f"\n### 1 thread, CPU time of the process per call (medians; resnet18's ratios: to onebit "
              f"{ref_name}): the work alone, without the time other jobs held the core\n")
        print("\n".join(matrix(rows, 1, ref_of, "cpu_ms")))
    if skipped:
        print("\nskipped:")
        floats = {r.network for r in rows if r.runtime != "onebit"} | {k[0] for k in skipped}
        print("\n".join(skip_lines(skipped, floats)))
    spreads = [(v, r, t) for r in rows for t, v in r.iqr.items()]
    if spreads:
        v, r, t = max(spreads, key=lambda s: s[0])
        print(f"\nnoise: median relative IQR {100 * statistics.median(s[0] for s in spreads):.0f}% "
              f"(worst {100 * v:.0f}%: {r.network}, {r.runtime} {r.precision}, {t} thr)")


if __name__ == "__main__":
    main()
