#!/usr/bin/env bash
# tests/run.sh — runs every unit test binary and every integration script,
# counts their PASS:/FAIL: lines and ends with the suite's summary line
# "N passed, N failed". Exits non-zero when anything failed or crashed.
#
# Environment: BUILD (build or build-san), SAN (1 under sanitizers),
# LM_TEST_FILTER (substring: run only matching test files).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export BUILD SAN=${SAN:-0}
export LM_ROOT=$PWD
log=$(mktemp -d /tmp/llmmeter-test.XXXXXX)
export LM_TEST_TMP=$log
passed=0; failed=0; crashed=0

run_one() {  # $1 label, rest: command
  local label=$1; shift
  local out="$log/$(echo "$label" | tr '/ ' '__').out"
  local t0=$SECONDS
  "$@" >"$out" 2>&1
  local rc=$?
  cat "$out"
  echo "-- $label: $((SECONDS - t0)) s"
  local p f
  p=$(grep -c '^PASS: ' "$out"); f=$(grep -c '^FAIL: ' "$out")
  passed=$((passed + p)); failed=$((failed + f))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    echo "FAIL: $label exited with status $rc without naming a failed test"
    failed=$((failed + 1)); crashed=1
  fi
}

for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] || continue
  case "$t" in *"${LM_TEST_FILTER:-}"*) ;; *) continue ;; esac
  echo "== $t"
  run_one "$t" "$t"
done
for t in tests/integration/test_*.sh; do
  [ -f "$t" ] || continue
  case "$t" in *"${LM_TEST_FILTER:-}"*) ;; *) continue ;; esac
  echo "== $t"
  run_one "$t" bash "$t"
done
rm -rf "$log"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
