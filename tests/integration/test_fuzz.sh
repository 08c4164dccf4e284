#!/usr/bin/env bash
# tests/integration/test_fuzz.sh — a short fuzzing pass inside `make test`:
# each libFuzzer target (built by `make fuzz-build`, part of TEST_EXTRA)
# runs for 6 seconds (targets may be named as arguments);
# one PASS:/FAIL: line per target. Longer runs: `make fuzz FUZZ_SECONDS=...`.
cd "$(dirname "$0")/../.."
if [ "${SAN:-0}" = 1 ]; then
  # The fuzzers are always built with ASan+UBSan: `make test` ran them.
  echo "skipped under SAN=1: the fuzz targets are sanitized in every build"
  exit 0
fi
# fuzz_segment gets at most 6 s (its long runs: make fuzz).
secs=${LM_FUZZ_SECONDS:-6}
seg=$((secs < 6 ? secs : 6))
BUILD=${BUILD:-build} FUZZ_SECONDS=$secs FUZZ_SECONDS_fuzz_segment=$seg \
  exec bash tests/fuzz/run_fuzz.sh "$@"
