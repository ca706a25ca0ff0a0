"""The `onebit` command line.

Each sub-command lives in its own small function; heavy imports (torch) happen
inside them so that `onebit --help` and the runtime commands start fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

_COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable]] = {}

#: Modules of the ``[train]`` extra: without them, only info/inspect/run/bench work.
_TRAIN_EXTRA = ("torch", "torchvision", "matplotlib", "tensorboard", "rich", "tqdm", "tomli")


def _int_at_least(least: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer >= ``least``, else a usage error naming the value."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if v < least:
            raise argparse.ArgumentTypeError(f"must be >= {least}, got {v}")
        return v

    parse.__name__ = "int"  # what argparse names in "invalid int value"
    return parse


_positive = _int_at_least(1)

#: Commands whose OSError/MemoryError is the user's file or machine, reported in one line.
_FILE_COMMANDS = ("export", "inspect", "run", "bench")


def command(name: str, help: str):
    """Register a sub-command: the decorated function configures its parser."""

    def wrap(configure: Callable[[argparse.ArgumentParser], Callable]):
        _COMMANDS[name] = (help, configure)
        return configure

    return wrap


@command("info", "print versions, the CPU's instruction sets and the kernel path in use")
def _info(p: argparse.ArgumentParser) -> Callable:
    def run(args: argparse.Namespace) -> int:
        import platform

        import onebit

        print(f"onebit {onebit.__version__} on Python {platform.python_version()}")
        try:
            from onebit import _C

            print(f"cpu features: {_C.cpu_features()}")
            print(f"kernel path: {_C.active_isa()} (best: {_C.best_isa()})")
        except ImportError as e:  # pragma: no cover - only without the built extension
            print(f"engine: not built ({e})")
        return 0

    return run


@command("summary", "print a model's layers, binary/float parameters, packed size and MACs")
def _summary(p: argparse.ArgumentParser) -> Callable:
    p.add_argument("model", help="registered model name (see `onebit models`) or a checkpoint")
    p.add_argument("--input-size", type=int, default=None, help="image side (default: model's)")
    p.add_argument("--num-classes", type=int, default=None)
    p.add_argument("--in-chans", type=int, default=None)
    from onebit.training.cli import add_trust_code_flag

    add_trust_code_flag(p)

    def run(args: argparse.Namespace) -> int:
        import os

        from onebit._summary import summary, summary_for

        if os.path.exists(args.model):  # a checkpoint: rebuilt here so that --trust-code reaches the loader
            from onebit.training.checkpoint import load_model

            model, meta = load_model(args.model, trust_code=args.trust_code)
            size = meta.get("input_size")
            if args.input_size is not None:
                size = (size[0] if size else 3, args.input_size, args.input_size)
            if size is None:
                raise ValueError(f"{args.model}: checkpoint does not record an input size; pass --input-size")
            summary(model, size, model_name=meta.get("model_name") or args.model)
            return 0
        summary_for(
            args.model,
            input_size=args.input_size,
            num_classes=args.num_classes,
            in_chans=args.in_chans,
        )
        return 0

    return run


@command("models", "list the registered models (optionally filtered by a wildcard)")
def _models(p: argparse.ArgumentParser) -> Callable:
    p.add_argument("filter", nargs="?", default="", help="wildcard, e.g. 'binary_dense*'")

    def run(args: argparse.Namespace) -> int:
        from onebit import models

        for name in models.list(args.filter):
            print(name)
        return 0

    return run


@command("train", "train a model from a recipe (TOML/YAML); every field overridable")
def _train(p: argparse.ArgumentParser) -> Callable:
    from onebit.training.cli import configure_train

    return configure_train(p)


@command("recipes", "list the recipes shipped with onebit (`onebit train -c NAME` runs one)")
def _recipes(p: argparse.ArgumentParser) -> Callable:
    p.add_argument("filter", nargs="?", default="*", help="wildcard, e.g. '*cifar*'")

    def run(args: argparse.Namespace) -> int:
        import fnmatch

        from onebit.training.recipes import list_recipes, recipes_dir

        names = [n for n in list_recipes() if fnmatch.fnmatch(n, args.filter)]
        for name in names:
            print(name)
        print(f"({len(names)} recipes in {recipes_dir()})", file=sys.stderr)
        return 0

    return run


@command("eval", "evaluate a checkpoint: top-1 and top-5 accuracy")
def _eval(p: argparse.ArgumentParser) -> Callable:
    from onebit.training.cli import configure_eval

    return configure_eval(p)


@command("export", "export a model (registered name or checkpoint) to a packed .onebit file")
def _export(p: argparse.ArgumentParser) -> Callable:
    p.add_argument("model", help="checkpoint path, or a registered name (random weights, for benchmarks)")
    p.add_argument("-o", "--output", required=True, help="destination .onebit file")
    p.add_argument("--input-size", type=_positive, default=None, help="image side (default: model's)")
    p.add_argument(
        "--num-classes", type=_positive, default=None, help="classes of a registered model (not a checkpoint)"
    )
    p.add_argument("--fp16", action="store_true", help="store float weights as fp16")
    p.add_argument(
        "--labels",
        metavar="FILE",
        help="class names to record, one per line in output order (default: the recipe's data set's)",
    )
    from onebit.training.cli import add_trust_code_flag

    add_trust_code_flag(p)

    def run(args: argparse.Namespace) -> int:
        import os

        folder = os.path.dirname(os.path.abspath(args.output))
        if not os.path.isdir(folder):
            raise ValueError(f"cannot write {args.output}: folder {folder} does not exist")
        if os.path.isdir(args.output):
            raise ValueError(f"cannot write {args.output}: it is a folder; give a file name")
        labels_file = _read_labels(args.labels) if args.labels else None
        import torch

        from onebit import models
        from onebit.export import (
            DATASET_CLASSES,
            export,
            model_cfg_preprocess,
            recipe_labels,
            recipe_preprocess,
        )
        from onebit.runtime.tools import describe_preprocess

        if os.path.exists(args.model):
            if args.num_classes is not None:
                raise ValueError("--num-classes is for registered names; a checkpoint records its classes")
            from onebit.training.checkpoint import load_model

            model, meta = load_model(args.model, trust_code=args.trust_code)
            size = tuple(meta.get("input_size") or ())
            name = meta.get("model_name", args.model)
            recipe = meta.get("config") or {}
            num_classes = meta.get("num_classes")
        else:
            cfg = models.get_cfg(args.model)
            kwargs = {"num_classes": args.num_classes}
            size = tuple(cfg["input_size"])
            if args.input_size is not None and len(size) == 3:
                kwargs["input_size"] = args.input_size
            model = models.create(args.model, **kwargs)
            name = args.model
            recipe = None
            num_classes = args.num_classes or cfg["num_classes"]
            print(f"note: {args.model} has random weights (pass a checkpoint to export a trained model)")
        if args.input_size is not None and len(size) == 3:
            size = (size[0], args.input_size, args.input_size)
        if not size:
            raise ValueError("unknown input size; pass --input-size")
        if recipe is None:  # a registered model: its default config's data set
            preprocess, labels = model_cfg_preprocess(cfg, size), DATASET_CLASSES.get(cfg.get("dataset", ""))
        else:
            preprocess, labels = recipe_preprocess(recipe, size), recipe_labels(recipe)
            if not recipe:
                print(f"note: {args.model} records no recipe: no preprocessing or labels to record")
        if labels is not None and num_classes is not None and len(labels) != num_classes:
            print(f"note: {len(labels)} classes in the data set, {num_classes} in the model: no labels")
            labels = None
        if labels_file is not None:
            labels = labels_file
        nbytes = export(
            model,
            torch.randn(1, *size),
            args.output,
            fp16=args.fp16,
            model_name=name,
            preprocess=preprocess,
            labels=labels,
        )
        print(f"wrote {args.output}: {nbytes:,} bytes")
        if preprocess is not None:
            print(f"preprocessing: {describe_preprocess(preprocess)}")
        if labels:
            print(f"labels: {len(labels)} ({', '.join(labels[:5])}{', ...' if len(labels) > 5 else ''})")
        else:
            print("labels: none recorded (`onebit run` prints class numbers; --labels FILE records names)")
        return 0

    return run


def _read_labels(path: str) -> list[str]:
    """Class names from a text file, one per line (blank lines and surrounding spaces dropped)."""
    try:
        with open(path, encoding="utf-8") as f:
            names = [line.strip() for line in f]
    except UnicodeDecodeError:
        raise ValueError(f"--labels {path}: not a UTF-8 text file") from None
    except OSError as e:
        raise ValueError(f"--labels {path}: cannot read it ({e.strerror or e})") from None
    names = [n for n in names if n]
    if not names:
        raise ValueError(f"--labels {path}: no class names in it")
    return names


@command("inspect", "print a .onebit file's layers, sizes, preprocessing, labels and provenance")
def _inspect(p: argparse.ArgumentParser) -> Callable:
    p.add_argument("file")

    def run(args: argparse.Namespace) -> int:
        from onebit.runtime.tools import inspect

        inspect(args.file)
        return 0

    return run


#: onebit.runtime.model.FLOAT_PRECISIONS, spelled out so that building the parser imports no
#: engine (tests/test_cli_and_build.py checks that the two agree)
FLOAT_PRECISIONS = ("fp32", "bf16", "bf16_emulated", "int8", "int8_emulated")
_PRECISION_HELP = (
    "what the float conv2d/dense layers compute in: fp32 (default), bf16 (AVX512-BF16), int8 "
    "(AVX512-VNNI; the CPU must have them), bf16_emulated / int8_emulated (the same results in "
    "portable code)"
)


@command("run", "classify images with a .onebit model (top-5, with the recorded preprocessing and labels)")
def _run(p: argparse.ArgumentParser) -> Callable:
    p.add_argument("file")
    p.add_argument("images", nargs="+")
    p.add_argument("--top", type=_positive, default=5, help="classes to print per image (default 5)")
    p.add_argument("--threads", type=_positive, default=None, help="engine threads (default: all CPUs)")
    p.add_argument("--precision", choices=FLOAT_PRECISIONS, default="fp32", help=_PRECISION_HELP)

    def run(args: argparse.Namespace) -> int:
        from onebit.runtime.tools import run_images

        run_images(
            args.file, args.images, top=args.top, num_threads=args.threads, float_precision=args.precision
        )
        return 0

    return run


@command("bench", "latency percentiles and per-op time of a .onebit model")
def _bench(p: argparse.ArgumentParser) -> Callable:
    p.add_argument("file")
    p.add_argument("--runs", type=_positive, default=50, help="timed calls (default 50)")
    p.add_argument("--warmup", type=_int_at_least(0), default=5, help="untimed calls first (default 5)")
    p.add_argument("--batch", type=_positive, default=1, help="images per call (default 1)")
    p.add_argument("--threads", type=_positive, default=None, help="engine threads (default: all CPUs)")
    p.add_argument("--precision", choices=FLOAT_PRECISIONS, default="fp32", help=_PRECISION_HELP)

    def run(args: argparse.Namespace) -> int:
        from onebit.runtime.tools import bench

        bench(
            args.file,
            runs=args.runs,
            warmup=args.warmup,
            batch=args.batch,
            num_threads=args.threads,
            float_precision=args.precision,
        )
        return 0

    return run


@command("demo", "the main job: train a small binary network, then summarize it")
def _demo(p: argparse.ArgumentParser) -> Callable:
    def run(args: argparse.Namespace) -> int:
        from onebit.demo import main as demo_main

        return demo_main()

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onebit",
        description="Train binarized neural networks and run them fast on CPUs.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, configure) in _COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.set_defaults(_run=configure(sp))
    return parser


def _missing_train_extra(e: ModuleNotFoundError) -> str | None:
    """The one-line hint for a command that needs the ``[train]`` extra, or None for other modules."""
    top = (e.name or "").split(".")[0]
    if top not in _TRAIN_EXTRA:
        return None
    return (
        f"this command needs {top}, which is not installed: pip install 'onebit[train]' "
        "(the plain install runs only `onebit info`, `inspect`, `run` and `bench`)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    try:
        return int(args._run(args) or 0)
    except BrokenPipeError:  # `onebit inspect m.onebit | head`: the reader left; stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except ModuleNotFoundError as e:
        hint = _missing_train_extra(e)
        if hint is None:
            raise
        print(f"onebit {args.command}: error: {hint}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, KeyError, OSError, MemoryError) as e:
        # User errors (bad arguments or files; for the file commands also an unwritable output or
        # a model over the memory cap): one clear line, no traceback.
        if isinstance(e, (OSError, MemoryError)) and not isinstance(e, FileNotFoundError):
            if args.command not in _FILE_COMMANDS:
                raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else (str(e) or type(e).__name__)
        print(f"onebit {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
