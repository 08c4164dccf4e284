# test_pace.sh — pace and time shared by every process: rate limits that
# pace a swarm (never a burst the provider would answer with 429), a
# deadline and an LLM-time budget that refuse and cut, the soft-limit hook
# run exactly once, and model downgrade above the soft limit.
. tests/integration/lib.sh
if [ "${SAN:-0}" = 1 ]; then
  # Only foreign hosts here (curl, python): under SAN=1 they would run the
  # ordinary library again (see test_hooks.sh), which `make test` covers.
  echo "skipped under SAN=1: no sanitized code runs in this file"
  exit 0
fi
start_mock || { fail pace_mock_started; exit 1; }
PRE=$LIB
[ "${SAN:-0}" = 1 ] && PRE=$PWD/build/libllmmeter.so # foreign hosts: see test_hooks.sh
export LLMMETER_QUIET=1
REQ='{"model":"gpt-4o-mini","max_tokens":20,"messages":[{"role":"user","content":"pace"}]}'
U=$MOCK_URL/v1/chat/completions
arrivals() { # arrival times (s, relative) of requests whose body has $1
  python3 - "$MOCK_LOG" "$1" <<'PY'
import json, sys, datetime
t = [datetime.datetime.fromisoformat(j['time'].replace('Z', '+00:00')).timestamp()
     for j in map(json.loads, open(sys.argv[1])) if sys.argv[2] in j.get('body', '')]
t.sort()
print(' '.join('%.2f' % (x - t[0]) for x in t))
PY
}

# --- 8 processes x 10 calls against --rpm 60 ----------------------------------
new_budget R
"$LM" init --budget "$R" --rpm 60 >/dev/null
RQ='{"model":"gpt-4o-mini","max_tokens":20,"messages":[{"role":"user","content":"rpm-run"}]}'
pids=()
for i in $(seq 1 8); do
  ( fails=0
    for j in $(seq 1 10); do
      LLMMETER_BUDGET=$R LD_PRELOAD=$PRE curl -sS "$U" -H 'X-Mock-Usage: input=10,output=2' -d "$RQ" -o /dev/null || fails=$((fails + 1))
    done
    echo $fails >"$T/rpm.$i" ) &
  pids+=($!)
done
wait "${pids[@]}"
expect_eq rpm_no_call_failed "$(cat "$T"/rpm.* | paste -sd+ | bc)" 0
read -ra at <<<"$(arrivals rpm-run)"
expect_eq rpm_all_80_arrived "${#at[@]}" 80
check rpm_first_60_arrive_at_once python3 -c "import sys; sys.exit(not float('${at[59]}') < 3.0)"
check rpm_other_20_about_one_a_second python3 -c "
a=[float(x) for x in '${at[*]}'.split()][60:]
import sys
# paced: 20 more over ~20 s, none a burst. The bucket refills one call a
# second, so in any stretch of the tail, calls beyond the first number at
# most its length in seconds; 0.5 s is allowed for one process woken late
# beside another woken on time (a loaded machine), never more.
ok = all(j - i <= (a[j] - a[i]) + 1.5 for i in range(len(a)) for j in range(i + 1, len(a)))
sys.exit(not (17.0 <= a[-1] <= 30.0 and ok))"
expect_eq rpm_totals_exact "$(status_json "$R" | json_get - "j['requests'], j['tokens']['input'], j['denied']")" "80 800 0"
check rpm_status_shows_rate grep -q "^rate      rpm [0-9]*/60$" <("$LM" status --budget "$R")
# Past the wait bound a call is refused with a retry-after, not sent. On a
# budget of its own at 1 a minute, after its one call: the bucket above
# refills one call a second, so a machine slow enough to take a second
# between its last paced call and this one would let this one through.
new_budget R1
"$LM" init --budget "$R1" --rpm 1 >/dev/null
LLMMETER_BUDGET=$R1 LD_PRELOAD=$PRE curl -sS "$U" -d "$RQ" -o /dev/null
n0=$(mock_requests)
LLMMETER_BUDGET=$R1 LLMMETER_WAIT_S=0 LLMMETER_QUIET=0 LD_PRELOAD=$PRE curl -sS "$U" -d "$RQ" -o /dev/null 2>"$T/rpm.deny"
check rpm_refused_past_wait_bound grep -q "rate limit rpm 1/min reached.*retry after [0-9]*s" "$T/rpm.deny"
expect_eq rpm_refused_not_sent "$(mock_requests)" "$n0"

# --- tokens per minute ------------------------------------------------------------
new_budget K
"$LM" init --budget "$K" --tpm 1000 >/dev/null
TQ='{"model":"gpt-4o-mini","max_tokens":150,"messages":[{"role":"user","content":"tpm-run"}]}'
# estimate = 150 output + body/3+16 input tokens (~200) => ~5 fit per minute;
# the actual usage (100 tokens) corrects the bucket at settlement.
pids=()
for i in $(seq 1 4); do
  ( for j in 1 2 3; do LLMMETER_BUDGET=$K LD_PRELOAD=$PRE curl -sS "$U" -H 'X-Mock-Usage: input=80,output=20' -d "$TQ" -o /dev/null || echo fail >>"$T/tpm.fail"; done ) &
  pids+=($!)
done
wait "${pids[@]}"
read -ra at <<<"$(arrivals tpm-run)"
expect_eq tpm_all_arrived_none_failed "${#at[@]} $(cat "$T/tpm.fail" 2>/dev/null | wc -l)" "12 0"
check tpm_burst_then_paced python3 -c "
a=[float(x) for x in '${at[*]}'.split()]
import sys
sys.exit(not (a[3] < 2.0 and a[-1] > 3.0))"
expect_eq tpm_totals_exact "$(status_json "$K" | json_get - "j['tokens']['input'] + j['tokens']['output'], j['rates']['tpm']['limit']")" "1200 1000"

# --- a deadline: refuses the next call and cuts a stream in flight --------------
new_budget D
"$LM" init --budget "$D" --for 2s >/dev/null
SQ='{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[]}'
LLMMETER_BUDGET=$D LD_PRELOAD=$PRE curl -sS -N "$U" -H 'X-Mock-Delay-Ms: 400' -H 'X-Mock-Output-Chunks: 20' -d "$SQ" -o "$T/dl.out" 2>/dev/null
expect_eq deadline_cuts_stream_in_flight "$?" 23
LLMMETER_BUDGET=$D LLMMETER_QUIET=0 LD_PRELOAD=$PRE curl -sS "$U" -d "$REQ" -o /dev/null 2>"$T/dl.err"
expect_eq deadline_refuses_next_call "$?" 42
check deadline_reason grep -q "deadline .* has passed" "$T/dl.err"
check deadline_in_status grep -q "^deadline  .* (passed)" <("$LM" status --budget "$D")
"$LM" set --budget "$D" --until 2099-01-01T00:00Z >/dev/null
expect_eq deadline_until_parsed "$(status_json "$D" | json_get - "j['deadline']")" 4070908800

# --- an LLM-time budget ------------------------------------------------------------
new_budget S
"$LM" init --budget "$S" --max-llm-seconds 1 >/dev/null
LLMMETER_BUDGET=$S LD_PRELOAD=$PRE curl -sS -N "$U" -H 'X-Mock-Delay-Ms: 300' -H 'X-Mock-Output-Chunks: 20' -d "$SQ" -o /dev/null 2>/dev/null
expect_eq llm_seconds_cut_stream "$?" 23
LLMMETER_BUDGET=$S LLMMETER_QUIET=0 LD_PRELOAD=$PRE curl -sS "$U" -d "$REQ" -o /dev/null 2>"$T/ls.err"
expect_eq llm_seconds_refuse_next "$?" 42
check llm_seconds_reason grep -q "LLM time budget of 1s is used" "$T/ls.err"
check llm_seconds_counted python3 -c "import sys; sys.exit(not $(status_json "$S" | json_get - "j['llm_seconds']") >= 1.0)"

# --- the soft limit: recorded once, the hook run exactly once ---------------------
new_budget F
"$LM" init --budget "$F" --limit 10 --soft 0.002 --on-soft "cat >$T/soft.json; echo ran >>$T/soft.count" >/dev/null
pids=()
for i in $(seq 1 12); do
  ( for j in 1 2; do LLMMETER_BUDGET=$F LLMMETER_QUIET=0 LLMMETER_LEDGER=$T/f.ledger LD_PRELOAD=$PRE curl -sS "$U" \
      -H 'X-Mock-Usage: input=1000,output=100' -d "$REQ" -o /dev/null 2>>"$T/soft.err.$i"; done ) &
  pids+=($!)
done
wait "${pids[@]}"
for _ in $(seq 1 100); do [ -s "$T/soft.count" ] && [ -s "$T/soft.json" ] && break; sleep 0.05; done
expect_eq soft_hook_ran_exactly_once "$(wc -l <"$T/soft.count" 2>/dev/null)" 1
expect_eq soft_hook_got_status_json "$(json_get "$T/soft.json" "j['budget']")" "$F"
expect_eq soft_one_stderr_line "$(cat "$T"/soft.err.* | grep -c "crossed its soft limit")" 1
expect_eq soft_one_ledger_record "$(grep -c '"outcome":"soft_limit"' "$T/f.ledger")" 1
expect_eq soft_in_status "$(status_json "$F" | json_get - "j['soft_crossed']")" True
expect_eq soft_ledger_event_not_a_call "$("$LM" report "$T/f.ledger" --json | json_get - "j['total']['calls']")" 24

# --- downgrade above the soft limit ---------------------------------------------------
new_budget G
"$LM" init --budget "$G" --soft 0.000001 --downgrade 'gpt-4o=gpt-4o-mini,claude-opus-*=claude-haiku-4-5' >/dev/null
BIG='{"model":"gpt-4o","messages":[{"role":"user","content":"downgrade me"}]}'
SMALL='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"downgrade me"}]}'
LLMMETER_BUDGET=$G LD_PRELOAD=$PRE curl -sS "$U" -H 'X-Mock-Usage: input=100,output=10' -d "$BIG" -o /dev/null  # below soft: as asked
expect_eq downgrade_not_below_soft "$(tail -1 "$MOCK_LOG" | json_get - "json.loads(j['body'])['model']")" gpt-4o
curl -sS "$U" -H 'X-Mock-Usage: input=100,output=10' -d "$SMALL" >"$T/small.plain"
LLMMETER_BUDGET=$G LLMMETER_LEDGER=$T/g.ledger LD_PRELOAD=$PRE curl -sS "$U" -H 'X-Mock-Usage: input=100,output=10' -d "$BIG" >"$T/small.metered"
expect_eq downgrade_seen_by_provider "$(tail -1 "$MOCK_LOG" | json_get - "json.loads(j['body'])['model'], j['headers'].get('Content-Length')")" "gpt-4o-mini $(printf %s "$SMALL" | wc -c)"
check downgrade_response_bytes_unchanged cmp -s "$T/small.plain" "$T/small.metered"
expect_eq downgrade_in_ledger "$(tail -1 "$T/g.ledger" | json_get - "j['model'], j['requested_model']")" "gpt-4o-mini gpt-4o"
DS='{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"downgrade me"}]}'
LLMMETER_BUDGET=$G LD_PRELOAD=$PRE curl -sS -N "$U" -d "$DS" -o /dev/null
expect_eq downgrade_streaming_too "$(tail -1 "$MOCK_LOG" | json_get - "json.loads(j['body'])['model'], json.loads(j['body']).get('stream_options')")" "gpt-4o-mini {'include_usage': True}"
LLMMETER_BUDGET=$G LD_PRELOAD=$PRE curl -sS "$U" -d '{"model":"gpt-4.1","messages":[]}' -o /dev/null
expect_eq downgrade_never_unlisted_model "$(tail -1 "$MOCK_LOG" | json_get - "json.loads(j['body'])['model']")" gpt-4.1
