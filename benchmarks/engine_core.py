"""The C++ engine core against the engine it replaced, side by side in one process.

    python benchmarks/engine_core.py                 # the tables of docs/performance.md
    python benchmarks/engine_core.py --runs 20 --models binary_resnet_e18

The previous engine (a Python executor over the same C++ kernels) is the file
``src/onebit/runtime/model.py`` of commit BASELINE, read with ``git show``
and run over this build's kernels (which did not change). For each zoo model at
224x224, batch 1, one and two threads, pinned to the first CPUs:

* both engines' outputs on the same input: bit-identical or not;
* latency of both, interleaved call by call, medians;
* the cost of a call beyond its ops: a one-op model (relu on 8 floats) through
  the Python binding and through the C API (``onebit-run``), and for each zoo
  model the median call time minus the profiled time inside the ops.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import types

import numpy as np
import torch

import onebit
from onebit.export.verify import calibrate_batchnorm, interleaved_median_ms
from onebit.runtime import load, native
from onebit.runtime.format import write_model_file

BASELINE = "33f86b9"
DEFAULT_MODELS = ["binary_resnet_e18", "birealnet18", "quicknet", "binary_densenet28"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        lines = [ln for ln in out.splitlines() if ln.startswith(("Model name", "Flags"))]
        return "\n".join(lines)
    except (OSError, subprocess.CalledProcessError):
        return platform.processor()


def old_engine() -> types.ModuleType:
    """The previous commit's Python executor, run over this build's kernels."""
    src = subprocess.run(
        ["git", "-C", ROOT, "show", f"{BASELINE}:src/onebit/runtime/model.py"],
        capture_output=True, text=True, check=True,
    ).stdout
    mod = types.ModuleType("onebit_runtime_model_before")
    sys.modules[mod.__name__] = mod  # dataclasses look their module up
    exec(compile(src, f"{BASELINE}:src/onebit/runtime/model.py", "exec"), mod.__dict__)
    return mod


def one_op_model(path: str) -> None:
    meta = {
        "inputs": [{"name": "input", "shape": [1, 8], "dtype": "float32"}],
        "outputs": [{"name": "y", "shape": [1, 8], "dtype": "float32"}],
        "nodes": [{"op": "relu", "inputs": ["input"], "outputs": ["y"], "attrs": {}, "params": {}}],
    }
    write_model_file(path, meta, {})


def c_api_p50_us(path: str, runs: int = 20000) -> float:
    exe = os.path.join(native.bin_dir(), "onebit-run")
    out = subprocess.run([exe, path, "--runs", str(runs), "--warmup", "1000"], capture_output=True,
                         text=True, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("latency"))
    return 1e3 * float(line.split("p50")[1].split()[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=DEFAULT_MODELS)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    args = ap.parse_args()
    cpus = sorted(os.sched_getaffinity(0))[: max(args.threads)]
    os.sched_setaffinity(0, cpus)
    print(machine())
    print(f"pinned to CPUs {cpus}; isa {onebit.runtime.kernels.active_isa()}; baseline {BASELINE}\n")
    before = old_engine()
    with tempfile.TemporaryDirectory() as tmp:
        one = os.path.join(tmp, "one_op.onebit")
        one_op_model(one)
        new1, old1 = load(one, num_threads=1), before.load(one, num_threads=1)
        x8 = np.ones((1, 8), np.float32)
        t = interleaved_median_ms({"new": lambda: new1.run(x8), "old": lambda: old1.run(x8)}, 20000, 1000)
        n_us, o_us = 1e3 * t["new"], 1e3 * t["old"]
        print("| one-op model (relu, 8 floats) | previous engine (Python) | C++ engine, Python binding "
              "| C++ engine, C API (onebit-run) |")
        print("|---|---:|---:|---:|")
        print(f"| cost of a call | {o_us:.1f} us | {n_us:.1f} us | {c_api_p50_us(one):.2f} us |\n")

        print("| model | threads | previous engine ms | C++ engine ms | speed-up | outputs | "
              "overhead outside ops |")
        print("|---|---:|---:|---:|---:|---|---:|")
        for name in args.models:
            torch.manual_seed(0)
            model = onebit.models.create(name).eval()
            g = torch.Generator().manual_seed(0)
            calib = torch.randn(8, 3, 224, 224, generator=g)
            calibrate_batchnorm(model, calib, batch=8)
            path = os.path.join(tmp, f"{name}.onebit")
            onebit.export(model, calib[:1], path)
            x = calib[:1].numpy()
            for nt in args.threads:
                new, old = load(path, num_threads=nt), before.load(path, num_threads=nt)
                same = np.array_equal(new.run(x).view(np.uint32), old.run(x).view(np.uint32))
                calls = {"old": lambda o=old, x=x: o.run(x), "new": lambda n=new, x=x: n.run(x)}
                t = interleaved_median_ms(calls, args.runs)
                t_old, t_new = t["old"], t["new"]
                new.layer_times.clear()
                for _ in range(10):
                    new.run(x, profile=True)
                ops_ms = sum(new.layer_times.values()) / 10 * 1e3
                print(f"| {name} | {nt} | {t_old:.2f} | {t_new:.2f} | {t_old / t_new:.2f}x | "
                      f"{'bit-identical' if same else 'DIFFER'} | {max(0.0, t_new - ops_ms) * 1e3:.0f} us |")
                sys.stdout.flush()


if __name__ == "__main__":
    main()
