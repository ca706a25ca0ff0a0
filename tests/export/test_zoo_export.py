"""Every zoo model exports and the engine agrees with PyTorch on real images.

Weights are random, BatchNorm statistics are calibrated on real photos so
activations have realistic scales. Binary layers are exact; the float layers
round differently from PyTorch, which can flip a sign that sits on its
threshold. The test holds the engine to PyTorch's own rounding noise: it may
disagree with PyTorch fp32 on at most about as many images as PyTorch fp64 does
(twice as many plus two, for the sampling noise of 24 images; untrained
networks are chaotic: a single flipped bit moves their logits a lot).
"""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
import torch

import onebit
from onebit.export.verify import calibrate_batchnorm
from onebit.runtime import load
from onebit.runtime.tools import DEFAULT_PREPROCESS, preprocess_image

DATA = os.environ.get(
    "ONEBIT_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data")
)
N_IMAGES = 24


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    files = sorted(glob.glob(os.path.join(DATA, "imagenet-sample", "*", "*.JPEG")))[::4][:N_IMAGES]
    if len(files) < N_IMAGES:
        pytest.fail(f"need {N_IMAGES} ImageNet sample images under {DATA}; set ONEBIT_DATA")
    spec = dict(DEFAULT_PREPROCESS, resize=36, crop=32)
    return np.stack([preprocess_image(f, spec, 3, (32, 32)) for f in files])


def _image_models() -> list[str]:
    names = []
    for name in onebit.models.list():
        size = onebit.models.get_cfg(name)["input_size"]
        if len(size) == 3 and size[0] == 3:
            names.append(name)
    return names


@pytest.mark.parametrize("name", _image_models())
def test_zoo_model_runs_in_engine_like_torch(name, photos, tmp_path):
    size = onebit.models.get_cfg(name)["input_size"]
    kwargs = {"input_size": 32} if size[1] > 64 else {}
    torch.manual_seed(0)
    model = onebit.models.create(name, **kwargs)
    x = torch.from_numpy(photos)
    calibrate_batchnorm(model, x, batch=len(x))
    path = tmp_path / f"{name}.onebit"
    nbytes = onebit.export(model, x[:1], path)
    predicted = onebit.summary(model, (3, 32, 32), print_table=False).memory_bytes
    # the file is the packed model plus thresholds, JSON and alignment
    assert nbytes <= 1.05 * predicted + 64 * 1024, (nbytes, predicted)

    y = load(path).run(photos)
    with torch.no_grad():
        ref = model(x).numpy()
        ref64 = model.double()(x.double()).numpy()

    def affected(a: np.ndarray) -> np.ndarray:
        return np.abs(a - ref).max(axis=1) / (np.abs(ref).max(axis=1) + 1e-12) > 1e-3

    engine_off, torch64_off = affected(y), affected(ref64)
    assert engine_off.sum() <= 2 * torch64_off.sum() + 2, (engine_off.sum(), torch64_off.sum())
    top1_engine = (y.argmax(1) != ref.argmax(1)).sum()
    top1_64 = (ref64.argmax(1) != ref.argmax(1)).sum()
    assert top1_engine <= 2 * top1_64 + 2, (top1_engine, top1_64)
    # where no bit flipped, logits agree to float rounding
    if (~engine_off).any():
        ok = ~engine_off
        rel = np.abs(y[ok] - ref[ok]).max() / np.abs(ref[ok]).max()
        assert rel < 1e-4
