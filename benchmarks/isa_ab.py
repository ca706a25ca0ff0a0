"""Two instruction-set paths on the same loaded models, interleaved, per op type.

    python benchmarks/isa_ab.py --isas amx avx512 --precision int8
    python benchmarks/isa_ab.py --isas avx512 avx512 --models quicknet   # an A/A control

One process loads each zoo model once (random weights, batch 1, 224x224) and, round after
round, switches the path with ``onebit.runtime.kernels.set_isa`` (packed weights do not
depend on it), runs 2 untimed and ``--calls`` profiled calls, and sums the engine's per-step
times by op type (float convs and dense layers by precision). The table gives each path's
median over the rounds per op type and in total, and A / B (above 1: B faster). Pinned to
the first CPU, one engine thread unless ``--threads``. What the comparison is for: the AMX
tile kernel of the int8 float layers (``ONEBIT_ISA=amx``) against AVX512-VNNI, both giving
the same bits (tests/runtime/test_float_precision.py).
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import subprocess
import tempfile

import numpy as np

DEFAULT_MODELS = ["binary_resnet_e18", "birealnet18", "quicknet", "binary_densenet28"]


def cpu_line() -> str:
    """lscpu's model name and the AMX / AVX-512 flags it lists."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return platform.processor() or "unknown CPU"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    flags = [f for f in fields.get("Flags", "").split() if f.startswith(("amx", "avx512"))]
    return f"{fields.get('Model name', '?').strip()}; flags: {' '.join(flags)}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--isas", nargs=2, default=["amx", "avx512"], metavar=("A", "B"))
    ap.add_argument("--precision", default="int8", help="float_precision of the load (default int8)")
    ap.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--calls", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    from onebit.export import export
    from onebit.models import create
    from onebit.runtime import kernels, load

    cpus = sorted(os.sched_getaffinity(0))[: max(1, args.threads)]
    os.sched_setaffinity(0, set(cpus))
    for isa in args.isas:
        kernels.set_isa(isa)  # fails here, with the reason, if this CPU lacks one
    print(f"# {cpu_line()}")
    print(f"# paths A = {args.isas[0]}, B = {args.isas[1]}; float_precision {args.precision}; "
          f"{args.threads} thread(s) on CPUs {cpus}; {args.rounds} rounds x {args.calls} calls\n")
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    tmp = tempfile.mkdtemp()
    for name in args.models:
        torch.manual_seed(0)
        path = os.path.join(tmp, f"{name}.onebit")
        export(create(name).eval(), torch.randn(1, 3, 224, 224), path)
        m = load(path, num_threads=args.threads, float_precision=args.precision)
        rows = m.describe()
        per = [collections.defaultdict(list) for _ in args.isas]
        for _ in range(args.rounds):
            for side, isa in enumerate(args.isas):
                kernels.set_isa(isa)
                for _ in range(2):
                    m.run(x)
                m.layer_times.clear()
                for _ in range(args.calls):
                    m.run(x, profile=True)
                agg: dict[str, float] = collections.defaultdict(float)
                for i, t in m.layer_times.items():
                    r = rows[i]
                    key = r["op"] + (f" ({r['precision']})" if r.get("precision") else "")
                    agg[key] += t / args.calls * 1e3
                agg["total"] = sum(agg.values())
                for k, v in agg.items():
                    per[side][k].append(v)
        print(f"## {name}\n\n| op | A ms | B ms | A / B |\n|---|---:|---:|---:|")
        keys = sorted(per[0], key=lambda k: (k == "total", -float(np.median(per[0][k]))))
        for k in keys:
            a, b = float(np.median(per[0][k])), float(np.median(per[1][k]))
            if max(a, b) >= 0.01 or k == "total":
                print(f"| {k} | {a:.3f} | {b:.3f} | {a / b:.2f}x |")
        print()
    print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
