"""The engine's float ops (issue 16's, pooling and the per-channel ops) against PyTorch, one thread, per op.

    .venv/bin/python benchmarks/float_ops.py [--runs 50] [--isa avx2]

Each op is exported from its torch module on a (1, 64, 56, 56) input. An op's time is
the difference between a chain of 11 copies of it and a chain of 1, over 10 (so the
engine's NCHW <-> NHWC copies of the model's input and output, and PyTorch's call
overhead, cancel out), for the engine and for PyTorch fp32 alike, timed interleaved in
CPU time of the calling thread (which other jobs on a shared machine do not inflate),
one thread each. Upsampling cannot be chained (each doubles the size): its row is one
whole call (28 x 28 -> 56 x 56), copies included. Prints the median ms and the load.
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time

import numpy as np
import torch
from torch import nn

import onebit
from onebit.export.verify import interleaved_median_ms
from onebit.runtime import kernels, load


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW tensor, as conv nets write it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def cases() -> dict[str, tuple[nn.Module, tuple[int, ...], bool]]:
    """Name -> (module, input shape, chainable)."""
    full, half = (1, 64, 56, 56), (1, 64, 28, 28)
    return {
        "gelu": (nn.GELU(), full, True),
        "gelu_tanh": (nn.GELU(approximate="tanh"), full, True),
        "silu": (nn.SiLU(), full, True),
        "hardswish": (nn.Hardswish(), full, True),
        "hardsigmoid": (nn.Hardsigmoid(), full, True),
        "sigmoid": (nn.Sigmoid(), full, True),
        "tanh": (nn.Tanh(), full, True),
        "layer_norm (channels)": (ChannelLayerNorm(64), full, True),
        "group_norm (8 groups)": (nn.GroupNorm(8, 64), full, True),
        "upsample nearest x2 (call)": (nn.Upsample(scale_factor=2), half, False),
        "upsample bilinear x2 (call)": (nn.Upsample(scale_factor=2, mode="bilinear"), half, False),
        "prelu (per channel)": (nn.PReLU(64), full, True),
        "batchnorm + relu (affine, relu)": (nn.Sequential(nn.BatchNorm2d(64), nn.ReLU()), full, True),
        "maxpool 3x3 /1": (nn.MaxPool2d(3, 1, 1), full, True),
        "avgpool 3x3 /1": (nn.AvgPool2d(3, 1, 1), full, True),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--isa", default=None, help="force an instruction set (default: the best)")
    args = ap.parse_args()
    if args.isa:
        kernels.set_isa(args.isa)
    torch.set_num_threads(1)
    print(f"isa {kernels.active_isa()}, load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"{'op':28s} {'engine ms':>10s} {'torch ms':>9s}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (module, shape, chain) in cases().items():
            x = torch.randn(*shape)
            xn = x.numpy()
            fns = {}
            for k in (1, 11) if chain else (1,):
                model = nn.Sequential(*[copy.deepcopy(module) for _ in range(k)]).eval()
                path = os.path.join(tmp, f"m{k}.onebit")
                onebit.export(model, x, path)
                engine = load(path, num_threads=1)
                with torch.inference_mode():
                    want = model(x).numpy()
                np.testing.assert_allclose(engine.run(xn), want, rtol=1e-4, atol=1e-5)
                fns[f"engine{k}"] = lambda e=engine, a=xn: e.run(a)
                fns[f"torch{k}"] = lambda m=model, a=x: m(a)
            with torch.inference_mode():
                t = interleaved_median_ms(fns, args.runs, clock=time.thread_time)
            if chain:
                eng, tor = (t["engine11"] - t["engine1"]) / 10, (t["torch11"] - t["torch1"]) / 10
            else:
                eng, tor = t["engine1"], t["torch1"]
            print(f"{name:28s} {eng:10.3f} {tor:9.3f}")


if __name__ == "__main__":
    main()
