#!/usr/bin/env bash
# The engine fuzzer's long run: 100,000+ structure-aware mutants of the seed corpus through the
# loader and run(), under AddressSanitizer + UndefinedBehaviorSanitizer (tests/csrc/fuzz_engine.cc;
# the test suite's short run is tests/csrc/test_fuzz_engine.py).
#
#   benchmarks/fuzz_engine.sh [CASES] [LIBFUZZER_SECONDS]      (defaults: 100000, 0)
#
# 1. The standalone driver (g++, or clang++ without g++), CASES mutants, then the regression
#    corpus and a type sweep over every seed.
# 2. With LIBFUZZER_SECONDS > 0 and clang++ with libFuzzer (Debian: apt-get install clang): the
#    libFuzzer target for that long (coverage-guided, the same custom mutator, a second compiler's
#    sanitizers), its corpus kept in build/fuzz-libfuzzer-corpus for later runs.
#
# Builds are cached under build/ (fuzz-asan-<cxx>, libfuzzer). Failing inputs land in
# build/fuzz-findings/. ONEBIT_BUILD_JOBS sets the build parallelism (default 2). The summary
# at the end has the case count, wall time, crashes, hangs, sanitizer reports and memory peak.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CASES="${1:-100000}"
LF_SECONDS="${2:-0}"
JOBS="${ONEBIT_BUILD_JOBS:-2}"
SAN="-fsanitize=address,undefined;-fno-sanitize-recover=all;-O1;-g;-fno-omit-frame-pointer"
FINDINGS="$ROOT/build/fuzz-findings"
LOGS="$ROOT/build/fuzz-logs"
mkdir -p "$FINDINGS" "$LOGS"
unset ONEBIT_ISA ONEBIT_NUM_THREADS

CXX_BIN="$(command -v g++ || command -v clang++ || true)"
if [[ -z "$CXX_BIN" ]]; then echo "no C++ compiler"; exit 2; fi
BUILD="$ROOT/build/fuzz-asan-$(basename "$CXX_BIN")"
GEN=(); command -v ninja >/dev/null && GEN=(-G Ninja)
if [[ ! -f "$BUILD/CMakeCache.txt" ]]; then
  cmake -S "$ROOT" -B "$BUILD" "${GEN[@]}" -DCMAKE_CXX_COMPILER="$CXX_BIN" -DCMAKE_BUILD_TYPE=Release \
    -DONEBIT_PYTHON=OFF -DONEBIT_BUILD_TESTS=ON "-DONEBIT_EXTRA_FLAGS=$SAN" >/dev/null || exit 2
fi
cmake --build "$BUILD" --target fuzz_engine -j "$JOBS" >"$LOGS/build.log" 2>&1 || { tail -50 "$LOGS/build.log"; exit 2; }
FUZZ="$BUILD/csrc/fuzz_engine"
SEEDS="$ROOT/tests/csrc/corpus/seeds"
REGRESS="$ROOT/tests/csrc/corpus/regress"

status=0
peak_rss() { awk '/Maximum resident set size/ {print $NF / 1024 " MiB"}' "$1"; }
timed() {  # timed LOG CMD...: runs CMD with /usr/bin/time -v when there is one
  local log="$1"; shift
  if [[ -x /usr/bin/time ]]; then /usr/bin/time -v -o "$log.time" "$@"; else "$@"; fi
}

echo "== standalone driver ($CXX_BIN): $CASES mutants"
start=$(date +%s)
timed "$LOGS/standalone" "$FUZZ" --cases "$CASES" --seed "${FUZZ_SEED:-$start}" --out "$FINDINGS" "$SEEDS" \
  >"$LOGS/standalone.log" 2>"$LOGS/standalone.err" || status=1
wall=$(( $(date +%s) - start ))
grep -v '^\.\.\. ' "$LOGS/standalone.log" | head -60
cat "$LOGS/standalone.err" | head -40
echo "wall time ${wall} s; process peak RSS: $(peak_rss "$LOGS/standalone.time" 2>/dev/null)"
reports=$(grep -c -E "ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer" "$LOGS/standalone.err")
echo "sanitizer reports: $reports"

echo "== regression corpus and seeds"
"$FUZZ" --check --out "$FINDINGS" --expect "$REGRESS/expected.json" "$REGRESS" "$SEEDS" >"$LOGS/check.log" 2>&1 || status=1
grep -E "^FAIL|->|passed" "$LOGS/check.log"

echo "== type sweep over every seed"
"$FUZZ" --type-sweep --out "$FINDINGS" "$SEEDS" >"$LOGS/sweep.log" 2>&1 || status=1
tail -4 "$LOGS/sweep.log"

if [[ "$LF_SECONDS" -gt 0 ]]; then
  CLANG="$(command -v clang++ || true)"
  if [[ -z "$CLANG" ]]; then
    echo "== libFuzzer skipped: no clang++ (apt-get install clang)"
  else
    LFB="$ROOT/build/libfuzzer"
    if [[ ! -f "$LFB/CMakeCache.txt" ]]; then
      cmake -S "$ROOT" -B "$LFB" "${GEN[@]}" -DCMAKE_CXX_COMPILER="$CLANG" -DCMAKE_BUILD_TYPE=Release \
        -DONEBIT_PYTHON=OFF -DONEBIT_BUILD_TESTS=ON -DONEBIT_LIBFUZZER=ON \
        "-DONEBIT_EXTRA_FLAGS=-fsanitize=address,undefined,fuzzer-no-link;-fno-sanitize-recover=all;-O1;-g;-fno-omit-frame-pointer" \
        >/dev/null || exit 2
    fi
    cmake --build "$LFB" --target fuzz_engine_libfuzzer -j "$JOBS" >"$LOGS/build-libfuzzer.log" 2>&1 \
      || { tail -50 "$LOGS/build-libfuzzer.log"; exit 2; }
    LFC="$ROOT/build/fuzz-libfuzzer-corpus"
    mkdir -p "$LFC"
    echo "== libFuzzer ($CLANG): $LF_SECONDS s"
    start=$(date +%s)
    # -malloc_limit_mb: the allocation bound for the largest mutant (2 MiB file: 256 + 128 + 64 MiB);
    # -timeout: a case over 10 s is a hang (the target itself aborts past 1 s of CPU time).
    timed "$LOGS/libfuzzer" "$LFB/csrc/fuzz_engine_libfuzzer" "$LFC" "$SEEDS" -max_total_time="$LF_SECONDS" \
      -timeout=10 -rss_limit_mb=4096 -malloc_limit_mb=448 -max_len=2097152 -print_final_stats=1 \
      -artifact_prefix="$FINDINGS/" >"$LOGS/libfuzzer.log" 2>&1 || status=1
    grep -E "^#[0-9]+ +(INITED|DONE|pulse)|Done [0-9]+ runs|stat::|ERROR|runtime error|SUMMARY|crash-|timeout-|oom-" \
      "$LOGS/libfuzzer.log" | tail -25
    echo "wall time $(( $(date +%s) - start )) s; process peak RSS: $(peak_rss "$LOGS/libfuzzer.time" 2>/dev/null)"
  fi
fi

echo "== findings in $FINDINGS:"
ls "$FINDINGS" | grep -v '^batch-' || echo "none"
exit $status
