"""Fixtures for the runtime kernel tests: run a test under each instruction set."""

from __future__ import annotations

import numpy as np
import pytest

from onebit import _C

ISAS = ["reference", "portable", "avx2", "avx512"]
FAST_ISAS = ["portable", "avx2", "avx512"]


def _use(name: str):
    if not _C.isa_supported(name):
        pytest.skip(f"CPU lacks {name}")
    before = _C.active_isa()
    _C.set_isa(name)
    return before


@pytest.fixture(params=ISAS)
def isa(request):
    """Every instruction set this CPU supports, forced in-process."""
    before = _use(request.param)
    yield request.param
    _C.set_isa(before)


@pytest.fixture(params=FAST_ISAS)
def fast_isa(request):
    """Every optimized path (to compare against the reference kernel)."""
    before = _use(request.param)
    yield request.param
    _C.set_isa(before)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def signs(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random +-1 float32 tensor."""
    return np.where(rng.standard_normal(shape) < 0, -1.0, 1.0).astype(np.float32)
