# test_watch.sh — `llmmeter watch` in a real terminal (tmux): while a
# workload spends, the pace ($/min over the last minutes, from watch's own
# samples) and the time to the hard limit appear and change.
. tests/integration/lib.sh
if [ "${SAN:-0}" = 1 ]; then
  echo "skipped under SAN=1: the hosts here are foreign (see test_ledger.sh)"
  exit 0
fi
command -v tmux >/dev/null || { fail watch_tmux_installed "run scripts/deps.sh"; exit 1; }
start_mock || { fail watch_mock_started; exit 1; }
new_budget B
"$LM" init --budget "$B" --limit 2 >/dev/null
S=lmwatch-$$
# A private tmux server (-L): nothing shared with a user's own sessions.
tm() { tmux -L "$S" "$@"; }
tm new-session -d -s w -x 140 -y 45
trap 'tm kill-server 2>/dev/null; touch "$T/stop"; kill $MOCK_PID 2>/dev/null; cleanup_budgets' EXIT
# Typed into the shell as a user would; no ledger, so the pace is watch's.
tm send-keys -t w "unset LLMMETER_LEDGER; '$LM' watch --budget '$B' --interval 0.2" Enter
pace_line() { tm capture-pane -p -t w | grep '^pace '; }
wait_pane() { # wait_pane REGEX [NOT]: until the pace line matches REGEX (and
  # differs from NOT), 20 s at most; prints it
  local l
  for _ in $(seq 1 400); do
    l=$(pace_line)
    if [[ $l =~ $1 ]] && [ "$l" != "${2:-}" ]; then echo "$l"; return 0; fi
    sleep 0.05
  done
  echo "$l"; return 1
}
idle=$(wait_pane 'hard limit')
check watch_shows_pace_before_spend test -n "$idle"
( while [ ! -e "$T/stop" ]; do
    LLMMETER_BUDGET=$B LLMMETER_QUIET=1 LD_PRELOAD=$LIB curl -sS "$MOCK_URL/v1/chat/completions" \
      -H 'X-Mock-Usage: input=100,output=10' -d '{"model":"gpt-4o-mini","messages":[]}' >/dev/null 2>&1
  done ) &
WL=$!
busy='^pace +\$([0-9.]+)/min over the last [0-9ms ]+ \(watch\) +hard limit in ([0-9dhms ]+) \('
a=$(wait_pane "$busy"); check watch_shows_rate_and_time_to_limit test $? = 0
b=$(wait_pane "$busy" "$a"); check watch_pace_changes test $? = 0
touch "$T/stop"; wait "$WL"
echo "first: $a"; echo "later: $b"
[[ $a =~ $busy ]]; ra=${BASH_REMATCH[1]} ea=${BASH_REMATCH[2]}
[[ $b =~ $busy ]]; rb=${BASH_REMATCH[1]} eb=${BASH_REMATCH[2]}
check watch_rate_positive python3 -c "import sys; sys.exit(not (float('$ra') > 0 and float('$rb') > 0))"
check watch_rate_or_eta_moved test "$ra $ea" != "$rb $eb"
# The time to the limit is what is left at the pace shown (to within the
# rounding of the pace and the refreshes between the two readings).
left=$("$LM" status --budget "$B" --json | json_get - "j['remaining_usd']")
check watch_time_to_limit_matches_pace python3 - "$rb" "$eb" "$left" <<'PY'
import re, sys
rate, eta, left = float(sys.argv[1]), sys.argv[2], float(sys.argv[3])
unit = {"d": 86400, "h": 3600, "m": 60, "s": 1}
secs = sum(int(n) * unit[u] for n, u in re.findall(r"(\d+)([dhms])", eta))
want = left / rate * 60
sys.exit(not abs(secs - want) <= max(5, want * 0.2))
PY
tm send-keys -t w C-c
check watch_stops_on_ctrl_c bash -c "for _ in \$(seq 1 100); do [ \"\$(tmux -L '$S' display -p -t w '#{pane_current_command}')\" != llmmeter ] && exit 0; sleep 0.05; done; exit 1"
