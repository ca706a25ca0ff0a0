"""Recipes: nested TOML tables with defaults, validation and command-line overrides.

A recipe is a TOML file with the tables below (every key optional, defaults in
:data:`DEFAULTS`)::

    [model]    name = "binarynet_cifar", kwargs = {width = 0.25}
    [data]     name = "cifar10", batch_size = 128, augment = true, ...
    [optim]    name = "adam", lr = 1e-3, ...
    [schedule] name = "cosine", warmup_epochs = 1, ...
    [train]    epochs = 10, seed = 0, ...
    [distill]  teacher = "", alpha = 0.9, temperature = 4.0, ...
    [diagnostics] flips = true, histograms = true, ...

``base = "other.toml"`` at the top level inherits another recipe (relative
paths resolve against the recipe's folder, else among the recipes shipped with
onebit, :mod:`onebit.training.recipes`); the small CPU variants use it. A base
chain that loops back to a recipe is an error. A recipe argument is a file or
the name of a shipped recipe (``binarynet_mnist_cpu``).
Overrides are ``section.key=value`` strings whose value is parsed as a TOML
value (``1e-3``, ``true``, ``[30, 60]``, ``"text"``) or, failing that, kept as
a bare string: ``optim.lr=1e-3 data.batch_size=64 model.kwargs.width=0.5``.
Unknown sections or keys raise ``ValueError`` naming the closest valid key.
"""

from __future__ import annotations

import copy
import difflib
import os
from typing import Any

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

__all__ = ["DEFAULTS", "apply_overrides", "load_config", "merge", "parse_value", "validate"]

#: Every recognized key and its default. Dict-valued keys ("kwargs") are free-form.
DEFAULTS: dict[str, dict[str, Any]] = {
    "model": {
        "name": "",  # registered name (onebit.models), tiny_* test models, or "module:callable" (imported)
        "kwargs": {},  # passed to the model constructor (num_classes is added from the data)
    },
    "data": {
        "name": "",  # mnist | fashion_mnist | cifar10 | imagenet | synthetic
        "data_dir": "",  # default: $ONEBIT_DATA, else the cache dir (download there)
        "cache_dir": "",  # default: $ONEBIT_CACHE, else ~/.cache/onebit
        "download": True,  # fall back to torchvision's download when the files are not found
        "batch_size": 128,  # GLOBAL batch (split across DDP ranks)
        "eval_batch_size": 500,
        "augment": True,  # standard augmentation of the data set
        "workers": 2,  # DataLoader workers (ImageFolder data only)
        "train_subset": 0,  # >0: use only the first N training samples (tests, smoke runs)
        "test_subset": 0,
        "image_size": 224,  # ImageNet crop size
        "resize_size": 256,  # ImageNet eval resize before the center crop
        "train_dir": "",  # ImageFolder override for the training tree
        "val_dir": "",  # ImageFolder override for the validation tree
        "normalize": "standard",  # standard (mean/std) | pm1 (x/127.5-1) | none
    },
    "optim": {
        "name": "adam",  # adam | adamw | sgd | bop (Bop for binary weights + `rest` for the others)
        "lr": 1e-3,
        "momentum": 0.9,
        "nesterov": False,
        "betas": [0.9, 0.999],
        "eps": 1e-8,
        "weight_decay": 0.0,
        "binary_weight_decay": 0.0,  # weight decay on binary latent weights (off unless asked)
        "binarynet_lr_scaling": False,  # BinaryNet's per-layer 1/H learning-rate scaling
        "weight_clip": True,  # run the layers' weight constraints after every step
        "grad_clip": 0.0,  # max global grad norm; 0 = off
        "bop_threshold": 1e-8,
        "bop_gamma": 1e-4,
        "rest": "adam",  # optimizer for non-binary parameters under bop
        "rest_lr": 0.0,  # 0 = optim.lr
        "bipolar": 0.0,  # Tang et al.'s bipolar regularizer lambda (e.g. 5e-7)
        "label_smoothing": 0.0,
    },
    "schedule": {
        "name": "constant",  # constant | cosine | step | plateau | exponential | linear
        "warmup_epochs": 0.0,  # linear warm-up (any schedule)
        "milestones": [],  # step: epochs at which lr *= gamma
        "gamma": 0.1,  # step/exponential factor
        "factors": [],  # step: per-milestone factors instead of gamma (e.g. [0.5, 0.2, 0.5])
        "factor": 0.5,  # plateau: lr *= factor when the monitored loss stops improving
        "patience": 2,  # plateau: epochs without improvement before reducing
        "threshold": 1e-3,  # plateau: relative improvement that counts
        "monitor": "train_loss",  # plateau: train_loss | test_loss
        "min_lr": 0.0,  # floor (cosine end value / plateau floor), absolute
        "by_time": False,  # cosine/linear: progress = max(steps, share of train.time_limit_min used)
    },
    "train": {
        "epochs": 10,
        "seed": 0,
        "device": "auto",  # auto (cuda if available) | cpu | cuda | cuda:N
        "amp": "auto",  # auto (fp16/bf16 on cuda, off on cpu) | off | bf16 | fp16
        "channels_last": "auto",  # auto (on cuda) | true | false
        "compile": False,  # torch.compile the model
        "fast_ste": True,  # bit-identical, faster SteSign kernels during training (onebit.training.fast)
        "threads": 0,  # torch.set_num_threads on CPU; 0 = leave as is
        "out_dir": "runs",
        "run_name": "",  # default: recipe name
        "resume": "",  # "" | "auto" (last.pt in the run dir if any) | path to a checkpoint
        "if_exists": "refuse",  # run dir holds a run, no resume: refuse | overwrite | new (NAME-2)
        "ckpt_every_steps": 0,  # also checkpoint every N steps inside an epoch; 0 = per epoch
        "eval_every": 1,  # evaluate every N epochs (and always at the end)
        "max_steps": 0,  # stop after N optimizer steps in total (tests, smoke runs)
        "time_limit_min": 0.0,  # stop cleanly (checkpointed) after this many minutes; 0 = off
        "progress": "auto",  # auto (on a TTY) | true | false
        "log_every": 50,  # steps between progress-bar metric refreshes
        "deterministic": False,  # torch.use_deterministic_algorithms
        "crash_after_steps": 0,  # TESTING: SIGKILL the process after N steps (resume tests)
    },
    "distill": {
        "teacher": "",  # checkpoint path or "torchvision:NAME" ("" = no distillation)
        "teacher_weights": "DEFAULT",  # torchvision weights name for torchvision teachers
        "alpha": 0.9,  # weight of the soft (KL) term
        "temperature": 4.0,
        "soft_only_epochs": 0,  # Wu et al.: soft-only pre-training for N epochs, then soft + hard
        "cache_logits": False,  # cache teacher logits per sample (needs augment = false)
        "trust_code": False,  # teacher checkpoint named "module:callable" may import it (trusted files)
    },
    "diagnostics": {
        "flips": True,  # flip ratio per binary layer per epoch
        "histograms": True,  # latent-weight histograms per binary layer per epoch
        "histogram_bins": 60,
        "tensorboard": True,
        "plots": True,  # PNG curves / flips / histograms at the end of the run
        "csv": False,  # also write metrics.csv next to metrics.jsonl
    },
}


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge: values of ``over`` win; nested dicts are merged."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _closest(key: str, options: list[str]) -> str:
    m = difflib.get_close_matches(key, options, n=1)
    return f" (did you mean {m[0]!r}?)" if m else f" (known: {', '.join(sorted(options))})"


def validate(cfg: dict[str, Any], where: str = "recipe") -> dict[str, Any]:
    """Check sections, keys and value types against :data:`DEFAULTS`; return cfg with defaults filled."""
    for sec, body in cfg.items():
        if sec in ("base", "name", "description"):
            continue
        if sec not in DEFAULTS:
            raise ValueError(f"{where}: unknown section [{sec}]{_closest(sec, list(DEFAULTS))}")
        if not isinstance(body, dict):
            raise ValueError(f"{where}: [{sec}] must be a table, got {body!r}")
        for k, v in body.items():
            if k not in DEFAULTS[sec]:
                raise ValueError(f"{where}: unknown key {sec}.{k}{_closest(k, list(DEFAULTS[sec]))}")
            d = DEFAULTS[sec][k]
            ok = True
            if d == "auto" and k in ("channels_last", "progress"):
                ok = isinstance(v, bool) or v in ("auto", "true", "false")
            elif isinstance(d, bool):
                ok = isinstance(v, bool)
            elif isinstance(d, (int, float)) and not isinstance(d, bool):
                ok = isinstance(v, (int, float)) and not isinstance(v, bool)
                if ok and isinstance(d, int) and not isinstance(d, bool) and isinstance(v, float):
                    ok = float(v).is_integer()
                    if ok:
                        body[k] = int(v)
            elif isinstance(d, str):
                ok = isinstance(v, str)
            elif isinstance(d, list):
                ok = isinstance(v, list)
            elif isinstance(d, dict):
                ok = isinstance(v, dict)
            if not ok:
                raise ValueError(
                    f"{where}: {sec}.{k} = {v!r} has the wrong type; expected {type(d).__name__} like {d!r}"
                )
    full = merge(DEFAULTS, {k: v for k, v in cfg.items() if k in DEFAULTS})
    for k in ("name", "description"):
        if k in cfg:
            full[k] = cfg[k]
    _check_values(full, where)
    return full


_CHOICES = {
    ("data", "normalize"): ("standard", "pm1", "none"),
    ("optim", "name"): ("adam", "adamw", "sgd", "bop"),
    ("optim", "rest"): ("adam", "adamw", "sgd"),
    ("schedule", "name"): ("constant", "cosine", "step", "plateau", "exponential", "linear"),
    ("schedule", "monitor"): ("train_loss", "test_loss"),
    ("train", "amp"): ("auto", "off", "bf16", "fp16"),
    ("train", "progress"): ("auto", True, False, "true", "false"),
    ("train", "if_exists"): ("refuse", "overwrite", "new"),
}


def _check_values(cfg: dict[str, Any], where: str) -> None:
    for (sec, k), allowed in _CHOICES.items():
        if cfg[sec][k] not in allowed:
            raise ValueError(f"{where}: {sec}.{k} = {cfg[sec][k]!r}; expected one of {list(allowed)}")
    for sec, k in (("optim", "lr"), ("data", "batch_size"), ("data", "eval_batch_size")):
        if cfg[sec][k] <= 0:
            raise ValueError(f"{where}: {sec}.{k} must be > 0, got {cfg[sec][k]}")
    if cfg["train"]["epochs"] < 0:
        raise ValueError(f"{where}: train.epochs must be >= 0")
    if not 0.0 <= cfg["distill"]["alpha"] <= 1.0:
        raise ValueError(f"{where}: distill.alpha must be in [0, 1], got {cfg['distill']['alpha']}")
    if cfg["distill"]["temperature"] <= 0:
        raise ValueError(f"{where}: distill.temperature must be > 0")


def parse_value(text: str) -> Any:
    """Parse an override value as TOML (``1e-3``, ``true``, ``[1, 2]``, ``"s"``), else a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(cfg: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Apply ``section.key=value`` (or ``section.kwargs.sub=value``) overrides to a raw config."""
    cfg = copy.deepcopy(cfg)
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form section.key=value")
        path, text = item.split("=", 1)
        keys = [p.strip().replace("-", "_") for p in path.strip().split(".")]
        if len(keys) < 2 or not all(keys):
            raise ValueError(f"override {item!r}: key must be section.key (e.g. optim.lr=1e-3)")
        node = cfg
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {k} is not a table")
        node[keys[-1]] = parse_value(text.strip())
    return cfg


def _read_toml(path: str, _chain: tuple[str, ...] = ()) -> dict[str, Any]:
    """Read one recipe file and, first, the ``base`` chain it inherits (``_chain``: files above it).

    ``path`` is a file or the name of a shipped recipe (:func:`onebit.training.recipes.find_recipe`).
    A ``base`` resolves against the recipe's folder, else among the shipped recipes. A recipe
    that includes itself, directly or through other bases, is refused with the loop spelled out
    instead of recursing until Python gives up.
    """
    from onebit.training.recipes import find_recipe

    path = find_recipe(path)
    real = os.path.realpath(path)
    if real in _chain:
        loop = " -> ".join(os.path.basename(p) for p in (*_chain[_chain.index(real) :], real))
        raise ValueError(f"{path}: the recipe includes itself through `base` ({loop})")
    if path.endswith((".yaml", ".yml")):
        try:
            import yaml  # type: ignore[import-untyped]
        except ImportError as e:
            raise ValueError(f"{path}: YAML recipes need pyyaml (pip install pyyaml); use TOML") from e
        with open(path) as f:
            raw = yaml.safe_load(f) or {}
    else:
        with open(path, "rb") as f:
            try:
                raw = tomllib.load(f)
            except tomllib.TOMLDecodeError as e:
                raise ValueError(f"{path}: invalid TOML: {e}") from e
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a recipe is a table of sections, got {type(raw).__name__}")
    base = raw.pop("base", None)
    if base is not None and not (isinstance(base, str) and base):
        raise ValueError(f"{path}: base = {base!r}; expected the file name of another recipe")
    if base:
        bpath = base if os.path.isabs(base) else os.path.join(os.path.dirname(path), base)
        if not os.path.isfile(bpath):  # not beside the recipe: a shipped recipe of that name
            try:
                bpath = find_recipe(base, files=False)
            except FileNotFoundError as e:
                msg = f"{path}: base {base!r} is neither beside it nor a shipped recipe ({e})"
                raise FileNotFoundError(msg) from None
        raw = merge(_read_toml(bpath, (*_chain, real)), raw)
    return raw


def load_config(path: str | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    """Read a recipe (or start from defaults), apply overrides, validate and fill defaults."""
    raw: dict[str, Any] = _read_toml(path) if path else {}
    if path and "name" not in raw:
        raw["name"] = os.path.splitext(os.path.basename(path))[0]
    raw = apply_overrides(raw, overrides)
    cfg = validate(raw, where=path or "config")
    if not cfg["model"]["name"]:
        raise ValueError(f"{path or 'config'}: model.name is required (e.g. --set model.name=binarynet_mlp)")
    if not cfg["data"]["name"]:
        raise ValueError(
            f"{path or 'config'}: data.name is required (mnist, fashion_mnist, cifar10, imagenet)"
        )
    return cfg
