"""Bit packing: convention, exact round trips, odd channel counts, every ISA."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import signs

from onebit import _C
from onebit.runtime import kernels as K

CHANNELS = [1, 3, 63, 64, 65, 127, 128, 130, 200]


@pytest.mark.parametrize("c", CHANNELS)
def test_roundtrip_float_and_int8(isa, rng, c):
    x = signs(rng, (2, 3, 4, c))
    p = K.pack_bits(x)
    assert p.shape == (2, 3, 4, (c + 63) // 64) and p.dtype == np.uint64
    np.testing.assert_array_equal(K.unpack_bits(p, c), x)
    np.testing.assert_array_equal(K.pack_bits(x.astype(np.int8)), p)
    np.testing.assert_array_equal(K.unpack_bits(p, c, dtype=np.int8), x.astype(np.int8))


def test_convention_bit_set_is_minus_one(isa):
    x = np.array([[-1.0, 1.0, 0.0, -0.0, -3.5] + [1.0] * 60 + [-2.0]], dtype=np.float32)
    p = K.pack_bits(x)
    assert int(p[0, 0]) == 0b10001  # channels 0 and 4 are negative; 0 and -0.0 pack as +1
    assert int(p[0, 1]) == 0b10  # channel 65 -> word 1 bit 1; padding bits stay 0


@pytest.mark.parametrize("c", CHANNELS)
def test_padding_bits_are_zero(isa, rng, c):
    p = K.pack_bits(np.full((5, c), -1.0, np.float32))
    expect = np.full(((c + 63) // 64,), np.iinfo(np.uint64).max, dtype=np.uint64)
    if c % 64:
        expect[-1] = (1 << (c % 64)) - 1
    np.testing.assert_array_equal(p, np.broadcast_to(expect, p.shape))


@pytest.mark.parametrize("c", [1, 17, 64, 100, 130])
def test_fast_pack_matches_portable(fast_isa, rng, c):
    x = rng.standard_normal((7, c)).astype(np.float32)
    x[0, :] = 0.0
    ref = np.empty((7, (c + 63) // 64), np.uint64)
    _C.pack_f32_portable(x, c, ref)
    np.testing.assert_array_equal(K.pack_bits(x), ref)


@pytest.mark.parametrize("c", [3, 64, 77])
def test_sign_threshold_pack(isa, rng, c):
    x = rng.standard_normal((2, 5, c)).astype(np.float32)
    thr = rng.standard_normal(c).astype(np.float32)
    want = K.pack_bits(np.where(x < thr, -1.0, 1.0).astype(np.float32))
    np.testing.assert_array_equal(K.sign_threshold_pack(x, thr), want)


def test_pack_threads_agree(rng):
    x = rng.standard_normal((64, 9, 130)).astype(np.float32)
    np.testing.assert_array_equal(K.pack_bits(x, num_threads=1), K.pack_bits(x, num_threads=2))
