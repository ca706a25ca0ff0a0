"""Tang's trade in the engine: latency and file size of experiment 3's nets per activation bit count.

    python benchmarks/residual_sign.py                # the table of docs/experiments.md, experiment 3
    python benchmarks/residual_sign.py --widen 4      # the same nets 4x wider (64-128-256, FC 512)

Builds the networks of experiment 3's recipes (``cifar_base``, ``cifar_bits2``, ``cifar_bits3``:
ablation_convnet at width 0.125 with 1, 2 or 3 residual sign planes), exports each and times it
in the engine, batch 1 on one thread, pinned to one CPU. The 2- and 3-bit nets appear twice:

* ``channel`` rule, as the recipes train them (scales per channel over the batch): exact
  deployment as residual_sign + float convolutions with ±1 weights;
* ``sample`` rule, the opt-in variant (one scale per image): the planes go through the
  XNOR-popcount kernels (bconv2d/bdense with residual_bits).

Latency and size do not depend on the weights, so the nets keep their initial weights (BatchNorm
statistics calibrated on random inputs). Reported per net: file size, median wall time per call
(all nets interleaved call by call) and CPU time per call (process time over the timed calls:
less sensitive to other load on a shared machine than wall time); the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch

import onebit
from onebit import models
from onebit.export.verify import interleaved_median_ms, pinned
from onebit.runtime import load
from onebit.training.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPES = {1: "cifar_base", 2: "cifar_bits2", 3: "cifar_bits3"}


def experiment_net(bits: int, scale: str, widen: int = 1) -> torch.nn.Module:
    """Experiment 3's net for ``bits`` activation planes (from its recipe), with the given scale rule."""
    cfg = load_config(os.path.join(ROOT, "recipes", "experiments", f"{RECIPES[bits]}.toml"))
    kwargs = dict(cfg["model"].get("kwargs", {}))
    for key in ("widths", "fc", "growth"):
        if key in kwargs:
            kwargs[key] = [widen * c for c in kwargs[key]]
    if bits > 1:
        kwargs["act_scale"] = scale
    torch.manual_seed(0)
    m = models.create(cfg["model"]["name"], **kwargs)
    m.train()
    with torch.no_grad():  # BatchNorm statistics from a few random batches
        for _ in range(4):
            m(torch.randn(64, 3, 32, 32))
    return m.eval()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=300, help="timed calls per net")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--widen", type=int, default=1, help="multiply the nets' widths (1: experiment 3's)")
    args = ap.parse_args(argv)
    nets = {"1 bit": (1, "channel")}
    for bits in (2, 3):
        for scale in ("channel", "sample"):
            nets[f"{bits} bits, {scale}"] = (bits, scale)
    x = np.random.default_rng(0).standard_normal((args.batch, 3, 32, 32)).astype(np.float32)
    engines, rows = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, (bits, scale) in nets.items():
            path = os.path.join(tmp, f"{bits}_{scale}.onebit")
            onebit.export(experiment_net(bits, scale, args.widen), torch.from_numpy(x[:1]), path)
            engines[label] = load(path, num_threads=1)
            ops = sorted(
                {r["op"] for r in engines[label].describe()} & {"bconv2d", "bdense", "conv2d", "dense"}
            )
            rows[label] = {"bytes": os.path.getsize(path), "ops": ops}
        fns = {k: (lambda e=e: e.run(x)) for k, e in engines.items()}
        with pinned(1) as cpu:
            wall = interleaved_median_ms(fns, args.runs, warmup=20)
            for k, fn in fns.items():
                t0 = time.process_time()
                for _ in range(args.runs):
                    fn()
                rows[k]["cpu_ms"] = 1e3 * (time.process_time() - t0) / args.runs
    base = rows["1 bit"]
    print(
        f"widths x{args.widen}, batch {args.batch}, 1 engine thread pinned to CPU {cpu}, {args.runs} calls "
        f"per net; load average {os.getloadavg()[0]:.2f} (1 min)"
    )
    print(
        "| activations | scale rule | engine layers | .onebit bytes | wall ms (median) | CPU ms per call "
        "| CPU vs 1 bit |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, (bits, scale) in nets.items():
        r = rows[label]
        rule = "-" if bits == 1 else scale
        print(
            f"| {bits} bit{'s' if bits > 1 else ''} | {rule} | {', '.join(r['ops'])} | {r['bytes']:,} | "
            f"{wall[label]:.3f} | {r['cpu_ms']:.3f} | {r['cpu_ms'] / base['cpu_ms']:.1f}x |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
