"""Sign-bit packing in numpy (the file format's convention; the C++ engine uses the same).

Convention: channels are packed along the last axis into little-endian uint64
words, channel ``c`` in word ``c // 64``, bit ``c % 64``; **a set bit means -1**,
a clear bit +1 (so packing a float is taking its sign bit, and ``sign(0) = +1``).
Padding bits past the last channel are 0 (+1).
"""

from __future__ import annotations

import numpy as np

__all__ = ["pack_signs", "unpack_signs", "words_for"]


def words_for(channels: int) -> int:
    """Number of 64-bit words holding ``channels`` bits."""
    return (channels + 63) // 64


def pack_signs(x: np.ndarray) -> np.ndarray:
    """Pack the signs of ``x`` along its last axis: (..., C) -> (..., ceil(C / 64)) uint64."""
    x = np.asarray(x)
    c = x.shape[-1]
    bits = x < 0
    pad = words_for(c) * 64 - c
    if pad:
        bits = np.concatenate([bits, np.zeros((*bits.shape[:-1], pad), bool)], axis=-1)
    packed = np.packbits(bits, axis=-1, bitorder="little")
    return np.ascontiguousarray(packed).view("<u8").astype(np.uint64, copy=False)


def unpack_signs(packed: np.ndarray, channels: int, dtype: type = np.float32) -> np.ndarray:
    """Inverse of :func:`pack_signs`: (..., W) uint64 -> (..., channels) of ±1."""
    packed = np.ascontiguousarray(packed, dtype="<u8")
    if packed.shape[-1] != words_for(channels):
        raise ValueError(f"{packed.shape[-1]} words cannot hold exactly {channels} channels")
    bits = np.unpackbits(packed.view(np.uint8), axis=-1, bitorder="little")[..., :channels]
    return np.where(bits == 1, -1, 1).astype(dtype)
