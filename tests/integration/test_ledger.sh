# test_ledger.sh — LLMMETER_LEDGER: one valid JSON line per call from many
# processes at once, sums that equal the budget, denials recorded, no
# secrets; `llmmeter report` sums it by model, agent, provider, API and day
# (test_hosts.sh: by provider across hosts, and ledgers of the old shape).
. tests/integration/lib.sh
if [ "${SAN:-0}" = 1 ]; then
  # Only foreign hosts here (curl, python): under SAN=1 they would run the
  # ordinary library again (see test_hooks.sh), which `make test` covers.
  echo "skipped under SAN=1: no sanitized code runs in this file"
  exit 0
fi
start_mock || { fail ledger_mock_started; exit 1; }
PRE=$LIB
[ "${SAN:-0}" = 1 ] && PRE=$PWD/build/libllmmeter.so # foreign hosts: see test_hooks.sh
new_budget B
"$LM" init --budget "$B" >/dev/null
L=$T/ledger.jsonl
export LLMMETER_BUDGET=$B LLMMETER_LEDGER=$L LLMMETER_QUIET=1
pids=()
for i in $(seq 1 8); do
  ( for j in $(seq 1 20); do
      m=gpt-4o; [ $((j % 2)) = 0 ] && m=gpt-4o-mini
      LLMMETER_AGENT=agent$((i % 2)) LD_PRELOAD=$PRE curl -sS "$MOCK_URL/v1/chat/completions" \
        -H "X-Mock-Usage: input=$((100 * i)),output=$j" -H 'Authorization: Bearer sk-llmmeter-test-SECRET-123' \
        -d "{\"model\":\"$m\",\"stream\":true,\"stream_options\":{\"include_usage\":true},\"messages\":[]}" >/dev/null
    done ) &
  pids+=($!)
done
wait "${pids[@]}"
expect_eq ledger_one_line_per_call "$(wc -l <"$L")" 160
check ledger_every_line_is_json python3 -c "
import json,sys
for l in open('$L'): json.loads(l)"
expect_eq ledger_cost_sum_equals_budget \
  "$(python3 -c "import json; print(sum(json.loads(l)['cost_pusd'] for l in open('$L')))")" \
  "$(status_json "$B" | json_get - "j['spent_pusd']")"
expect_eq ledger_tokens_sum_exact \
  "$(python3 -c "import json; r=[json.loads(l)['tokens'] for l in open('$L')]; print(sum(t['input'] for t in r), sum(t['output'] for t in r))")" \
  "72000 1680"
expect_eq ledger_fields "$(head -1 "$L" | json_get - "sorted(j)")" \
  "['agent', 'api', 'budget', 'cost_pusd', 'cost_usd', 'duration_ms', 'model', 'outcome', 'pid', 'provider', 'reported_model', 'status', 'time', 'tokens', 'unpriced']"
# "api" is the request's shape; "provider" who bills it (the mock on
# 127.0.0.1 is no known host: the API's own provider).
expect_eq ledger_api_and_provider "$(head -1 "$L" | json_get - "j['api'], j['provider']")" "openai-chat openai"
check ledger_never_holds_secrets bash -c "! grep -q 'SECRET' '$L'"

"$LM" report "$L" --json >"$T/r.json"
expect_eq report_total_matches "$(json_get "$T/r.json" "j['total']['cost_pusd'], j['total']['calls']")" \
  "$(status_json "$B" | json_get - "j['spent_pusd'], j['requests']")"
expect_eq report_by_model "$(json_get "$T/r.json" "sorted((r['key'], r['calls']) for r in j['rows'])")" \
  "[('gpt-4o', 80), ('gpt-4o-mini', 80)]"
expect_eq report_by_agent "$("$LM" report "$L" --by agent --json | json_get - "sorted((r['key'], r['calls']) for r in j['rows'])")" \
  "[('agent0', 80), ('agent1', 80)]"
expect_eq report_by_day "$("$LM" report "$L" --by day --json | json_get - "len(j['rows']), j['rows'][0]['key'] == '$(date -u +%F)' or j['rows'][0]['key'] == '$(date -u -d '1 min ago' +%F)'")" "1 True"
expect_eq report_by_provider_and_api "$("$LM" report "$L" --by provider --json | json_get - "[(r['key'], r['calls']) for r in j['rows']]") $("$LM" report "$L" --by api --json | json_get - "[(r['key'], r['calls']) for r in j['rows']]")" \
  "[('openai', 160)] [('openai-chat', 160)]"
check report_table_has_total grep -q '^total ' <("$LM" report "$L")

# Denials are recorded with their reason; the server never saw them.
"$LM" set --budget "$B" --limit 0.0001 >/dev/null
n0=$(mock_requests)
LD_PRELOAD=$PRE curl -sS "$MOCK_URL/v1/chat/completions" -d '{"model":"gpt-4o","messages":[]}' >/dev/null 2>&1
expect_eq ledger_denial_recorded "$(tail -1 "$L" | json_get - "j['outcome'], j['cost_pusd'], 'hard limit' in j['reason']")" "denied 0 True"
expect_eq ledger_denied_not_sent "$(mock_requests)" "$n0"
expect_eq report_counts_denied "$("$LM" report "$L" --json | json_get - "j['total']['denied']")" 1

# A torn last line (a writer mid-append) is skipped, not fatal.
printf '{"time":"2026-' >>"$L"
expect_eq report_skips_partial_line "$("$LM" report "$L" --json 2>/dev/null | json_get - "j['skipped_lines'], j['total']['calls']")" "1 160"
"$LM" report "$T/nonexistent" 2>/dev/null; expect_eq report_missing_file_exit1 "$?" 1
"$LM" report "$L" --by week 2>/dev/null; expect_eq report_bad_by_exit2 "$?" 2
