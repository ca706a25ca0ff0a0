"""Where the installed C library lives, for building C/C++ applications against it.

``cc app.c -I$(python -c 'import onebit.runtime.native as n; print(n.include_dir())')
-L$(python -c '...; print(n.lib_dir())') -lonebit``; see docs/deployment.md.
"""

from __future__ import annotations

import os

__all__ = ["bin_dir", "include_dir", "lib_dir"]

from onebit import _C

# Installed beside the extension module (in editable installs too, where the
# Python sources live elsewhere).
_ROOT = os.path.join(os.path.dirname(os.path.abspath(_C.__file__)), "native")


def _existing(sub: str) -> str:
    path = os.path.join(_ROOT, sub)
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"{path} is missing: this onebit was installed without its C library "
            "(install the wheel, or build it with cmake -S . -B build/native -DONEBIT_PYTHON=OFF)"
        )
    return path


def include_dir() -> str:
    """Folder holding ``onebit.h``."""
    return _existing("include")


def lib_dir() -> str:
    """Folder holding ``libonebit.so`` and ``libonebit.a``."""
    return _existing("lib")


def bin_dir() -> str:
    """Folder holding the ``onebit-run`` program."""
    return _existing("bin")
