"""This build's engine against the engine of an earlier commit, interleaved round by round.

    python benchmarks/ab_engine.py 96cb4d7                      # the zoo models, 1 thread
    python benchmarks/ab_engine.py 96cb4d7 --threads 1 2 --rounds 8 --models quicknet
    python benchmarks/ab_engine.py 17cc850 --precision int8     # float layers in int8 on both sides
    python benchmarks/ab_engine.py 17cc850 --per-op              # also each op type's profiled time

The two engines cannot share a process (each is the package's ``_C`` extension), so every
round runs one process per side, A (the commit) and B (this build), first one then the
other in turn, and each process times
every model: 5 warm-up calls, then the median of 40 calls 2 ms apart, at batch 1, 224x224,
pinned to the first two CPUs. This host's speed drifts by tens of percent over minutes;
alternating the sides spreads the drift over both, and the table gives each side's median
over the rounds and in how many rounds B was the faster.

Both sides run the same ``.onebit`` files, exported once by this build (a commit whose
engine refuses them fails with its own error). The commit's engine and Python package
come from a git worktree built with CMake (Release, this machine's compiler) into
``build/ab/<commit>``, once; this build's side is a copy of ``src/onebit`` with the
installed extension.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODELS = ["binary_resnet_e18", "birealnet18", "quicknet", "binary_densenet28"]


def child(side: str, threads: int, precision: str, per_op: bool, files: list[str]) -> None:
    """Time the files with the onebit package in ``side`` and print {file: ms} as JSON.

    With ``per_op``, {file: {"ms": ms, "ops": {op type: ms}}}: each op type's time per call
    (the first layer apart: "conv2d (first layer)"), the median over 40 profiled calls of the
    sum of its steps' times.
    """
    import time

    # The editable install's import hook would load this checkout's onebit first.
    sys.meta_path[:] = [f for f in sys.meta_path if "ScikitBuild" not in type(f).__name__]
    sys.path.insert(0, side)
    import numpy as np

    import onebit
    from onebit.runtime import load

    if not os.path.abspath(onebit.__file__).startswith(os.path.abspath(side)):
        sys.exit(f"imported {onebit.__file__}, not the onebit in {side}")
    cpus = sorted(os.sched_getaffinity(0))[:2]
    os.sched_setaffinity(0, set(cpus))
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    out = {}
    for f in files:
        m = load(f, num_threads=threads, float_precision=precision)
        for _ in range(5):
            m.run(x)
        ts = []
        for _ in range(40):
            time.sleep(0.002)
            t = time.perf_counter()
            m.run(x)
            ts.append(time.perf_counter() - t)
        ms = float(np.median(ts) * 1e3)
        if not per_op:
            out[os.path.basename(f)] = ms
            continue
        nodes = m.meta["nodes"]
        keys = [n["op"] + (" (first layer)" if i == 0 else "") for i, n in enumerate(nodes)]
        calls: dict[str, list[float]] = {k: [] for k in keys}
        for _ in range(40):
            m.layer_times.clear()
            m.run(x, profile=True)
            per: dict[str, float] = dict.fromkeys(keys, 0.0)
            for i, t in m.layer_times.items():
                per[keys[i]] += t * 1e3
            for k, v in per.items():
                calls[k].append(v)
        out[os.path.basename(f)] = {"ms": ms, "ops": {k: float(np.median(v)) for k, v in calls.items()}}
    print(json.dumps(out))


def build_commit(rev: str) -> str:
    """A directory holding the onebit package of ``rev`` with its engine built (cached)."""
    sha = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short=12", rev], capture_output=True, text=True,
                         check=True).stdout.strip()
    base = os.path.join(ROOT, "build", "ab", sha)
    src, bld = os.path.join(base, "src"), os.path.join(base, "build")
    pkg = os.path.join(src, "src")
    if not os.path.isdir(src):
        subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", "-f", src, sha], check=True)
    if not any(n.startswith("_C") for n in os.listdir(os.path.join(pkg, "onebit"))):
        import nanobind

        print(f"[ab] building the engine of {sha} in {bld}", flush=True)
        subprocess.run(["cmake", "-S", src, "-B", bld, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                        f"-DPython_EXECUTABLE={sys.executable}", f"-Dnanobind_DIR={nanobind.cmake_dir()}"],
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["ninja", "-C", bld, "_C"], check=True, stdout=subprocess.DEVNULL)
        so = [n for n in os.listdir(os.path.join(bld, "csrc")) if n.startswith("_C") and n.endswith(".so")]
        shutil.copy2(os.path.join(bld, "csrc", so[0]), os.path.join(pkg, "onebit", so[0]))
    return pkg


def this_build(tmp: str) -> str:
    """A directory holding a copy of this checkout's onebit package and installed engine."""
    from onebit import _C

    side = os.path.join(tmp, "this")
    shutil.copytree(os.path.join(ROOT, "src", "onebit"), os.path.join(side, "onebit"))
    shutil.copy2(_C.__file__, os.path.join(side, "onebit", os.path.basename(_C.__file__)))
    return side


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("commit", help="the earlier engine: a commit, tag or branch")
    ap.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    ap.add_argument("--threads", nargs="+", type=int, default=[1])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--precision", default="fp32", help="float_precision of both sides' loads (default fp32)")
    ap.add_argument("--per-op", action="store_true", help="also each op type's profiled time per call")
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    import onebit
    from versus import lscpu  # benchmarks/ is on sys.path when this runs as a script

    cpu, _ = lscpu()
    print(f"CPU: {cpu}; load average at start {os.getloadavg()[0]:.2f}")
    a_side = build_commit(args.commit)
    with tempfile.TemporaryDirectory() as tmp:
        b_side = this_build(tmp)
        x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
        files = []
        for name in args.models:
            torch.manual_seed(0)
            files.append(os.path.join(tmp, f"{name}.onebit"))
            onebit.export(onebit.models.create(name).eval(), torch.from_numpy(x), files[-1])
        rows = []
        op_rows: list[tuple[str, int, dict[str, tuple[float, float]]]] = []
        for t in args.threads:
            ms: dict[str, dict[str, list[float]]] = {"A": {}, "B": {}}
            ops: dict[str, dict[str, dict[str, list[float]]]] = {"A": {}, "B": {}}
            for r in range(args.rounds):
                # Which side goes first alternates: run second, a side gained ~2% in 8 of 8
                # rounds against an identical engine (the host warming up within a round).
                order = (("A", a_side), ("B", b_side))
                for side, d in order if r % 2 == 0 else order[::-1]:
                    cmd = [sys.executable, os.path.abspath(__file__), "--child", d, str(t), args.precision,
                           "1" if args.per_op else "0", *files]
                    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
                    if res.returncode:
                        sys.exit(f"side {side} failed:\n{res.stderr[-2000:]}")
                    for k, v in json.loads(res.stdout.strip().splitlines()[-1]).items():
                        if args.per_op:
                            for op, t_op in v["ops"].items():
                                ops[side].setdefault(k, {}).setdefault(op, []).append(t_op)
                            v = v["ms"]
                        ms[side].setdefault(k, []).append(v)
            for name in args.models:
                a, b = ms["A"][name + ".onebit"], ms["B"][name + ".onebit"]
                wins = sum(bb < aa for aa, bb in zip(a, b, strict=True))
                rows.append((name, t, float(np.median(a)), float(np.median(b)), wins))
                if args.per_op:
                    oa, ob = ops["A"][name + ".onebit"], ops["B"][name + ".onebit"]
                    per = {op: (float(np.median(oa[op])), float(np.median(ob.get(op, [0.0])))) for op in oa}
                    op_rows.append((name, t, per))
    print(f"\nA = {args.commit}, B = this build; float layers in {args.precision}; medians over "
          f"{args.rounds} rounds; load average at end "
          f"{os.getloadavg()[0]:.2f}\n")
    print("| model | threads | A ms | B ms | A / B | rounds B faster |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, t, a, b, wins in rows:
        print(f"| {name} | {t} | {a:.2f} | {b:.2f} | {a / b:.2f}x | {wins}/{args.rounds} |")
    for name, t, per in op_rows:
        print(f"\n{name}, {t} thread(s), per op type (profiled ms per call, medians over rounds of the "
              "median of 40 calls; a maxpool computed by its conv's step counts in that step):\n")
        print("| op | A ms | B ms | A / B |")
        print("|---|---:|---:|---:|")
        for op, (a, b) in sorted(per.items(), key=lambda kv: -kv[1][0]):
            ratio = f"{a / b:.2f}x" if b > 0 else "-"
            print(f"| {op} | {a:.3f} | {b:.3f} | {ratio} |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5] == "1", sys.argv[6:])
    else:
        main()
