"""The engine's thread pool under many callers: tests/csrc/test_threadpool_stress.cc built under
ThreadSanitizer and under AddressSanitizer + UBSan, run with each ONEBIT_PIN_THREADS mode.

The program ends "N passed, 0 failed"; a data race, a task run twice or not at all, or a
call whose results are not visible when it returns fails it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "tests" / "csrc" / "test_threadpool_stress.cc", ROOT / "csrc" / "runtime" / "threadpool.cc"]
GXX = shutil.which("g++")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(GXX is None, reason="g++ not found: the C++ engine tests need a C++17 compiler"),
]

SANITIZERS = {
    "thread": ["-fsanitize=thread"],
    "address": ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"],
}


@pytest.fixture(scope="module", params=sorted(SANITIZERS))
def exe(request, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp(f"threadpool-{request.param}") / "test_threadpool_stress"
    cmd = [GXX, "-std=c++17", "-O1", "-g", *SANITIZERS[request.param], "-Wall", "-Wextra", "-Werror",
           "-I", str(ROOT / "csrc"), *map(str, SOURCES), "-o", str(out), "-lpthread"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    missing = re.search(r"cannot find (-l|\S*lib)(tsan|asan|ubsan)\S*", r.stderr)
    if r.returncode != 0 and missing:  # only the linker's "no such runtime", never another failure
        pytest.skip(f"this g++ has no {request.param} sanitizer runtime ({missing.group(0)})")
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stderr}"
    return out


@pytest.mark.parametrize("pin", ["auto", "0", "1"])
def test_pool_under_sanitizers(exe, pin):
    env = {**os.environ, "ONEBIT_PIN_THREADS": pin, "TSAN_OPTIONS": "halt_on_error=1 exitcode=66"}
    r = subprocess.run([str(exe), "300"], capture_output=True, text=True, timeout=600, env=env)
    summary = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    assert r.returncode == 0 and re.fullmatch(r"\d+ passed, 0 failed", summary), (
        f"exit {r.returncode}\n{r.stdout[-4000:]}\n{r.stderr[-6000:]}"
    )
    assert "WARNING: ThreadSanitizer" not in r.stderr and "ERROR: AddressSanitizer" not in r.stderr, r.stderr
