"""The console script, the compiled extension and the light `import onebit`."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from onebit import _C
from onebit.cli import main


def test_extension_builds_and_runs():
    assert _C.popcount64(0) == 0
    assert _C.popcount64(0xFFFF_FFFF_FFFF_FFFF) == 64
    assert _C.popcount64(0b1011) == 3
    assert _C.active_isa() in {"reference", "portable", "avx2", "avx512", "amx", "neon"}
    assert _C.isa_supported("portable")


def test_isa_override_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown instruction set 'sse9'"):
        _C.set_isa("sse9")
    env = {**os.environ, "ONEBIT_ISA": "bogus"}
    r = subprocess.run(
        [sys.executable, "-c", "from onebit import _C; _C.active_isa()"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode != 0 and "unknown instruction set 'bogus'" in r.stderr


def test_console_script_help():
    r = subprocess.run([sys.executable, "-m", "onebit", "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    for cmd in ("summary", "train", "info"):
        assert cmd in r.stdout


def test_import_onebit_does_not_import_torch():
    code = (
        "import sys, onebit; assert 'torch' not in sys.modules, 'torch imported'; print(onebit.__version__)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_cli_info(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "kernel path" in out


def test_cli_summary_unknown_model_is_one_clean_error(capsys):
    assert main(["summary", "no_such_model_xyz"]) == 2
    err = capsys.readouterr().err
    assert "no_such_model_xyz" in err and "Traceback" not in err
