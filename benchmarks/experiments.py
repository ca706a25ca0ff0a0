"""Run the controlled experiments of docs/experiments.md and build their tables and plots.

    python benchmarks/experiments.py list                 # every run and its exact command
    python benchmarks/experiments.py run --jobs 2         # run what is missing (2 single-thread jobs)
    python benchmarks/experiments.py run --only exp2,exp3 --seeds 0
    python benchmarks/experiments.py report    # tables and plots into docs/experiments.md
    python benchmarks/experiments.py deploy    # experiment 7: best run in the engine vs PyTorch

Every run is one recipe of ``recipes/experiments/`` and one ``onebit train`` command, run from
the checkout with ``ONEBIT_DATA`` pointing at the data (default here: ``../shared/data``)::

    onebit train -c recipes/experiments/STEM.toml --set train.seed=S train.run_name=STEM-sS

The recipes fix the budget in epochs (not minutes), so a busy machine changes the
wall time of a run but not its result; every run of an experiment uses the same
seeds. ``run`` skips runs whose ``metrics.jsonl`` already holds their last epoch,
so it can be interrupted and restarted; the teacher of experiment 5 runs first.
``report`` reads only the run directories, so every number in the tables comes
from a listed command.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from onebit.training.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPES = os.path.join(ROOT, "recipes", "experiments")
OUT = os.path.join(ROOT, "runs", "experiments")
DOCS = os.path.join(ROOT, "docs")
IMG = os.path.join(DOCS, "img", "experiments")


@dataclass
class Experiment:
    key: str
    title: str
    runs: list[tuple[str, str]]  # (label, recipe stem)
    seeds: list[int] = field(default_factory=lambda: [0, 1])


EXPERIMENTS = [
    Experiment(
        "exp1",
        "Learning rate and weight flips (BinaryNet MLP on MNIST, Adam, constant rate)",
        [
            ("Adam 1e-2", "mnist_adam_1e-2"),
            ("Adam 1e-3", "mnist_adam_1e-3"),
            ("Adam 1e-4", "mnist_adam_1e-4"),
            ("SGD 1e-1 (momentum 0.9)", "mnist_sgd_1e-1"),
        ],
    ),
    Experiment(
        "exp2",
        "XNOR-Net's ablations: scaling factors and block order (CIFAR-10)",
        [
            ("no scaling (baseline)", "cifar_base"),
            ("alpha", "cifar_alpha"),
            ("alpha and K", "cifar_xnor"),
            ("learned per-channel scale", "cifar_channel"),
            ("order conv -> BN -> sign -> pool", "cifar_typical"),
        ],
    ),
    Experiment(
        "exp3",
        "Tang et al.: PReLU, regularizer, binarized last layer, multiple binarizations (CIFAR-10)",
        [
            ("baseline (no PReLU, no regularizer, float last layer, 1 bit)", "cifar_base"),
            ("PReLU", "cifar_prelu"),
            ("bipolar regularizer, lambda 5e-5", "cifar_bipolar"),
            ("bipolar regularizer, lambda 5e-7 (the paper's)", "cifar_bipolar_tang"),
            ("L2 on latent weights", "cifar_l2"),
            ("binary last layer, no scale layer", "cifar_last_binary"),
            ("binary last layer + scale layer", "cifar_last_scale"),
            ("2 binarizations of activations", "cifar_bits2"),
            ("3 binarizations of activations", "cifar_bits3"),
        ],
    ),
    Experiment(
        "exp4",
        "Bethge et al.: sign gradient and scaling on a residual net; dense vs plain (CIFAR-10)",
        [
            ("residual, ste_sign", "cifar_residual"),
            ("residual, approx_sign", "cifar_residual_approx"),
            ("residual, swish_sign", "cifar_residual_swish"),
            ("residual, ste_sign + alpha and K", "cifar_residual_xnor"),
            ("plain (no shortcuts)", "cifar_base"),
            ("dense shortcuts (BinaryDenseNet-style)", "cifar_dense"),
        ],
    ),
    Experiment(
        "exp5",
        "Distillation from a float teacher (Wu et al.; CIFAR-10)",
        [
            ("float teacher", "cifar_teacher"),
            ("student, hard targets only", "cifar_base"),
            ("student, soft targets only", "cifar_distill_soft"),
            ("student, soft pre-training then soft + hard", "cifar_distill_soft_hard"),
        ],
    ),
    Experiment(
        "exp6",
        "Optimizers: Adam on latent weights vs Bop (CIFAR-10)",
        [
            ("Adam (latent weights, clipped)", "cifar_base"),
            ("Bop gamma 1e-4, tau 1e-8", "cifar_bop"),
            ("Bop gamma 1e-3, tau 1e-6", "cifar_bop_fast"),
        ],
    ),
]

#: Runs that others depend on (the distillation teacher), run first with one seed.
FIRST = {"cifar_teacher": [0]}

#: Configurations run with seed 0 only: their seed-0 result is 5 points or more from their
#: baseline, while the two seeds of every two-seed configuration but Bop's differ by <= 1.3 points,
#: and a second seed of these slow runs did not fit the session. The report marks them "(1 seed)".
ONE_SEED = {
    # seed 0 against seed 0 of the baseline (cifar_base, or cifar_residual for swish)
    "cifar_last_binary": "34.4% vs 63.5%: the binary classifier without a scale layer fails",
    "cifar_bits2": "+5.3 points",
    "cifar_bits3": "+7.1 points",
    "cifar_typical": "-5.2 points",
    "cifar_bipolar": "-5.7 points",
    "cifar_residual_swish": "-6.3 points",
}


def seeds_of(stem: str, default: list[int]) -> list[int]:
    """The seeds a recipe runs with: the teacher and the ONE_SEED configurations use seed 0 only."""
    if stem in FIRST:
        return FIRST[stem]
    return [default[0]] if stem in ONE_SEED else default


def run_name(stem: str, seed: int) -> str:
    return f"{stem}-s{seed}"


def command(stem: str, seed: int) -> list[str]:
    return [
        "onebit",
        "train",
        "-c",
        f"recipes/experiments/{stem}.toml",
        "--set",
        f"train.seed={seed}",
        f"train.run_name={run_name(stem, seed)}",
    ]


def all_runs(only: set[str] | None = None, seeds: list[int] | None = None) -> list[tuple[str, int]]:
    """Every (recipe, seed) once, ordered seed by seed (all first seeds before any second seed, so
    an interrupted campaign still covers every configuration), the distillation teacher first."""
    runs: list[tuple[str, int]] = []
    for stem, ss in FIRST.items():
        runs += [(stem, s) for s in ss]
    pairs = []
    for exp in EXPERIMENTS:
        if only and exp.key not in only:
            continue
        for _, stem in exp.runs:
            for s in seeds_of(stem, seeds if seeds is not None else exp.seeds):
                if (stem, s) not in runs and (stem, s) not in pairs:
                    pairs.append((stem, s))
    pairs.sort(key=lambda p: p[1])  # stable: keeps the experiment order within a seed
    return runs + pairs


@functools.cache
def _recipe(stem: str) -> dict:
    return load_config(os.path.join(RECIPES, f"{stem}.toml"))


def read_run(stem: str, seed: int) -> list[dict]:
    path = os.path.join(OUT, run_name(stem, seed), "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [r for r in (json.loads(ln) for ln in f if ln.strip()) if r.get("kind") == "epoch"]


def _complete(stem: str, recs: list[dict]) -> bool:
    """Whether a run's epoch records reach its recipe's last epoch, evaluated."""
    return (
        bool(recs)
        and recs[-1]["epoch"] + 1 >= int(_recipe(stem)["train"]["epochs"])
        and "test_acc" in recs[-1]
    )


def finished(stem: str, seed: int) -> bool:
    return _complete(stem, read_run(stem, seed))


def _wait_for_dependencies(stem: str) -> None:
    """Distillation students start only once the teacher's run has finished."""
    if stem.startswith("cifar_distill"):
        while not all(finished(t, s) for t, ss in FIRST.items() for s in ss):
            time.sleep(10)


def _run_one(stem: str, seed: int) -> tuple[str, int, int, float]:
    _wait_for_dependencies(stem)
    os.makedirs(OUT, exist_ok=True)
    log = os.path.join(OUT, f"{run_name(stem, seed)}.log")
    t = time.time()
    cmd = command(stem, seed) + ["train.resume=auto"]
    env = dict(os.environ)
    env.setdefault("ONEBIT_DATA", os.path.join(os.path.dirname(ROOT), "shared", "data"))
    with open(log, "a") as f:
        rc = subprocess.call(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=env)
    return stem, seed, rc, time.time() - t


def cmd_run(args: argparse.Namespace) -> int:
    only = set(args.only.split(",")) if args.only else None
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None
    todo = [(st, s) for st, s in all_runs(only, seeds) if not finished(st, s)]
    print(f"{len(todo)} runs to do, {args.jobs} at a time", flush=True)
    failed = 0
    with ThreadPoolExecutor(args.jobs) as pool:
        for stem, seed, rc, dt in pool.map(lambda r: _run_one(*r), todo):
            status = "ok" if rc == 0 else f"FAILED rc={rc}"
            failed += rc != 0
            print(
                f"{time.strftime('%H:%M:%S')} {run_name(stem, seed)}: {status} in {dt / 60:.1f} min",
                flush=True,
            )
    return 1 if failed else 0


def cmd_list(args: argparse.Namespace) -> int:
    for stem, seed in all_runs():
        print(" ".join(command(stem, seed)))
    return 0


# --------------------------------------------------------------------------- report


def _fmt_pm(vals: list[float]) -> str:
    if not vals:
        return "—"
    m = statistics.mean(vals)
    if len(vals) == 1:
        return f"{m:.2f}"
    return f"{m:.2f} ± {statistics.stdev(vals):.2f}"


def _edge_share(rec: dict) -> float:
    """Share of all binary latent weights with |w| > 0.9 (piled up at the clip edges) in a record."""
    edge = total = 0
    for hist in rec.get("histograms", {}).values():
        edges, counts = hist["edges"], hist["counts"]
        for lo, hi, c in zip(edges[:-1], edges[1:], counts, strict=True):
            total += c
            if abs((lo + hi) / 2) > 0.9:
                edge += c
    return edge / total if total else float("nan")


def _summary(stem: str, seeds: list[int]) -> dict:
    out: dict[str, list[float]] = {k: [] for k in ("acc", "wall", "ips", "flip1", "flipN", "edge1", "edgeN")}
    for s in seeds:
        recs = read_run(stem, s)
        if not _complete(stem, recs):
            continue
        out["acc"].append(100 * recs[-1]["test_acc"])
        out["wall"].append(recs[-1]["wall_s"] / 60)
        out["ips"].append(statistics.median(r["images_per_s"] for r in recs))
        if recs[0].get("flip_ratio"):
            out["flip1"].append(100 * recs[0]["flip_ratio"]["all"])
            out["flipN"].append(100 * recs[-1]["flip_ratio"]["all"])
        if recs[0].get("histograms"):
            out["edge1"].append(100 * _edge_share(recs[0]))
            out["edgeN"].append(100 * _edge_share(recs[-1]))
    return out


def _curves(stem: str, seeds: list[int]) -> tuple[list[int], list[float]]:
    runs = [read_run(stem, s) for s in seeds]
    runs = [r for r in runs if r]
    if not runs:
        return [], []
    n = min(len(r) for r in runs)
    ep = [runs[0][i]["epoch"] + 1 for i in range(n)]
    acc = [statistics.mean(100 * r[i].get("test_acc", float("nan")) for r in runs) for i in range(n)]
    return ep, acc


def _mean(vals: list[float], fmt: str = "{:.1f}") -> str:
    return fmt.format(statistics.mean(vals)) if vals else "—"


def replace_block(path: str, key: str, text: str) -> bool:
    """Replace the text between ``<!-- BEGIN key -->`` and ``<!-- END key -->`` in ``path``."""
    if not os.path.exists(path):
        return False
    with open(path) as f:
        doc = f.read()
    begin, end = f"<!-- BEGIN {key} -->", f"<!-- END {key} -->"
    if begin not in doc or end not in doc:
        return False
    i, j = doc.index(begin) + len(begin), doc.index(end)
    new = doc[:i] + "\n" + text.rstrip() + "\n" + doc[j:]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(new)
    os.replace(tmp, path)
    return True


def cmd_report(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(IMG, exist_ok=True)
    doc = os.path.join(DOCS, "experiments.md")
    for exp in EXPERIMENTS:
        lines = [
            "<!-- generated by `python benchmarks/experiments.py report` from the run directories -->",
            "",
            "| configuration | recipe | test top-1 % (mean ± sd) | per seed | flips % epoch 1 → last "
            "| \\|w\\| > 0.9 % epoch 1 → last | img/s | min/run |",
            "|---|---|---|---|---|---|---|---|",
        ]
        fig, ax = plt.subplots(figsize=(6.4, 4))
        for label, stem in exp.runs:
            seeds = seeds_of(stem, exp.seeds)
            s = _summary(stem, seeds)
            if not s["acc"]:
                lines.append(f"| {label} | `{stem}` | not run | | | | | |")
                continue
            per = ", ".join(f"{a:.2f}" for a in s["acc"]) + (" (1 seed)" if len(s["acc"]) == 1 else "")
            flips = f"{_mean(s['flip1'])} → {_mean(s['flipN'], '{:.2f}')}" if s["flip1"] else "—"
            edge = f"{_mean(s['edge1'])} → {_mean(s['edgeN'])}" if s["edge1"] else "—"
            lines.append(
                f"| {label} | `{stem}` | {_fmt_pm(s['acc'])} | {per} | {flips} | {edge} | "
                f"{statistics.mean(s['ips']):.0f} | {_mean(s['wall'])} |"
            )
            ep, acc = _curves(stem, seeds)
            if ep:
                ax.plot(ep, acc, "o-", ms=3, label=label)
        ax.set(xlabel="epoch", ylabel="test top-1 % (mean over seeds)", title=f"{exp.key}: {exp.title[:60]}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(IMG, f"{exp.key}_curves.png"), dpi=90)
        plt.close(fig)
        lines += ["", f"![{exp.key} test accuracy per epoch](img/experiments/{exp.key}_curves.png)", ""]
        if exp.key == "exp1":
            _plot_exp1(plt)
            lines += [
                "![exp1 flip ratio per layer and epoch](img/experiments/exp1_flips.png)",
                "",
                "![exp1 latent weight histograms after epoch 1](img/experiments/exp1_histograms.png)",
                "",
            ]
        lines += ["Commands (from the checkout, `ONEBIT_DATA` set):", "", "```sh"]
        for _, stem in exp.runs:
            for seed in seeds_of(stem, exp.seeds):
                lines.append(" ".join(command(stem, seed)))
        lines += ["```"]
        text = "\n".join(lines)
        print(f"## {exp.key}\n{text}\n")
        if not replace_block(doc, exp.key, text):
            print(f"(no <!-- BEGIN {exp.key} --> block in {doc}; printed only)")
    return 0


def _plot_exp1(plt) -> None:
    exp = EXPERIMENTS[0]
    fig, axes = plt.subplots(1, len(exp.runs), figsize=(4 * len(exp.runs), 3.4), sharey=True, squeeze=False)
    hfig, haxes = plt.subplots(1, len(exp.runs), figsize=(4 * len(exp.runs), 3.2), squeeze=False)
    for i, (label, stem) in enumerate(exp.runs):
        recs = read_run(stem, exp.seeds[0])
        if not recs:
            continue
        ax = axes[0][i]
        layers = [k for k in recs[-1].get("flip_ratio", {}) if k != "all"]
        ep = [r["epoch"] + 1 for r in recs]
        for layer in layers:
            ax.plot(ep, [100 * r["flip_ratio"][layer] for r in recs], "o-", ms=3, label=layer)
        ax.set(title=label, xlabel="epoch", yscale="log")
        if i == 0:
            ax.set_ylabel("weights whose sign flipped in the epoch (%)")
            ax.legend(fontsize=7)
        h = recs[0].get("histograms", {})
        hax = haxes[0][i]
        for layer, hist in h.items():
            edges, counts = hist["edges"], hist["counts"]
            total = sum(counts) or 1
            centers = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=True)]
            hax.plot(centers, [c / total for c in counts], label=layer)
        hax.set(title=f"{label}: after epoch 1", xlabel="latent weight", yscale="log")
        if i == 0:
            hax.set_ylabel("share of weights")
            hax.legend(fontsize=7)
    for f, name in ((fig, "exp1_flips.png"), (hfig, "exp1_histograms.png")):
        f.tight_layout()
        f.savefig(os.path.join(IMG, name), dpi=90)
        plt.close(f)


# --------------------------------------------------------------------------- deploy (experiment 7)


def _best_exportable() -> tuple[str, int]:
    """The binary run with the best final test accuracy that the engine runs (1-bit, XNOR order)."""
    best, best_acc = None, -1.0
    for exp in EXPERIMENTS[1:]:
        for _, stem in exp.runs:
            kw = _recipe(stem)["model"]["kwargs"]
            if kw.get("binary", True) is False or kw.get("act_bits", 1) != 1 or kw.get("order") == "typical":
                continue
            for s in exp.seeds:
                recs = read_run(stem, s)
                if _complete(stem, recs) and recs[-1]["test_acc"] > best_acc:
                    best, best_acc = (stem, s), recs[-1]["test_acc"]
    if best is None:
        raise SystemExit("no finished exportable run; run the experiments first")
    return best


def cmd_deploy(args: argparse.Namespace) -> int:
    """Export the best run's final weights and compare PyTorch, the engine and the float twin."""
    import torch

    from onebit.export import export
    from onebit.export.verify import compare_engine, median_ms, test_split_of
    from onebit.training.checkpoint import load_model

    stem, seed = (
        (args.run.rsplit("-s", 1)[0], int(args.run.rsplit("-s", 1)[1])) if args.run else _best_exportable()
    )
    run_dir = os.path.join(OUT, run_name(stem, seed))
    model, meta = load_model(os.path.join(run_dir, "last.pt"))
    twin, _ = load_model(os.path.join(OUT, run_name("cifar_teacher", 0), "last.pt"))
    os.environ.setdefault("ONEBIT_DATA", os.path.join(os.path.dirname(ROOT), "shared", "data"))
    x, labels, classes = test_split_of(meta)
    path = os.path.join(run_dir, "model.onebit")
    export(model, x[:1], path, model_name=meta.get("model_name") or "ablation_convnet", labels=classes)
    out = [f"best exportable run: {run_name(stem, seed)}; exported {os.path.relpath(path, ROOT)}"]
    print(out[0])
    for threads in (1, 2):
        rep = compare_engine(model, path, x, labels, num_threads=threads, runs=args.runs)
        prev = torch.get_num_threads()
        torch.set_num_threads(threads)
        twin.eval()
        with torch.inference_mode():
            x1 = x[:1].float().contiguous()
            twin_ms = median_ms(lambda x1=x1: twin(x1), args.runs)
        torch.set_num_threads(prev)
        out.append(f"-- {threads} thread(s)")
        out += ["  " + line for line in rep.lines()]
        out.append(
            f"  float twin (cifar_teacher-s0) in PyTorch fp32: {twin_ms:.3f} ms "
            f"({twin_ms / rep.engine_ms:.1f}x the engine's time); size {rep.fp32_bytes / 2**20:.2f} MiB fp32"
        )
        print("\n".join(out[-5:]), flush=True)
    block = "\n".join(
        [
            "Output of `python benchmarks/experiments.py deploy` (one run, medians of repeated calls):",
            "",
            "```",
        ]
        + out
        + ["```"]
    )
    replace_block(os.path.join(DOCS, "experiments.md"), "exp7", block)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run the missing runs")
    r.add_argument("--jobs", type=int, default=2, help="runs at a time (each recipe uses 1 thread)")
    r.add_argument("--only", default="", help="comma-separated experiment keys (exp1,...)")
    r.add_argument("--seeds", default="", help="comma-separated seeds (default: each experiment's)")
    sub.add_parser("list", help="print the command of every run")
    sub.add_parser("report", help="tables and plots from the finished runs")
    d = sub.add_parser("deploy", help="experiment 7: export the best run, engine vs PyTorch vs float twin")
    d.add_argument("--run", default="", help="run name (STEM-sSEED); default: best exportable run")
    d.add_argument("--runs", type=int, default=200, help="timed repetitions per latency median")
    args = ap.parse_args(argv)
    return {"run": cmd_run, "list": cmd_list, "report": cmd_report, "deploy": cmd_deploy}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
