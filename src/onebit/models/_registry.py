"""Model registry (timm style): names -> entrypoint functions, plus a config per model.

Each family module defines ``default_cfgs = {name: cfg}`` *before* its
entrypoints and decorates every entrypoint with :func:`register_model`; the
function's name is the registry name. :func:`create` builds a model by name,
:func:`list_models` (exported as ``onebit.models.list``) lists names with
shell-style wildcards and :func:`get_cfg` returns the model's config.

A config holds at least:

* ``input_size``: default input (C, H, W), or ``(784,)``-style for flat inputs;
  224 for ImageNet models, 32 for CIFAR ones;
* ``num_classes``, ``mean``, ``std``: data defaults;
* ``first_conv``, ``classifier``: module names of the float first/last layers;
* ``paper``: the citation; ``reference``: published parameter counts / sizes
  with their source (see docs/models.md);
* ``binary_exceptions``: module names of layers with 1-bit weights whose input
  is *not* produced by a 1-bit sign quantizer (documented per model);
* ``pad_value``: how the binary convolutions pad (``None``: zeros, ``1.0``: +1).
"""

from __future__ import annotations

import builtins
import difflib
import fnmatch
import sys
from collections.abc import Callable
from typing import Any

from torch import nn

__all__ = ["create", "get_cfg", "list_models", "register_model"]

_ENTRYPOINTS: dict[str, Callable[..., nn.Module]] = {}
_CFGS: dict[str, dict[str, Any]] = {}
_MODULE_OF: dict[str, str] = {}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)

_REQUIRED = ("input_size", "num_classes", "mean", "std", "first_conv", "classifier", "paper", "reference")


def imagenet_cfg(**kw: Any) -> dict[str, Any]:
    """Config defaults of an ImageNet model (224x224 RGB, 1000 classes, zero padding)."""
    cfg: dict[str, Any] = {
        "input_size": (3, 224, 224),
        "num_classes": 1000,
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "binary_exceptions": [],
        "pad_value": None,
        "dataset": "imagenet",
    }
    cfg.update(kw)
    return cfg


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: register ``fn`` under its own name, with ``default_cfgs[name]`` of its module."""
    name = fn.__name__
    if name in _ENTRYPOINTS and _MODULE_OF[name] != fn.__module__:
        raise ValueError(f"model name {name!r} is already registered by {_MODULE_OF[name]}")
    module = sys.modules[fn.__module__]
    cfg = dict(getattr(module, "default_cfgs", {}).get(name, {}))
    missing = [k for k in _REQUIRED if k not in cfg]
    if missing:
        raise ValueError(f"model {name!r}: default_cfgs entry lacks {missing}")
    cfg.setdefault("binary_exceptions", [])
    cfg.setdefault("pad_value", None)
    _ENTRYPOINTS[name] = fn
    _CFGS[name] = cfg
    _MODULE_OF[name] = fn.__module__
    fn.default_cfg = cfg  # type: ignore[attr-defined]
    return fn


def list_models(filter: str = "") -> builtins.list[str]:  # noqa: A002 - timm's argument name
    """Registered model names, sorted; ``filter`` is a shell wildcard ("binary_dense*")."""
    names = sorted(_ENTRYPOINTS)
    if filter:
        names = [n for n in names if fnmatch.fnmatchcase(n, filter)]
    return names


def _unknown(name: str) -> ValueError:
    close = difflib.get_close_matches(name, list(_ENTRYPOINTS), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else f"known models: {', '.join(list_models())}"
    return ValueError(f"unknown model {name!r}; {hint}")


def get_cfg(name: str) -> dict[str, Any]:
    """A copy of the config of model ``name`` (see the module docstring for its keys)."""
    if name not in _CFGS:
        raise _unknown(name)
    return dict(_CFGS[name])


def create(name: str, num_classes: int | None = None, **kwargs: Any) -> nn.Module:
    """Build registered model ``name``.

    Args:
        name: a name from :func:`list_models`.
        num_classes: output classes; ``None`` keeps the model's default
            (1000 for ImageNet models, 10 for the CIFAR/MNIST ones).
        **kwargs: passed to the entrypoint (``input_size``, ``in_chans``,
            family options). Keyword arguments whose value is ``None`` are
            dropped, so a command line's unset options never override a
            model's defaults.

    Raises:
        ValueError: unknown name (the message names close matches).
        TypeError: an argument the model does not take.
    """
    if name not in _ENTRYPOINTS:
        raise _unknown(name)
    kw = {k: v for k, v in kwargs.items() if v is not None}
    if num_classes is not None:
        kw["num_classes"] = num_classes
    try:
        model = _ENTRYPOINTS[name](**kw)
    except TypeError as e:
        raise TypeError(f"model {name!r}: {e}") from None
    model.default_cfg = get_cfg(name)  # type: ignore[assignment]
    model.model_name = name  # type: ignore[assignment]
    return model
