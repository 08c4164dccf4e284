# lib.sh — helpers for the integration scripts (sourced, not run).
#
# Each check prints one "PASS: name" or "FAIL: name" line; tests/run.sh
# counts them. Scripts run from the repository root with BUILD set.
BUILD=${BUILD:-build}
LM=$PWD/$BUILD/llmmeter
LIB=$PWD/$BUILD/libllmmeter.so
T=${LM_TEST_TMP:-$(mktemp -d)}/$(basename "$0" .sh).$$
mkdir -p "$T"
PREFIX="lmit-$$"
BUDGETS=()

pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1${2:+ — $2}"; }
check() { # check NAME CMD...: passes if CMD succeeds
  local name=$1; shift
  if "$@"; then pass "$name"; else fail "$name"; fi
}
# expect_eq NAME GOT WANT
expect_eq() {
  if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "got '$2', want '$3'"; fi
}
new_budget() { # new_budget VAR: a fresh budget name, removed at exit
  local n="$PREFIX-${#BUDGETS[@]}"
  BUDGETS+=("$n")
  printf -v "$1" '%s' "$n"
}
json_get() { # json_get FILE-OR-- EXPR  (python expression on `j`)
  python3 -c "import json,sys,decimal; f=open(sys.argv[1]) if sys.argv[1]!='-' else sys.stdin; j=json.load(f, parse_float=decimal.Decimal); print($2)" "$1"
}
cleanup_budgets() {
  for b in "${BUDGETS[@]}"; do rm -f "/dev/shm/$b"; done
}
trap cleanup_budgets EXIT

# start_mock [ARGS...]: starts the mock provider on a free loopback port;
# sets MOCK_PORT, MOCK_URL and MOCK_LOG. Waits for its port file (the
# server writes it once it listens), bounded at 10 s.
start_mock() {
  MOCK_LOG=$T/mock.log
  : >"$MOCK_LOG"
  rm -f "$T/mock.port"
  python3 tests/mock/mock_provider.py --port 0 --port-file "$T/mock.port" \
    --log "$MOCK_LOG" --seed 7 "$@" >"$T/mock.out" 2>&1 &
  MOCK_PID=$!
  for _ in $(seq 1 200); do
    [ -s "$T/mock.port" ] && break
    kill -0 "$MOCK_PID" 2>/dev/null || break
    sleep 0.05
  done
  MOCK_PORT=$(cat "$T/mock.port" 2>/dev/null)
  MOCK_URL=http://127.0.0.1:$MOCK_PORT
  trap 'kill $MOCK_PID 2>/dev/null; cleanup_budgets' EXIT
  [ -n "$MOCK_PORT" ]
}
mock_requests() { wc -l <"$MOCK_LOG"; }
# spent_pusd BUDGET / field BUDGET EXPR: read the budget's status
status_json() { "$LM" status --budget "$1" --json; }
