"""Weights packed in the file's layout load without expanding to bytes or floats."""

from __future__ import annotations

import numpy as np
import pytest

from onebit.runtime import kernels as K


@pytest.mark.parametrize("cin", [3, 64, 70, 130])
def test_from_bits_equals_from_floats(cin):
    rng = np.random.default_rng(cin)
    w = rng.standard_normal((37, 3, 3, cin)).astype(np.float32)
    x = rng.standard_normal((2, 6, 7, cin)).astype(np.float32)
    xp = K.pack_bits(x)
    a = K.bconv2d(xp, K.pack_weights(w), in_channels=cin, padding=1, pad_value=0)
    b = K.bconv2d(xp, K.pack_weights_from_bits(K.pack_bits(w), cin), in_channels=cin, padding=1, pad_value=0)
    np.testing.assert_array_equal(a, b)


def test_from_bits_rejects_bad_padding_bits_and_shapes():
    bits = K.pack_bits(np.ones((4, 1, 1, 70), np.float32))
    bad = bits.copy()
    bad[0, 0, 0, 1] |= np.uint64(1) << np.uint64(20)  # channel 84 does not exist
    with pytest.raises(ValueError, match="padding bits"):
        K.pack_weights_from_bits(bad, 70)
    with pytest.raises(ValueError, match="words per row"):
        K.pack_weights_from_bits(bits, 200)
    with pytest.raises(TypeError, match="uint64"):
        K.pack_weights_from_bits(bits.astype(np.int64), 70)
