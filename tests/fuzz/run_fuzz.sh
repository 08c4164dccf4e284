#!/usr/bin/env bash
# tests/fuzz/run_fuzz.sh — runs libFuzzer targets for a fixed time each and
# prints one "PASS: <target>" or "FAIL: <target>" line per target (the
# lines tests/run.sh counts). A failing target leaves its crash input and
# log in $BUILD/fuzz/ and the log tail is shown.
#
# Usage: run_fuzz.sh [target...]   (default: all six)
# A target with its own dictionary (tests/fuzz/<target>.dict) uses it,
# the others llm.dict; fuzz_segment's inputs are kept small (-max_len).
# Environment: BUILD (build), FUZZ_SECONDS (60), FUZZ_JOBS (1);
# FUZZ_SECONDS_<target> overrides FUZZ_SECONDS for one target.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
secs=${FUZZ_SECONDS:-60}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_sse fuzz_extract fuzz_json_scan fuzz_reqscan fuzz_http1 fuzz_segment)
rc=0
for t in "${targets[@]}"; do
  bin="$BUILD/fuzz/$t"
  if [ ! -x "$bin" ]; then
    echo "FAIL: $t (not built: make fuzz-build)"
    rc=1
    continue
  fi
  work="$BUILD/fuzz/corpus/$t"
  log="$BUILD/fuzz/$t.log"
  mkdir -p "$work"
  dict=tests/fuzz/llm.dict
  [ -f "tests/fuzz/$t.dict" ] && dict="tests/fuzz/$t.dict"
  maxlen=65536
  [ "$t" = fuzz_segment ] && maxlen=4096
  tsecs=$secs
  ov="FUZZ_SECONDS_$t"
  [ -n "${!ov:-}" ] && tsecs=${!ov}
  "$bin" -max_total_time="$tsecs" -timeout=10 -rss_limit_mb=2048 \
    -max_len="$maxlen" -print_final_stats=1 \
    -dict="$dict" -artifact_prefix="$BUILD/fuzz/$t-" \
    "$work" "tests/fuzz/corpus/$t" >"$log" 2>&1
  status=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1)
  if [ "$status" -eq 0 ]; then
    echo "PASS: $t (${execs:-?} runs in ${tsecs}s)"
  else
    echo "FAIL: $t (exit $status, log $log)"
    tail -n 30 "$log"
    rc=1
  fi
done
exit $rc
