"""This machine's kernel paths bit for bit against the reference (tests/csrc/test_kernels.cc).

CMake builds the program with the C library (no Python, -DONEBIT_BUILD_TESTS=ON)
in build/test-kernels-native, kept between runs so a rebuild is incremental;
the program tests every path the CPU has (x86: portable, avx2, avx512; an
aarch64 host: portable, neon) over randomized shapes and prints
"N passed, N failed" last. scripts/test-aarch64 runs the same program,
cross-compiled, under qemu.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build" / "test-kernels-native"
CMAKE = shutil.which("cmake")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CMAKE is None, reason="cmake not found: the C++ kernel tests build with CMake"),
]


@pytest.fixture(scope="module")
def test_kernels() -> Path:
    configure = [CMAKE, "-S", str(ROOT), "-B", str(BUILD), "-DONEBIT_PYTHON=OFF", "-DONEBIT_BUILD_TESTS=ON"]
    r = subprocess.run(configure, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    jobs = str(min(2, os.cpu_count() or 1))
    r = subprocess.run(
        [CMAKE, "--build", str(BUILD), "-j", jobs, "--target", "test_kernels"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    exe = BUILD / "csrc" / "test_kernels"
    assert exe.is_file()
    return exe


def test_every_isa_bit_exact_against_reference(test_kernels):
    env = {k: v for k, v in os.environ.items() if k != "ONEBIT_ISA"}  # the program switches ISAs itself
    r = subprocess.run(
        [str(test_kernels), "--cases", "120"], capture_output=True, text=True, timeout=600, env=env
    )
    lines = r.stdout.strip().splitlines()
    summary = lines[-1] if lines else ""
    assert r.returncode == 0 and re.fullmatch(r"\d+ passed, 0 failed", summary), (
        f"exit {r.returncode}\n{r.stdout[-6000:]}\n{r.stderr[-3000:]}"
    )
    print(lines[0])
    print(f"test_kernels: {summary}")
    assert int(summary.split()[0]) > 1000


def test_seed_changes_cases(test_kernels):
    """Another seed draws other shapes; the paths stay exact."""
    r = subprocess.run(
        [str(test_kernels), "--quick", "--seed", "7"], capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stdout[-6000:]
    assert r.stdout.strip().splitlines()[-1].endswith(" passed, 0 failed")
