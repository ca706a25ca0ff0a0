"""Checkpoints: everything needed to continue a run exactly, written atomically, read safely.

A checkpoint is one ``torch.save`` dict of tensors and plain data only::

    {"format": "onebit-checkpoint", "version": 2,
     "model": state_dict, "model_name": str, "model_kwargs": dict,
     "input_size": (C, H, W), "num_classes": int,
     "optimizer": ..., "scheduler": ..., "scaler": ...,
     "rng": {"python", "numpy", "torch", "cuda"},
     "epoch": e, "step_in_epoch": s, "global_step": g,   # next batch to run: (e, s)
     "config": recipe, "metrics": {...}, "extra": {...}}

Writing: ``path.tmp<pid>`` is written, fsync'ed and ``os.replace``-d over
``path``, so a crash (even SIGKILL) leaves either the old or the new file,
never half of one. Any failure removes the temporary file; a full disk raises
an ``OSError`` (``errno.ENOSPC``) naming the path instead of torch's
``unexpected pos``. :func:`sweep_temp_files` removes what a killed writer left.

Reading never runs code from the file: ``torch.load(weights_only=True)``
refuses pickled callables, and :func:`build_model` rebuilds a model only from
a registered name unless the caller passes ``trust_code=True`` (a
``"module:callable"`` name imports and calls whatever the file names:
``torch.hub:load`` runs a ``hubconf.py``, ``subprocess:check_call`` a shell).
Version-1 checkpoints (older onebit, NumPy RNG state as an ``ndarray``) are
read by allowing exactly the NumPy types that rebuild a ``uint32`` array, and
converted to the plain-list form on load.
"""

from __future__ import annotations

import errno
import glob
import os
import pickle
import random
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "build_model",
    "capture_rng",
    "copy_checkpoint",
    "load_checkpoint",
    "load_model",
    "require_keys",
    "restore_rng",
    "save_checkpoint",
    "sweep_temp_files",
]

FORMAT = "onebit-checkpoint"
#: 2: RNG states are lists/tuples/tensors (weights_only-loadable); 1: NumPy state as an ndarray.
VERSION = 2

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_TMP_RE = re.compile(r"^(.+\.pt|metrics\.jsonl)\.tmp\d*$")  # what our atomic writers leave when killed


def _numpy_rng_types() -> list[Any]:
    """The NumPy objects a pickled ``np.random.get_state()`` needs: a uint32 array, nothing callable
    beyond ``_reconstruct`` (which allocates an empty array). Object arrays stay refused."""
    try:
        from numpy._core.multiarray import _reconstruct  # NumPy >= 2
    except ImportError:  # pragma: no cover - NumPy 1.x
        from numpy.core.multiarray import _reconstruct
    other = "numpy.core" if _reconstruct.__module__.startswith("numpy._core") else "numpy._core"
    types: list[Any] = [
        _reconstruct,
        (_reconstruct, f"{other}.multiarray._reconstruct"),
        np.ndarray,
        np.dtype,
    ]
    if hasattr(np, "dtypes"):  # NumPy >= 1.25: the dtype's class is checked when it is rebuilt
        types.append(np.dtypes.UInt32DType)
    return types


@contextmanager
def _allow(types: list[Any]) -> Iterator[None]:
    """``torch.serialization.safe_globals`` where torch has it (>= 2.5); otherwise allow nothing more."""
    ctx = getattr(torch.serialization, "safe_globals", None)
    if ctx is None:  # pragma: no cover - old torch: version-1 files are refused, never run
        yield
        return
    with ctx(types):
        yield


def capture_rng() -> dict[str, Any]:
    """Python, NumPy, torch (and CUDA) global RNG states as plain data (lists, tuples, tensors)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)  # noqa: NPY002 (global state)
    st: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [str(kind), [int(k) for k in keys], int(pos), int(has_gauss), float(gauss)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def restore_rng(st: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng` (also takes a version-1 NumPy state holding an ndarray)."""
    version, internal, gauss = st["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = st["numpy"]
    keys = np.asarray(keys, dtype=np.uint32)
    np.random.set_state((kind, keys, int(pos), int(has_gauss), float(cached)))  # noqa: NPY002
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def _plain_rng(st: Any) -> Any:
    """A version-1 RNG dict with its NumPy ndarray turned into the version-2 list form."""
    if isinstance(st, dict) and isinstance(st.get("numpy"), (tuple, list)):
        kind, keys, pos, has_gauss, cached = st["numpy"]
        if isinstance(keys, np.ndarray):
            st = dict(st, numpy=[str(kind), [int(k) for k in keys], int(pos), int(has_gauss), float(cached)])
    return st


class _RecordingWriter:
    """File wrapper for ``torch.save`` that keeps the first ``OSError`` of ``write``.

    torch's zip writer turns a failed write into ``RuntimeError: ... unexpected pos``;
    the recorded error says what really happened (``ENOSPC``).
    """

    def __init__(self, f: Any) -> None:
        self.f = f
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = self.error or e
            raise

    def flush(self) -> None:
        self.f.flush()


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _free_bytes(path: str) -> str:
    try:
        return f"{shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free:,} bytes free"
    except OSError:
        return "free space unknown"


@contextmanager
def _atomic_target(path: str) -> Iterator[str]:
    """Yield a temporary path beside ``path``; ``os.replace`` it over ``path`` on success.

    On any failure (exception, KeyboardInterrupt) the temporary file is removed,
    ``path`` is untouched, and a full disk becomes an ``OSError`` that says so.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as e:
        _remove_quietly(tmp)
        if isinstance(e, OSError) and e.errno in _DISK_FULL:
            had = "the previous file is intact" if os.path.exists(path) else "nothing was written"
            raise OSError(
                e.errno,
                f"disk full: cannot write {path} ({_free_bytes(path)}; {had}, the partial temporary "
                "file was removed). Free space or move train.out_dir, then --resume",
            ) from None
        raise


def save_checkpoint(path: str, state: dict[str, Any]) -> None:
    """Atomically write ``state`` (plus format tags) to ``path``; see the module docstring."""
    state = {"format": FORMAT, "version": VERSION, **state}
    with _atomic_target(path) as tmp, open(tmp, "wb") as f:
        w = _RecordingWriter(f)
        try:
            torch.save(state, w)
        except RuntimeError:
            if w.error is not None:
                raise w.error from None
            raise
        f.flush()
        os.fsync(f.fileno())


def copy_checkpoint(src: str, dst: str) -> None:
    """Atomically copy ``src`` over ``dst`` (``best.pt`` from ``last.pt``), with :func:`save_checkpoint`'s
    failure handling."""
    with _atomic_target(dst) as tmp:
        shutil.copyfile(src, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())


def sweep_temp_files(run_dir: str) -> list[str]:
    """Remove the temporary files a killed writer left in ``run_dir``; return their paths.

    ``*.pt.tmp<pid>`` (checkpoints) and ``metrics.jsonl.tmp<pid>``: never complete results (a
    writer replaces its temporary file over the real one as soon as it is complete). Call it only
    from the one process that writes ``run_dir``, before it writes.
    """
    gone = []
    for p in sorted(glob.glob(os.path.join(glob.escape(run_dir), "*.tmp*"))):
        if _TMP_RE.match(os.path.basename(p)) and os.path.isfile(p):
            _remove_quietly(p)
            gone.append(p)
    return gone


def _unpickler_reason(e: BaseException) -> tuple[bool, str]:
    """``(refused, one line)`` from torch's multi-paragraph weights_only error.

    ``refused``: the file asked for a Python object (a GLOBAL to import and call, or an object to
    build) that plain data never needs. Otherwise it is merely unreadable (text, a truncated or
    foreign pickle).
    """
    msg = str(e)
    m = re.search(r"GLOBAL ([\w.]+)", msg)
    if m:
        return True, f"it asks to import and call {m.group(1)}"
    m = re.search(r"Can only build [^\n]*?but got ([^\n]+)", msg)
    if m:
        return True, f"it asks to build {m.group(1).strip()}"
    m = re.search(r"WeightsUnpickler error:\s*([^\n]+)", msg)
    return False, m.group(1).strip() if m else (msg.strip().splitlines() or ["UnpicklingError"])[0]


def load_checkpoint(path: str, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a onebit checkpoint with ``weights_only=True``: tensors and plain data, never code.

    A file holding anything else (a pickled callable) raises ``ValueError`` saying it was refused
    and not run; so do unreadable files and files that are not onebit checkpoints.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with _allow(_numpy_rng_types()):
            ck = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        refused, why = _unpickler_reason(e)
        if not refused:
            raise ValueError(f"{path}: not a readable checkpoint (UnpicklingError: {why})") from None
        raise ValueError(
            f"{path}: refused, not loaded: {why}. A onebit checkpoint holds only tensors and plain "
            "data, so this file was not written by onebit or was altered; nothing in it was run"
        ) from None
    except Exception as e:  # truncated / not a torch file
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ValueError(f"{path}: not a readable checkpoint ({type(e).__name__}: {first})") from None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise ValueError(f"{path}: not a onebit training checkpoint")
    if "rng" in ck:
        ck["rng"] = _plain_rng(ck["rng"])
    if isinstance(ck.get("rng_per_rank"), dict):
        ck["rng_per_rank"] = {r: _plain_rng(s) for r, s in ck["rng_per_rank"].items()}
    return ck


def require_keys(ck: dict[str, Any], keys: tuple[str, ...], path: str) -> None:
    """Raise ``ValueError`` naming the first of ``keys`` missing from checkpoint ``ck``."""
    for k in keys:
        if k not in ck:
            raise ValueError(
                f"{path}: checkpoint has no {k!r} entry (incomplete or not written by onebit train)"
            )


def build_model(
    name: str, num_classes: int, kwargs: dict[str, Any] | None = None, *, trust_code: bool = False
) -> nn.Module:
    """Build a model by registered name (``onebit.models``) or test-model name (``tiny_*``).

    A ``"module:callable"`` name imports ``module`` and calls ``callable``: any code at all. It is
    honoured only with ``trust_code=True``, which the training loop passes for the recipe's own
    ``model.name`` (the user wrote it) and which a checkpoint's recorded name gets only when the
    user opts in (``--trust-code``); a file alone can never make onebit import something.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"model name must be a non-empty string, got {name!r}")
    if kwargs is not None and not (isinstance(kwargs, dict) and all(isinstance(k, str) for k in kwargs)):
        raise ValueError(f"model {name!r}: kwargs must be a table of named values, got {kwargs!r}")
    if not isinstance(num_classes, int) or isinstance(num_classes, bool):
        raise ValueError(f"model {name!r}: num_classes must be an integer, got {num_classes!r}")
    kwargs = dict(kwargs or {})
    if ":" in name:
        if not trust_code:
            raise ValueError(
                f"model {name!r} is a 'module:callable' import, which would run code the file names; "
                "only registered models (`onebit models`) are rebuilt from a checkpoint. "
                "If you trust this file, pass --trust-code (trust_code=True)"
            )
        import importlib

        mod, attr = name.split(":", 1)
        try:
            fn = getattr(importlib.import_module(mod), attr)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"model {name!r}: cannot import ({e})") from None
        return fn(num_classes=num_classes, **kwargs)
    from onebit.training import tiny

    if name in tiny.MODELS:
        return tiny.MODELS[name](num_classes=num_classes, **kwargs)
    from onebit import models

    return models.create(name, num_classes=num_classes, **kwargs)


def load_model(
    path: str, map_location: Any = "cpu", *, trust_code: bool = False
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model saved in a checkpoint; returns ``(model, meta)``.

    ``meta`` holds ``model_name``, ``model_kwargs``, ``input_size`` (C, H, W),
    ``num_classes``, ``epoch``, ``metrics`` and the recipe (``config``).
    ``trust_code`` lets a ``"module:callable"`` model name be imported (see :func:`build_model`).
    """
    ck = load_checkpoint(path, map_location)
    require_keys(ck, ("model", "model_name", "num_classes"), path)
    try:
        model = build_model(
            ck["model_name"], ck["num_classes"], ck.get("model_kwargs"), trust_code=trust_code
        )
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    try:
        model.load_state_dict(ck["model"])
    except (RuntimeError, TypeError, AttributeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path}: weights do not fit model {ck['model_name']!r}: {first}") from None
    model.eval()
    meta = {
        k: ck.get(k)
        for k in ("model_name", "model_kwargs", "input_size", "num_classes", "epoch", "metrics", "config")
    }
    if meta["input_size"] is not None:
        meta["input_size"] = tuple(meta["input_size"])
    return model, meta
