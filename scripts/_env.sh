# Sourced by scripts/demo and scripts/test: create or reuse the virtual
# environment and install onebit into it (editable, with its C++ engine).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ONEBIT_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
CONSTRAINTS="$ROOT/requirements/constraints.txt"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[onebit] creating virtual environment $VENV"
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
# Third-party dependencies: installed once, re-checked quickly afterwards.
stamp="$VENV/.onebit-deps-$(cat "$CONSTRAINTS" "$ROOT/requirements/dev.txt" "$ROOT/pyproject.toml" | cksum | cut -d' ' -f1)"
if [ ! -f "$stamp" ]; then
  echo "[onebit] installing dependencies (torch from requirements/constraints.txt)"
  "${PIP[@]}" install --upgrade pip
  "${PIP[@]}" install -c "$CONSTRAINTS" torch torchvision -r "$ROOT/requirements/dev.txt"
  # The core dependencies and the [train] extra of pyproject.toml (onebit itself goes in with --no-deps).
  "${PIP[@]}" install -c "$CONSTRAINTS" numpy pillow rich tqdm matplotlib tensorboard "tomli>=2.0; python_version < '3.11'"
  touch "$stamp"
fi
# onebit itself: editable, rebuilt incrementally (build/ keeps the CMake tree).
echo "[onebit] building and installing onebit"
# scikit-build-core gives `cmake -E capabilities` 5 s and then reports "Could not find CMake".
# A wrapper first on PATH (a pyenv shim here) has taken longer than that on a busy machine,
# so the build sees the real executable: CMake itself says where it is.
CMAKE_DIR="$VENV/cmake-bin"
mkdir -p "$CMAKE_DIR"
printf 'message("${CMAKE_COMMAND}")\n' > "$CMAKE_DIR/where.cmake"
if real_cmake="$(cmake -P "$CMAKE_DIR/where.cmake" 2>&1)" && [ -x "$real_cmake" ]; then
  ln -sf "$real_cmake" "$CMAKE_DIR/cmake"
fi
PATH="$CMAKE_DIR:$PATH" "${PIP[@]}" install -c "$CONSTRAINTS" --no-build-isolation --no-deps -e "$ROOT"
export PATH="$VENV/bin:$PATH"
export ONEBIT_DATA="${ONEBIT_DATA:-$(cd "$ROOT/.." && pwd)/shared/data}"
