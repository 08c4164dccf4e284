#!/usr/bin/env bash
# tests/integration/test_fuzz.sh — a short fuzzing pass inside `make test`:
# each libFuzzer target (built by `make fuzz-build`, part of TEST_EXTRA)
# runs for 10 seconds; one PASS:/FAIL: line per target. Longer runs:
# `make fuzz FUZZ_SECONDS=...`.
cd "$(dirname "$0")/../.."
if [ "${SAN:-0}" = 1 ]; then
  # The fuzzers are always built with ASan+UBSan: `make test` ran them.
  echo "skipped under SAN=1: the fuzz targets are sanitized in every build"
  exit 0
fi
BUILD=${BUILD:-build} FUZZ_SECONDS=${LM_FUZZ_SECONDS:-10} \
  exec bash tests/fuzz/run_fuzz.sh
