"""What the engine planner's load-time fusions save: writing concats in place, the steps that
also compute the next op (Model::place_concat_inputs, fuse_conv_maxpool, fuse_bconv_sign), the
binary convs that write their output over their residual (residual_in_place), and the signs of a
concat computed in parts by the producers of its inputs (fuse_concat_sign).

    python benchmarks/concat_in_place.py [--models binary_densenet28] [--runs 40]
    python benchmarks/concat_in_place.py --option fuse_bconv_sign [--precision int8]
    python benchmarks/concat_in_place.py --option fuse_conv_maxpool
    python benchmarks/concat_in_place.py --option residual_in_place [--precision int8]
    python benchmarks/concat_in_place.py --option fuse_concat_sign [--precision int8]

Each model (224x224, batch 1, random weights: latency does not depend on them) is exported
once and loaded with the load option (``--option``, default ``concat_in_place``: the ops that
produce a float concat's inputs write straight into its buffer) on (the default), off (every
concat copies its inputs; the maxpool or sign runs as its own step; each block's output takes a
buffer of its own; a concat's sign runs as its own step) and off once more (the A/A pair: what
two loads of one file differ by in the same rounds, the run's resolution). All give the same
bits (tests/runtime/test_concat_in_place.py, test_conv_maxpool.py, test_bconv_sign.py,
test_residual_in_place.py, test_concat_sign.py). The engines are called in turn: on one thread
pinned to one CPU (CPU time of the calling thread), then with two threads on the first two CPUs
(wall time); medians. The table also gives the time of the option's op types in a profiled
pass (a fused op's time is in the step that computes it) and the activation memory of one call.
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

# per load option: its default models and the op types whose profiled time it moves
OPTIONS = {
    "concat_in_place": (["binary_densenet28", "binary_densenet37", "binary_densenet45"],
                        ("concat", "sign")),  # the signs read the growing features
    "fuse_conv_maxpool": (["binary_resnet_e18", "birealnet18", "binary_densenet28"], ("conv2d", "maxpool")),
    "fuse_bconv_sign": (["binary_resnet_e18", "birealnet18"], ("bconv2d", "sign")),
    "residual_in_place": (["binary_resnet_e18", "birealnet18", "quicknet"], ("bconv2d",)),
    # the parts' time is in the steps that produce the concat's inputs
    "fuse_concat_sign": (["binary_densenet28", "binary_densenet37", "binary_densenet45"],
                         ("sign", "bconv2d", "conv2d", "maxpool")),
}


def op_ms(m, x: np.ndarray, ops: tuple[str, ...], n: int = 10) -> dict[str, float]:
    """ms per call of each op type in ``ops`` over ``n`` profiled passes."""
    m.layer_times.clear()
    for _ in range(n):
        m.run(x, profile=True)
    by_op: dict[str, float] = collections.Counter()
    for i, s in m.layer_times.items():
        by_op[m.meta["nodes"][i]["op"]] += 1e3 * s / n
    return {op: by_op[op] for op in ops}


def measure(path: str, x: np.ndarray, runs: int, option: str = "concat_in_place",
            precision: str = "fp32") -> dict:
    """Times (1 thread CPU, 2 threads wall), op times and memory with the load option on, off, off."""
    out: dict = {}
    for threads in (1, 2):
        kinds = ("on", "off", "off again")
        engines = {k: load(path, num_threads=threads, float_precision=precision, **{option: k == "on"})
                   for k in kinds}
        calls = {k: (lambda m=m: m.run(x)) for k, m in engines.items()}
        if threads == 1:
            with pinned(1):
                out[1] = interleaved_median_ms(calls, runs, clock=time.thread_time)
                out["ops"] = {k: op_ms(engines[k], x, OPTIONS[option][1]) for k in ("on", "off")}
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
    ap.add_argument("--option", default="concat_in_place", choices=list(OPTIONS))
    ap.add_argument("--models", nargs="+", default=None, help="default: the option's models")
    ap.add_argument("--precision", default="fp32", help="the load option float_precision")
    ap.add_argument("--runs", type=int, default=40)
    args = ap.parse_args()
    models, ops = args.models or OPTIONS[args.option][0], OPTIONS[args.option][1]
    cpu, flags = lscpu()
    print(f"lscpu: {cpu}")
    print(f"flags: {' '.join(sorted(flags))}")
    print(f"load average at start {os.getloadavg()[0]:.2f}")
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)

    def pair(t: dict[str, float]) -> str:
        return (f"{t['off']:.2f} / {t['on']:.2f} ({t['off'] / t['on']:.3f}x; A/A "
                f"{t['off'] / t['off again']:.3f}x)")

    print(f"\n`{args.option}`: off -> on (float layers {args.precision})\n")
    print(f"| model | {' + '.join(ops)} ops, ms | 1 thread, CPU ms: off / on "
          "| 2 threads, wall ms: off / on | activation memory, MiB |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in models:
            torch.manual_seed(0)
            path = os.path.join(tmp, f"{name}.onebit")
            onebit.export(onebit.models.create(name).eval(), torch.from_numpy(x), path)
            r = measure(path, x, args.runs, args.option, args.precision)
            a, b = r["ops"]["off"], r["ops"]["on"]
            opt = " + ".join(f"{a[o]:.2f}" for o in ops) + " -> " + " + ".join(f"{b[o]:.2f}" for o in ops)
            print(f"| {name} | {opt} | {pair(r[1])} | {pair(r[2])} | "
                  f"{r['mem']['off']:.1f} -> {r['mem']['on']:.1f} |", flush=True)
    print(f"\nload average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
