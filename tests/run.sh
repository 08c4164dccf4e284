#!/usr/bin/env bash
# tests/run.sh — runs every unit test binary and every integration script,
# counts their PASS:/FAIL: lines and ends with the suite's summary line
# "N passed, N failed". Exits non-zero when anything failed or crashed.
#
# The machines here have two cores and the suite is mostly one process at
# a time, so it runs in two lanes: the long TLS and provider scripts (each
# a self-contained world: its own mocks on ephemeral ports, its own budget
# names) run beside the rest. The scripts whose checks read a clock
# (pacing, rate bursts) run last, alone, so that a busy neighbour cannot
# make them fail. Each test's output is printed whole when it ends.
#
# Environment: BUILD (build or build-san), SAN (1 under sanitizers),
# LM_TEST_FILTER (substring: run only matching test files),
# LM_TEST_LANES=1 (one lane: everything in order, as before).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export BUILD SAN=${SAN:-0}
export LM_ROOT=$PWD
log=$(mktemp -d /tmp/llmmeter-test.XXXXXX)
export LM_TEST_TMP=$log

# The side lane, and the scripts run alone at the end (by file name).
SIDE="test_tls.sh test_tls_baseline.sh test_providers.sh test_hosts.sh"
ALONE="test_pace.sh test_trust.sh"

# Where a test's files live: BASE.out (its output), BASE.rc (its exit
# status, written last: its presence means the test ended).
base_of() { echo "$log/$(echo "$1" | tr '/ ' '__')"; }

# run_one LABEL CMD...: runs one test into its files, then prints its
# output and time.
run_one() {
  local label=$1; shift
  local base; base=$(base_of "$label")
  local t0=$SECONDS
  "$@" >"$base.out" 2>&1
  echo "$?" >"$base.rc"
  echo "== $label"
  cat "$base.out"
  echo "-- $label: $((SECONDS - t0)) s"
}

wanted() { case "$1" in *"${LM_TEST_FILTER:-}"*) return 0 ;; esac; return 1; }
in_list() { case " $2 " in *" $(basename "$1") "*) return 0 ;; esac; return 1; }

main_lane=() side_lane=() alone_lane=()
for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] && wanted "$t" && main_lane+=("$t")
done
for t in tests/integration/test_*.sh; do
  [ -f "$t" ] && wanted "$t" || continue
  if [ "${LM_TEST_LANES:-2}" = 1 ]; then main_lane+=("$t")
  elif in_list "$t" "$SIDE"; then side_lane+=("$t")
  elif in_list "$t" "$ALONE"; then alone_lane+=("$t")
  else main_lane+=("$t"); fi
done

run_lane() {
  local t
  for t in "$@"; do
    case "$t" in *.sh) run_one "$t" bash "$t" ;; *) run_one "$t" "$t" ;; esac
  done
}

# The side lane's output is held in its files and printed after the main
# lane's, so that no two tests' lines interleave.
side_pid=
if [ ${#side_lane[@]} -gt 0 ]; then
  run_lane "${side_lane[@]}" >"$log/side.show" 2>&1 &
  side_pid=$!
fi
run_lane "${main_lane[@]}"
if [ -n "$side_pid" ]; then
  wait "$side_pid"
  cat "$log/side.show"
fi
[ ${#alone_lane[@]} -gt 0 ] && run_lane "${alone_lane[@]}"

# The count, from every test's files: PASS:/FAIL: lines, and a test that
# exited non-zero (or never finished) without naming a failed test.
passed=0; failed=0
for t in "${main_lane[@]}" "${side_lane[@]}" "${alone_lane[@]}"; do
  [ -n "$t" ] || continue
  base=$(base_of "$t")
  p=$(grep -c '^PASS: ' "$base.out" 2>/dev/null); f=$(grep -c '^FAIL: ' "$base.out" 2>/dev/null)
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
  rc=$(cat "$base.rc" 2>/dev/null || echo missing)
  if [ "$rc" != 0 ] && [ "${f:-0}" -eq 0 ]; then
    echo "FAIL: $t exited with status $rc without naming a failed test"
    failed=$((failed + 1))
  fi
done
rm -rf "$log"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
