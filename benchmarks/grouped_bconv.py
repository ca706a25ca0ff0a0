"""Depthwise and grouped binary convolutions against a dense 3x3 bconv of the same width.

    python benchmarks/grouped_bconv.py                       # C in 64 128 256 512 at 32x32, 16x16, 8x8
    python benchmarks/grouped_bconv.py --threads 2 --runs 300

Each layer is a one-conv model (sign -> bconv2d -> unpack) written with
``onebit.runtime.format``; the time is the engine's own profile of the bconv2d
step (``Model.run(profile=True)``), median over runs, batch 1. Printed per layer:
microseconds per call, nanoseconds per output value (one output = one channel of
one pixel) and the ratio to the dense conv, for binary output (fused
thresholds, what a depthwise -> BN -> sign chain exports to) and float output.
The kernel the active instruction set chose is printed with ``uptime``: numbers
from a busy machine are not measurements.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np

from onebit.runtime import kernels, load
from onebit.runtime.format import write_model_file


def conv_model(path: str, c: int, hw: int, groups: int, output: str, k: int = 3) -> None:
    """Write sign -> bconv2d (c -> c channels, k x k, pad 1) -> [unpack] as a .onebit file."""
    rng = np.random.default_rng(0)
    w = np.where(rng.standard_normal((c, k, k, c // groups)) < 0, -1.0, 1.0).astype(np.float32)
    tensors = {"t": np.zeros(c, np.float32), "w": kernels.pack_bits(w)}
    params = {"weight": "w"}
    if output == "binary":
        tensors.update(thr=rng.integers(-3, 3, c).astype(np.int32), dir=np.ones(c, np.int32))
        params.update(threshold="thr", direction="dir")
    else:
        tensors.update(m=np.ones(c, np.float32), b=np.zeros(c, np.float32))
        params.update(multiplier="m", bias="b")
    p = k // 2
    attrs = {"kernel": [k, k], "stride": [1, 1], "padding": [p] * 4, "dilation": [1, 1], "groups": groups,
             "in_channels": c, "pad_value": 1.0, "output": output}
    nodes = [
        {"op": "sign", "inputs": ["input"], "outputs": ["b"], "attrs": {}, "params": {"threshold": "t"}},
        {"op": "bconv2d", "inputs": ["b"], "outputs": ["y"], "attrs": attrs, "params": params},
    ]
    out = "y"
    if output == "binary":
        nodes.append({"op": "unpack", "inputs": ["y"], "outputs": ["u"], "attrs": {}, "params": {}})
        out = "u"
    meta = {
        "inputs": [{"name": "input", "shape": [1, c, hw, hw], "dtype": "float32"}],
        "outputs": [{"name": out, "shape": [1, c, hw, hw], "dtype": "float32"}],
        "nodes": nodes,
        "encodings": {"w": {"encoding": "packed_sign", "channels": c // groups}},
    }
    write_model_file(path, meta, tensors)


def conv_seconds(path: str, runs: int, threads: int) -> float:
    """Median seconds of the bconv2d step over ``runs`` profiled calls (after a warm-up)."""
    m = load(path, num_threads=threads)
    x = np.random.default_rng(1).standard_normal((1, *m.input_shape[1:])).astype(np.float32)
    step = next(i for i, s in enumerate(m.describe()) if s["op"] == "bconv2d")
    for _ in range(5):
        m.run(x)
    times = []
    for _ in range(runs):
        m.layer_times.clear()
        m.run(x, profile=True)
        times.append(m.layer_times[step])
    return float(np.median(times))


def main() -> None:
    """Print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--channels", type=int, nargs="+", default=[64, 128, 256, 512])
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 16, 8])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    print(f"uptime: {os.popen('uptime').read().strip()}")
    print(f"kernels: {kernels.kernel_info()}, threads {args.threads}, batch 1, 3x3, pad 1")
    print(f"{'layer':<28}{'output':<8}{'us/call':>10}{'ns/output':>11}{'vs dense':>10}")
    with tempfile.TemporaryDirectory() as d:
        for hw in args.sizes:
            for c in args.channels:
                outputs = c * hw * hw
                for output in ("binary", "float"):
                    res = {}
                    for name, groups in (("dense", 1), ("depthwise", c), ("groups c/8", c // 8)):
                        path = os.path.join(d, f"g{groups}.onebit")
                        conv_model(path, c, hw, groups, output)
                        res[name] = conv_seconds(path, args.runs, args.threads)
                    for name, s in res.items():
                        label = f"{name} C={c} {hw}x{hw}"
                        ratio = s / res["dense"]
                        ns = s * 1e9 / outputs
                        print(f"{label:<28}{output:<8}{s * 1e6:>10.1f}{ns:>11.2f}{ratio:>10.3f}")
    print(f"uptime: {os.popen('uptime').read().strip()}")


if __name__ == "__main__":
    main()
