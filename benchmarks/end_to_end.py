"""End-to-end: zoo models exported to .onebit and run by the engine, against PyTorch fp32.

    python benchmarks/end_to_end.py                      # the table of docs/performance.md
    python benchmarks/end_to_end.py --models quicknet --runs 10

For each model at 224x224 (the CIFAR net of the CPU recipes at 32x32), batch 1
(weights random, BatchNorm statistics calibrated on real images so activations have realistic scales):

* latency of the onebit engine against its float twin in PyTorch fp32 (the same
  layers with float weights and activations, `onebit.nn.float_twin`: the network
  a user would deploy instead), on 1 and 2 threads, interleaved call by call,
  medians, pinned to one CPU on one thread (where the CPU time of the
  thread is reported: other jobs do not inflate it; two threads: wall time); the binary model in PyTorch eager
  (fake-quant signs in fp32) is timed in the same rounds and labelled as such;
* file size against the packed size `onebit summary` predicts and the fp32 state_dict;
* agreement on the real images of ../shared/data/imagenet-sample: identical
  top-1, and the share of images whose logits differ by more than 1e-3
  (relative): those where rounding before a sign flipped at least one bit.

It also measures the peak resident memory of `onebit run` on binary_resnet_e18.

    python benchmarks/end_to_end.py --precision                  # fp32 vs bf16 float layers
    python benchmarks/end_to_end.py --precision --checkpoints runs/cifar/best.pt runs/mnist/best.pt

``--precision`` times the same models with the load option float_precision = fp32, bf16 and
int8 instead (one thread, pinned, CPU time of the thread, the two engines interleaved call by call,
medians), gives the float layers' time from profiled passes (the 7x7 stem conv, the 1x1 float
convs, the dense layer: the engine's wall time per step, the minimum over the rounds, since
other jobs can only add to it), and the share of the real
photos whose engine top-1 equals PyTorch fp32's. ``--checkpoints`` adds that agreement for
trained models, on the whole test split of each checkpoint's data set.
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

import onebit
from onebit.export.verify import calibrate_batchnorm, interleaved_median_ms, pinned
from onebit.runtime import load
from onebit.runtime.tools import DEFAULT_PREPROCESS, preprocess_image
from versus import lscpu

DEFAULT_MODELS = ["binary_resnet_e18", "birealnet18", "binary_densenet28", "quicknet", "binarynet_cifar_w0.5"]
#: benchmark name -> (zoo name, its kwargs, input size); a zoo name alone runs at 224x224
SPECS = {
    # the network of the CPU recipes (recipes/binarynet_cifar10_cpu20.toml / cpu60.toml)
    "binarynet_cifar_w0.5": ("binarynet_cifar", {"width": 0.5}, 32),
}


def data_dir() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    return os.environ.get("ONEBIT_DATA", os.path.join(here, "..", "..", "shared", "data"))


def real_images(size: int, limit: int | None = None) -> np.ndarray:
    files = sorted(glob.glob(os.path.join(data_dir(), "imagenet-sample", "*", "*.JPEG")))[:limit]
    if not files:
        raise SystemExit(f"no images under {data_dir()}/imagenet-sample (set ONEBIT_DATA)")
    spec = dict(DEFAULT_PREPROCESS, resize=round(size * 256 / 224), crop=size)
    return np.stack([preprocess_image(f, spec, 3, (size, size)) for f in files])


def fp32_state_bytes(model: torch.nn.Module) -> int:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()


def bench_model(name: str, images: np.ndarray, runs: int, tmp: str) -> dict:
    zoo_name, kwargs, size = SPECS.get(name, (name, {}, 224))
    torch.manual_seed(0)
    model = onebit.models.create(zoo_name, **kwargs)
    calibrate_batchnorm(model, torch.from_numpy(images))
    path = os.path.join(tmp, f"{name}.onebit")
    file_bytes = onebit.export(model, torch.from_numpy(images[:1]), path, model_name=zoo_name)
    predicted = onebit.summary(model, (3, size, size), print_table=False).memory_bytes
    x1 = images[:1]
    xt = torch.from_numpy(x1)
    row: dict = {
        "model": name,
        "file_bytes": file_bytes,
        "predicted_bytes": predicted,
        "fp32_bytes": fp32_state_bytes(model),
    }
    twin = onebit.nn.float_twin(model).eval()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        rt = load(path, num_threads=threads)
        # One thread: CPU time of the (pinned) calling thread, where both the engine and
        # PyTorch compute; it is what the work costs even when other jobs share the CPU.
        # Two threads: wall time (CPU time would count both workers).
        clock = time.thread_time if threads == 1 else time.perf_counter
        with torch.inference_mode(), pinned(threads):
            calls = {"onebit": lambda rt=rt: rt.run(x1), "twin": lambda: twin(xt), "fake": lambda: model(xt)}
            t = interleaved_median_ms(calls, runs, clock=clock)
        row[f"onebit_ms_{threads}t"] = t["onebit"]
        row[f"twin_ms_{threads}t"] = t["twin"]
        row[f"torch_ms_{threads}t"] = t["fake"]
    # agreement on real images
    rt = load(path, num_threads=2)
    with torch.inference_mode():
        ref = model(torch.from_numpy(images)).numpy()
    y = np.concatenate([rt.run(images[i : i + 8]) for i in range(0, len(images), 8)])
    rel = np.abs(y - ref).max(axis=1) / (np.abs(ref).max(axis=1) + 1e-12)
    row["images"] = len(images)
    row["top1_agree"] = float(np.mean(y.argmax(1) == ref.argmax(1)))
    row["flip_affected"] = float(np.mean(rel > 1e-3))
    row["max_rel_err_unaffected"] = float(rel[rel <= 1e-3].max()) if np.any(rel <= 1e-3) else None
    # PyTorch's own rounding noise: the same model in fp64 against fp32
    with torch.inference_mode():
        ref64 = model.double()(torch.from_numpy(images).double()).numpy()
    model.float()
    rel64 = np.abs(ref64 - ref).max(axis=1) / (np.abs(ref).max(axis=1) + 1e-12)
    row["fp64_top1_agree"] = float(np.mean(ref64.argmax(1) == ref.argmax(1)))
    row["fp64_flip_affected"] = float(np.mean(rel64 > 1e-3))
    return row


def peak_rss_of_run(path: str, image: str) -> tuple[int, int]:
    """(peak RSS, RSS after imports) in bytes of a fresh `onebit run` process.

    Read from /proc/self/status (VmHWM, VmRSS): unlike getrusage's ru_maxrss, they start
    afresh at exec and do not inherit this benchmark's own (torch-sized) footprint.
    """
    code = (
        "import re\n"
        "def status(key):\n"
        "    return int(re.search(key + r':\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
        "from onebit.runtime.tools import run_images\n"
        "import PIL.Image, rich.table\n"
        "base = status('VmRSS')\n"
        f"run_images({path!r}, [{image!r}])\n"
        "print('RSS', status('VmHWM'), base)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    peak, base = out.split("RSS")[-1].split()
    return int(peak) * 1024, int(base) * 1024


PRECISION_MODELS = ["binary_resnet_e18", "quicknet", "birealnet18", "binary_densenet28"]
PRECISIONS = ("fp32", "bf16", "int8")


def float_layer_kind(node: dict) -> str | None:
    """'stem' (a float conv with a kernel above 1x1), '1x1 conv', 'dense', or None (other ops)."""
    if node["op"] == "dense":
        return "dense"
    if node["op"] == "conv2d" and node["attrs"].get("groups", 1) == 1:
        return "1x1 conv" if list(node["attrs"]["kernel"]) == [1, 1] else "stem"
    return None


def bench_precision(name: str, images: np.ndarray, runs: int, tmp: str) -> dict:
    """fp32 vs bf16 vs int8 float layers on one zoo model: CPU ms per call, float layers' ms, agreement."""
    zoo_name, kwargs, size = SPECS.get(name, (name, {}, 224))
    torch.manual_seed(0)
    model = onebit.models.create(zoo_name, **kwargs)
    calibrate_batchnorm(model, torch.from_numpy(images))
    path = os.path.join(tmp, f"{name}.onebit")
    onebit.export(model, torch.from_numpy(images[:1]), path, model_name=zoo_name)
    x1 = images[:1]
    engines = {p: load(path, num_threads=1, float_precision=p) for p in PRECISIONS}
    with pinned(1):
        calls = {p: (lambda e=e: e.run(x1)) for p, e in engines.items()}
        t = interleaved_median_ms(calls, runs, clock=time.thread_time)
        # per-step wall time from profiled passes, interleaved too
        steps: dict[str, list[np.ndarray]] = {p: [] for p in PRECISIONS}
        for _ in range(runs):
            for p, e in engines.items():
                e.layer_times.clear()
                e.run(x1, profile=True)
                steps[p].append(np.array([e.layer_times[i] for i in range(len(e.layer_times))]))
    nodes = engines["fp32"].meta["nodes"]
    row: dict = {"model": name, "load_avg": os.getloadavg()[0]}
    for p in PRECISIONS:
        best = np.min(np.stack(steps[p]), axis=0) * 1e3
        row[f"{p}_ms"] = t[p]
        for kind in ("stem", "1x1 conv", "dense"):
            idx = [i for i, n in enumerate(nodes) if float_layer_kind(n) == kind]
            row[f"{p}_{kind}_ms"] = float(best[idx].sum()) if idx else None
            row[f"{kind}_count"] = len(idx)
        row[f"{p}_profiled_ms"] = float(best.sum())
    with torch.inference_mode():
        ref = model(torch.from_numpy(images)).numpy().argmax(1)
    for p in PRECISIONS:
        e = load(path, num_threads=2, float_precision=p)
        y = np.concatenate([e.run(images[i : i + 8]) for i in range(0, len(images), 8)])
        row[f"{p}_top1_agree"] = float(np.mean(y.argmax(1) == ref))
    row["images"] = len(images)
    return row


def agreement_on_checkpoint(checkpoint: str, tmp: str) -> dict:
    """Share of the checkpoint's test images whose engine top-1 (each precision) equals PyTorch fp32's."""
    from onebit.export.verify import test_split_of
    from onebit.training.checkpoint import load_model

    model, meta = load_model(checkpoint)
    model.eval()
    x, labels, _ = test_split_of(meta, data_dir())
    path = os.path.join(tmp, "checkpoint.onebit")
    onebit.export(model, x[:1], path)
    with torch.inference_mode():
        ref = torch.cat([model(b) for b in x.split(500)]).argmax(1).numpy()
    y = labels.numpy()
    row = {
        "checkpoint": checkpoint,
        "model": meta.get("model_name"),
        "model_kwargs": meta.get("model_kwargs"),
        "images": len(y),
        "torch_acc": float(np.mean(ref == y)),
    }
    e32 = load(path, num_threads=2)
    row["float_layers"] = sorted({n["op"] for n in e32.meta["nodes"] if float_layer_kind(n)})
    for p in PRECISIONS:
        e = load(path, num_threads=2, float_precision=p)
        pred = np.concatenate([e.run(b.numpy()).argmax(1) for b in x.split(500)])
        row[f"{p}_agree"] = float(np.mean(pred == ref))
        row[f"{p}_acc"] = float(np.mean(pred == y))
    return row


def precision_main(args: argparse.Namespace) -> None:
    """The --precision tables: fp32 vs bf16 vs int8 float layers (latency, float layers, agreement)."""
    models = args.models if args.models != DEFAULT_MODELS else PRECISION_MODELS
    cpu, flags = lscpu()
    print(f"Machine: {cpu}, {os.cpu_count()} CPUs; flags: {' '.join(sorted(flags))}")
    kern = onebit.runtime.kernels.kernel_info()
    print(
        f"engine path {kern['isa']}, kernels {kern['sgemm']}, {kern['bf16gemm']}, {kern['i8gemm']}; "
        "batch 1, one thread pinned; "
        f"medians of {args.runs} interleaved rounds; load average {os.getloadavg()[0]:.2f} at start",
        flush=True,
    )
    rows, ck_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        images = real_images(224, args.images)
        for name in models:
            rows.append(bench_precision(name, images, args.runs, tmp))
            print(json.dumps(rows[-1]), flush=True)
        for ck in args.checkpoints or []:
            ck_rows.append(agreement_on_checkpoint(ck, tmp))
            print(json.dumps(ck_rows[-1]), flush=True)
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")
    print("per call: CPU time of the thread, median; per layer: profiled wall time, minimum")
    print(
        "\n| model (224x224, 1 thread) | CPU ms fp32 / bf16 / int8 | speed-up bf16, int8 | "
        "stem conv ms | 1x1 float convs ms | dense ms | top-1 = PyTorch fp32 (fp32, bf16, int8) |"
    )
    print("|---|---:|---:|---:|---:|---:|---|")

    def three(r: dict, kind: str) -> str:
        if r["fp32_" + kind + "_ms"] is None:
            return "-"
        n = r[kind + "_count"]
        cell = " / ".join(f"{r[p + '_' + kind + '_ms']:.2f}" for p in PRECISIONS)
        return cell + (f" ({n})" if n > 1 else "")

    for r in rows:
        ms = " / ".join(f"{r[p + '_ms']:.2f}" for p in PRECISIONS)
        speed = ", ".join(f"{r['fp32_ms'] / r[p + '_ms']:.2f}x" for p in PRECISIONS[1:])
        agree = ", ".join(f"{100 * r[p + '_top1_agree']:.1f}%" for p in PRECISIONS)
        print(
            f"| {r['model']} | {ms} | {speed} | {three(r, 'stem')} | {three(r, '1x1 conv')} | "
            f"{three(r, 'dense')} | {agree} of {r['images']} |"
        )
    if ck_rows:
        print(
            "\n| trained model | test images | PyTorch fp32 top-1 | "
            + " | ".join(f"engine {p}: same top-1, acc" for p in PRECISIONS)
            + " |"
        )
        print("|---|---:|---:|" + "---|" * len(PRECISIONS))
        for r in ck_rows:
            cells = " | ".join(
                f"{100 * r[p + '_agree']:.2f}%, {100 * r[p + '_acc']:.2f}%" for p in PRECISIONS
            )
            print(
                f"| {r['model']} {r['model_kwargs']} ({r['checkpoint']}) | {r['images']} | "
                f"{100 * r['torch_acc']:.2f}% | {cells} |"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "checkpoints": ck_rows}, f, indent=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=DEFAULT_MODELS)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--images", type=int, default=None, help="limit the real images used")
    ap.add_argument("--json", default=None)
    ap.add_argument("--precision", action="store_true", help="fp32 vs bf16 float layers (see above)")
    ap.add_argument("--checkpoints", nargs="*", default=None, help="with --precision: trained checkpoints")
    args = ap.parse_args()
    if args.precision:
        precision_main(args)
        return
    images = {}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            size = SPECS.get(name, (name, {}, 224))[2]
            if size not in images:
                images[size] = real_images(size, args.images)
            rows.append(bench_model(name, images[size], args.runs, tmp))
            print(json.dumps(rows[-1]), flush=True)
        # memory of `onebit run`
        extra = {}
        if "binary_resnet_e18" in args.models:
            path = os.path.join(tmp, "binary_resnet_e18.onebit")
            img = sorted(glob.glob(os.path.join(data_dir(), "imagenet-sample", "*", "*.JPEG")))[0]
            rss, base = peak_rss_of_run(path, img)
            largest_act = 1 * 64 * 112 * 112 * 4
            extra = {
                "rss_bytes": rss,
                "baseline_bytes": base,
                "file_bytes": os.path.getsize(path),
                "largest_activation": largest_act,
            }
        # file size of binary_alexnet against its fp32 state_dict
        torch.manual_seed(0)
        alex = onebit.models.create("binary_alexnet").eval()
        alex_path = os.path.join(tmp, "alex.onebit")
        alex_bytes = onebit.export(alex, torch.randn(1, 3, 224, 224), alex_path)
        alex_fp32 = fp32_state_bytes(alex)

    cpu, flags = lscpu()
    print(
        f"\nMachine: {cpu}, {os.cpu_count()} CPUs; flags: {' '.join(sorted(flags))}\n"
        f"torch {torch.__version__}; engine path {onebit.runtime.kernels.active_isa()}; batch 1, 224x224 "
        f"(binarynet_cifar 32x32), medians of {args.runs} interleaved rounds\n"
    )
    print(
        "| model | threads (1: CPU ms of the thread, 2: wall ms) | onebit ms | float twin, PyTorch fp32 ms | "
        "onebit vs float twin | binary model in PyTorch (fake-quant) ms |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        for nt in (1, 2):
            o, tw, fq = r[f"onebit_ms_{nt}t"], r[f"twin_ms_{nt}t"], r[f"torch_ms_{nt}t"]
            print(f"| {r['model']} | {nt} | {o:.2f} | {tw:.2f} | {tw / o:.1f}x | {fq:.2f} |")
    print(
        "\n| model | .onebit size | summary's packed size | fp32 state_dict | "
        "top-1 identical | images with a flipped bit | torch fp64 vs fp32: top-1 identical, flipped |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        over = 100 * (r["file_bytes"] / r["predicted_bytes"] - 1)
        print(
            f"| {r['model']} | "
            f"{r['file_bytes'] / 2**20:.2f} MiB | {r['predicted_bytes'] / 2**20:.2f} MiB ({over:+.1f}%) | "
            f"{r['fp32_bytes'] / 2**20:.1f} MiB | {100 * r['top1_agree']:.1f}% of {r['images']} | "
            f"{100 * r['flip_affected']:.1f}% | "
            f"{100 * r['fp64_top1_agree']:.1f}%, {100 * r['fp64_flip_affected']:.1f}% |"
        )
    print(
        f"\nbinary_alexnet: .onebit {alex_bytes / 2**20:.2f} MiB vs fp32 state_dict "
        f"{alex_fp32 / 2**20:.1f} MiB: {alex_fp32 / alex_bytes:.1f}x smaller"
    )
    if extra:
        bound = 4 * extra["file_bytes"] + extra["largest_activation"]
        used = extra["rss_bytes"] - extra["baseline_bytes"]
        print(
            f"peak RSS of `onebit run` on binary_resnet_e18: {extra['rss_bytes'] / 2**20:.1f} MiB, of which "
            f"{used / 2**20:.1f} MiB above the interpreter with numpy, Pillow and rich imported "
            f"({extra['baseline_bytes'] / 2**20:.1f} MiB); bound 4 x file + largest activation = "
            f"{bound / 2**20:.1f} MiB"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "alexnet": [alex_bytes, alex_fp32], "rss": extra}, f, indent=1)


if __name__ == "__main__":
    main()
