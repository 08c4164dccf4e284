# test_trust.sh — a budget users can trust: an unknown model is never free
# by accident (LLMMETER_UNPRICED modes), calls are never locked out by their
# own reservations (they wait for settlements), and per-call caps refuse a
# call before it leaves or cut its stream. Real clients, the real mock.
. tests/integration/lib.sh
if [ "${SAN:-0}" = 1 ]; then
  # Only foreign hosts here (curl, python): under SAN=1 they would run the
  # ordinary library again (see test_hooks.sh), which `make test` covers.
  echo "skipped under SAN=1: no sanitized code runs in this file"
  exit 0
fi
CLIENT=$PWD/$BUILD/tests/lm_client
start_mock || { fail trust_mock_started; exit 1; }
if [ "${SAN:-0}" = 1 ]; then # see test_hooks.sh
  export ASAN_OPTIONS=detect_leaks=0
  PRE=$PWD/build/libllmmeter.so
  PRE_CLIENT="$(gcc -print-file-name=libasan.so) $LIB"
else
  PRE=$LIB; PRE_CLIENT=$LIB
fi
export LLMMETER_QUIET=0
cost() { "$LM" prices "$1" --json --usage "$2" | json_get - "j['cost_pusd']"; }
U=$MOCK_URL/v1/chat/completions

# --- unknown models ---------------------------------------------------------
UNK='{"model":"gpt-mystery-9","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}'
new_budget B
"$LM" init --budget "$B" --limit 50 >/dev/null
LLMMETER_BUDGET=$B LLMMETER_LEDGER=$T/l1 LD_PRELOAD=$PRE curl -sS "$U" "$U" \
  -H 'X-Mock-Usage: input=1000,output=100' -d "$UNK" -o /dev/null -o /dev/null 2>"$T/warn"
expect_eq unpriced_charge_max_exact "$(status_json "$B" | json_get - "j['spent_pusd']")" \
  "$(( 2 * $(cost max:openai input=1000,output=100) ))"
expect_eq unpriced_flagged_in_status "$(status_json "$B" | json_get - "[(m['model'], m['unpriced']) for m in j['models']], j['unpriced']")" \
  "[('gpt-mystery-9', True)] 2"
expect_eq unpriced_flagged_in_ledger "$(json_get "$T/l1" "j['unpriced']" 2>/dev/null || head -1 "$T/l1" | json_get - "j['unpriced']")" True
expect_eq unpriced_warned_once_per_process "$(grep -c "model 'gpt-mystery-9' has no price" "$T/warn")" 1
check unpriced_warning_says_how_to_price grep -q "LLMMETER_PRICES=FILE (LiteLLM format) or LLMMETER_DEFAULT_PRICE=IN,OUT" "$T/warn"

new_budget D
"$LM" init --budget "$D" >/dev/null
n0=$(mock_requests)
LLMMETER_BUDGET=$D LLMMETER_UNPRICED=deny LD_PRELOAD=$PRE curl -sS "$U" -d "$UNK" -o /dev/null 2>"$T/deny"
expect_eq unpriced_deny_refuses "$?" 42
check unpriced_deny_names_model grep -q "model 'gpt-mystery-9' has no price (LLMMETER_UNPRICED=deny)" "$T/deny"
expect_eq unpriced_deny_never_sent "$(mock_requests)" "$n0"
LLMMETER_BUDGET=$D LLMMETER_UNPRICED=free LD_PRELOAD=$PRE curl -sS "$U" -H 'X-Mock-Usage: input=1000,output=100' -d "$UNK" -o /dev/null 2>/dev/null
expect_eq unpriced_free_costs_nothing_but_is_flagged "$(status_json "$D" | json_get - "j['spent_pusd'], j['unpriced'], j['requests']")" "0 1 1"
LLMMETER_BUDGET=$D LLMMETER_DEFAULT_PRICE=2,8 LD_PRELOAD=$PRE curl -sS "$U" -H 'X-Mock-Usage: input=1000,output=100' -d "$UNK" -o /dev/null 2>/dev/null
expect_eq unpriced_default_price_exact "$(status_json "$D" | json_get - "j['spent_pusd'], j['unpriced']")" "$((1000 * 2000000 + 100 * 8000000)) 2"
# A call with no model at all still reserves (and is charged) conservatively.
LLMMETER_BUDGET=$D LD_PRELOAD=$PRE curl -sS "$U" -H 'X-Mock-Usage: input=10,output=10' -d '{"messages":[]}' -o /dev/null 2>/dev/null
check no_model_is_never_free test "$(status_json "$D" | json_get - "j['spent_pusd']")" -gt $((1000 * 2000000 + 100 * 8000000))
# Local models priced at $0 stay exempt from dollar limits (by price).
"$LM" set --budget "$D" --limit 0 >/dev/null
LLMMETER_BUDGET=$D LD_PRELOAD=$PRE curl -sS "$MOCK_URL/api/chat" -H 'X-Mock-Usage: input=10,output=10' \
  -d '{"model":"llama3.2","messages":[]}' -o /dev/null 2>/dev/null
expect_eq zero_priced_local_model_passes_dollar_limit "$?" 0

# --- never locked by its own reservations -----------------------------------
# 16 processes x 3 calls, max_tokens 32000 on claude-sonnet-4-5 (worst case
# ~$0.48 each) costing ~$0.001 each, against $2: at most four worst cases
# fit at once, so the rest must wait for settlements rather than fail.
BURST='{"model":"claude-sonnet-4-5","max_tokens":32000,"stream":true,"messages":[{"role":"user","content":"go"}]}'
each=$(cost claude-sonnet-4-5 input=200,output=27)
burst() { # burst BUDGET MODE WAIT_S -> prints "ok denied"
  local b=$1 pids=() i
  "$LM" init --budget "$b" --limit 2 $2 --force >/dev/null
  for i in $(seq 1 16); do
    ( ok=0
      for j in 1 2 3; do
        LLMMETER_BUDGET=$b LLMMETER_WAIT_S=$3 LLMMETER_QUIET=1 LD_PRELOAD=$PRE timeout 120 curl -sS -N \
          "$MOCK_URL/v1/messages" -H 'X-Mock-Usage: input=200,output=27' -H 'X-Mock-Delay-Ms: 20' \
          -d "$BURST" -o /dev/null 2>/dev/null && ok=$((ok + 1))
      done
      echo $ok >"$T/burst.$b.$i" ) &
    pids+=($!)
  done
  wait "${pids[@]}"
  cat "$T"/burst.$b.* | paste -sd+ | bc
}
new_budget W1
expect_eq burst_optimistic_every_call_succeeds "$(burst "$W1" --optimistic 30)" 48
expect_eq burst_optimistic_total_exact "$(status_json "$W1" | json_get - "j['spent_pusd'], j['reserved_pusd'], j['denied']")" "$((48 * each)) 0 0"
new_budget W2
expect_eq burst_strict_every_call_succeeds "$(burst "$W2" --strict 30)" 48
expect_eq burst_strict_total_exact_no_overshoot "$(status_json "$W2" | json_get - "j['spent_pusd'], j['reserved_pusd'], j['denied'], j['spent_pusd'] <= 2*10**12")" "$((48 * each)) 0 0 True"
new_budget W3
got=$(burst "$W3" --strict 0)
check burst_without_waiting_calls_fail test "$got" -lt 48
# A limit that really is reached denies at once, with no wait.
"$LM" set --budget "$W2" --limit 0.01 >/dev/null
start=$(date +%s%N)
LLMMETER_BUDGET=$W2 LLMMETER_WAIT_S=30 LD_PRELOAD=$PRE curl -sS -N "$MOCK_URL/v1/messages" -d "$BURST" -o /dev/null 2>"$T/reached"
check limit_reached_denies_without_waiting grep -q "hard limit \$0.01 reached" "$T/reached"
check limit_reached_reason_is_not_waiting bash -c "! grep -q 'waited' '$T/reached'"
# And one blocked only by a live reservation says it waited.
new_budget W4
"$LM" init --budget "$W4" --limit 0.8 --strict >/dev/null  # one worst case fits, two do not
h0=$(mock_requests)
LLMMETER_BUDGET=$W4 LD_PRELOAD=$PRE curl -sS -N "$MOCK_URL/v1/messages" -H 'X-Mock-Usage: input=1,output=1' \
  -H 'X-Mock-Delay-Ms: 300' -H 'X-Mock-Output-Chunks: 20' -d "$BURST" -o /dev/null 2>/dev/null &
holder=$!
for _ in $(seq 1 200); do [ "$(status_json "$W4" | json_get - "j['in_flight']")" = 1 ] && break; sleep 0.02; done
LLMMETER_BUDGET=$W4 LLMMETER_WAIT_S=1 LD_PRELOAD=$PRE curl -sS -N "$MOCK_URL/v1/messages" -d "$BURST" -o /dev/null 2>"$T/waited"
check wait_timeout_reason_says_waited grep -q "waited 1s for in-flight calls to settle" "$T/waited"
# The holder's request must have reached the mock before it is killed, or
# a loaded machine lets it arrive later and be counted against the caps.
for _ in $(seq 1 500); do [ "$(mock_requests)" -gt "$h0" ] && break; sleep 0.02; done
kill $holder 2>/dev/null; wait $holder 2>/dev/null

# --- per-call caps --------------------------------------------------------------
new_budget C
"$LM" init --budget "$C" --max-call-usd 0.05 --model-max-call 'gpt-4o*=in:5000' >/dev/null
n0=$(mock_requests)
LLMMETER_BUDGET=$C LD_PRELOAD=$PRE curl -sS "$U" -d '{"model":"gpt-4o","max_tokens":10000,"messages":[]}' -o /dev/null 2>"$T/cap1"
expect_eq cap_usd_refuses_before_sending "$?" 42
check cap_usd_reason_names_cap grep -q "per-call cap \$0.0500 exceeded" "$T/cap1"
LLMMETER_BUDGET=$C LLMMETER_MAX_CALL_OUTPUT_TOKENS=500 LD_PRELOAD=$PRE curl -sS "$U" -d '{"model":"gpt-4o","max_tokens":1000,"messages":[]}' -o /dev/null 2>"$T/cap2"
check cap_env_output_tokens_refuses grep -q "per-call output-token cap 500 exceeded (1000)" "$T/cap2"
head -c 30000 /dev/zero | tr '\0' 'a' >"$T/long"
python3 -c "import json; print(json.dumps({'model':'gpt-4o-mini','max_tokens':10,'messages':[{'role':'user','content':open('$T/long').read()}]}))" >"$T/long.json"
LLMMETER_BUDGET=$C LD_PRELOAD=$PRE curl -sS "$U" -d @"$T/long.json" -o /dev/null 2>"$T/cap3"
check cap_model_rule_input_tokens_refuses grep -q "per-call input-token cap 5000 for gpt-4o\* exceeded" "$T/cap3"
expect_eq caps_refused_calls_never_sent "$(mock_requests)" "$n0"
# A stream whose final usage crosses a cap was generated and billed
# whole: cutting it then would save nothing, so it is delivered (exit 0).
LLMMETER_BUDGET=$C LD_PRELOAD=$PRE curl -sS -N "$U" -H 'X-Mock-Usage: input=9000,output=5' \
  -d '{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"max_tokens":10,"messages":[]}' -o "$T/cut1" 2>"$T/cap4"
expect_eq cap_crossed_by_final_usage_is_delivered "$?" 0
check cap_crossed_by_final_usage_ends_with_done grep -q '^data: \[DONE\]' "$T/cut1"
# Mid-stream: Anthropic's message_start already carries the prompt's cost,
# which crosses the cap while the answer is still being generated: cut.
"$LM" set --budget "$C" --max-call-usd 0.02 >/dev/null
LLMMETER_BUDGET=$C LD_PRELOAD=$PRE curl -sS -N "$MOCK_URL/v1/messages" -H 'X-Mock-Usage: input=100000,output=5000' \
  -H 'X-Mock-Output-Chunks: 20' -d '{"model":"claude-haiku-4-5","stream":true,"max_tokens":100,"messages":[]}' -o "$T/cut2" 2>"$T/cap5"
expect_eq cap_usd_crossed_mid_stream_cuts "$?" 23
check cap_cut_reason grep -q "per-call cap \$0.0200 exceeded (call costs \$0.1000) mid-stream" "$T/cap5"
LLMMETER_BUDGET=$C LLMMETER_MIDSTREAM=finish LD_PRELOAD=$PRE curl -sS -N "$MOCK_URL/v1/messages" -H 'X-Mock-Usage: input=100000,output=5000' \
  -d '{"model":"claude-haiku-4-5","stream":true,"max_tokens":100,"messages":[]}' -o /dev/null 2>/dev/null
expect_eq cap_midstream_finish_lets_it_complete "$?" 0
"$LM" set --budget "$C" --max-call-usd none --model-max-call 'gpt-4o*=none' >/dev/null
expect_eq caps_removed "$(status_json "$C" | json_get - "j['max_call_usd'], j['limits']")" "None []"
