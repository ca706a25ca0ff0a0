"""Two threads against one: the zoo models in the engine, end to end and per op type.

    python benchmarks/threads.py                       # the table of docs/performance.md
    python benchmarks/threads.py --models quicknet --runs 20 --precision fp32
    python benchmarks/threads.py --gaps 0 2 20 150     # 1 vs 2 threads after idle gaps, helper bound or not

For each model at 224x224, batch 1 (random weights: latency does not depend on them), the
engine with num_threads = 1 and 2 is called in turn, round after round (2 ms apart;
versus.py's interleaved), for fp32 float layers and, where the CPU has AVX512-VNNI, int8
float layers (load option float_precision); the table gives wall-clock medians and the
speed-up. The process is pinned to the first two CPUs. A profiled pass per thread count then
gives each op type's share, and the speed-up per op type says where a second thread does not
help.

It also prints how long the engine's helper thread stays busy after a call (per-thread run
time from /proc): the pool spins 0.5 ms for the next parallel section before it sleeps.

``--gaps`` times the first model (fp32) with idle pauses of those many ms before each call,
in one child process per ``ONEBIT_PIN_THREADS`` value of ``--pin`` (default: auto, which binds
the helper to the other CPU here, and 0, which leaves it free): on a 2-vCPU guest the kernel
woke a helper that had slept longer than a few ms on the caller's CPU.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np
import torch

import onebit
from onebit.runtime import load
from versus import after_call_activity, interleaved, lscpu

DEFAULT_MODELS = ["binary_resnet_e18", "birealnet18", "quicknet", "binary_densenet28"]


def op_times(m, x: np.ndarray, n: int) -> dict[str, float]:
    """ms per call by op type (conv ops by kernel size) from ``n`` profiled passes."""
    m.layer_times.clear()
    for _ in range(n):
        m.run(x, profile=True)
    out: dict[str, float] = collections.defaultdict(float)
    for i, t in m.layer_times.items():
        node = m.meta["nodes"][i]
        key = node["op"]
        if key.endswith("conv2d"):
            key += " {}x{}".format(*node["attrs"]["kernel"])
        out[key] += 1e3 * t / n
    return out


def idle_gaps(path: str, x: np.ndarray, gaps_ms: list[float], runs: int) -> dict[str, list[float]]:
    """Median ms of 1- and 2-thread calls of ``path`` with each pause before every call."""
    models = [load(path, num_threads=t) for t in (1, 2)]
    fns = [lambda m=m: m.run(x) for m in models]
    out: dict[str, list[float]] = {"1": [], "2": []}
    for gap in gaps_ms:
        wall, _ = interleaved(fns, runs, warmup=1, gap_s=gap / 1e3)
        for t, ts in zip(("1", "2"), wall, strict=True):
            out[t].append(1e3 * statistics.median(ts))
    return out


def run_gaps(args: argparse.Namespace, x: np.ndarray) -> None:
    """--gaps: one child process per ONEBIT_PIN_THREADS value, then the table."""
    name = args.models[0]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"{name}.onebit")
        torch.manual_seed(0)
        onebit.export(onebit.models.create(name).eval(), torch.from_numpy(x), path)
        res = []
        for mode in args.pin:
            env = {**os.environ, "ONEBIT_PIN_THREADS": mode}
            cmd = [sys.executable, __file__, "--child-gaps", path, "--runs", str(args.runs), "--gaps",
                   *map(str, args.gaps)]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            res.append((mode, json.loads(out.stdout.strip().splitlines()[-1])))
            print(f"ONEBIT_PIN_THREADS={mode}: done", flush=True)
    print(f"\n{name}, fp32 float layers, medians of {args.runs} calls; pause before each call:")
    print("\n| ONEBIT_PIN_THREADS | " + " | ".join(f"{g:g} ms: 1 / 2 threads" for g in args.gaps) + " |")
    print("|---|" + "---|" * len(args.gaps))
    for mode, r in res:
        cells = [f"{a:.2f} / {b:.2f} ms ({a / b:.2f}x)" for a, b in zip(r["1"], r["2"], strict=True)]
        print(f"| {mode} | " + " | ".join(cells) + " |")
    print(f"\nload average at end {os.getloadavg()[0]:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--precision", nargs="+", default=["fp32", "int8"], choices=["fp32", "bf16", "int8"])
    ap.add_argument("--per-op", action="store_true", help="also the speed-up per op type")
    ap.add_argument("--gaps", nargs="+", type=float, default=None,
                    help="idle ms before each call: time 1 vs 2 threads after such pauses (first model)")
    ap.add_argument("--pin", nargs="+", default=["auto", "0", "auto", "0"], choices=["auto", "0", "1"],
                    help="ONEBIT_PIN_THREADS values for --gaps, one child process each, in turn (the "
                         "host's speed drifts over minutes: alternate them)")
    ap.add_argument("--child-gaps", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_gaps:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:2])
        x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
        print(json.dumps(idle_gaps(args.child_gaps, x, args.gaps, args.runs)))
        return
    cpu, flags = lscpu()
    print(f"lscpu: {cpu}; flags: {' '.join(sorted(f for f in flags if f.startswith(('avx', 'amx'))))}")
    cpus = sorted(os.sched_getaffinity(0))[:2]
    if len(cpus) < 2:
        raise SystemExit("two threads need two CPUs; this process may use one")
    os.sched_setaffinity(0, cpus)
    print(f"pinned to CPUs {cpus}; load average at start {os.getloadavg()[0]:.2f}")
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    if args.gaps:
        run_gaps(args, x)
        return
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for name in args.models:
            torch.manual_seed(0)
            path = os.path.join(tmp, f"{name}.onebit")
            onebit.export(onebit.models.create(name).eval(), torch.from_numpy(x), path)
            models = {}
            for prec in args.precision:
                try:
                    for t in (1, 2):
                        models[prec, t] = load(path, num_threads=t, float_precision=prec)
                except (ValueError, RuntimeError) as e:
                    print(f"SKIP {name} {prec}: {str(e).splitlines()[0]}")
            keys = list(models)
            fns = [lambda m=models[k]: m.run(x) for k in keys]
            wall, _ = interleaved(fns, args.runs, warmup=2, gap_s=0.002)
            times = dict(zip(keys, wall, strict=True))
            med = {k: 1e3 * statistics.median(v) for k, v in times.items()}
            for prec in args.precision:
                if (prec, 1) in med:
                    rows.append((name, prec, med[prec, 1], med[prec, 2]))
                    t1, t2 = med[prec, 1], med[prec, 2]
                    print(f"{name:18s} {prec}: 1 thread {t1:6.2f} ms, 2 threads {t2:6.2f} ms, {t1 / t2:.2f}x",
                          flush=True)
            for prec in args.precision if args.per_op else []:
                if (prec, 1) not in models:
                    continue
                one, two = (op_times(models[prec, t], x, 15) for t in (1, 2))
                print(f"  per op type, {prec} float layers:")
                for op in sorted(one, key=lambda k: -one[k]):
                    if one[op] > 0.01:
                        gain = one[op] / max(two[op], 1e-9)
                        print(f"    {op:16s} {one[op]:6.3f} ms -> {two[op]:6.3f} ms  {gain:.2f}x")
        two_threads = next(m for (_, t), m in models.items() if t == 2)
        busy, last = after_call_activity(lambda: two_threads.run(x))
        print(f"after a 2-thread call the engine's helper ran {busy:.2f} ms more, the last of it "
              f"{last:.1f} ms after the call")
    print("\n| model | float layers | 1 thread ms | 2 threads ms | speed-up |\n|---|---|---:|---:|---:|")
    for name, prec, t1, t2 in rows:
        print(f"| {name} | {prec} | {t1:.2f} | {t2:.2f} | {t1 / t2:.2f}x |")
    print(f"\nload average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
