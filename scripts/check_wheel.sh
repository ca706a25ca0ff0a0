#!/usr/bin/env bash
# Check onebit as people outside this repository get it, in a temporary directory
# (nothing in this checkout, its build/ or its .venv is touched):
#
#   1. a clone of HEAD gets the editable dev install of scripts/_env.sh
#      (pip install --no-build-isolation -e), which keeps its CMake tree in build/<wheel tag>;
#   2. a wheel is built from the same clone (pip wheel, build isolation, as users build it)
#      and must leave that editable tree as it was (no rewritten CMake cache);
#   3. the wheel goes into a clean venv with numpy and Pillow only (--no-deps): no torch,
#      rich, tqdm or matplotlib. `onebit info/inspect/bench/run` and `onebit.runtime` must
#      work there, the recipes must be inside the wheel and found by name, and the training
#      commands must name the [train] extra;
#   4. with --train, the [train] extra is installed too (torch from
#      requirements/constraints.txt; a large download) and `onebit train -c
#      binarynet_mnist_cpu.toml` runs for a few steps from a directory outside any checkout,
#      then the checkpoint is exported and run. ONEBIT_TRAIN_SITE=DIR reuses the [train]
#      packages of an existing site-packages instead (read-only, through a .pth file), e.g.
#      ONEBIT_TRAIN_SITE=.venv/lib/python3.11/site-packages.
#
# Usage: scripts/check_wheel.sh [--train] [--keep]   (about 6 minutes on 2 cores; --train adds
# the torch install). PYTHON picks the interpreter (default python3).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
TRAIN=0
KEEP=0
for a in "$@"; do
  case "$a" in
    --train) TRAIN=1 ;;
    --keep) KEEP=1 ;;
    *) echo "usage: $0 [--train] [--keep]" >&2; exit 2 ;;
  esac
done
WORK="$(mktemp -d "${TMPDIR:-/tmp}/onebit-wheel-check.XXXXXX")"
cleanup() { if [ "$KEEP" = 1 ]; then echo "[check] kept $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT
step() { echo; echo "[check] $*"; }
fail() { echo "[check] FAILED: $*" >&2; exit 1; }
PIPQ=(-m pip --disable-pip-version-check -q)

step "cloning $(git -C "$ROOT" rev-parse --short HEAD) into $WORK/src"
git clone -q "$ROOT" "$WORK/src"
SRC="$WORK/src"

step "editable dev install (what scripts/_env.sh does), without torch"
"$PY" -m venv "$WORK/dev"
"$WORK/dev/bin/python" "${PIPQ[@]}" install -c "$ROOT/requirements/constraints.txt" \
  -r "$ROOT/requirements/dev.txt" numpy pillow
"$WORK/dev/bin/python" "${PIPQ[@]}" install --no-build-isolation --no-deps -e "$SRC"
CACHES=("$SRC"/build/*/CMakeCache.txt)
[ "${#CACHES[@]}" = 1 ] && [ -f "${CACHES[0]}" ] || fail "expected one editable CMake tree, found: ${CACHES[*]}"
before="$(sha256sum "${CACHES[0]}" | cut -d' ' -f1)"
trees_before="$(ls "$SRC/build")"
echo "editable tree: ${CACHES[0]%/CMakeCache.txt}"

step "building the wheel (pip wheel, isolated build environment)"
"$WORK/dev/bin/python" "${PIPQ[@]}" wheel --no-deps -w "$WORK/dist" "$SRC"
WHEEL="$(ls "$WORK"/dist/onebit-*.whl)"
echo "wheel: $(basename "$WHEEL") ($(du -k "$WHEEL" | cut -f1) KiB)"
after="$(sha256sum "${CACHES[0]}" | cut -d' ' -f1)"
[ "$before" = "$after" ] || fail "the wheel build rewrote the editable tree's CMakeCache.txt"
[ "$(ls "$SRC/build")" = "$trees_before" ] || fail "the wheel build left a tree in build/: $(ls "$SRC/build")"
grep -q "$WORK/dev" "${CACHES[0]}" || fail "the editable CMake cache no longer points at its own venv"
echo "editable tree untouched (CMakeCache.txt $before)"
"$WORK/dev/bin/python" -m zipfile -l "$WHEEL" | grep -q "onebit/recipes/binarynet_mnist_cpu.toml" \
  || fail "the wheel has no recipes"
"$WORK/dev/bin/python" -m zipfile -l "$WHEEL" | grep -q "onebit/recipes/experiments/_cifar.toml" \
  || fail "the wheel lacks the experiments' shared bases"

step "clean venv with numpy and Pillow only, the wheel with --no-deps"
"$PY" -m venv "$WORK/user"
U="$WORK/user/bin"
"$U/python" "${PIPQ[@]}" install numpy pillow
"$U/python" "${PIPQ[@]}" install --no-deps "$WHEEL"
for m in torch torchvision rich tqdm matplotlib tensorboard; do
  if "$U/python" -c "import $m" 2>/dev/null; then fail "$m is importable in the clean venv"; fi
done
"$U/python" -m pip list --disable-pip-version-check 2>/dev/null | sed 's/^/  /'
mkdir "$WORK/elsewhere"
cd "$WORK/elsewhere"  # no checkout around: everything must come from the wheel
cp "$ROOT/tests/runtime/golden/mnist_mlp.onebit" model.onebit
"$U/python" - <<'EOF'
import numpy as np
from PIL import Image

img = np.zeros((28, 28), np.uint8)
img[6:22, 12:16] = 255
Image.fromarray(img, "L").save("digit.png")
Image.fromarray(np.stack([img] * 3, -1), "RGB").resize((300, 200)).save("photo.jpg")
EOF
"$U/onebit" info
"$U/onebit" inspect model.onebit | sed -n 1,12p
"$U/onebit" bench model.onebit --runs 20 --threads 1
"$U/onebit" run model.onebit digit.png photo.jpg --top 3
"$U/python" -c "
import numpy as np, onebit.runtime as rt, sys
m = rt.load('model.onebit', num_threads=1)
y = m.run(np.zeros(m.input_shape, np.float32))
assert y.shape == (1, 10) and 'torch' not in sys.modules
print('onebit.runtime without torch: ok', y.shape)
"
resolved="$("$U/onebit" train -c binarynet_mnist_cpu.toml --print-config)"
grep -q '"binarynet_mlp"' <<<"$resolved" || fail "recipe by name not found in the installed package"
echo "recipe binarynet_mnist_cpu.toml found inside the wheel: $("$U/python" -c 'from onebit.training.recipes import find_recipe; print(find_recipe("binarynet_mnist_cpu"))')"
set +e
out="$("$U/onebit" train -c binarynet_mnist_cpu.toml 2>&1)"
rc=$?
set -e
echo "$out"
[ "$rc" = 2 ] && grep -q "pip install 'onebit\[train\]'" <<<"$out" || fail "onebit train without torch: rc=$rc"

if [ "$TRAIN" = 1 ]; then
  step "the [train] extra (torch from requirements/constraints.txt), then a short training run"
  if [ -n "${ONEBIT_TRAIN_SITE:-}" ]; then
    site="$("$U/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    echo "$(cd "$ONEBIT_TRAIN_SITE" && pwd)" > "$site/zz_onebit_train_site.pth"  # after the wheel's onebit
    "$U/python" -c "import onebit, torch; assert onebit.__file__.startswith('$WORK/user'), onebit.__file__"
  else
    "$U/python" "${PIPQ[@]}" install -c "$ROOT/requirements/constraints.txt" "$WHEEL[train]"
  fi
  ONEBIT_DATA="${ONEBIT_DATA:-$(cd "$ROOT/.." && pwd)/shared/data}" ONEBIT_CACHE="$WORK/cache" \
    "$U/onebit" train -c binarynet_mnist_cpu.toml --out-dir "$WORK/runs" \
    --set train.max_steps=30 data.train_subset=3000 data.test_subset=500 train.threads=1 \
    diagnostics.plots=false diagnostics.tensorboard=false
  "$U/onebit" export "$WORK/runs/binarynet_mnist_cpu/last.pt" -o trained.onebit
  "$U/onebit" run trained.onebit digit.png --top 3
fi
step "all checks passed"
