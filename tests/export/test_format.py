"""The .onebit container: round trip, atomic writes, and a fuzzed loader that never crashes."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

import onebit
from onebit.runtime.format import MAGIC, ModelFormatError, read_model_file, write_model_file
from onebit.runtime.model import load


def _meta() -> dict:
    return {
        "inputs": [{"name": "input", "shape": [1, 4], "dtype": "float32"}],
        "outputs": [{"name": "y", "shape": [1, 3], "dtype": "float32"}],
        "nodes": [
            {
                "op": "dense",
                "inputs": ["input"],
                "outputs": ["y"],
                "attrs": {},
                "params": {"weight": "w", "multiplier": "m", "bias": "b"},
            }
        ],
    }


def test_round_trip_and_alignment(tmp_path):
    tensors = {
        "w": np.arange(12, dtype=np.float32).reshape(3, 4),
        "m": np.ones(3, np.float32),
        "b": np.zeros(3, np.float32),
        "bits": np.array([1, 2**63], np.uint64),
    }
    p = tmp_path / "m.onebit"
    size = write_model_file(p, _meta(), tensors)
    assert size == os.path.getsize(p)
    assert p.read_bytes()[:8] == MAGIC
    mf = read_model_file(p)
    for k, v in tensors.items():
        np.testing.assert_array_equal(mf.tensors[k], v)
    assert mf.meta["tensors"]["w"]["offset"] % 64 == 0
    assert not list(tmp_path.glob(".onebit-*"))  # no temporary left behind


def test_missing_and_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="model file not found"):
        read_model_file(tmp_path / "nope.onebit")
    (tmp_path / "text.onebit").write_text("hello world, this is not a model file at all....." * 3)
    with pytest.raises(ModelFormatError, match="bad magic"):
        read_model_file(tmp_path / "text.onebit")
    p = tmp_path / "m.onebit"
    write_model_file(
        p,
        _meta(),
        {"w": np.ones((3, 4), np.float32), "m": np.ones(3, np.float32), "b": np.ones(3, np.float32)},
    )
    raw = bytearray(p.read_bytes())
    raw[8] = 99  # version
    (tmp_path / "v.onebit").write_bytes(bytes(raw))
    with pytest.raises(ModelFormatError, match="format version 99 is not supported"):
        read_model_file(tmp_path / "v.onebit")
    (tmp_path / "t.onebit").write_bytes(p.read_bytes()[:-10])
    with pytest.raises(ModelFormatError, match="truncated"):
        read_model_file(tmp_path / "t.onebit")


def test_inconsistent_graph_is_rejected(tmp_path):
    meta = _meta()
    meta["nodes"][0]["inputs"] = ["not_defined"]
    p = tmp_path / "m.onebit"
    write_model_file(
        p, meta, {"w": np.ones((3, 4), np.float32), "m": np.ones(3, np.float32), "b": np.ones(3, np.float32)}
    )
    with pytest.raises(ModelFormatError, match="reads 'not_defined' before it is defined"):
        read_model_file(p)


def test_fuzzed_files_never_crash_or_load_silently(tmp_path, tiny_model):
    """Thousands of random truncations and byte flips: each is rejected with ModelFormatError."""
    path = tmp_path / "tiny.onebit"
    onebit.export(tiny_model, torch.randn(1, 3, 8, 8), path)
    good = path.read_bytes()
    load(path)  # the intact file loads
    rng = random.Random(0)
    bad = tmp_path / "bad.onebit"
    cases = 0
    for i in range(3000):
        data = bytearray(good)
        if i % 2 == 0:
            data = data[: rng.randrange(len(good))]
        else:
            for _ in range(rng.randint(1, 4)):
                pos = rng.randrange(len(data))
                data[pos] ^= 1 << rng.randrange(8)
        bad.write_bytes(bytes(data))
        with pytest.raises(ModelFormatError):
            load(bad)
        cases += 1
    assert cases == 3000


def test_structural_fuzz_without_checksum(tmp_path, tiny_model):
    """With the checksum bypassed, damaged JSON/tables still give clean errors, never a crash."""
    path = tmp_path / "tiny.onebit"
    onebit.export(tiny_model, torch.randn(1, 3, 8, 8), path)
    good = path.read_bytes()
    js_len = int.from_bytes(good[24:32], "little")
    rng = random.Random(1)
    bad = tmp_path / "bad.onebit"
    outcomes = {"error": 0, "loaded": 0}
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    for _ in range(400):
        data = bytearray(good)
        pos = 64 + rng.randrange(js_len)  # damage the JSON graph description
        data[pos] = rng.randrange(32, 127)
        bad.write_bytes(bytes(data))
        try:
            m = load(bad, verify_checksum=False)
            m.run(x)  # a still-consistent graph must also run
            outcomes["loaded"] += 1
        except (ModelFormatError, ValueError, TypeError):
            outcomes["error"] += 1
    assert outcomes["error"] > 0
