"""Benchmark onebit's binary kernels against PyTorch fp32 on this machine.

Run:  .venv/bin/python benchmarks/kernels.py [--quick] [--threads 1 2]

Prints the machine's measured peak (register-resident XNOR+popcount binary
MACs/s and fp32 FMAs/s per core), then one table: shape, onebit ms (float
output and packed-bit output), torch fp32 ms, speed-up, and onebit's share of
the binary peak (per thread x threads). Times are medians over repeated runs;
binary convs are timed from packed input to output.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import time

import numpy as np
import torch
import torch.nn.functional as F

from onebit import _C
from onebit.runtime import kernels as K

CONV_SHAPES = [(56, 64), (28, 128), (14, 256), (7, 512)]
GEMM_SHAPES = [(64, 4096, 4096), (128, 2048, 2048)]


def median_ms(fn, min_time: float, reps: int = 7) -> float:
    fn()
    n = 1
    while True:  # calibrate a batch that lasts ~min_time / reps
        t = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t
        if dt > min_time / reps or n > 1 << 14:
            break
        n *= 2
    samples = []
    for _ in range(reps):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - t) / n)
    return statistics.median(samples) * 1e3


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--quick", action="store_true", help="shorter timing runs")
    ap.add_argument("--isa", default=None, help="force an instruction set")
    args = ap.parse_args()
    if args.isa:
        K.set_isa(args.isa)
    min_time = 0.15 if args.quick else 0.6
    rng = np.random.default_rng(0)
    peak_b = _C.peak_binary_macs(0.3)
    peak_f = _C.peak_fp32_fmas(0.3)
    print(f"CPU: {cpu_name()}  ({_C.cpu_features()})")
    print(f"kernels: {K.kernel_info()}  torch {torch.__version__}")
    print(f"peak per core: {peak_b / 1e9:.0f} G binary MACs/s, {peak_f / 1e9:.1f} G fp32 FMAs/s "
          f"(ratio {peak_b / max(peak_f, 1):.1f}x)")
    header = (f"| {'op':<28} | thr | {'onebit ms (float)':>17} | {'onebit ms (bits)':>16} | "
              f"{'torch fp32 ms':>13} | {'speed-up':>8} | {'% bin peak':>10} |")
    print()
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for th in args.threads:
        torch.set_num_threads(th)
        for k in (3, 1):
            for hw, c in CONV_SHAPES:
                x = np.where(rng.standard_normal((1, hw, hw, c)) < 0, -1, 1).astype(np.float32)
                w = np.where(rng.standard_normal((c, k, k, c)) < 0, -1, 1).astype(np.float32)
                xp, pw = K.pack_bits(x), K.pack_weights(w)
                pad = k // 2
                yf = np.empty((1, hw, hw, c), np.float32)
                yb = np.empty((1, hw, hw, (c + 63) // 64), np.uint64)
                thr = np.zeros(c, np.int32)
                t_f = median_ms(lambda xp=xp, pw=pw, c=c, pad=pad, yf=yf, th=th: K.bconv2d(
                    xp, pw, in_channels=c, padding=pad, out=yf, num_threads=th), min_time)
                t_b = median_ms(lambda xp=xp, pw=pw, c=c, pad=pad, yb=yb, thr=thr, th=th: K.bconv2d(
                    xp, pw, in_channels=c, padding=pad, threshold=thr, out=yb,
                    num_threads=th), min_time)
                xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
                wt = torch.from_numpy(w).permute(0, 3, 1, 2).contiguous()
                with torch.inference_mode():
                    t_t = median_ms(lambda xt=xt, wt=wt, pad=pad: F.conv2d(xt, wt, padding=pad),
                                    min_time)
                macs = hw * hw * c * c * k * k
                share = macs / (min(t_f, t_b) * 1e-3) / (peak_b * th) * 100 if peak_b else 0
                name = f"conv {k}x{k} {hw}x{hw} {c}->{c}"
                print(f"| {name:<28} | {th:>3} | {t_f:>17.4f} | {t_b:>16.4f} | {t_t:>13.3f} | "
                      f"{t_t / min(t_f, t_b):>7.1f}x | {share:>9.0f}% |", flush=True)
        for m, n, kk in GEMM_SHAPES:
            a = np.where(rng.standard_normal((m, kk)) < 0, -1, 1).astype(np.float32)
            w = np.where(rng.standard_normal((n, kk)) < 0, -1, 1).astype(np.float32)
            ap_, pw = K.pack_bits(a), K.pack_weights(w)
            yf = np.empty((m, n), np.float32)
            yb = np.empty((m, (n + 63) // 64), np.uint64)
            thr = np.zeros(n, np.int32)
            t_f = median_ms(lambda ap_=ap_, pw=pw, kk=kk, yf=yf, th=th: K.bgemm(
                ap_, pw, kk, out=yf, num_threads=th), min_time)
            t_b = median_ms(lambda ap_=ap_, pw=pw, kk=kk, yb=yb, thr=thr, th=th: K.bgemm(
                ap_, pw, kk, threshold=thr, out=yb, num_threads=th), min_time)
            at, wt = torch.from_numpy(a), torch.from_numpy(w).t().contiguous()
            with torch.inference_mode():
                t_t = median_ms(lambda at=at, wt=wt: at @ wt, min_time)
            share = m * n * kk / (min(t_f, t_b) * 1e-3) / (peak_b * th) * 100 if peak_b else 0
            name = f"bgemm {m}x{n}x{kk}"
            print(f"| {name:<28} | {th:>3} | {t_f:>17.4f} | {t_b:>16.4f} | {t_t:>13.3f} | "
                  f"{t_t / min(t_f, t_b):>7.1f}x | {share:>9.0f}% |", flush=True)


if __name__ == "__main__":
    main()
