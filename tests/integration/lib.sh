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
