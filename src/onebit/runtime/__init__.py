"""Deployment side of onebit: bit-packed inference on numpy arrays (no PyTorch).

* :func:`load` reads a ``.onebit`` file (see :mod:`onebit.runtime.format`) and
  returns a :class:`Model` whose ``run(x)`` takes float32 NCHW numpy batches.
* :mod:`onebit.runtime.kernels` is the compute core (packing, binary conv/GEMM,
  float helpers); see docs/kernels.md.

Nothing here imports torch.
"""

from __future__ import annotations

from onebit.runtime import kernels
from onebit.runtime.format import ModelFormatError
from onebit.runtime.model import FLOAT_PRECISIONS, Model, load, ops

__all__ = ["FLOAT_PRECISIONS", "Model", "ModelFormatError", "kernels", "load", "ops"]
