"""The C example of docs/deployment.md compiles against the installed header and library.

It must agree with Python on the same model and input, bit for bit.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from test_engine_load import small_model

from onebit.runtime import load, native
from onebit.runtime.format import write_model_file

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "deployment.md")


def _example_source() -> str:
    text = open(DOC, encoding="utf-8").read()
    blocks = re.findall(r"```c\n(.*?)```", text, flags=re.S)
    assert blocks, "docs/deployment.md has no C example"
    return blocks[0]


@pytest.fixture(scope="module")
def classify(tmp_path_factory) -> str:
    cc = shutil.which("cc") or shutil.which("gcc")
    # the engine itself was built with this machine's compiler: a missing one is a broken set-up
    assert cc is not None, "no C compiler (cc or gcc) on PATH"
    d = tmp_path_factory.mktemp("capi")
    src = d / "classify.c"
    src.write_text(_example_source())
    exe = d / "classify"
    inc, lib = native.include_dir(), native.lib_dir()
    cmd = [
        cc,
        "-std=c99",
        "-Wall",
        "-Werror",
        str(src),
        f"-I{inc}",
        f"-L{lib}",
        "-lonebit",
        f"-Wl,-rpath,{lib}",
        "-o",
        str(exe),
    ]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return str(exe)


def test_header_and_library_are_installed():
    assert os.path.isfile(os.path.join(native.include_dir(), "onebit.h"))
    assert os.path.isfile(os.path.join(native.lib_dir(), "libonebit.so"))
    assert os.path.isfile(os.path.join(native.lib_dir(), "libonebit.a"))
    # only the C API is exported from the shared library
    nm = shutil.which("nm")
    if nm:
        out = subprocess.run(
            [nm, "-D", "--defined-only", os.path.join(native.lib_dir(), "libonebit.so")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        names = [line.split()[-1] for line in out.splitlines() if line.strip()]
        assert names and all(n.startswith("onebit_") for n in names), [
            n for n in names if not n.startswith("onebit_")
        ]


def test_c_example_matches_python(classify, tmp_path):
    meta, tensors = small_model(c_in=3, c_mid=16, size=12)
    path = tmp_path / "m.onebit"
    write_model_file(path, meta, tensors)
    r = subprocess.run([classify, str(path)], capture_output=True, text=True, check=True)
    lines = r.stdout.split()
    got = np.array([float(v) for v in lines[2:]], np.float32)
    n_in = 3 * 12 * 12
    x = ((np.arange(n_in) * 7919) % 255).astype(np.float32) / np.float32(127.0) - np.float32(1.0)
    want = load(path, num_threads=1).run(x.reshape(1, 3, 12, 12))[0]
    np.testing.assert_array_equal(got, want)  # %.9g round-trips float32 exactly
    assert lines[1] == str(int(np.argmax(want)))


def test_c_example_reports_a_bad_file(classify, tmp_path):
    bad = tmp_path / "bad.onebit"
    bad.write_bytes(b"\x89ONEBIT\n" + b"\0" * 200)
    r = subprocess.run([classify, str(bad)], capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.startswith("onebit: ") and "version" in r.stderr


def test_onebit_run_program(tmp_path):
    meta, tensors = small_model()
    path = tmp_path / "m.onebit"
    write_model_file(path, meta, tensors)
    exe = os.path.join(native.bin_dir(), "onebit-run")
    r = subprocess.run(
        [exe, str(path), "--runs", "5", "--batch", "2"], capture_output=True, text=True, check=True
    )
    assert "latency ms over 5 runs: p50" in r.stdout and "output:" in r.stdout
    r = subprocess.run([exe, str(tmp_path / "missing.onebit")], capture_output=True, text=True)
    assert r.returncode == 1 and "not found" in r.stderr


def test_onebit_run_float_precision(tmp_path):
    """The load option float_precision through the C API (onebit_load_options, as onebit-run sets
    it): the same bits as Python's load(..., float_precision=...), and a bad value refused."""
    meta, tensors = small_model()
    path = tmp_path / "m.onebit"
    write_model_file(path, meta, tensors)
    x = np.random.default_rng(3).standard_normal((2, 3, 8, 8)).astype(np.float32)
    x.tofile(tmp_path / "x.f32")
    exe = os.path.join(native.bin_dir(), "onebit-run")
    args = ["--input", str(tmp_path / "x.f32"), "--batch", "2", "--runs", "1", "--profile", "0"]
    for precision in ("fp32", "bf16_emulated"):
        out = tmp_path / f"{precision}.f32"
        r = subprocess.run(
            [exe, str(path), *args, "--output", str(out), "--precision", precision],
            capture_output=True,
            text=True,
            check=True,
        )
        assert f"float layers {precision}," in r.stdout
        want = load(path, num_threads=1, float_precision=precision).run(x)
        np.testing.assert_array_equal(np.fromfile(out, np.float32).reshape(want.shape), want)
    r = subprocess.run([exe, str(path), *args, "--precision", "fp16"], capture_output=True, text=True)
    assert r.returncode == 1 and "unknown float_precision 'fp16'" in r.stderr
