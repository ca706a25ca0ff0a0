"""Fuzz the engine's loader and run() under AddressSanitizer + UBSan (tests/csrc/fuzz_engine.cc).

Builds the standalone fuzzer against the engine sources in a cached CMake tree
(build/fuzz-asan-<compiler>: -fsanitize=address,undefined -fno-sanitize-recover=all
-O1 -g, ONEBIT_PYTHON=OFF, ONEBIT_BUILD_TESTS=ON), then runs

* every hostile file of the regression corpus (tests/csrc/corpus/regress, each
  with its expected answer in expected.json) and every seed (must load and run);
* a type sweep: every JSON value of three seeds replaced by junk of ten types;
* a few thousand structure-aware mutations of the seeds (about 35 s).

Each must end "N passed, 0 failed": no sanitizer report, crash, hang (> 1 s of
CPU time per case), allocation past the bound, or unclean error. The long run
is benchmarks/fuzz_engine.sh. Regenerate the corpus with tests/csrc/make_corpus.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "csrc" / "corpus"
CXX = shutil.which("g++") or shutil.which("clang++")
CMAKE = shutil.which("cmake")
SANITIZE = "-fsanitize=address,undefined;-fno-sanitize-recover=all;-O1;-g;-fno-omit-frame-pointer"
FUZZ_SECONDS = 35
FUZZ_CASES = 3000

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CXX is None, reason="no C++ compiler (g++ or clang++): the engine fuzzer needs one"),
    pytest.mark.skipif(CMAKE is None, reason="cmake not found: the engine fuzzer is built with CMake"),
]

# The hostile cases the engine issue lists, each a committed regression file.
LISTED = {
    "int32 overflow in the binary conv's padded geometry": "bconv_pad_int32_overflow",
    "negative dilation in xnor_k": "xnor_k_negative_dilation",
    "padding 12000 with stride 10^6 on a conv": "conv_pad12000_stride1e6",
    "padding 10^5": "conv_pad1e5",
    "avgpool with ceil_mode and padding 600": "avgpool_ceil_pad600",
    "input shapes of 10^9 x 10^9": "input_1e9x1e9",
    "a graph that redefines its input": "redefine_input",
    "any value defined twice": "redefine_value",
    "channel mismatch between producer and consumer": "bconv_in_channels_mismatch",
    "bad groups": "bconv_groups_5",
    "stride 0": "bconv_stride0",
    "strings for ints": "type_kernel_elem_str",
    "floats for ints": "type_kernel_elem_float",
    "nested junk": "type_kernel_nested",
    "unknown ops": "unknown_op",
    "cycles": "cycle_of_two",
    "reads before definition": "read_before_definition",
    "huge concat fan-in": "concat_fanin_1e5",
    "tensors whose bytes lie outside the file": "tensor_offset_end",
    "packed weights with padding bits set": "packed_padding_bits_bconv2d",
}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # the fuzzer's own defaults (__asan_default_options) hold the allocation bound; keep
    # the caller's extra options, never weaken those
    env.pop("ONEBIT_ISA", None)
    env.pop("ONEBIT_NUM_THREADS", None)
    return env


@pytest.fixture(scope="module")
def fuzzer() -> Path:
    """The sanitized standalone fuzzer, built once into build/ and reused by later runs."""
    name = Path(CXX).name
    build = ROOT / "build" / f"fuzz-asan-{name}"
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    if not (build / "CMakeCache.txt").exists():
        cmd = [CMAKE, "-S", str(ROOT), "-B", str(build), *gen, f"-DCMAKE_CXX_COMPILER={CXX}",
               "-DCMAKE_BUILD_TYPE=Release", "-DONEBIT_PYTHON=OFF", "-DONEBIT_BUILD_TESTS=ON",
               f"-DONEBIT_EXTRA_FLAGS={SANITIZE}"]  # fmt: skip
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    jobs = os.environ.get("ONEBIT_BUILD_JOBS", str(min(2, os.cpu_count() or 1)))
    cmd = [CMAKE, "--build", str(build), "--target", "fuzz_engine", "-j", jobs]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stdout[-6000:]}\n{r.stderr[-6000:]}"
    exe = build / "csrc" / "fuzz_engine"
    assert exe.exists(), exe
    return exe


def _run(exe: Path, args: list[str], out: Path, timeout: float) -> str:
    cmd = [str(exe), "--out", str(out), *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env())
    lines = r.stdout.strip().splitlines()
    summary = lines[-1] if lines else ""
    reproducers = sorted(p.name for p in out.glob("*.onebit") if not p.name.startswith("batch-"))
    assert r.returncode == 0 and re.fullmatch(r"\d+ passed, 0 failed", summary) and not reproducers, (
        f"{' '.join(cmd)}: exit {r.returncode}, reproducers in {out}: {reproducers}\n"
        f"{r.stdout[-8000:]}\n{r.stderr[-8000:]}"
    )
    return r.stdout


def test_listed_cases_are_in_the_corpus():
    expected = json.loads((CORPUS / "regress" / "expected.json").read_text())
    for what, name in LISTED.items():
        assert f"{name}.onebit" in expected, f"{what}: {name}.onebit missing from the regression corpus"
        assert expected[f"{name}.onebit"]["expect"] == "format", what
        assert (CORPUS / "regress" / f"{name}.onebit").exists(), name
    assert set(expected) == {p.name for p in (CORPUS / "regress").glob("*.onebit")}


def test_regression_corpus_and_seeds(fuzzer, tmp_path):
    """Every hostile file answers as expected.json says, every seed loads and runs, each in well under 1 s."""
    files = sorted((CORPUS / "regress").glob("*.onebit")) + sorted((CORPUS / "seeds").glob("*.onebit"))
    out = _run(fuzzer, ["--check", "--expect", str(CORPUS / "regress" / "expected.json"), *map(str, files)],
               tmp_path, timeout=300)  # fmt: skip
    assert f"{len(files)} passed, 0 failed" in out
    slowest = re.search(r"slowest ([0-9.]+) s CPU", out)
    assert slowest and float(slowest.group(1)) < 0.5, out[-2000:]


def test_type_sweep(fuzzer, tmp_path):
    """Each JSON value of 3 seeds replaced by a string, float, bool, null, 2^63, -1, '', [], {} or [[{}]]."""
    seeds = [str(CORPUS / "seeds" / f"{n}.onebit") for n in ("grouped", "mixed", "scaled")]
    out = _run(fuzzer, ["--type-sweep", *seeds], tmp_path, timeout=300)
    cases = int(re.search(r"^cases (\d+)", out, re.M).group(1))
    assert cases > 5000, out[-2000:]


def test_structure_aware_mutations(fuzzer, tmp_path):
    """A few thousand mutants of the seeds: loaded, and run at batch 1 and 2 when they load."""
    out = _run(fuzzer, ["--cases", str(FUZZ_CASES), "--time", str(FUZZ_SECONDS), "--seed", "20240611",
                        "--quiet", str(CORPUS / "seeds")], tmp_path, timeout=600)  # fmt: skip
    m = re.search(r"^cases (\d+) in [0-9.]+ s \(\d+/s\): loaded (\d+), ran (\d+)", out, re.M)
    assert m, out[-3000:]
    cases, loaded, ran = map(int, m.groups())
    assert cases >= 1000 and loaded > 0.05 * cases and ran > 0.5 * loaded, out[-3000:]
    print("\n".join(line for line in out.splitlines() if not line.startswith("  ")))
