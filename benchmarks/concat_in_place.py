"""What writing concats in place saves (the engine's planner, Model::place_concat_inputs).

    python benchmarks/concat_in_place.py [--models binary_densenet28] [--runs 40]

Each model (224x224, batch 1, random weights: latency does not depend on them) is exported
once and loaded twice, with the load option ``concat_in_place`` on (the default: the ops that
produce a concat's inputs write straight into its buffer) and off (every concat copies its
inputs, as before); both give the same bits (tests/runtime/test_concat_in_place.py). The two
engines are called in turn: on one thread pinned to one CPU (CPU time of the calling thread),
then with two threads on the first two CPUs (wall time). The table gives medians, the time
the concat and sign ops take in a profiled pass (the signs read the growing features), and the
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


def op_ms(m, x: np.ndarray, ops: tuple[str, ...], n: int = 10) -> dict[str, float]:
    """ms per call of each op type in ``ops`` over ``n`` profiled passes."""
    m.layer_times.clear()
    for _ in range(n):
        m.run(x, profile=True)
    by_op: dict[str, float] = collections.Counter()
    for i, s in m.layer_times.items():
        by_op[m.meta["nodes"][i]["op"]] += 1e3 * s / n
    return {op: by_op[op] for op in ops}


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
    print("| model | concat + sign ops, ms (copying -> in place) | 1 thread, CPU ms: copying / in place | "
          "2 threads, wall ms: copying / in place | activation memory, MiB |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            torch.manual_seed(0)
            path = os.path.join(tmp, f"{name}.onebit")
            onebit.export(onebit.models.create(name).eval(), torch.from_numpy(x), path)
            row = {}
            for threads in (1, 2):
                engines = {k: load(path, num_threads=threads, concat_in_place=k == "in place")
                           for k in ("copying", "in place")}
                calls = {k: (lambda m=m: m.run(x)) for k, m in engines.items()}
                if threads == 1:
                    with pinned(1):
                        row[1] = interleaved_median_ms(calls, args.runs, clock=time.thread_time)
                        ops = {k: op_ms(m, x, ("concat", "sign")) for k, m in engines.items()}
                        mem = {k: m.memory_bytes(1) / 2**20 for k, m in engines.items()}
                else:
                    before = os.sched_getaffinity(0)
                    pin_to(sorted(before)[:2])
                    try:
                        row[2] = interleaved_median_ms(calls, args.runs)
                    finally:
                        pin_to(sorted(before))
            a, b = ops["copying"], ops["in place"]

            def pair(t: dict[str, float]) -> str:
                return f"{t['copying']:.2f} / {t['in place']:.2f} ({t['copying'] / t['in place']:.2f}x)"

            print(f"| {name} | {a['concat']:.2f} + {a['sign']:.2f} -> {b['concat']:.2f} + {b['sign']:.2f} | "
                  f"{pair(row[1])} | {pair(row[2])} | {mem['copying']:.1f} -> {mem['in place']:.1f} |",
                  flush=True)
    print(f"\nload average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
