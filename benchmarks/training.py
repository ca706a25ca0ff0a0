"""Training throughput of binary networks vs their float twins, side by side in one run.

    python benchmarks/training.py                       # all networks, all variants
    python benchmarks/training.py --nets cifar --variants eager,channels_last --steps 30
    python benchmarks/training.py --threads 1 --json out.json

Networks (the larq reference points, see docs/training.md):
  * ``cifar``: BinaryNet's CIFAR-10 ConvNet at width 0.25 (652k parameters), batch 128
  * ``mlp``:   BinaryNet's MNIST MLP 784-1024-1024-1024-10, batch 100
  * ``cifar_w05``: the same ConvNet at width 0.5 (the 60-minute recipe's), batch 128

A step is a full training step on a batch already in memory: forward,
cross-entropy, backward, Adam step, weight clipping. Variants: ``eager``
(fp32, NCHW), ``channels_last``, ``bf16`` (CPU autocast), ``compile``
(torch.compile), ``fast_ste`` (the trainer's default ``train.fast_ste``:
bit-identical SteSign with cheaper kernels, see onebit.training.fast);
variants combine with ``+``. Each variant runs the binary net and its float twin
(``binary=False``) interleaved, so both see the same machine load; the
ratio column is binary step time / float step time. ``--with-data`` adds the
in-memory loader (CIFAR: pad-4 random crop + flip on uint8 tensors).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from contextlib import nullcontext

import torch
import torch.nn.functional as F

NETS = {
    "cifar": (
        "binarynet_cifar",
        {"width": 0.25},
        (3, 32, 32),
        128,
        "larq 870 img/s (1.12x float); eager PyTorch 605 (1.19x)",
    ),
    "cifar_w05": (
        "binarynet_cifar",
        {"width": 0.5},
        (3, 32, 32),
        128,
        "no larq reference (the 60-minute CPU recipe's network)",
    ),
    "mlp": (
        "binarynet_mlp",
        {"hidden": 1024, "num_hidden": 3},
        (1, 28, 28),
        100,
        "larq 4,000 img/s; eager PyTorch 2,980 (1.63x)",
    ),
}
VARIANTS = ("eager", "fast_ste", "channels_last", "fast_ste+channels_last", "bf16", "compile")
_PARTS = {"eager", "fast_ste", "channels_last", "bf16", "compile"}


def _parts(variant: str) -> set[str]:
    """The parts of a ``+``-joined variant name; an unknown part stops the benchmark."""
    parts = set(variant.split("+"))
    if unknown := sorted(parts - _PARTS):
        raise SystemExit(f"unknown variant part(s) {unknown} in {variant!r}; parts: {sorted(_PARTS)}")
    return parts


def _is_conv(net: str) -> bool:
    """Image-shaped conv nets (the CIFAR ones): channels_last and crop+flip apply to them."""
    return NETS[net][2][0] == 3


def _build(net: str, binary: bool, parts: set[str]):
    from onebit import models
    from onebit.optim import constrain, param_groups

    name, kw, shape, bs, _ = NETS[net]
    model = models.create(name, num_classes=10, binary=binary, **kw)
    if "fast_ste" in parts:
        from onebit.training.fast import patch_ste

        patch_ste(model)
    if "channels_last" in parts and _is_conv(net):
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(param_groups(model, lr=1e-3), lr=1e-3)
    constrain(opt, model)
    step_model = torch.compile(model) if "compile" in parts else model
    return model, step_model, opt


def _batch(net: str, with_data: bool, gen: torch.Generator):
    _, _, shape, bs, _ = NETS[net]
    if not with_data:
        return torch.randn((bs, *shape), generator=gen), torch.randint(0, 10, (bs,), generator=gen)
    from onebit.data.transforms import Normalize, random_crop_flip

    x = torch.randint(0, 256, (bs, *shape), dtype=torch.uint8, generator=gen)
    if _is_conv(net):
        x = random_crop_flip(x, 4, True, gen)
    return Normalize("standard", "cifar10" if _is_conv(net) else "mnist", shape[0])(x), torch.randint(
        0, 10, (bs,), generator=gen
    )


def bench(net: str, variant: str, steps: int, warmup: int, with_data: bool, reps: int) -> dict:
    """Interleave binary and float steps; median step time of each over ``reps`` blocks of ``steps``."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    parts = _parts(variant)
    built = {b: _build(net, b, parts) for b in (True, False)}
    cl = "channels_last" in parts and _is_conv(net)
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if "bf16" in parts else nullcontext
    times: dict[bool, list[float]] = {True: [], False: []}

    def run(binary: bool, n: int) -> float:
        _, m, opt = built[binary]
        t = time.perf_counter()
        for _ in range(n):
            x, y = _batch(net, with_data, gen)
            if cl:
                x = x.contiguous(memory_format=torch.channels_last)
            with ctx():
                loss = F.cross_entropy(m(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return (time.perf_counter() - t) / n

    for b in (True, False):
        run(b, warmup)
    for _ in range(reps):
        for b in (True, False):
            times[b].append(run(b, steps))
    bs = NETS[net][3]
    tb, tf = statistics.median(times[True]), statistics.median(times[False])
    return {
        "net": net,
        "variant": variant,
        "batch": bs,
        "binary_ms": 1e3 * tb,
        "float_ms": 1e3 * tf,
        "binary_img_s": bs / tb,
        "float_img_s": bs / tf,
        "ratio": tb / tf,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nets", default="cifar,mlp")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--steps", type=int, default=20, help="steps per timed block")
    p.add_argument("--reps", type=int, default=3, help="timed blocks per network (median reported)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument(
        "--with-data", action="store_true", help="include in-memory batch augmentation in the step"
    )
    p.add_argument("--json", help="also write the results here")
    a = p.parse_args(argv)
    for v in a.variants.split(","):
        _parts(v)
    for net in a.nets.split(","):
        if net not in NETS:
            raise SystemExit(f"unknown net {net!r}; nets: {', '.join(NETS)}")
    if a.threads:
        torch.set_num_threads(a.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{'with' if a.with_data else 'without'} data pipeline",
        flush=True,
    )
    rows = []
    hdr = (
        f"{'net':9} {'variant':30} {'binary ms':>10} {'float ms':>9} "
        f"{'binary img/s':>13} {'float img/s':>12} {'ratio':>6}"
    )
    print(hdr)
    for net in a.nets.split(","):
        for v in a.variants.split(","):
            try:
                r = bench(net, v, a.steps, a.warmup, a.with_data, a.reps)
            except Exception as e:  # e.g. torch.compile without a C compiler
                print(f"{net:9} {v:30} failed: {type(e).__name__}: {str(e).splitlines()[0][:80]}", flush=True)
                continue
            rows.append(r)
            print(
                f"{net:9} {v:30} {r['binary_ms']:10.1f} {r['float_ms']:9.1f} {r['binary_img_s']:13.0f} "
                f"{r['float_img_s']:12.0f} {r['ratio']:6.2f}",
                flush=True,
            )
    for net in a.nets.split(","):
        print(f"reference ({net}): {NETS[net][4]}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"threads": torch.get_num_threads(), "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
