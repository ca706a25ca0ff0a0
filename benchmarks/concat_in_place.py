"""What writing concats in place saves (the engine's planner, Model::place_concat_inputs).

    python benchmarks/concat_in_place.py [--models binary_densenet28] [--runs 40]

Each model (224x224, batch 1, random weights: latency does not depend on them) is exported
once and loaded with the load option ``concat_in_place`` on (the default: the ops that produce
a float concat's inputs write straight into its buffer), off (every concat copies its inputs)
and off once more (the A/A pair: what two loads of one file differ by in the same rounds, the
run's resolution). All give the same bits (tests/runtime/test_concat_in_place.py). The engines
are called in turn: on one thread pinned to one CPU (CPU time of the calling thread), then with
two threads on the first two CPUs (wall time); medians. The table also gives the time of the
concat and sign ops in a profiled pass (the signs read the growing features) and the
activation memory of one call.
"""

from __future__ import annotations

import argparse
import collections
import os
import tempfile
import time

import numpy as np
import torch

import onebit
from onebit.export.verify import interleaved_median_ms, pinned
from onebit.runtime import load
from versus import lscpu, pin_to

DEFAULT_MODELS = ["binary_densenet28", "binary_densenet37", "binary_densenet45"]
OPS = ("concat", "sign")  # the signs read the growing features


def op_ms(m, x: np.ndarray, n: int = 10) -> dict[str, float]:
    """ms per call of each op type in ``OPS`` over ``n`` profiled passes."""
    m.layer_times.clear()
    for _ in range(n):
        m.run(x, profile=True)
    by_op: dict[str, float] = collections.Counter()
    for i, s in m.layer_times.items():
        by_op[m.meta["nodes"][i]["op"]] += 1e3 * s / n
    return {op: by_op[op] for op in OPS}


def measure(path: str, x: np.ndarray, runs: int) -> dict:
    """Times (1 thread CPU, 2 threads wall), op times and memory with concat_in_place on, off, off."""
    out: dict = {}
    for threads in (1, 2):
        kinds = ("on", "off", "off again")
        engines = {k: load(path, num_threads=threads, concat_in_place=k == "on") for k in kinds}
        calls = {k: (lambda m=m: m.run(x)) for k, m in engines.items()}
        if threads == 1:
            with pinned(1):
                out[1] = interleaved_median_ms(calls, runs, clock=time.thread_time)
                out["ops"] = {k: op_ms(engines[k], x) for k in ("on", "off")}
                out["mem"] = {k: engines[k].memory_bytes(1) / 2**20 for k in ("on", "off")}
        else:
            before = os.sched_getaffinity(0)
            pin_to(sorted(before)[:2])
            try:
                out[2] = interleaved_median_ms(calls, runs)
            finally:
                pin_to(sorted(before))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    ap.add_argument("--runs", type=int, default=40)
    args = ap.parse_args()
    cpu, flags = lscpu()
    print(f"lscpu: {cpu}")
    print(f"flags: {' '.join(sorted(flags))}")
    print(f"load average at start {os.getloadavg()[0]:.2f}")
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)

    def pair(t: dict[str, float]) -> str:
        return (f"{t['off']:.2f} / {t['on']:.2f} ({t['off'] / t['on']:.3f}x; A/A "
                f"{t['off'] / t['off again']:.3f}x)")

    print("\n`concat_in_place`: off -> on\n")
    print("| model | concat + sign ops, ms | 1 thread, CPU ms: off / on "
          "| 2 threads, wall ms: off / on | activation memory, MiB |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            torch.manual_seed(0)
            path = os.path.join(tmp, f"{name}.onebit")
            onebit.export(onebit.models.create(name).eval(), torch.from_numpy(x), path)
            r = measure(path, x, args.runs)
            a, b = r["ops"]["off"], r["ops"]["on"]
            opt = " + ".join(f"{a[o]:.2f}" for o in OPS) + " -> " + " + ".join(f"{b[o]:.2f}" for o in OPS)
            print(f"| {name} | {opt} | {pair(r[1])} | {pair(r[2])} | "
                  f"{r['mem']['off']:.1f} -> {r['mem']['on']:.1f} |", flush=True)
    print(f"\nload average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
