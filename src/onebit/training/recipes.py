"""Where a recipe comes from: a path, or the name of a recipe shipped with onebit.

The repository's ``recipes/`` folder is installed inside the package as
``onebit/recipes/`` (``wheel.packages`` in pyproject.toml), so that
``onebit train -c binarynet_mnist_cpu.toml`` works after ``pip install
'onebit[train]'``, far from any checkout. A checkout (editable install) reads
the same files from ``recipes/`` beside ``src/``.

A recipe argument is, in this order: an existing file; else a shipped recipe
named with or without ``.toml`` and with or without a leading ``recipes/``
(``binarynet_mnist_cpu``, ``recipes/binarynet_mnist_cpu.toml``,
``experiments/cifar_base``), so the commands of the documentation run
unchanged outside the repository. Nothing here imports torch.
"""

from __future__ import annotations

import difflib
import os
from importlib import resources
from pathlib import Path

__all__ = ["find_recipe", "list_recipes", "recipes_dir"]

_SUFFIXES = (".toml", ".yaml", ".yml")


def recipes_dir() -> str | None:
    """The folder of the shipped recipes: ``onebit/recipes`` when installed, ``recipes/`` in a checkout."""
    try:
        packaged = resources.files("onebit") / "recipes"
        if packaged.is_dir():
            return str(packaged)
    except (ModuleNotFoundError, NotADirectoryError):  # pragma: no cover - onebit imported oddly
        pass
    checkout = Path(__file__).resolve().parents[3]
    if (checkout / "recipes").is_dir() and (checkout / "pyproject.toml").is_file():
        return str(checkout / "recipes")
    return None


def list_recipes() -> list[str]:
    """Names of the shipped recipes (``binarynet_mnist_cpu``, ``experiments/cifar_base``, ...), sorted.

    Files whose name starts with ``_`` are shared bases, not runs of their own; they are left out.
    """
    root = recipes_dir()
    if root is None:
        return []
    out = []
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            stem, ext = os.path.splitext(f)
            if ext in _SUFFIXES and not stem.startswith("_"):
                rel = os.path.relpath(os.path.join(dirpath, stem), root)
                out.append(rel.replace(os.sep, "/"))
    return sorted(out)


def _as_shipped_name(name: str) -> str:
    rel = name.replace("\\", "/")
    while rel.startswith("./"):
        rel = rel[2:]
    if rel.startswith("recipes/"):
        rel = rel[len("recipes/") :]
    if not rel.endswith(_SUFFIXES):
        rel += ".toml"
    return rel


def find_recipe(name: str, *, files: bool = True) -> str:
    """The file of recipe ``name``: ``name`` itself if it exists, else the shipped recipe of that name.

    ``files=False`` looks among the shipped recipes only (a ``base`` that is not beside its recipe
    must not be picked up from the current directory).

    Raises:
        FileNotFoundError: ``recipe not found: NAME``, with the closest shipped names.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"a recipe is a file name or a shipped recipe's name, got {name!r}")
    if files and os.path.isfile(name):
        return name
    root = recipes_dir()
    if root is not None and not os.path.isabs(name):
        rel = _as_shipped_name(name)
        candidate = os.path.join(root, *rel.split("/"))
        if ".." not in rel.split("/") and os.path.isfile(candidate):
            return candidate
    hint = ""
    names = list_recipes()
    if names:
        close = difflib.get_close_matches(os.path.splitext(_as_shipped_name(name))[0], names, n=3)
        hint = (
            f" (did you mean {', '.join(close)}?)"
            if close
            else " (`onebit recipes` lists the recipes shipped with onebit)"
        )
    raise FileNotFoundError(f"recipe not found: {name}{hint}")
