"""Bad arguments raise clear Python errors; a forced ISA is validated."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import signs

from onebit import _C
from onebit.runtime import kernels as K


@pytest.fixture
def conv(rng):
    x = signs(rng, (1, 6, 6, 70))
    return K.pack_bits(x), K.pack_weights(signs(rng, (8, 3, 3, 70)))


def test_pack_errors():
    with pytest.raises(TypeError, match="dtype"):
        K.pack_bits(np.zeros((2, 3), np.float64))
    with pytest.raises(TypeError, match="numpy array"):
        K.pack_bits([1.0, -1.0])
    with pytest.raises(ValueError, match="empty"):
        K.pack_bits(np.zeros((0, 3), np.float32))
    with pytest.raises(ValueError, match="contiguous"):
        K.pack_bits(np.zeros((4, 6), np.float32)[:, ::2])
    with pytest.raises(ValueError, match="words"):
        K.unpack_bits(np.zeros((2, 2), np.uint64), 3)
    with pytest.raises(ValueError, match="threshold"):
        K.sign_threshold_pack(np.zeros((2, 3), np.float32), np.zeros(4))


def test_bconv_errors(conv):
    xp, pw = conv
    with pytest.raises(ValueError, match="words per pixel"):
        K.bconv2d(xp, pw, in_channels=200)
    with pytest.raises(ValueError, match="in_channels"):
        K.bconv2d(xp, pw, in_channels=65)
    with pytest.raises(TypeError, match="dtype uint64"):
        K.bconv2d(xp.astype(np.int64), pw, in_channels=70)
    with pytest.raises(ValueError, match="4-D"):
        K.bconv2d(xp[0], pw, in_channels=70)
    with pytest.raises(ValueError, match="contiguous"):
        K.bconv2d(xp[:, ::2], pw, in_channels=70)
    with pytest.raises(ValueError, match="pad_value"):
        K.bconv2d(xp, pw, in_channels=70, pad_value=2)
    with pytest.raises(ValueError, match="stride"):
        K.bconv2d(xp, pw, in_channels=70, stride=0)
    with pytest.raises(ValueError, match="padding"):
        K.bconv2d(xp, pw, in_channels=70, padding=-1)
    with pytest.raises(ValueError, match="does not fit"):
        K.bconv2d(xp, pw, in_channels=70, dilation=4)
    with pytest.raises(ValueError, match="multiplier"):
        K.bconv2d(xp, pw, in_channels=70, multiplier=np.ones(7))
    with pytest.raises(ValueError, match="prelu_slope"):
        K.bconv2d(xp, pw, in_channels=70, activation="prelu")
    with pytest.raises(ValueError, match="activation"):
        K.bconv2d(xp, pw, in_channels=70, activation="gelu")
    with pytest.raises(ValueError, match="fold"):
        K.bconv2d(xp, pw, in_channels=70, output="bits", bias=np.ones(8))
    with pytest.raises(ValueError, match="out must have shape"):
        K.bconv2d(xp, pw, in_channels=70, out=np.empty((1, 6, 6, 8), np.float32))
    with pytest.raises(TypeError, match="pack_weights"):
        K.bconv2d(xp, np.zeros(3), in_channels=70)
    with pytest.raises(ValueError, match="groups"):
        K.bconv2d(xp, pw, in_channels=70, groups=2)
    with pytest.raises(ValueError, match="num_threads"):
        K.bconv2d(xp, pw, in_channels=70, num_threads=0)


def test_weights_and_gemm_errors(rng):
    with pytest.raises(ValueError, match="groups"):
        K.pack_weights(signs(rng, (6, 3, 3, 4)), groups=4)
    with pytest.raises(ValueError, match="2 or 4-D"):
        K.pack_weights(signs(rng, (6, 3, 3)))
    with pytest.raises(ValueError, match="layout"):
        K.pack_weights(signs(rng, (6, 3, 3, 4)), layout="HWIO")
    pw = K.pack_weights(signs(rng, (6, 100)))
    with pytest.raises(ValueError, match="k_bits"):
        K.bgemm(K.pack_bits(signs(rng, (3, 100))), pw, 99)
    with pytest.raises(ValueError, match="inputs"):
        K.dense_f32(np.ones((2, 5), np.float32), np.ones((3, 4), np.float32))
    with pytest.raises(ValueError, match="input channels"):
        K.conv2d_f32(np.ones((1, 4, 4, 3), np.float32), np.ones((2, 3, 3, 4), np.float32))
    with pytest.raises(ValueError, match="half the kernel"):
        K.maxpool_f32(np.ones((1, 4, 4, 3), np.float32), 2, 2, 2)


def test_raw_binding_checks_sizes(conv):
    xp, pw = conv
    with pytest.raises(ValueError, match="out"):
        _C.bconv2d(xp, pw, 70, (1, 1), (0, 0, 0, 0), (1, 1), 1, False, "none", None, None, None,
                   None, None, np.empty(3, np.float32), 1)
    with pytest.raises(TypeError):
        _C.bconv2d(xp.astype(np.float32), pw, 70, (1, 1), (0, 0, 0, 0), (1, 1), 1, False,
                   "none", None, None, None, None, None, np.empty(3, np.float32), 1)


def test_set_isa_errors():
    with pytest.raises(ValueError, match="unknown instruction set"):
        K.set_isa("neon9")


def _run_with_isa(value):
    env = dict(os.environ, ONEBIT_ISA=value)
    code = "from onebit.runtime import kernels as K; print(K.active_isa())"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


def test_onebit_isa_env():
    r = _run_with_isa("bogus")
    assert r.returncode != 0
    assert "unknown instruction set 'bogus'" in r.stderr
    r = _run_with_isa("portable")
    assert r.returncode == 0 and r.stdout.strip() == "portable"
