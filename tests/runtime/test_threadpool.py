"""The engine's thread pool binds its helpers to CPUs as ONEBIT_PIN_THREADS says.

Each case runs in a fresh process: the pool is process-wide and ONEBIT_PIN_THREADS is
read once. A helper is found as a thread that a two-thread call created.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    not os.path.isdir("/proc/self/task") or len(os.sched_getaffinity(0)) < 2,
    reason="needs Linux /proc and at least two CPUs this process may use",
)

# Prints {"main": cpus, "helpers": [cpus, ...]}: the CPU lists of the calling thread and of
# the threads the first two-thread call created.
_PROBE = r"""
import json, os, sys, threading
import numpy as np
os.sched_setaffinity(0, [int(c) for c in sys.argv[1].split(",")])
from onebit.runtime import kernels as K

def cpus(tid):
    with open(f"/proc/self/task/{tid}/status") as f:
        for line in f:
            if line.startswith("Cpus_allowed_list:"):
                return line.split(":", 1)[1].strip()

before = set(os.listdir("/proc/self/task"))
x = np.random.default_rng(0).standard_normal((64, 64, 256)).astype(np.float32)
threads = int(sys.argv[2])
a, b = K.pack_bits(x, num_threads=1), K.pack_bits(x, num_threads=threads)
assert (a == b).all()
new = sorted(set(os.listdir("/proc/self/task")) - before)
print(json.dumps({"main": cpus(threading.get_native_id()), "helpers": [cpus(t) for t in new]}))
"""


def _probe(cpus: list[int], threads: int, pin: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "ONEBIT_PIN_THREADS"}
    env["OPENBLAS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = "1"  # no numpy threads among the new ones
    if pin is not None:
        env["ONEBIT_PIN_THREADS"] = pin
    out = subprocess.run([sys.executable, "-c", _PROBE, ",".join(map(str, cpus)), str(threads)],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "stderr": out.stderr}


def _cpu_list(cpus: list[int]) -> str:
    """The kernel's Cpus_allowed_list spelling: runs of consecutive CPUs as "a-b", joined by ","."""
    runs: list[list[int]] = []
    for c in sorted(cpus):
        if runs and c == runs[-1][1] + 1:
            runs[-1][1] = c
        else:
            runs.append([c, c])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _two_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))[:2]


def test_auto_binds_the_helper_when_the_threads_use_every_cpu():
    cpus = _two_cpus()
    got = _probe(cpus, 2, None)
    assert len(got["helpers"]) == 1, got
    helper = got["helpers"][0]
    assert helper in {str(c) for c in cpus}, got  # one CPU of the process's set
    assert got["main"] == _cpu_list(cpus), got  # the caller's own affinity is not touched


def test_zero_never_binds():
    cpus = _two_cpus()
    got = _probe(cpus, 2, "0")
    assert got["helpers"] == [_cpu_list(cpus)], got


def test_auto_leaves_helpers_free_when_the_process_has_more_cpus_than_threads():
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 3:
        pytest.skip("needs 3 CPUs to run 2 threads on fewer than the process's CPUs; "
                    f"this process has {len(allowed)}")
    got = _probe(allowed[:3], 2, "auto")
    assert got["helpers"] == [_cpu_list(allowed[:3])], got
    got = _probe(allowed[:3], 2, "1")  # always: bound even then
    assert len(got["helpers"]) == 1 and "," not in got["helpers"][0] and "-" not in got["helpers"][0], got


def test_an_unknown_value_is_named_and_auto_is_used():
    got = _probe(_two_cpus(), 2, "yes")
    assert "ONEBIT_PIN_THREADS='yes' is not one of auto, 0, 1" in got["stderr"], got
    assert len(got["helpers"]) == 1 and "," not in got["helpers"][0] and "-" not in got["helpers"][0], got


def test_auto_leaves_helpers_free_when_there_are_more_threads_than_cpus():
    cpus = _two_cpus()
    got = _probe(cpus, 3, None)
    assert got["helpers"] == [_cpu_list(cpus)] * 2, got


def test_one_binds_every_helper_even_with_more_threads_than_cpus():
    cpus = _two_cpus()
    got = _probe(cpus, 3, "1")
    assert len(got["helpers"]) == 2, got
    assert all(h in {str(c) for c in cpus} for h in got["helpers"]), got  # each on one CPU
    assert got["main"] == _cpu_list(cpus), got
