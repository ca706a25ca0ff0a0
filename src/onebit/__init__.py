"""onebit: train binarized neural networks in PyTorch, run them fast on CPUs.

The training side (quantizers, layers, models, optimizers) needs PyTorch; the
deployment side (:mod:`onebit.runtime`) needs only numpy and onebit's C++
engine. Importing :mod:`onebit` itself stays light: the torch-based parts load
on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public names re-exported lazily so that `import onebit.runtime` never pulls in torch.
_LAZY = {
    "binarize_": "onebit.nn",
    "BinarizeConfig": "onebit.nn",
    "summary": "onebit._summary",
    "ModelSummary": "onebit._summary",
    "load": "onebit.runtime",
    "summary_for": "onebit._summary",
}
_SUBMODULES = {"quantizers", "nn", "optim", "regularizers", "models", "runtime", "export"}

__all__ = ["__version__", *_LAZY, *_SUBMODULES]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"onebit.{name}")
    raise AttributeError(f"module 'onebit' has no attribute {name!r}")
