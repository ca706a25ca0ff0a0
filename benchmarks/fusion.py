"""What the exporter's epilogue fusions save, per zoo model.

    python benchmarks/fusion.py [--models binary_resnet_e18 quicknet] [--runs 40]
    python benchmarks/fusion.py --models binary_densenet28 --passes move_affine_past_maxpool

Each model (224x224, batch 1, random weights) is exported twice, with and without the passes
that give a float conv its following add (as a residual input) and relu
(passes.fuse_conv_epilogues) and a binary conv its relu -> BatchNorm -> add (QuickNet's
blocks, passes.fuse_conv_post_affine); both files give the same bits
(tests/export/test_fusion.py). The two engines are called in turn on one thread pinned to one
CPU; the table gives the CPU time of the calling thread per call (medians), the node counts,
and the time of the separate add, relu and affine ops in each graph (profiled passes).

A third engine loads the unfused file again and is timed in the same rounds: its ratio to the
first (the "A/A" column) is what two loads of one file differ by in that run, the resolution
of the comparison on a host whose speed drifts.
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
import onebit.export.passes as passes
from onebit.export.verify import interleaved_median_ms, pinned
from onebit.runtime import load
from versus import lscpu

DEFAULT_MODELS = ["binary_resnet_e18", "birealnet18", "quicknet", "binary_densenet28"]


DEFAULT_PASSES = ["fuse_conv_epilogues", "fuse_conv_post_affine"]


def export(model: torch.nn.Module, x: torch.Tensor, path: str, fuse: bool,
           names: list[str] = DEFAULT_PASSES) -> None:
    """Export ``model``; with fuse=False, without the folding passes ``names``."""
    saved = passes.FOLDING_PASSES
    if not fuse:
        fusions = tuple(getattr(passes, n) for n in names)
        passes.FOLDING_PASSES = tuple(p for p in saved if p not in fusions)
    try:
        onebit.export(model, x, path)
    finally:
        passes.FOLDING_PASSES = saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--passes", nargs="+", default=DEFAULT_PASSES,
                    choices=[p.__name__ for p in passes.FOLDING_PASSES],
                    help="the passes the unfused export leaves out (default: the epilogue fusions; "
                    "e.g. move_affine_past_maxpool for BinaryDenseNet's transitions)")
    args = ap.parse_args()
    cpu, _ = lscpu()
    print(f"lscpu: {cpu}; load average at start {os.getloadavg()[0]:.2f}; unfused = without {args.passes}")
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32))
    xn = x.numpy()
    print("| model | nodes unfused -> fused | add + relu + affine ops, ms | CPU ms unfused | CPU ms fused "
          "| saved | A/A |")
    print("|---|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            torch.manual_seed(0)
            model = onebit.models.create(name).eval()
            paths = {k: os.path.join(tmp, f"{name}_{k}.onebit") for k in ("unfused", "fused")}
            for k, p in paths.items():
                export(model, x, p, fuse=k == "fused", names=args.passes)
            engines = {k: load(p, num_threads=1) for k, p in paths.items()}
            engines["unfused again"] = load(paths["unfused"], num_threads=1)
            with pinned(1):
                t = interleaved_median_ms({k: (lambda m=m: m.run(xn)) for k, m in engines.items()},
                                          args.runs, clock=time.thread_time)
            sep = {}
            for k in paths:  # time of the add, relu and affine ops left in each graph
                m = engines[k]
                m.layer_times.clear()
                for _ in range(10):
                    m.run(xn, profile=True)
                by_op = collections.Counter()
                for i, s in m.layer_times.items():
                    by_op[m.meta["nodes"][i]["op"]] += 1e3 * s / 10
                sep[k] = by_op["add"] + by_op["relu"] + by_op["affine"]
            n0, n1 = (len(engines[k].meta["nodes"]) for k in ("unfused", "fused"))
            a, b = t["unfused"], t["fused"]
            print(f"| {name} | {n0} -> {n1} | {sep['unfused']:.2f} -> {sep['fused']:.2f} | {a:.2f} | "
                  f"{b:.2f} | {a - b:.2f} ms ({a / b:.3f}x) | {a / t['unfused again']:.3f}x |", flush=True)
    print(f"\nload average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
