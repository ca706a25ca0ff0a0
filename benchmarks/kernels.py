"""Benchmark onebit's binary kernels against PyTorch fp32 on this machine.

Run:  .venv/bin/python benchmarks/kernels.py [--quick] [--no-threads] [--isa NAME]

Prints the machine's measured peak (register-resident XNOR+popcount binary
MACs/s and fp32 FMAs/s per core), then a one-thread table (shape, onebit ms
with float output and with packed-bit output, torch fp32 ms, speed-up, share
of the binary peak) and a two-thread table (scaling over one thread). Times
are medians over repeated runs, through the public Python API; binary convs
are timed from packed input to output (float NHWC, or packed bits).
"""

from __future__ import annotations

import argparse
import os
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


def median_ms(fn, min_time: float, reps: int = 7) -> tuple[float, float]:
    """(wall ms, CPU ms of the calling thread): medians over `reps` timed batches.

    The CPU time excludes time the thread spent descheduled, so on a shared,
    busy machine it is the robust measure for one-thread runs (the work runs
    in the calling thread then); with more threads only wall time is meaningful.
    """
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
    wall, cpu = [], []
    for _ in range(reps):
        t, c = time.perf_counter(), time.thread_time()
        for _ in range(n):
            fn()
        cpu.append((time.thread_time() - c) / n)
        wall.append((time.perf_counter() - t) / n)
    return statistics.median(wall) * 1e3, statistics.median(cpu) * 1e3


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _cases(rng: np.random.Generator):
    """(name, binary MACs, onebit float fn(th), onebit bits fn(th), torch fn)."""
    sgn = lambda shape: np.where(rng.standard_normal(shape) < 0, -1, 1).astype(np.float32)  # noqa: E731
    for k in (3, 1):
        for hw, c in CONV_SHAPES:
            x, w = sgn((1, hw, hw, c)), sgn((c, k, k, c))
            xp, pw, pad = K.pack_bits(x), K.pack_weights(w), k // 2
            yf = np.empty((1, hw, hw, c), np.float32)
            yb = np.empty((1, hw, hw, (c + 63) // 64), np.uint64)
            thr = np.zeros(c, np.int32)
            xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
            wt = torch.from_numpy(w).permute(0, 3, 1, 2).contiguous()

            def f_float(th, xp=xp, pw=pw, c=c, pad=pad, yf=yf):
                return K.bconv2d(xp, pw, in_channels=c, padding=pad, out=yf, num_threads=th)

            def f_bits(th, xp=xp, pw=pw, c=c, pad=pad, yb=yb, thr=thr):
                return K.bconv2d(xp, pw, in_channels=c, padding=pad, threshold=thr, out=yb,
                                 num_threads=th)

            def f_torch(xt=xt, wt=wt, pad=pad):
                return F.conv2d(xt, wt, padding=pad)

            yield f"conv {k}x{k} {hw}x{hw} {c}->{c}", hw * hw * c * c * k * k, f_float, f_bits, f_torch
    for m, n, kk in GEMM_SHAPES:
        a, w = sgn((m, kk)), sgn((n, kk))
        ap_, pw = K.pack_bits(a), K.pack_weights(w)
        yf = np.empty((m, n), np.float32)
        yb = np.empty((m, (n + 63) // 64), np.uint64)
        thr = np.zeros(n, np.int32)
        at, wt = torch.from_numpy(a), torch.from_numpy(w).t().contiguous()

        def g_float(th, ap_=ap_, pw=pw, kk=kk, yf=yf):
            return K.bgemm(ap_, pw, kk, out=yf, num_threads=th)

        def g_bits(th, ap_=ap_, pw=pw, kk=kk, yb=yb, thr=thr):
            return K.bgemm(ap_, pw, kk, threshold=thr, out=yb, num_threads=th)

        def g_torch(at=at, wt=wt):
            return at @ wt

        yield f"bgemm {m}x{n}x{kk} (MxNxK)", m * n * kk, g_float, g_bits, g_torch


def _float_ops(rng: np.random.Generator, min_time: float) -> None:
    """The float ops and packing around binary layers, one thread, vs torch."""
    print()
    print("Float ops and packing around the binary layers, one thread (CPU-time medians):")
    cols = ["op", "onebit ms", "torch ms", "torch/onebit"]
    widths = [44, 10, 10, 12]
    print("| " + " | ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    torch.set_num_threads(1)
    x = rng.standard_normal((1, 224, 224, 3)).astype(np.float32)
    w = rng.standard_normal((64, 7, 7, 3)).astype(np.float32)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    wt = torch.from_numpy(w).permute(0, 3, 1, 2).contiguous()
    d = rng.standard_normal((1, 512)).astype(np.float32)
    dw = rng.standard_normal((1000, 512)).astype(np.float32)
    a56 = rng.standard_normal((1, 56, 56, 64)).astype(np.float32)
    thr = rng.standard_normal(64).astype(np.float32)
    p56 = K.pack_bits(a56)
    a56t = torch.from_numpy(a56).permute(0, 3, 1, 2).contiguous()
    dwk = rng.standard_normal((64, 3, 3, 1)).astype(np.float32)
    a56cl = a56t.contiguous(memory_format=torch.channels_last)  # torch's fastest layout for it here
    dwkt = torch.from_numpy(dwk).permute(0, 3, 1, 2).contiguous()
    rows = [
        ("conv2d_f32 224x224 3->64 7x7 s2 (first layer)",
         lambda: K.conv2d_f32(x, w, stride=2, padding=3, num_threads=1),
         lambda: torch.nn.functional.conv2d(xt, wt, stride=2, padding=3)),
        ("dense_f32 512->1000, batch 1",
         lambda: K.dense_f32(d, dw, num_threads=1),
         lambda: torch.from_numpy(d) @ torch.from_numpy(dw).t()),
        ("sign_threshold_pack 56x56x64 (float -> bits)",
         lambda: K.sign_threshold_pack(a56, thr, num_threads=1),
         lambda: torch.sign(a56t - torch.from_numpy(thr)[:, None, None])),
        ("depthwise conv 3x3 s2 56x56x64 (BlurPool)",
         lambda: K.conv2d_f32(a56, dwk, stride=2, padding=1, groups=64, num_threads=1),
         lambda: torch.nn.functional.conv2d(a56cl, dwkt, stride=2, padding=1, groups=64)),
        ("maxpool 3x3 s2 56x56x64 (packed / torch float)",
         lambda: K.maxpool_packed(p56, 64, 3, 2, 1, num_threads=1),
         lambda: torch.nn.functional.max_pool2d(a56t, 3, 2, 1)),
    ]
    for name, f_ob, f_t in rows:
        _, c_ob = median_ms(f_ob, min_time)
        with torch.inference_mode():
            _, c_t = median_ms(f_t, min_time)
        row = [name, f"{c_ob:.4f}", f"{c_t:.4f}", f"{c_t / c_ob:.1f}x"]
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |",
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="shorter timing runs")
    ap.add_argument("--no-threads", action="store_true", help="skip the two-thread table")
    ap.add_argument("--isa", default=None, help="force an instruction set")
    args = ap.parse_args()
    if args.isa:
        K.set_isa(args.isa)
    min_time = 0.15 if args.quick else 0.5
    rng = np.random.default_rng(0)
    peak_b = _C.peak_binary_macs(0.3)
    peak_f = _C.peak_fp32_fmas(0.3)
    print(f"CPU: {cpu_name()} ({_C.cpu_features()}), {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"kernels: {K.kernel_info()}; torch {torch.__version__}")
    isa = K.kernel_info()["isa"]
    print(f"peak per core ({isa} loops): {peak_b / 1e9:.0f} G binary MACs/s, "
          f"{peak_f / 1e9:.1f} G fp32 FMAs/s (ratio {peak_b / max(peak_f, 1):.1f}x)")
    vnni = _C.peak_int8_macs_vnni(0.3)
    if vnni:  # the ceiling of the int8 float layers (load option float_precision="int8")
        print(f"  AVX512-VNNI (vpdpbusd, 12 chains): {vnni / 1e9:.0f} G int8 MACs/s "
              f"({vnni / max(peak_f, 1):.1f}x fp32)")
    amx = _C.peak_int8_macs_amx(0.3)
    if amx:  # what a binary layer expanded to bytes could reach (docs/performance.md, "AMX")
        print(f"  AMX-INT8 (tdpbusd, tiles resident): {amx / 1e9:.0f} G int8 MACs/s "
              f"({amx / max(peak_b, 1):.2f}x the binary peak, {amx / max(peak_f, 1):.1f}x fp32)")
    if isa == "avx2":
        m16, m8 = _C.peak_int_macs_avx2(0.3)
        print(f"  int8 layers without VNNI could use: int16 vpmaddwd {m16 / 1e9:.1f} G MACs/s (exact, "
              f"{m16 / max(peak_f, 1):.2f}x fp32), u8 x s8 vpmaddubsw {m8 / 1e9:.1f} G MACs/s "
              f"({m8 / max(peak_f, 1):.2f}x fp32, saturating int16 pair sums)")
    print()
    print("One thread (torch.set_num_threads(1)); CPU-time medians (wall medians after /):")
    cols = ["op", "onebit ms float out", "onebit ms bits out", "torch fp32 ms", "speed-up",
            "% binary peak"]
    widths = [30, 21, 21, 17, 8, 13]
    print("| " + " | ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    torch.set_num_threads(1)
    cases = list(_cases(rng))
    one = {}
    for name, macs, f_float, f_bits, f_torch in cases:
        wf, cf = median_ms(lambda f=f_float: f(1), min_time)
        wb, cb = median_ms(lambda f=f_bits: f(1), min_time)
        with torch.inference_mode():
            wt, ct = median_ms(f_torch, min_time)
        best = min(cf, cb)
        one[name] = (wf, wb)
        share = macs / (best * 1e-3) / peak_b * 100 if peak_b else 0.0
        row = [name, f"{cf:.4f} / {wf:.4f}", f"{cb:.4f} / {wb:.4f}", f"{ct:.3f} / {wt:.3f}",
               f"{ct / best:.1f}x", f"{share:.0f}%"]
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |", flush=True)
    _float_ops(rng, min_time)
    if args.no_threads:
        return
    print()
    print("Two threads (torch.set_num_threads(2)); wall medians, one-thread wall re-measured "
          "alongside:")
    cols = ["op", "onebit 1T ms", "onebit 2T ms", "2T/1T speed", "torch 2T ms", "speed-up"]
    widths = [30, 12, 12, 11, 11, 8]
    print("| " + " | ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    torch.set_num_threads(2)
    for name, _macs, _f_float, f_bits, f_torch in cases:
        w1, _ = median_ms(lambda f=f_bits: f(1), min_time)
        w2, _ = median_ms(lambda f=f_bits: f(2), min_time)
        with torch.inference_mode():
            wt, _ = median_ms(f_torch, min_time)
        row = [name, f"{w1:.4f}", f"{w2:.4f}", f"{w1 / w2:.2f}x", f"{wt:.3f}", f"{wt / w2:.1f}x"]
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |", flush=True)


if __name__ == "__main__":
    main()
