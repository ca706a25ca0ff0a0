"""Recipes: typed, validated sections read once from a TOML file, with command-line overrides.

A recipe is a TOML file with the tables below; every key is optional, and each
is a field of the section's dataclass (its default and meaning are stated
there)::

    [model]       ModelConfig        name = "binarynet_cifar", kwargs = {width = 0.25}
    [data]        DataConfig         name = "cifar10", batch_size = 128, augment = true, ...
    [optim]       OptimConfig        name = "adam", lr = 1e-3, ...
    [schedule]    ScheduleConfig     name = "cosine", warmup_epochs = 1, ...
    [train]       TrainConfig        epochs = 10, seed = 0, ...
    [distill]     DistillConfig      teacher = "", alpha = 0.9, temperature = 4.0, ...
    [diagnostics] DiagnosticsConfig  flips = true, histograms = true, ...

:class:`Recipe` holds one of each. It is parsed once (:meth:`Recipe.from_dict`,
:func:`load_recipe`): an unknown section or key, a value of the wrong type or
out of range, or a choice not offered fails there with a ``RecipeError``
(a ``ValueError``) naming the key, and nothing downstream re-casts a value:
``recipe.optim.lr`` is a ``float``, ``recipe.train.epochs`` an ``int``,
``recipe.train.channels_last`` one of ``"auto"``, ``True``, ``False``. The
sections are frozen; :func:`dataclasses.replace` makes a changed copy (and
validates it again).

The plain form, :meth:`Recipe.to_dict` (what :func:`load_config` returns,
``--print-config`` prints and a checkpoint records as ``config``), carries the
schema version as ``"_version"``, as :class:`onebit.nn.BinarizeConfig` does.
Version 1 (onebit before the typed sections, which wrote no ``_version``) also
had ``train.crash_after_steps``, a testing hook that killed the process: a dict
without ``_version`` may still name it with the value 0 (dropped); any other
value is refused, since tests now install a callback for that
(``tests/training/conftest.py``).

``base = "other.toml"`` at the top level inherits another recipe (relative
paths resolve against the recipe's folder, else among the recipes shipped with
onebit, :mod:`onebit.training.recipes`); the small CPU variants use it. A base
chain that loops back to a recipe is an error. A recipe argument is a file or
the name of a shipped recipe (``binarynet_mnist_cpu``).
Overrides are ``section.key=value`` strings whose value is parsed as a TOML
value (``1e-3``, ``true``, ``[30, 60]``, ``"text"``) or, failing that, kept as
a bare string: ``optim.lr=1e-3 data.batch_size=64 model.kwargs.width=0.5``.

Nothing here imports torch.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar

from onebit._errors import VersionMismatchError

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

__all__ = [
    "DEFAULTS",
    "SECTIONS",
    "DataConfig",
    "DiagnosticsConfig",
    "DistillConfig",
    "ModelConfig",
    "OptimConfig",
    "Recipe",
    "RecipeError",
    "ScheduleConfig",
    "TrainConfig",
    "apply_overrides",
    "load_config",
    "load_recipe",
    "merge",
    "parse_value",
    "validate",
]


class RecipeError(ValueError):
    """A recipe that cannot be used: the message names the section and key."""


def _f(default: Any, doc: str, *, kind: str = "", **checks: Any) -> Any:
    """A section field: its default, what it means, and what values it takes.

    ``kind`` defaults to the default's type (bool, int, float, str, list -> ``"list"``,
    dict -> ``"table"``); ``"auto_bool"`` takes ``"auto"``/``true``/``false``. ``checks``:
    ``choices`` (allowed values), ``gt``/``ge``/``lt``/``le`` (numeric bounds) and ``length``.
    """
    if not kind:
        kind = {bool: "bool", int: "int", float: "float", str: "str", tuple: "list", dict: "table"}[
            type(default)
        ]
    meta = {"doc": doc, "kind": kind, **checks}
    if isinstance(default, dict):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


_KIND_NAMES = {
    "bool": "true or false",
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "list": "a list of numbers",
    "table": "a table",
    "auto_bool": '"auto", true or false',
}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _typed(key: str, v: Any, kind: str, default: Any) -> Any:
    """``v`` as ``kind`` (ints from integral floats, floats from ints), else a RecipeError."""
    out: Any = _BAD
    if kind == "bool" and isinstance(v, bool):
        out = v
    elif kind == "int" and _is_number(v) and float(v).is_integer():
        out = int(v)
    elif kind == "float" and _is_number(v):
        out = float(v)
    elif kind == "str" and isinstance(v, str):
        out = v
    elif kind == "list" and isinstance(v, (list, tuple)) and all(_is_number(x) for x in v):
        out = tuple(v)
    elif kind == "table" and isinstance(v, Mapping):
        out = copy.deepcopy(dict(v))
    elif kind == "auto_bool" and (isinstance(v, bool) or v in ("auto", "true", "false")):
        out = v if isinstance(v, bool) or v == "auto" else v == "true"
    if out is _BAD:
        shown = list(default) if isinstance(default, tuple) else default
        raise RecipeError(f"{key} = {v!r} has the wrong type; expected {_KIND_NAMES[kind]} like {shown!r}")
    return out


_BAD = object()


def _in_range(key: str, v: Any, meta: Mapping[str, Any]) -> None:
    """Check ``choices``, ``length`` and the numeric bounds of a field (each list element too)."""
    if "choices" in meta and v not in meta["choices"]:
        raise RecipeError(f"{key} = {v!r}; expected one of {list(meta['choices'])}")
    if "length" in meta and len(v) != meta["length"]:
        raise RecipeError(f"{key} = {list(v)!r}; expected {meta['length']} values")
    lo, hi = meta.get("gt", meta.get("ge")), meta.get("lt", meta.get("le"))
    if lo is None and hi is None:
        return
    for x in v if isinstance(v, tuple) else (v,):
        ok = (lo is None or (x > lo if "gt" in meta else x >= lo)) and (
            hi is None or (x < hi if "lt" in meta else x <= hi)
        )
        if ok:
            continue
        if hi is None:
            raise RecipeError(f"{key} must be {'>' if 'gt' in meta else '>='} {lo}, got {x}")
        if lo is None:
            raise RecipeError(f"{key} must be {'<' if 'lt' in meta else '<='} {hi}, got {x}")
        brackets = ("(" if "gt" in meta else "[", ")" if "lt" in meta else "]")
        raise RecipeError(f"{key} must be in {brackets[0]}{lo}, {hi}{brackets[1]}, got {x}")


def _closest(key: str, options: list[str]) -> str:
    m = difflib.get_close_matches(key, options, n=1)
    return f" (did you mean {m[0]!r}?)" if m else f" (known: {', '.join(sorted(options))})"


def _plain(v: Any) -> Any:
    """A field value in the recipe's plain (TOML/JSON) form: tuples become lists."""
    if isinstance(v, tuple):
        return list(v)
    if isinstance(v, dict):
        return copy.deepcopy(v)
    return v


class _Section:
    """Base of the recipe sections: each field is type-checked and range-checked on construction."""

    SECTION: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            key = f"{self.SECTION}.{f.name}"
            default = f.default if f.default_factory is MISSING else f.default_factory()
            v = _typed(key, getattr(self, f.name), f.metadata["kind"], default)
            _in_range(key, v, f.metadata)
            object.__setattr__(self, f.name, v)  # normalized (frozen dataclass)
        self._check()

    def _check(self) -> None:
        """Checks across the fields of the section (none by default)."""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "recipe") -> Any:
        """The section from its table, every missing key at its default.

        Raises:
            RecipeError: ``"{where}: ..."`` naming an unknown key (and the closest known
                one), a value of the wrong type, out of range or not among the choices.
        """
        if not isinstance(d, Mapping):
            raise RecipeError(f"{where}: [{cls.SECTION}] must be a table, got {d!r}")
        names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        for k in d:
            if k not in names:
                raise RecipeError(f"{where}: unknown key {cls.SECTION}.{k}{_closest(str(k), names)}")
        try:
            return cls(**d)
        except RecipeError as e:
            raise RecipeError(f"{where}: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        """The section as a plain table (lists, not tuples), every key present."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]


@dataclass(frozen=True)
class ModelConfig(_Section):
    """``[model]``: which network to build."""

    SECTION: ClassVar[str] = "model"
    name: str = _f("", 'registered name (onebit.models), tiny_* test models, or "module:callable" (imported)')
    kwargs: dict[str, Any] = _f({}, "passed to the model constructor (num_classes is added from the data)")


@dataclass(frozen=True)
class DataConfig(_Section):
    """``[data]``: the data set and its loaders (:func:`onebit.data.build_loaders` reads ``to_dict()``)."""

    SECTION: ClassVar[str] = "data"
    name: str = _f("", "mnist | fashion_mnist | cifar10 | imagenet | synthetic")
    data_dir: str = _f("", "default: $ONEBIT_DATA, else the cache dir (download there)")
    cache_dir: str = _f("", "default: $ONEBIT_CACHE, else ~/.cache/onebit")
    download: bool = _f(True, "fall back to torchvision's download when the files are not found")
    batch_size: int = _f(128, "GLOBAL batch (split across DDP ranks)", gt=0)
    eval_batch_size: int = _f(500, "batch of the evaluation loader", gt=0)
    augment: bool = _f(True, "standard augmentation of the data set")
    workers: int = _f(2, "DataLoader workers (ImageFolder data only)", ge=0)
    train_subset: int = _f(0, ">0: use only the first N training samples (tests, smoke runs)", ge=0)
    test_subset: int = _f(0, ">0: use only the first N test samples", ge=0)
    image_size: int = _f(224, "ImageNet crop size", gt=0)
    resize_size: int = _f(256, "ImageNet eval resize before the center crop", gt=0)
    train_dir: str = _f("", "ImageFolder override for the training tree")
    val_dir: str = _f("", "ImageFolder override for the validation tree")
    normalize: str = _f(
        "standard", "standard (mean/std) | pm1 (x/127.5-1) | none", choices=("standard", "pm1", "none")
    )


@dataclass(frozen=True)
class OptimConfig(_Section):
    """``[optim]``: optimizer, weight constraints, regularizers and the loss's label smoothing."""

    SECTION: ClassVar[str] = "optim"
    name: str = _f(
        "adam",
        "adam | adamw | sgd | bop (Bop for binary weights + `rest` for the others)",
        choices=("adam", "adamw", "sgd", "bop"),
    )
    lr: float = _f(1e-3, "learning rate (of every group; BinaryNet scaling multiplies it per layer)", gt=0)
    momentum: float = _f(0.9, "SGD momentum", ge=0)
    nesterov: bool = _f(False, "SGD Nesterov momentum")
    betas: tuple[float, ...] = _f((0.9, 0.999), "Adam/AdamW betas", ge=0.0, lt=1.0, length=2)
    eps: float = _f(1e-8, "Adam/AdamW epsilon", gt=0)
    weight_decay: float = _f(0.0, "weight decay of float weights (never biases or norm parameters)", ge=0)
    binary_weight_decay: float = _f(0.0, "weight decay on binary latent weights (off unless asked)", ge=0)
    binarynet_lr_scaling: bool = _f(False, "BinaryNet's per-layer 1/H learning-rate scaling")
    weight_clip: bool = _f(True, "run the layers' weight constraints after every step")
    grad_clip: float = _f(0.0, "max global grad norm; 0 = off", ge=0)
    bop_threshold: float = _f(1e-8, "Bop's flip threshold", ge=0)
    bop_gamma: float = _f(1e-4, "Bop's adaptivity rate", ge=0, le=1)
    rest: str = _f("adam", "optimizer for non-binary parameters under bop", choices=("adam", "adamw", "sgd"))
    rest_lr: float = _f(0.0, "learning rate of `rest`; 0 = optim.lr", ge=0)
    bipolar: float = _f(0.0, "Tang et al.'s bipolar regularizer lambda (e.g. 5e-7); 0 = off", ge=0)
    label_smoothing: float = _f(0.0, "label smoothing of the cross-entropy", ge=0, lt=1)


@dataclass(frozen=True)
class ScheduleConfig(_Section):
    """``[schedule]``: the learning-rate schedule (:class:`onebit.training.schedule.LRSchedule`)."""

    SECTION: ClassVar[str] = "schedule"
    name: str = _f(
        "constant",
        "constant | cosine | step | plateau | exponential | linear",
        choices=("constant", "cosine", "step", "plateau", "exponential", "linear"),
    )
    warmup_epochs: float = _f(0.0, "linear warm-up (any schedule)", ge=0)
    milestones: tuple[float, ...] = _f((), "step: epochs at which lr *= gamma", ge=0)
    gamma: float = _f(0.1, "step/exponential factor", gt=0)
    factors: tuple[float, ...] = _f(
        (), "step: per-milestone factors instead of gamma (e.g. [0.5, 0.2])", gt=0
    )
    factor: float = _f(0.5, "plateau: lr *= factor when the monitored loss stops improving", gt=0)
    patience: int = _f(2, "plateau: epochs without improvement before reducing", ge=0)
    threshold: float = _f(1e-3, "plateau: relative improvement that counts", ge=0)
    monitor: str = _f("train_loss", "plateau: train_loss | test_loss", choices=("train_loss", "test_loss"))
    min_lr: float = _f(0.0, "floor (cosine end value / plateau floor), absolute", ge=0)
    by_time: bool = _f(False, "cosine/linear: progress = max(steps, share of train.time_limit_min used)")


@dataclass(frozen=True)
class TrainConfig(_Section):
    """``[train]``: length, device, precision, run directory, checkpoints and logging of a run."""

    SECTION: ClassVar[str] = "train"
    epochs: int = _f(10, "epochs to train", ge=0)
    seed: int = _f(0, "seed of Python, NumPy and torch, and of the data order")
    device: str = _f("auto", "auto (cuda if available) | cpu | cuda | cuda:N")
    amp: str = _f(
        "auto",
        "auto (fp16/bf16 on cuda, off on cpu) | off | bf16 | fp16",
        choices=("auto", "off", "bf16", "fp16"),
    )
    channels_last: Any = _f("auto", "auto (on cuda) | true | false", kind="auto_bool")
    compile: bool = _f(False, "torch.compile the model")
    fast_ste: bool = _f(True, "bit-identical, faster SteSign kernels during training (onebit.training.fast)")
    threads: int = _f(0, "torch.set_num_threads on CPU; 0 = leave as is", ge=0)
    out_dir: str = _f("runs", "folder of the run directories")
    run_name: str = _f("", "run directory name under out_dir; default: the recipe's name")
    resume: str = _f("", '"" | "auto" (last.pt in the run dir if any) | path to a checkpoint')
    if_exists: str = _f(
        "refuse",
        "run dir holds a run, no resume: refuse | overwrite | new (NAME-2)",
        choices=("refuse", "overwrite", "new"),
    )
    ckpt_every_steps: int = _f(0, "also checkpoint every N steps inside an epoch; 0 = per epoch", ge=0)
    eval_every: int = _f(1, "evaluate every N epochs (and always at the end)", ge=1)
    max_steps: int = _f(0, "stop after N optimizer steps in total (tests, smoke runs); 0 = no limit", ge=0)
    time_limit_min: float = _f(0.0, "stop cleanly (checkpointed) after this many minutes; 0 = off", ge=0)
    progress: Any = _f("auto", "progress bar: auto (on a TTY) | true | false", kind="auto_bool")
    log_every: int = _f(50, "steps between progress-bar metric refreshes", ge=1)
    deterministic: bool = _f(False, "torch.use_deterministic_algorithms")

    def _check(self) -> None:
        if not re.fullmatch(r"auto|cpu|mps|(cuda|xpu)(:\d+)?", self.device):
            raise RecipeError(
                f"train.device = {self.device!r}; expected auto, cpu, cuda, cuda:N, mps, xpu or xpu:N"
            )


@dataclass(frozen=True)
class DistillConfig(_Section):
    """``[distill]``: knowledge distillation from a teacher (off while ``teacher`` is empty)."""

    SECTION: ClassVar[str] = "distill"
    teacher: str = _f("", 'checkpoint path or "torchvision:NAME" ("" = no distillation)')
    teacher_weights: str = _f("DEFAULT", "torchvision weights name for torchvision teachers")
    alpha: float = _f(0.9, "weight of the soft (KL) term", ge=0.0, le=1.0)
    temperature: float = _f(4.0, "softmax temperature of both logits", gt=0)
    soft_only_epochs: int = _f(0, "Wu et al.: soft-only pre-training for N epochs, then soft + hard", ge=0)
    cache_logits: bool = _f(False, "cache teacher logits per sample (needs augment = false)")
    trust_code: bool = _f(False, 'teacher checkpoint named "module:callable" may import it (trusted files)')


@dataclass(frozen=True)
class DiagnosticsConfig(_Section):
    """``[diagnostics]``: what is measured and written per epoch besides the metrics."""

    SECTION: ClassVar[str] = "diagnostics"
    flips: bool = _f(True, "flip ratio per binary layer per epoch")
    histograms: bool = _f(True, "latent-weight histograms per binary layer per epoch")
    histogram_bins: int = _f(60, "bins of each histogram", gt=0)
    tensorboard: bool = _f(True, "TensorBoard events under RUN/tb")
    plots: bool = _f(True, "PNG curves / flips / histograms at the end of the run")
    csv: bool = _f(False, "also write metrics.csv next to metrics.jsonl")


#: The sections of a recipe by table name, in file order.
SECTIONS: dict[str, type[_Section]] = {
    "model": ModelConfig,
    "data": DataConfig,
    "optim": OptimConfig,
    "schedule": ScheduleConfig,
    "train": TrainConfig,
    "distill": DistillConfig,
    "diagnostics": DiagnosticsConfig,
}

# Keys a version-1 dict could hold that version 2 dropped, with the one value still read (and ignored).
_REMOVED_IN_2 = {("train", "crash_after_steps"): 0}


@dataclass(frozen=True)
class Recipe:
    """A whole recipe: one typed section per table, plus its name and description.

    Build it with :func:`load_recipe` (a file and overrides), :meth:`from_dict` (a table
    of tables, such as :func:`load_config`'s result or a checkpoint's ``config``) or
    directly (``Recipe(model=ModelConfig(name="tiny_mlp"), data=DataConfig(name="synthetic"))``).
    """

    VERSION: ClassVar[int] = 2

    name: str = ""
    description: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)

    def __post_init__(self) -> None:
        for key in ("name", "description"):
            if not isinstance(getattr(self, key), str):
                raise RecipeError(f"{key} = {getattr(self, key)!r} has the wrong type; expected a string")
        for sec, cls in SECTIONS.items():
            if not isinstance(getattr(self, sec), cls):
                raise RecipeError(
                    f"[{sec}] must be a {cls.__name__}, got {type(getattr(self, sec)).__name__}"
                )
        d = self.distill
        if d.teacher and d.cache_logits and self.data.augment and self.data.name in ("cifar10", "imagenet"):
            raise RecipeError("distill.cache_logits needs data.augment = false (logits depend on the crop)")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "recipe") -> Recipe:
        """Parse a table of tables (missing sections and keys take their defaults).

        ``"_version"`` is the schema version (absent: this one, with version 1's
        ``train.crash_after_steps = 0`` still read); ``base`` must already be resolved
        (:func:`load_recipe` does).

        Raises:
            RecipeError: naming the section or key that is unknown, of the wrong type,
                out of range or not among its choices.
            VersionMismatchError: ``_version`` is not one this onebit reads.
        """
        if not isinstance(d, Mapping):
            raise RecipeError(f"{where}: a recipe is a table of sections, got {type(d).__name__}")
        body = {k: v for k, v in d.items() if k != "_version"}
        version = d.get("_version")
        if version is not None and version != cls.VERSION:
            raise VersionMismatchError(
                f"{where}: recipe schema version {version!r} cannot be read by version {cls.VERSION}"
            )
        if "base" in body:
            raise RecipeError(
                f"{where}: `base` is resolved when a recipe file is read (load_recipe), not here"
            )
        sections: dict[str, Any] = {}
        for sec, table in body.items():
            if sec in ("name", "description"):
                continue
            if sec not in SECTIONS:
                raise RecipeError(f"{where}: unknown section [{sec}]{_closest(str(sec), list(SECTIONS))}")
            if isinstance(table, Mapping) and version is None:
                table = _drop_version_1_keys(sec, table, where)
            sections[sec] = SECTIONS[sec].from_dict(table, where)
        try:
            return cls(name=body.get("name", ""), description=body.get("description", ""), **sections)
        except RecipeError as e:
            raise RecipeError(f"{where}: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        """The plain form: ``{"_version", "name", "description", "model": {...}, ...}``, every key present."""
        out: dict[str, Any] = {"_version": self.VERSION, "name": self.name, "description": self.description}
        out.update({sec: getattr(self, sec).to_dict() for sec in SECTIONS})
        return out

    def require(self, where: str = "recipe") -> Recipe:
        """Self, if it names a model and a data set (what a run needs); else a RecipeError."""
        if not self.model.name:
            raise RecipeError(f"{where}: model.name is required (e.g. --set model.name=binarynet_mlp)")
        if not self.data.name:
            raise RecipeError(f"{where}: data.name is required (mnist, fashion_mnist, cifar10, imagenet)")
        return self


def _drop_version_1_keys(sec: str, table: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    out = dict(table)
    for (s, k), harmless in _REMOVED_IN_2.items():
        if s == sec and k in out:
            if out[k] != harmless:
                raise RecipeError(
                    f"{where}: {s}.{k} = {out[k]!r}: this testing hook is no longer a recipe key; "
                    "a test installs a Callback for it (onebit.training.Trainer(..., callbacks=[...]))"
                )
            del out[k]
    return out


#: Every recognized key and its default, by section (derived from the dataclasses).
DEFAULTS: dict[str, dict[str, Any]] = {sec: cls().to_dict() for sec, cls in SECTIONS.items()}


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge: values of ``over`` win; nested dicts are merged."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def validate(cfg: dict[str, Any], where: str = "recipe") -> dict[str, Any]:
    """``Recipe.from_dict(cfg, where).to_dict()``: the checked recipe with every default filled in."""
    return Recipe.from_dict(cfg, where).to_dict()


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


def load_recipe(path: str | None = None, overrides: list[str] | None = None) -> Recipe:
    """Read a recipe (a file, a shipped recipe's name, or None for the defaults), apply
    ``section.key=value`` overrides and parse it into a :class:`Recipe` naming a model and data set.

    Raises:
        FileNotFoundError: no such recipe (with the closest shipped names).
        RecipeError: invalid TOML, a bad key or value (named), no model or data set.
    """
    raw: dict[str, Any] = _read_toml(path) if path else {}
    if path and "name" not in raw:
        raw["name"] = os.path.splitext(os.path.basename(path))[0]
    raw = apply_overrides(raw, overrides)
    where = path or "config"
    return Recipe.from_dict(raw, where).require(where)


def load_config(path: str | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    """:func:`load_recipe` in its plain form (``Recipe.to_dict()``): tables that can be edited,
    printed, recorded in a checkpoint and given back to :func:`onebit.training.loop.train`."""
    return load_recipe(path, overrides).to_dict()
