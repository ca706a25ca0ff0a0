"""Deployment side of onebit: bit-packed inference on numpy arrays (no PyTorch).

:mod:`onebit.runtime.kernels` is the compute core (packing, binary conv/GEMM,
float helpers); see docs/kernels.md.
"""

from __future__ import annotations

from onebit.runtime import kernels

__all__ = ["kernels"]
