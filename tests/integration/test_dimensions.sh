# test_dimensions.sh — every price the feed carries, end to end: request
# fees, web searches, audio tokens and Perplexity's separately billed
# tokens, from `llmmeter prices --usage` to real libcurl calls through the
# mock (dynamic usage and recorded fixtures) into status, the ledger and
# `llmmeter report`. The figures are the issue's:
#   sonar, no tokens                                   $0.012
#   claude-sonnet-4-5, 1,000 in, 100 out, 2 searches    $0.0245
#   gpt-audio, 1,000 in (800 audio), 100 out            $0.0271
. tests/integration/lib.sh
FX=tests/fixtures
export LLMMETER_QUIET=1

# cost NAME ARGS...: the cost_pusd of `llmmeter prices ARGS --json`.
cost() { "$LM" prices "$@" --json | json_get - "j.get('cost_pusd', 'none')"; }

# --- llmmeter prices --usage ---------------------------------------------------
# Perplexity's request fee: `--provider perplexity sonar` once the CLI names
# providers that way, else the provider prefix of the model name (the same
# price either way).
pp=$("$LM" prices --provider perplexity sonar --usage input=0 --json 2>/dev/null) ||
  pp=$("$LM" prices perplexity/sonar --usage input=0 --json)
expect_eq dims_prices_sonar_request_fee_is_0_012 \
  "$(echo "$pp" | json_get - "j['cost_usd'], j['cost_pusd'], j['price']['request_usd']")" \
  "0.012 12000000000 0.012"
expect_eq dims_prices_sonar_requests_0_has_no_fee \
  "$(cost perplexity/sonar --usage input=1000,requests=0)" 1000000000
expect_eq dims_prices_sonar_fee_per_call \
  "$(cost perplexity/sonar --usage requests=1000)" 12000000000000
expect_eq dims_prices_sonnet_4_5_two_web_searches_0_0245 \
  "$("$LM" prices claude-sonnet-4-5 --json --usage input=1000,output=100,web_searches=2 | json_get - "j['cost_usd'], j['price']['web_search_usd']")" \
  "0.0245 0.01"
expect_eq dims_prices_gpt_audio_800_of_1000_audio_0_0271 \
  "$("$LM" prices gpt-audio --json --usage input=1000,input_audio=800,output=100 | json_get - "j['cost_usd'], j['price']['input_audio_usd_per_mtok'], j['price']['output_audio_usd_per_mtok']")" \
  "0.0271 32.00 64.00"
expect_eq dims_prices_gpt_audio_text_only_is_text_priced \
  "$(cost gpt-audio --usage input=1000,output=100)" 3500000000
check dims_prices_table_names_the_fees \
  bash -c "'$LM' prices perplexity/sonar claude-haiku-4-5 | grep -q 'request  *\\\$0.012 each' &&
           '$LM' prices claude-haiku-4-5 | grep -q 'web_search  *\\\$0.01 each'"
"$LM" prices gpt-audio --usage input=1,bogus=2 >/dev/null 2>"$T/bad.err"; rc=$?
expect_eq dims_prices_unknown_usage_key_exit2_one_line "$rc $(wc -l <"$T/bad.err")" "2 1"
"$LM" prices gpt-audio --usage input=-1 >/dev/null 2>&1; rc=$?
expect_eq dims_prices_negative_count_exit2 "$rc" 2
# An unknown Perplexity model is charged its provider's highest fee too.
expect_eq dims_prices_unknown_perplexity_model_max_fee \
  "$("$LM" prices max:perplexity --json --usage input=0 | json_get - "j['cost_pusd'], j['price']['request_pusd'], j['price']['web_search_pusd']")" \
  "14000000000 14000000000 5000000000"

# --- through the mock: dynamic usage ------------------------------------------
start_mock || { fail dims_mock_started "$(cat "$T/mock.out")"; exit 1; }
if [ "${SAN:-0}" = 1 ]; then
  # curl is a foreign host: it gets the ordinary library (as test_hooks.sh).
  PRE=$PWD/build/libllmmeter.so
else
  PRE=$LIB
fi
L=$T/ledger.jsonl
: >"$L"

# call BUDGET ARGS...: one curl call with the library preloaded.
call() {
  local b=$1; shift
  LLMMETER_BUDGET=$b LLMMETER_LEDGER=$L LD_PRELOAD=$PRE timeout 30 \
    curl -sS -N -o /dev/null "$@"
}

new_budget WS
"$LM" init --budget "$WS" --limit 10 >/dev/null
for stream in true false; do
  call "$WS" "$MOCK_URL/v1/messages" -H 'X-Mock-Usage: input=1000,output=100,web_searches=2' \
    -d "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":200,\"stream\":$stream,\"messages\":[]}"
done
expect_eq dims_anthropic_two_web_searches_charged_0_0245_each \
  "$(status_json "$WS" | json_get - "j['spent_usd'], j['requests'], j['web_searches'], j['tokens']['input'], j['tokens']['output']")" \
  "0.049 2 4 2000 200"
expect_eq dims_anthropic_web_searches_per_model_row \
  "$(status_json "$WS" | json_get - "[(m['model'], m['web_searches']) for m in j['models']]")" \
  "[('claude-sonnet-4-5', 4)]"
expect_eq dims_ledger_line_has_web_searches_and_exact_cost \
  "$(head -1 "$L" | json_get - "j['web_searches'], j['cost_pusd'], j['cost_usd']")" \
  "2 24500000000 0.0245"

new_budget AU
"$LM" init --budget "$AU" --limit 10 >/dev/null
call "$AU" "$MOCK_URL/v1/chat/completions" -H 'X-Mock-Usage: input=1000,input_audio=800,output=100' \
  -d '{"model":"gpt-audio","max_tokens":200,"stream":true,"stream_options":{"include_usage":true},"messages":[]}'
call "$AU" "$MOCK_URL/v1/chat/completions" -H 'X-Mock-Usage: input=1000,input_audio=800,output=100,output_audio=60' \
  -d '{"model":"gpt-audio","max_tokens":200,"messages":[]}'
# 0.0271, then 200 x 2.5 + 800 x 32 + 40 x 10 + 60 x 64 (micro-USD) = 0.03034
expect_eq dims_gpt_audio_audio_tokens_at_audio_prices \
  "$(status_json "$AU" | json_get - "j['spent_pusd'], j['tokens']['input_audio'], j['tokens']['output_audio']")" \
  "57440000000 1600 60"
expect_eq dims_ledger_line_has_audio_parts \
  "$(tail -1 "$L" | json_get - "j['tokens']['input_audio'], j['tokens']['output_audio'], j['cost_pusd']")" \
  "800 60 30340000000"

# --- through the mock: recorded and documented responses ----------------------
# fixture CASE BUDGET PATH: replays a fixture (random chunks) into BUDGET.
fixture() {
  call "$2" "$MOCK_URL$3" -H "X-Mock-Fixture: $1" -H 'X-Mock-Chunked: 1' \
    --data-binary @"$FX/$1.request.json"
}
new_budget PX
"$LM" init --budget "$PX" --limit 10 >/dev/null
fixture perplexity_chat_nonstream_sonar "$PX" /chat/completions
# 14 + 181 tokens at $1/M and one $0.012 call
expect_eq dims_perplexity_sonar_recorded_call_pays_its_fee \
  "$(status_json "$PX" | json_get - "j['spent_pusd'], j['tokens']['input'], j['tokens']['output']")" \
  "12195000000 14 181"
new_budget DR
"$LM" init --budget "$DR" --limit 10 >/dev/null
fixture perplexity_chat_nonstream_deep_research "$DR" /chat/completions
# Perplexity's own breakdown of the recorded usage: $0.59962 (rounded)
expect_eq dims_deep_research_reasoning_citations_searches \
  "$(status_json "$DR" | json_get - "j['spent_usd'], j['tokens']['citation'], j['tokens']['separate_reasoning'], j['tokens']['output'], j['web_searches']")" \
  "0.599617 8014 92431 4240 54"
new_budget WD
"$LM" init --budget "$WD" --limit 10 >/dev/null
fixture anthropic_messages_stream_web_search "$WD" /v1/messages
# Anthropic's documented stream: 10,682 x $3/M + 510 x $15/M + 1 x $0.01
expect_eq dims_anthropic_documented_web_search_stream \
  "$(status_json "$WD" | json_get - "j['spent_pusd'], j['web_searches']")" \
  "49696000000 1"
new_budget GM
"$LM" init --budget "$GM" --limit 10 >/dev/null
fixture gemini_generate_content_nonstream "$GM" /v1beta/models/gemini-2.5-flash:generateContent
# the recorded Gemini call: its 1,917 audio tokens (1,881 cached) at audio
# prices, 15,780 video tokens at text prices (test_price.c works it out)
expect_eq dims_gemini_recorded_audio_at_audio_prices \
  "$(status_json "$GM" | json_get - "j['spent_pusd'], j['tokens']['input_audio'], j['tokens']['input_video']")" \
  "3000940000 1917 15780"

# --- status, prom, report ------------------------------------------------------
st=$(status_json "$DR")
expect_eq dims_status_json_keeps_every_old_token_field \
  "$(echo "$st" | json_get - "[k for k in ('input','output','cache_read','cache_write','reasoning') if k in j['tokens']] == ['input','output','cache_read','cache_write','reasoning'] and list(j['tokens'])[:5]")" \
  "['input', 'output', 'cache_read', 'cache_write', 'reasoning']"
check dims_status_table_names_the_parts \
  bash -c "'$LM' status --budget '$DR' | grep -q '^parts .*citation 8014, separate reasoning 92431, web searches 54'"
check dims_status_prom_counts_web_searches \
  bash -c "'$LM' status --budget '$WS' --prom | grep -q '^llmmeter_web_searches_total{budget=\"$WS\"} 4\$' &&
           '$LM' status --budget '$AU' --prom | grep -q 'llmmeter_tokens_total{budget=\"$AU\",kind=\"input_audio\"} 1600'"
check dims_text_only_status_table_has_no_parts_line \
  bash -c "! '$LM' status --budget '$PX' | grep -q '^parts'"

# The report sums the new fields, and still reads a ledger written before
# them (no parts, no web_searches key): those count as none.
cat >>"$L" <<'EOF'
{"time":"2026-08-01T10:00:00.000Z","pid":1,"budget":"old","agent":"a","provider":"openai-chat","model":"gpt-4o","tokens":{"input":10,"output":5,"cache_read":0,"cache_write":0,"reasoning":0},"cost_usd":0.000075,"cost_pusd":75000000,"status":200,"duration_ms":3,"outcome":"ok","unpriced":false}
EOF
want=$(python3 - "$L" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
print(sum(l["cost_pusd"] for l in lines), len(lines),
      sum(l.get("web_searches", 0) for l in lines),
      sum(l["tokens"].get("input_audio", 0) for l in lines),
      sum(l["tokens"].get("separate_reasoning", 0) for l in lines),
      sum(l["tokens"]["input"] for l in lines))
PY
)
expect_eq dims_report_sums_parts_and_reads_old_lines \
  "$("$LM" report "$L" --json | json_get - "' '.join(str(x) for x in (j['total']['cost_pusd'], j['total']['calls'], j['total']['web_searches'], j['total']['tokens']['input_audio'], j['total']['tokens']['separate_reasoning'], j['total']['tokens']['input']))")" \
  "$want"
expect_eq dims_report_old_line_row \
  "$("$LM" report "$L" --json | json_get - "[(r['calls'], r['cost_pusd'], r['web_searches'], r['tokens']['input_audio']) for r in j['rows'] if r['key'] == 'gpt-4o']")" \
  "[(1, 75000000, 0, 0)]"
check dims_report_table_adds_columns_for_parts \
  bash -c "'$LM' report '$L' | head -1 | grep -q 'INPUT AUDIO.*WEB SEARCHES'"
head -1 "$L" >"$T/text_only.jsonl"
sed -i 's/,"web_searches":[0-9]*//' "$T/text_only.jsonl"
check dims_report_table_of_text_calls_is_unchanged \
  bash -c "'$LM' report '$T/text_only.jsonl' | head -1 | grep -q 'CACHE READ    REASONING\$'"
