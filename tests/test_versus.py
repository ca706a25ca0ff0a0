"""benchmarks/versus.py's helpers: CPU classes, set-up, scheduling, float twin, tables (no timing)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import onebit
from onebit.nn.layers import QuantMixin

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")


@pytest.fixture(scope="module")
def vs():
    sys.path.insert(0, BENCH)  # versus.py imports end_to_end.py beside it
    try:
        spec = importlib.util.spec_from_file_location("versus", os.path.join(BENCH, "versus.py"))
        mod = importlib.util.module_from_spec(spec)
        sys.modules["versus"] = mod  # dataclasses look their module up
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop("versus", None)
        sys.path.remove(BENCH)


BASE = "fpu sse sse2 avx fma avx2 popcnt"
AVX512 = " avx512f avx512bw avx512vl avx512dq avx512cd"
CPUS = {
    "zen4": BASE + AVX512 + " avx512_vnni avx512_bf16 avx512_vpopcntdq",
    "sapphire_rapids": BASE + AVX512 + " avx512_vnni avx512_bf16 avx512_fp16 amx_tile amx_int8 amx_bf16",
    "cascade_lake": BASE + AVX512 + " avx512_vnni",
    "skylake_sp": BASE + AVX512,
    "haswell": BASE,
    "old": "fpu sse sse2",
}


def lscpu_text(flags: str) -> str:
    return f"Architecture:  x86_64\nModel name:    Some CPU @ 2.0GHz\nFlags:         {flags}\n"


def test_parse_cpu_info_reads_lscpu_and_cpuinfo(vs):
    name, flags = vs.parse_cpu_info(lscpu_text(CPUS["zen4"]))
    assert name == "Some CPU @ 2.0GHz"
    assert {"avx512_bf16", "avx512_vnni"} <= flags
    cpuinfo = (
        "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: avx2 fma\n\n"
        "processor\t: 1\nmodel name\t: B\n"
    )
    assert vs.parse_cpu_info(cpuinfo) == ("AMD EPYC", {"avx2", "fma"})
    assert vs.parse_cpu_info("") == ("unknown CPU", set())
    # the family and model numbers tell apart CPUs a guest names alike
    zen5 = "Model name:  AMD EPYC\nCPU family:  26\nModel:       2\nFlags:  avx2\n"
    assert vs.parse_cpu_info(zen5) == ("AMD EPYC (family 26 model 2)", {"avx2"})
    zen3 = "processor\t: 0\ncpu family\t: 25\nmodel\t\t: 1\nmodel name\t: AMD EPYC\nflags\t\t: avx2\n"
    assert vs.parse_cpu_info(zen3) == ("AMD EPYC (family 25 model 1)", {"avx2"})


@pytest.mark.parametrize(
    ("cpu", "best", "absent"),
    [
        ("sapphire_rapids", "amx", set()),
        ("zen4", "avx512_bf16", {"amx"}),
        ("cascade_lake", "avx512_vnni", {"amx", "avx512_bf16"}),
        ("skylake_sp", "avx512", {"amx", "avx512_bf16", "avx512_vnni"}),
        ("haswell", "avx2", {"amx", "avx512_bf16", "avx512_vnni", "avx512"}),
        ("old", None, set(["amx", "avx512_bf16", "avx512_vnni", "avx512", "avx2"])),
    ],
)
def test_classes_of_known_cpus(vs, cpu, best, absent):
    _, flags = vs.parse_cpu_info(lscpu_text(CPUS[cpu]))
    c = vs.class_of(flags)
    assert (c.name if c else None) == best
    avail = vs.available_classes(flags)
    assert set(avail) == set(vs.ISA_CLASSES)
    assert {k for k, why in avail.items() if why} == absent
    for k in absent:
        assert avail[k].startswith("this CPU lacks ")


def test_classes_are_nested_and_capped_as_documented(vs):
    classes = list(vs.ISA_CLASSES.values())
    for more, less in zip(classes[:-1], classes[1:], strict=True):
        if less.name != "avx2":
            assert set(less.needs) <= set(more.needs), (more.name, less.name)
    env = {c.name: vs.cap_environment(c) for c in classes}
    assert "ONEDNN_MAX_CPU_ISA" not in env["amx"]  # AMX is the full machine
    assert env["avx512_vnni"]["ONEDNN_MAX_CPU_ISA"] == "AVX512_CORE_VNNI"
    assert env["avx512"]["ONEDNN_MAX_CPU_ISA"] == "AVX512_CORE"
    # onebit has no VNNI/AMX kernels: every AVX-512 class runs its avx512 path
    assert {env[k]["ONEBIT_ISA"] for k in ("avx512_bf16", "avx512_vnni", "avx512")} == {"avx512"}
    assert env["avx2"]["ONEBIT_ISA"] == "avx2" and env["avx2"]["ATEN_CPU_CAPABILITY"] == "avx2"
    assert all(e[vs.CHILD_ENV] == k for k, e in env.items())
    assert [c.bf16 for c in classes] == [True, True, False, False, False]


def test_bench_requirements_and_pip_commands(vs):
    reqs = vs.bench_requirements()
    assert {"onnx", "onnxruntime", "openvino", "nncf"} <= {r.split("=")[0].split(">")[0] for r in reqs}
    cmds = vs.pip_commands(reqs, python="PY")
    assert len(cmds) == len(reqs)
    for req, cmd in zip(reqs, cmds, strict=True):
        assert cmd[:3] == ["PY", "-m", "pip"] and cmd[-1] == req
        assert cmd[cmd.index("-c") + 1] == vs.CONSTRAINTS
    assert "onnx" not in open(os.path.join(os.path.dirname(BENCH), "pyproject.toml")).read().lower()


def test_setup_keeps_going_past_a_package_that_fails(vs):
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd[-1])
        if cmd[-1] == "openvino":
            err = "ERROR: No matching distribution found for openvino"
            return subprocess.CompletedProcess(cmd, 1, "", err)
        if cmd[-1] == "nncf":
            raise subprocess.TimeoutExpired(cmd, 900)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    result = vs.setup(run=fake_run)
    assert calls == vs.bench_requirements()
    assert result["onnx"] is None and result["onnxruntime"] is None
    assert "No matching distribution" in result["openvino"]
    assert "timed out" in result["nncf"]


def test_interleaved_calls_round_robin_and_keeps_timed_rounds(vs):
    order = []
    fns = [lambda i=i: order.append(i) for i in range(3)]
    ticks, cpu_ticks = iter(range(10_000)), iter(range(0, 30_000, 3))
    times, cpu = vs.interleaved(fns, runs=4, warmup=2, gap_s=0.0, clock=lambda: next(ticks),
                                cpu_clock=lambda: next(cpu_ticks), sleep=lambda s: None)
    assert [len(t) for t in times] == [len(c) for c in cpu] == [4, 4, 4]
    assert all(c == 3 for cs in cpu for c in cs)
    assert order.count(0) == order.count(1) == order.count(2) == 6
    rounds = [order[i : i + 3] for i in range(0, len(order), 3)]
    assert [r[0] for r in rounds] == [0, 1, 2, 0, 1, 2]  # the first fn rotates
    assert all(sorted(r) == [0, 1, 2] for r in rounds)
    assert all(t == 1 for ts in times for t in ts)  # one clock tick per call, warm-up dropped


def test_interleaved_visits_settle_then_lead_then_burst(vs):
    """Each visit of a row: one settle pause, `lead` untimed calls, `burst` timed calls."""
    events = []
    fns = [lambda i=i: events.append(("call", i)) for i in range(2)]
    ticks = iter(range(10_000))
    leads: list[list[float]] = []
    times, cpu = vs.interleaved(fns, runs=3, warmup=1, gap_s=0.001, settle_s=0.5, lead=1, burst=2,
                                clock=lambda: next(ticks), cpu_clock=lambda: 0.0,
                                sleep=lambda s: events.append(("sleep", s)), lead_wall=leads)
    assert [len(t) for t in times] == [6, 6] and [len(x) for x in leads] == [3, 3]
    visit = [("sleep", 0.5), ("sleep", 0.001), ("call", 0), ("sleep", 0.001), ("call", 0),
             ("sleep", 0.001), ("call", 0)]
    assert events[: len(visit)] == visit
    assert events.count(("sleep", 0.5)) == 2 * 4  # once per visit: 2 rows x (1 warm-up + 3) rounds
    assert [e for e in events if e[0] == "call"].count(("call", 1)) == 4 * 3


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc/self/task")
def test_after_call_activity_sees_a_thread_that_keeps_spinning(vs):
    """What versus.py prints to justify its settle pause: a worker left spinning after the call
    returns is seen (run time and when it stopped); a call that leaves nothing running is not."""
    import hashlib
    import threading
    import time

    buf = bytes(1 << 20)

    def spinning_call():
        def spin():
            # starts after the caller's first sample (50 ms on), then burns CPU for 100 ms in
            # sha256, which releases the GIL: a pure-Python loop holding it could run its whole
            # time before a descheduled caller takes that sample
            time.sleep(0.05)
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < 0.1:
                hashlib.sha256(buf).digest()

        threading.Thread(target=spin, daemon=True).start()

    busy, last = vs.after_call_activity(spinning_call, window_s=0.4, repeats=1, settle_s=0.0)
    assert busy > 5.0 and last > 60.0, (busy, last)  # ms; loose: another job may hold the CPU
    busy, last = vs.after_call_activity(lambda: None, window_s=0.05, repeats=1, settle_s=0.0)
    assert busy < 5.0, busy


def test_median_iqr_ratio_and_text(vs):
    med, iqr = vs.median_and_iqr_ms([0.001, 0.002, 0.003, 0.004, 0.005])
    assert med == pytest.approx(3.0) and iqr > 0
    assert vs.median_and_iqr_ms([0.002, 0.004]) == (pytest.approx(3.0), 0.0)
    assert vs.ratio_text(12.0, 4.0) == "3.00x"
    assert vs.ratio_text(None, 4.0) == "-" and vs.ratio_text(3.0, None) == "-"
    assert vs.ms_text(5.123) == "5.12" and vs.ms_text(123.4) == "123" and vs.ms_text(None) == "-"


def test_table_ratios_use_the_row_family(vs):
    eng = vs.Row("quicknet", "quicknet", "onebit", "1-bit", "63.30%", ms={1: 5.0, 2: 4.0})
    twin = vs.Row("quicknet float twin", "quicknet", "OpenVINO", "int8", "-", ms={1: 2.5}, note="n")
    lines = vs.table([eng, twin], [1, 2], lambda r: {"quicknet": eng}.get(r.family))
    assert lines[0].count("thr ms") == 2 and lines[1].startswith("|---")
    assert lines[2] == "| quicknet | 63.30% | onebit | 1-bit | 5.00 | 1.00x | 4.00 | 1.00x |  |"
    assert lines[3] == "| quicknet float twin | - | OpenVINO | int8 | 2.50 | 0.50x | - | - | n |"


def test_published_top1_matches_torchvision_metadata(vs):
    import torchvision

    r18 = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["_metrics"]["ImageNet-1K"]["acc@1"]
    q = torchvision.models.quantization.ResNet18_QuantizedWeights.IMAGENET1K_FBGEMM_V1
    assert vs.PUBLISHED_TOP1["resnet18"][0] == r18
    assert vs.PUBLISHED_TOP1["resnet18 int8"][0] == q.meta["_metrics"]["ImageNet-1K"]["acc@1"]
    for name in vs.DEFAULT_MODELS:
        assert name in vs.PUBLISHED_TOP1 and name in onebit.models.list()
    assert vs.top1_text("quicknet") == "63.30% (larq zoo (sota))"
    assert vs.top1_text("nothing") == "-"


def test_float_twin_of_a_zoo_model_exports_to_onnx_shapes(vs, tmp_path):
    torch.manual_seed(0)
    model = onebit.models.create("binary_resnet_e18", num_classes=10, input_size=32).eval()
    twin = onebit.nn.float_twin(model).eval()
    assert not any(isinstance(m, QuantMixin) for m in twin.modules())
    assert any(isinstance(m, QuantMixin) for m in model.modules())  # the original is untouched
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    twin_convs = [m for m in twin.modules() if isinstance(m, nn.Conv2d)]
    assert [m.weight.shape for m in convs] == [m.weight.shape for m in twin_convs]
    assert sum(p.numel() for p in model.parameters()) >= sum(p.numel() for p in twin.parameters())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert twin(x).shape == model(x).shape == (2, 10)
    pytest.importorskip("onnx")
    vs.export_onnx(twin, x[:1], str(tmp_path / "twin.onnx"))
    assert (tmp_path / "twin.onnx").stat().st_size > 4 * sum(m.weight.numel() for m in twin_convs)


def test_as_array_and_relative_error(vs):
    class OVDict:
        def to_tuple(self):
            return (np.ones((1, 3)),)

    assert vs.as_array(torch.ones(1, 3, dtype=torch.bfloat16)).dtype == np.float32
    assert vs.as_array([np.zeros((1, 3))]).shape == (1, 3)
    assert vs.as_array(OVDict()).sum() == 3
    assert vs.relative_error(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0
    assert vs.relative_error(np.array([1.0, 2.2]), np.array([1.0, 2.0])) == pytest.approx(0.1)


def test_without_option(vs):
    argv = ["--quick", "--isa-class", "all", "--runs", "3", "--isa-class=all"]
    assert vs.without_option(argv, "--isa-class") == ["--quick", "--runs", "3"]


def test_matrix_puts_each_twin_beside_its_binary_model(vs):
    rows = [
        vs.Row("quicknet", "quicknet", "onebit", "1-bit", "x", ms={1: 5.0}, cpu_ms={1: 4.0}),
        vs.Row("quicknet float twin", "quicknet", "OpenVINO", "int8", "-", ms={1: 10.0}, cpu_ms={1: 2.0}),
        vs.Row("resnet18", "quicknet", "OpenVINO", "int8", "y", ms={1: 2.5}, cpu_ms={1: 1.0}),
    ]
    by = {"quicknet": rows[0]}
    lines = vs.matrix(rows, 1, lambda r: by.get(r.family))
    assert lines[0] == "| 1 thread, ms | published top-1 | onebit 1-bit | OpenVINO int8 |"
    assert lines[2].startswith("| quicknet (onebit) / its float twin | 63.30% (larq zoo (sota)) |")
    assert lines[2].endswith("| 5.00 (1.00x) | 10.00 (2.00x) |")
    assert lines[3].startswith("| resnet18 | 69.76% ") and lines[3].endswith("| - | 2.50 (0.50x) |")
    cpu = vs.matrix(rows, 1, lambda r: by.get(r.family), "cpu_ms")
    assert "CPU ms" in cpu[0] and cpu[2].endswith("| 4.00 (1.00x) | 2.00 (0.50x) |")


def test_skip_lines_group_by_runtime_and_reason(vs):
    why = "MLAS dispatches on cpuid and cannot be capped"
    skipped = {(n, "ONNX Runtime", p): why for n in ("a", "b") for p in ("fp32", "int8")}
    skipped[("b", "OpenVINO", "bf16")] = "no bf16"
    assert vs.skip_lines(skipped, {"a", "b"}) == [
        f"* ONNX Runtime fp32, int8 (every network): {why}",
        "* OpenVINO bf16 (b): no bf16",
    ]


def test_missing_runtime_runs_setup_once_then_is_skipped(vs, monkeypatch):
    real_import = vs.importlib.import_module
    calls = []

    def fake_import(name):
        if name == "openvino":
            raise ImportError("no openvino here")
        if name in ("onnx", "onnxruntime", "nncf"):
            return object()
        return real_import(name)

    monkeypatch.setattr(vs.importlib, "import_module", fake_import)
    monkeypatch.setattr(vs, "setup", lambda: calls.append("setup") or {})
    mods = vs.import_runtimes(auto_setup=True)
    assert calls == ["setup"] and set(mods) == {"onnx", "onnxruntime", "nncf"}
    assert set(vs.import_runtimes(auto_setup=False)) == {"onnx", "onnxruntime", "nncf"}
    assert calls == ["setup"]
