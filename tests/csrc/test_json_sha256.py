"""The engine's JSON parser and SHA-256 (csrc/engine/): build tests/csrc/test_json_sha256.cc and run it.

The C++ program holds the tests; this wrapper compiles it with g++ (under
AddressSanitizer and UBSan, once per number converter, and once optimized),
hands it SHA-256 digests that Python's hashlib made, and, where localedef can
build one, a locale whose decimal point is ',' to prove numbers ignore it.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    ROOT / "tests" / "csrc" / "test_json_sha256.cc",
    ROOT / "csrc" / "engine" / "json.cc",
    ROOT / "csrc" / "engine" / "sha256.cc",
]
GXX = shutil.which("g++")
SANITIZE = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(GXX is None, reason="g++ not found: the C++ engine tests need a C++17 compiler"),
]


def _build(out_dir: Path, flags: list[str]) -> Path:
    exe = out_dir / "test_json_sha256"
    cmd = [GXX, "-std=c++17", *flags, "-Wall", "-Wextra", "-Werror", "-I", str(ROOT / "csrc")]
    cmd += [*map(str, SOURCES), "-o", str(exe)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stderr}"
    return exe


def _run(exe: Path, args: list[str], env: dict[str, str]) -> str:
    r = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=600, env=env)
    lines = r.stdout.strip().splitlines()
    summary = lines[-1] if lines else ""
    assert r.returncode == 0 and re.fullmatch(r"\d+ passed, 0 failed", summary), (
        f"exit {r.returncode}\n{r.stdout[-6000:]}\n{r.stderr[-6000:]}"
    )
    print(f"{exe.name} {' '.join(a for a in args if a.startswith('--'))}: {summary}")
    return r.stdout


@pytest.fixture(scope="module")
def sha256_vectors(tmp_path_factory) -> list[str]:
    """Random data and hashlib digests of slices of it: every length 0..1000, then block-size edges."""
    out = tmp_path_factory.mktemp("sha256")
    data = random.Random(20240501).randbytes(3 << 20)
    cases = [(n % 8, n) for n in range(1001)]  # the offsets also vary the alignment
    for n in (1023, 1024, 1025, 4095, 4096, 4097, 65535, 65536, 65537, 1 << 20, (3 << 20) - 8):
        cases += [(0, n), (3, n)]
    (out / "data.bin").write_bytes(data)
    lines = [f"{o} {n} {hashlib.sha256(data[o : o + n]).hexdigest()}" for o, n in cases]
    (out / "digests.txt").write_text("\n".join(lines) + "\n")
    return ["--sha256-vectors", str(out / "data.bin"), str(out / "digests.txt")]


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    """The test program's environment, with a de_DE locale (',' decimal point) where one can be built."""
    env = dict(os.environ)
    localedef = shutil.which("localedef")
    if localedef:
        locales = tmp_path_factory.mktemp("locales")
        r = subprocess.run(
            [localedef, "-i", "de_DE", "-f", "UTF-8", str(locales / "de_DE.UTF-8")],
            capture_output=True,
            timeout=120,
        )
        if r.returncode == 0:
            env["LOCPATH"] = str(locales)  # glibc looks here first for setlocale()
    return env


@pytest.mark.parametrize("number_parser", ["from_chars", "strtod"])
def test_json_and_sha256_under_sanitizers(tmp_path, number_parser, sha256_vectors, env):
    # strtod is the fallback for C++ libraries without std::from_chars(double); force it to keep it tested.
    flags = SANITIZE + (["-DONEBIT_JSON_USE_STRTOD"] if number_parser == "strtod" else [])
    out = _run(_build(tmp_path, flags), sha256_vectors, env)
    assert "hashlib digests compared" in out


def test_optimized_build_and_throughput(tmp_path, sha256_vectors, env):
    """-O2 without sanitizers: the same tests, plus throughput printed (informative, not asserted)."""
    out = _run(_build(tmp_path, ["-O2"]), [*sha256_vectors, "--bench"], env)
    for line in out.splitlines():
        if line.startswith(("bench:", "memory:", "locale:")):
            print(line)
