#!/usr/bin/env bash
# tests/integration/test_fuzz.sh — a short fuzzing pass inside `make test`:
# each libFuzzer target (built by `make fuzz-build`, part of TEST_EXTRA)
# runs for 10 seconds; one PASS:/FAIL: line per target. Longer runs:
# `make fuzz FUZZ_SECONDS=...`.
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build} FUZZ_SECONDS=${LM_FUZZ_SECONDS:-10} \
  exec bash tests/fuzz/run_fuzz.sh
