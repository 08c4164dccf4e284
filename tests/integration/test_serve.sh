# test_serve.sh — `llmmeter serve`: /metrics that promtool accepts, scraped
# twice while a workload runs (the values move), /status.json, every budget
# of the user by default, loopback by default, bounded request handling,
# and a clean exit on SIGTERM.
. tests/integration/lib.sh
if [ "${SAN:-0}" = 1 ]; then
  echo "skipped under SAN=1: the hosts here are foreign (see test_ledger.sh)"
  exit 0
fi
command -v promtool >/dev/null || { fail serve_promtool_installed "run scripts/deps.sh"; exit 1; }
start_mock || { fail serve_mock_started; exit 1; }
new_budget B
new_budget B2
"$LM" init --budget "$B" --limit 5 --rpm 100000 >/dev/null
"$LM" init --budget "$B2" --limit 1 >/dev/null

# serve_start ARGS...: starts serve, sets SERVE_PID and ADDR (host:port)
# from its "serving" line, waiting for it at most 10 s.
serve_start() {
  : >"$T/serve.err"
  "$LM" serve "$@" 2>"$T/serve.err" &
  SERVE_PID=$!
  for _ in $(seq 1 200); do
    grep -q serving "$T/serve.err" && break
    kill -0 "$SERVE_PID" 2>/dev/null || break
    sleep 0.05
  done
  ADDR=$(sed -n 's|.*serving http://\([^/]*\)/metrics.*|\1|p' "$T/serve.err")
  [ -n "$ADDR" ]
}
check serve_started serve_start --listen 127.0.0.1:0 --budget "$B"
trap 'kill $SERVE_PID $MOCK_PID $WL_PID 2>/dev/null; cleanup_budgets' EXIT

# A workload that runs until told to stop.
( while [ ! -e "$T/stop" ]; do
    LLMMETER_BUDGET=$B LLMMETER_QUIET=1 LD_PRELOAD=$LIB curl -sS "$MOCK_URL/v1/chat/completions" \
      -H 'X-Mock-Usage: input=1000,output=100' -d '{"model":"gpt-4o","messages":[]}' >/dev/null 2>&1
  done ) &
WL_PID=$!
metric() { # metric FILE NAME: the value of NAME{budget="$B"} in FILE
  sed -n "s/^$2{budget=\"$B\"} //p" "$1"
}
requests_now() { "$LM" status --budget "$B" --json | json_get - "j['requests']"; }
wait_requests() { # wait_requests N: until the budget has N requests, 20 s at most
  for _ in $(seq 1 400); do
    [ "$(requests_now)" -ge "$1" ] && return 0
    sleep 0.05
  done
  return 1
}
wait_requests 2
curl -sS "http://$ADDR/metrics" -D "$T/h1" -o "$T/m1"
r1=$(metric "$T/m1" llmmeter_requests_total)
wait_requests $((r1 + 3))
curl -sS "http://$ADDR/metrics" -o "$T/m2"
check serve_workload_ran_through_both_scrapes kill -0 "$WL_PID"
touch "$T/stop"
wait "$WL_PID"
check serve_metrics_content_type grep -qi '^content-type: text/plain; version=0.0.4' "$T/h1"
for m in m1 m2; do
  check "serve_promtool_check_metrics_$m" bash -c "promtool check metrics <'$T/$m' >'$T/$m.lint' 2>&1"
done
cat "$T/m1.lint" "$T/m2.lint"
expect_eq serve_values_move "$(python3 -c "
from decimal import Decimal as D
a, b = D('$(metric "$T/m1" llmmeter_spent_usd)'), D('$(metric "$T/m2" llmmeter_spent_usd)')
print(b > a > 0, $(metric "$T/m2" llmmeter_requests_total) >= $(metric "$T/m1" llmmeter_requests_total) + 3)")" "True True"
check serve_per_model_rows grep -q "^llmmeter_model_spent_usd{budget=\"$B\",model=\"gpt-4o\"" "$T/m2"
check serve_named_budget_only bash -c "! grep -q 'budget=\"$B2\"' '$T/m2'"
expect_eq serve_status_json "$(curl -sS "http://$ADDR/status.json" | json_get - "[b['budget'] for b in j['budgets']], j['budgets'][0]['requests'] == $(requests_now)")" \
  "['$B'] True"

# Answers: 405 for other methods, 404 for other paths, HEAD without body,
# 431 for a head past 4 KiB, a query string ignored.
expect_eq serve_post_405 "$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://$ADDR/metrics")" 405
expect_eq serve_unknown_404 "$(curl -s -o /dev/null -w '%{http_code}' "http://$ADDR/nope")" 404
expect_eq serve_head_no_body "$(curl -s -I "http://$ADDR/metrics" -o /dev/null -w '%{http_code} %{size_download}')" "200 0"
expect_eq serve_big_head_431 "$(curl -s -o /dev/null -w '%{http_code}' -H "X-Pad: $(head -c 5000 /dev/zero | tr '\0' a)" "http://$ADDR/metrics")" 431
expect_eq serve_query_ignored "$(curl -s -o /dev/null -w '%{http_code}' "http://$ADDR/metrics?x=1")" 200

# Bounded: 40 connections that never send a request hold every slot; a
# scrape still gets its answer once their deadline (5 s) drops them.
python3 - "$ADDR" <<'PY' >"$T/idle.out"
import socket, sys, time, urllib.request
host, port = sys.argv[1].rsplit(":", 1)
idle = [socket.create_connection((host, int(port))) for _ in range(40)]
t0 = time.time()
body = urllib.request.urlopen("http://%s/metrics" % sys.argv[1], timeout=15).read()
print("answered" if b"llmmeter_spent_usd" in body else "no", "%.1f" % (time.time() - t0))
PY
read -r answered secs <"$T/idle.out"
echo "scrape behind 40 idle connections: $answered after ${secs}s"
expect_eq serve_idle_clients_are_dropped "$answered" answered

# SIGTERM: a clean exit (0), and the port is closed.
kill -TERM "$SERVE_PID"
for _ in $(seq 1 100); do kill -0 "$SERVE_PID" 2>/dev/null || break; sleep 0.05; done
wait "$SERVE_PID"; expect_eq serve_sigterm_exit0 "$?" 0
check serve_sigterm_said_stopped grep -q 'serve: stopped' "$T/serve.err"
check serve_port_closed bash -c "! curl -s 'http://$ADDR/metrics' >/dev/null"

# Every budget of the user by default; loopback by default (checked in a
# network namespace of its own, where the default port is surely free).
serve_start --listen 127.0.0.1:0
curl -sS "http://$ADDR/metrics" -o "$T/all"
check serve_every_budget_by_default bash -c "grep -q 'llmmeter_spent_usd{budget=\"$B\"}' '$T/all' && grep -q 'llmmeter_spent_usd{budget=\"$B2\"}' '$T/all'"
check serve_promtool_every_budget bash -c "promtool check metrics <'$T/all'"
kill -TERM "$SERVE_PID"; wait "$SERVE_PID"
if unshare -n true 2>/dev/null; then
  expect_eq serve_default_listen_is_loopback "$(unshare -n bash -c "
    '$LM' serve 2>'$T/def.err' & p=\$!
    for _ in \$(seq 1 100); do grep -q serving '$T/def.err' && break; sleep 0.05; done
    kill -TERM \$p; wait \$p; sed -n 's|.*serving http://\([^/]*\)/.*|\1|p' '$T/def.err'")" "127.0.0.1:9464"
fi
"$LM" serve --listen nonsense 2>/dev/null; expect_eq serve_bad_listen_exit2 "$?" 2
"$LM" serve --bogus 2>/dev/null; expect_eq serve_unknown_flag_exit2 "$?" 2
