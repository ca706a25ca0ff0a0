"""`onebit train` and `onebit eval`.

``configure_*`` only declares arguments (``onebit --help`` must stay fast);
torch is imported inside the ``run`` functions.

Overrides: ``--set optim.lr=1e-3 data.batch_size=64`` (several after one
``--set`` or repeated) or dotted flags ``--optim.lr 1e-3`` / ``--optim.lr=1e-3``.
"""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Callable

__all__ = ["add_trust_code_flag", "configure_eval", "configure_train", "split_dotted_flags"]


def split_dotted_flags(extra: list[str]) -> list[str]:
    """Turn ``--section.key value`` / ``--section.key=value`` leftovers into overrides."""
    out: list[str] = []
    i = 0
    while i < len(extra):
        a = extra[i]
        if not a.startswith("--") or "." not in a.split("=", 1)[0]:
            raise ValueError(f"unrecognized argument {a!r} (overrides look like --optim.lr=1e-3)")
        key = a[2:]
        if "=" in key:
            out.append(key)
            i += 1
        elif i + 1 < len(extra) and not (extra[i + 1].startswith("--") and "." in extra[i + 1]):
            out.append(f"{key}={extra[i + 1]}")
            i += 2
        else:
            out.append(f"{key}=true")
            i += 1
    return out


def configure_train(p: argparse.ArgumentParser) -> Callable:
    p.add_argument(
        "--config", "-c", help="recipe file (TOML; YAML with pyyaml), e.g. recipes/binarynet_mnist.toml"
    )
    p.add_argument(
        "--set",
        dest="overrides",
        nargs="+",
        action="extend",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override recipe fields, e.g. --set optim.lr=1e-3 data.batch_size=64; "
        "dotted flags work too: --optim.lr 1e-3",
    )
    p.add_argument("--data-dir", help="data root (default: $ONEBIT_DATA)")
    p.add_argument("--out-dir", help="runs folder (default: runs/)")
    p.add_argument("--resume", nargs="?", const="auto", help="resume from CHECKPOINT (default: RUN/last.pt)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in runs/NAME (default: refuse; shortcut for train.if_exists=overwrite)",
    )
    p.add_argument(
        "--trust-code",
        action="store_true",
        help="let a distillation teacher checkpoint that names a 'module:callable' model import it "
        "(only for files you trust; shortcut for distill.trust_code=true)",
    )
    p.add_argument("--epochs", type=int, help="shortcut for --set train.epochs=N")
    p.add_argument("--device", help="auto | cpu | cuda (shortcut for train.device)")
    p.add_argument("--print-config", action="store_true", help="print the resolved recipe and exit")
    _accept_dotted_flags(p)
    return _run_train


def _accept_dotted_flags(p: argparse.ArgumentParser) -> None:
    """Let this sub-parser keep unknown ``--section.key`` flags (as ``args._extra``) instead of failing."""
    original = p.parse_known_args

    def parse_known_args(args=None, namespace=None):  # type: ignore[no-untyped-def]
        ns, extra = original(args, namespace)
        mine, rest = [], []
        take_value = False
        for a in extra:
            if a.startswith("--") and "." in a.split("=", 1)[0]:
                mine.append(a)
                take_value = "=" not in a
            elif take_value and not a.startswith("--"):
                mine.append(a)
                take_value = False
            else:
                rest.append(a)
                take_value = False
        ns._extra = list(getattr(ns, "_extra", []) or []) + mine
        return ns, rest

    p.parse_known_args = parse_known_args  # type: ignore[method-assign]


def _run_train(args: argparse.Namespace) -> int:
    import json

    from onebit.training.config import load_recipe

    overrides = list(args.overrides or []) + split_dotted_flags(list(getattr(args, "_extra", []) or []))
    for flag, key in (
        ("data_dir", "data.data_dir"),
        ("out_dir", "train.out_dir"),
        ("resume", "train.resume"),
        ("epochs", "train.epochs"),
        ("device", "train.device"),
    ):
        v = getattr(args, flag, None)
        if v is not None:
            overrides.append(f"{key}={json.dumps(v) if isinstance(v, str) else v}")
    if getattr(args, "overwrite", False):
        overrides.append('train.if_exists="overwrite"')
    if getattr(args, "trust_code", False):
        overrides.append("distill.trust_code=true")
    recipe = load_recipe(args.config, overrides)  # parsed and checked once, before anything runs
    if args.print_config:
        print(json.dumps(recipe.to_dict(), indent=2))
        return 0
    from onebit.training.loop import train

    try:
        res = train(recipe)
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        print(f"onebit train: error: {e}", file=sys.stderr)  # disk full: one line, no traceback
        return 1
    m = res["metrics"]
    if "test_acc" in m:
        print(
            f"done: test top-1 {100 * m['test_acc']:.2f}%, top-5 {100 * m['test_top5']:.2f}% "
            f"(best {100 * res['best_acc']:.2f}%) in {res['wall_s'] / 60:.1f} min"
        )
    print(f"checkpoint: {res['checkpoint']}")
    for p in res["plots"]:
        print(f"plot: {p}")
    return 0


def add_trust_code_flag(p: argparse.ArgumentParser) -> None:
    """``--trust-code``: the one way a checkpoint's ``module:callable`` model name gets imported."""
    p.add_argument(
        "--trust-code",
        action="store_true",
        help="rebuild a checkpoint whose model is a 'module:callable' import (runs that code; "
        "only for files you trust). Without it only registered models are rebuilt",
    )


def configure_eval(p: argparse.ArgumentParser) -> Callable:
    p.add_argument("checkpoint", help="a onebit training checkpoint (last.pt / best.pt)")
    p.add_argument(
        "--data", help="data set name (default: the checkpoint's): mnist, fashion_mnist, cifar10, imagenet"
    )
    p.add_argument("--data-dir", help="data root (default: $ONEBIT_DATA)")
    p.add_argument("--val-dir", help="ImageNet: validation ImageFolder tree (default DATA/imagenet/val)")
    p.add_argument("--batch-size", type=int, default=0)
    p.add_argument("--subset", type=int, default=0, help="evaluate on the first N test images only")
    p.add_argument("--device", default="auto")
    add_trust_code_flag(p)
    return _run_eval


def _run_eval(args: argparse.Namespace) -> int:
    from onebit.training.evaluate import evaluate_checkpoint

    r = evaluate_checkpoint(
        args.checkpoint,
        data=args.data,
        data_dir=args.data_dir,
        val_dir=args.val_dir,
        batch_size=args.batch_size,
        subset=args.subset,
        device=args.device,
        trust_code=args.trust_code,
    )
    print(
        f"{args.checkpoint}: {r['data']} {r['n']} images: top-1 {100 * r['top1']:.2f}%  "
        f"top-5 {100 * r['top5']:.2f}%  loss {r['loss']:.4f}"
    )
    return 0
