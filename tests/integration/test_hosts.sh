# test_hosts.sh — a call is priced by who bills it, and `llmmeter prices`
# answers what a call is charged.
#
# The mock listens on 127.0.0.1; each client reaches it under a provider's
# own host name (curl --resolve HOST:PORT:127.0.0.1, CURLOPT_RESOLVE in
# pycurl, PHP and the C client), so the library sees the URL a real call
# would have. Into fresh budgets, with LLMMETER_LEDGER:
#   hosts     the same model id at two hosts is charged each provider's
#             price exactly (Groq and OpenRouter for openai/gpt-oss-120b,
#             Cerebras and an unknown host for gpt-oss-120b), through the
#             curl CLI, the C client, pycurl and PHP; the ledger and the
#             status rows name the provider;
#   user      the user's LLMMETER_PRICES key wins as written (a slash in
#             it), at every host, and on the Ollama API too ($0 only
#             without a known price);
#   gateway   LLMMETER_ENDPOINTS names the provider behind a proxy;
#   fixtures  for every recorded fixture, replayed at its own host, the
#             ledger's cost of the metered call equals `llmmeter prices
#             --url URL --usage (its tokens)`; where the response reports
#             its own cost (OpenRouter's usage.cost) that is what both the
#             ledger and the budget charge;
#   report    `llmmeter report --by provider|api` over a ledger that mixes
#             lines of the old shape ("provider" held the API) and new ones.
. tests/integration/lib.sh
CLIENT=$PWD/$BUILD/tests/lm_client
PY=/usr/bin/python3
FX=tests/fixtures
start_mock || { fail hosts_mock_started "$(cat "$T/mock.out")"; exit 1; }
if [ "${SAN:-0}" = 1 ]; then
  # As in test_providers.sh: the ASan-built C client gets the ASan runtime
  # first and the sanitized library; foreign hosts the ordinary build.
  export ASAN_OPTIONS=detect_leaks=0
  PRE=$PWD/build/libllmmeter.so
  PRE_CLIENT="$(gcc -print-file-name=libasan.so) $LIB"
else
  PRE=$LIB
  PRE_CLIENT=$LIB
fi
export LLMMETER_QUIET=1
P=$MOCK_PORT
HAVE_PYCURL=0
"$PY" -c 'import pycurl' 2>/dev/null && HAVE_PYCURL=1

cat >"$T/pc.py" <<'PY'
import pycurl, io, sys
url, resolve, body = sys.argv[1:4]
b = io.BytesIO()
c = pycurl.Curl()
c.setopt(c.URL, url)
c.setopt(c.RESOLVE, [resolve])
c.setopt(c.POSTFIELDS, body)
c.setopt(c.HTTPHEADER, sys.argv[4:])
c.setopt(c.WRITEDATA, b)
c.perform()
sys.stdout.buffer.write(b.getvalue())
PY
cat >"$T/pc.php" <<'PHP'
<?php
$c = curl_init($argv[1]);
curl_setopt($c, CURLOPT_RESOLVE, [$argv[2]]);
curl_setopt($c, CURLOPT_POSTFIELDS, $argv[3]);
curl_setopt($c, CURLOPT_HTTPHEADER, array_slice($argv, 4));
curl_setopt($c, CURLOPT_RETURNTRANSFER, true);
$r = curl_exec($c);
fwrite(STDOUT, $r === false ? "" : $r);
PHP

# call CLIENT HOST PATH BODY [HEADER...]: one metered call to
# http://HOST:PORT/PATH, which resolves to the mock; the budget and the
# ledger come from the environment.
call() {
  local who=$1 host=$2 path=$3 body=$4
  shift 4
  local url="http://$host:$P$path" res="$host:$P:127.0.0.1" h hs=()
  for h in "$@"; do hs+=(-H "$h"); done
  case $who in
    curl) LD_PRELOAD=$PRE timeout 30 curl -sS -N --resolve "$res" "${hs[@]}" \
            --data-binary "$body" "$url" >"$T/out" ;;
    c) printf '%s' "$body" >"$T/body"
       LM_CLIENT_RESOLVE=$res LD_PRELOAD=$PRE_CLIENT timeout 30 "$CLIENT" default \
         "$url" "$T/body" "$@" >"$T/out" 2>/dev/null ;;
    pycurl) LD_PRELOAD=$PRE timeout 30 "$PY" "$T/pc.py" "$url" "$res" "$body" "$@" >"$T/out" 2>/dev/null ;;
    php) LD_PRELOAD=$PRE timeout 30 php "$T/pc.php" "$url" "$res" "$body" "$@" >"$T/out" 2>/dev/null ;;
  esac
}
# price_of URL MODEL USAGE: what `llmmeter prices --url` says a call costs
price_of() {
  local m=()
  [ -n "$2" ] && m=("$2")
  "$LM" prices "${m[@]}" --url "$1" --json --usage "$3" | json_get - "j.get('cost_pusd', 'refused')"
}
spent() { status_json "$1" | json_get - "j['spent_pusd']"; }
last_ledger() { tail -1 "$LEDGER" | json_get - "$1"; }

CHAT=/openai/v1/chat/completions
OR_CHAT=/api/v1/chat/completions
USAGE='X-Mock-Usage: input=1000000,output=1000000'
OSS='{"model":"openai/gpt-oss-120b","messages":[{"role":"user","content":"hi"}]}'
OSS_STREAM='{"model":"openai/gpt-oss-120b","stream":true,"stream_options":{"include_usage":true},"messages":[]}'
PLAIN_OSS='{"model":"gpt-oss-120b","messages":[]}'

# --- hosts: the same model id, two providers, four clients ---------------------
# openai/gpt-oss-120b for 1M input + 1M output tokens: Groq $0.15 + $0.60,
# OpenRouter $0.039 + $0.18 (before: both at OpenAI's own $0.039 + $0.18).
GROQ_1M=750000000000
OR_1M=219000000000
expect_eq hosts_prices_url_groq "$(price_of "http://api.groq.com:$P$CHAT" openai/gpt-oss-120b input=1000000,output=1000000)" $GROQ_1M
expect_eq hosts_prices_url_openrouter "$(price_of "https://openrouter.ai$OR_CHAT" openai/gpt-oss-120b input=1000000,output=1000000)" $OR_1M
CLIENTS="curl c php"
[ $HAVE_PYCURL = 1 ] && CLIENTS="$CLIENTS pycurl"
[ $HAVE_PYCURL = 1 ] || echo "note: python3 has no pycurl here; the pycurl client is skipped"
for who in $CLIENTS; do
  new_budget B
  "$LM" init --budget "$B" >/dev/null
  export LLMMETER_BUDGET=$B LEDGER=$T/ledger.$who LLMMETER_LEDGER=$T/ledger.$who
  call "$who" api.groq.com "$CHAT" "$OSS" "$USAGE"
  expect_eq "hosts_${who}_groq_charged_groqs_price" "$(spent "$B")" $GROQ_1M
  expect_eq "hosts_${who}_groq_ledger" "$(last_ledger "j['api'], j['provider'], j['model'], j['cost_pusd']")" \
    "openai-chat groq openai/gpt-oss-120b $GROQ_1M"
  call "$who" openrouter.ai "$OR_CHAT" "$OSS_STREAM" "$USAGE"
  expect_eq "hosts_${who}_openrouter_charged_its_price" "$(spent "$B")" $((GROQ_1M + OR_1M))
  expect_eq "hosts_${who}_openrouter_ledger" "$(last_ledger "j['provider'], j['cost_pusd']")" "openrouter $OR_1M"
  # One status row per model and provider.
  expect_eq "hosts_${who}_status_rows_per_provider" \
    "$(status_json "$B" | json_get - "sorted((r['model'], r['provider'], r['spent_pusd'] if 'spent_pusd' in r else int(r['spent_usd'] * 10**12)) for r in j['models'])")" \
    "[('openai/gpt-oss-120b', 'groq', $GROQ_1M), ('openai/gpt-oss-120b', 'openrouter', $OR_1M)]"
  unset LLMMETER_LEDGER
done
# gpt-oss-120b: Cerebras $0.35 + $0.75; an unknown host speaks the OpenAI
# API, so OpenAI's own $0.039 + $0.18.
new_budget B
"$LM" init --budget "$B" >/dev/null
export LLMMETER_BUDGET=$B
call curl api.cerebras.ai /v1/chat/completions "$PLAIN_OSS" "$USAGE"
expect_eq hosts_cerebras_charged_its_price "$(spent "$B")" 1100000000000
call curl localhost /v1/chat/completions "$PLAIN_OSS" "$USAGE"
expect_eq hosts_unknown_host_charged_the_apis_provider "$(spent "$B")" $((1100000000000 + 219000000000))
expect_eq hosts_prices_agree_cerebras_and_unknown \
  "$(price_of "https://api.cerebras.ai/v1/chat/completions" gpt-oss-120b input=1000000,output=1000000) $(price_of "http://localhost:$P/v1/chat/completions" gpt-oss-120b input=1000000,output=1000000)" \
  "1100000000000 219000000000"
"$LM" status --budget "$B" --prom >"$T/prom"
check hosts_prom_rows_carry_the_provider grep -q '^llmmeter_model_spent_usd{budget="'"$B"'",model="gpt-oss-120b",provider="cerebras"} 1\.10*$' "$T/prom"
"$LM" status --budget "$B" >"$T/table"
check hosts_table_has_a_provider_column grep -qE '^gpt-oss-120b +cerebras +1\.1000 ' "$T/table"
expect_eq hosts_prices_names_provider_and_how \
  "$("$LM" prices openai/gpt-oss-120b --url "https://api.groq.com$CHAT" --json | json_get - "j['provider'], j['provider_by'], j['api'], j['matched_provider']")" \
  "groq host openai-chat groq"
expect_eq hosts_prices_provider_flag \
  "$("$LM" prices gpt-oss-120b --provider cerebras --json --usage input=1000000,output=1000000 | json_get - "j['provider'], j['provider_by'], j['cost_pusd']")" \
  "cerebras caller 1100000000000"
"$LM" prices gpt-4o --url "https://api.groq.com/openai/v1/models" >/dev/null 2>&1
expect_eq hosts_prices_url_that_is_no_llm_call_exit2 "$?" 2

# --- user: LLMMETER_PRICES's exact key wins, as written ------------------------
cat >"$T/prices.json" <<'J'
{"openai/gpt-oss-120b": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06,
                         "litellm_provider": "groq"},
 "llama3.2": {"input_cost_per_token": 1e-07, "output_cost_per_token": 2e-07,
              "litellm_provider": "ollama"}}
J
export LLMMETER_PRICES=$T/prices.json
new_budget B
"$LM" init --budget "$B" >/dev/null
export LLMMETER_BUDGET=$B
# $1 + $2 per Mtok, 1000 + 1000 tokens: 1,000,000,000 + 2,000,000,000
for host in api.groq.com openrouter.ai localhost; do
  call curl $host "$CHAT" "$OSS" 'X-Mock-Usage: input=1000,output=1000'
done
expect_eq user_override_wins_at_every_host "$(spent "$B")" 9000000000
expect_eq user_prices_cli_agrees "$(price_of "http://api.groq.com:$P$CHAT" openai/gpt-oss-120b input=1000,output=1000)" 3000000000
# Ollama: /api/chat (dynamic) and /api/generate (the recorded fixture) are
# charged the user's price for llama3.2; without one they cost $0.
new_budget B
"$LM" init --budget "$B" >/dev/null
export LLMMETER_BUDGET=$B LLMMETER_LEDGER=$T/ledger.ollama LEDGER=$T/ledger.ollama
call curl localhost /api/chat '{"model":"llama3.2","stream":false,"messages":[]}' 'X-Mock-Usage: input=1000,output=100'
expect_eq user_ollama_chat_charged_the_override "$(spent "$B")" $((1000 * 100000 + 100 * 200000))
call curl localhost /api/generate "$(cat $FX/ollama_generate_nonstream.request.json)" 'X-Mock-Fixture: ollama_generate_nonstream'
gen=$(last_ledger "j['cost_pusd'], j['provider'], j['api']")
want=$(price_of "http://localhost:$P/api/generate" llama3.2 "$(last_ledger "'input=%d,output=%d' % (j['tokens']['input'], j['tokens']['output'])")")
expect_eq user_ollama_generate_charged_the_override "$gen" "$want ollama ollama-generate"
check user_ollama_generate_not_free test "$want" -gt 0
unset LLMMETER_PRICES
new_budget B
"$LM" init --budget "$B" >/dev/null
export LLMMETER_BUDGET=$B
call curl localhost /api/generate "$(cat $FX/ollama_generate_nonstream.request.json)" 'X-Mock-Fixture: ollama_generate_nonstream'
expect_eq user_ollama_without_a_price_is_free "$(spent "$B") $(status_json "$B" | json_get - "j['requests'], j['unpriced']")" "0 1 0"
expect_eq user_ollama_prices_cli_free \
  "$("$LM" prices llama3.2 --url "http://localhost:11434/api/generate" --json --usage input=1000,output=100 | json_get - "j['cost_pusd'], j['local']")" "0 True"

# --- gateway: LLMMETER_ENDPOINTS names the provider behind a proxy ----------
export LLMMETER_ENDPOINTS="*://127.0.0.1:*/*=@groq"
new_budget B
"$LM" init --budget "$B" >/dev/null
export LLMMETER_BUDGET=$B LLMMETER_LEDGER=$T/ledger.gw LEDGER=$T/ledger.gw
LD_PRELOAD=$PRE curl -sS "$MOCK_URL/v1/chat/completions" -H "$USAGE" -d "$OSS" -o /dev/null
expect_eq gateway_endpoints_provider_prices "$(spent "$B") $(last_ledger "j['provider']")" "$GROQ_1M groq"
expect_eq gateway_prices_cli_agrees \
  "$("$LM" prices openai/gpt-oss-120b --url "$MOCK_URL/v1/chat/completions" --json --usage input=1000000,output=1000000 | json_get - "j['provider_by'], j['cost_pusd']")" \
  "endpoints $GROQ_1M"
unset LLMMETER_ENDPOINTS LLMMETER_LEDGER

# --- fixtures: the ledger's cost is what `prices --url` says ----------------
# One line per fixture: case|host|path|expected provider|model ("" when the
# URL names it)|reported cost in pUSD or "-".
"$PY" - "$FX" >"$T/plan" <<'PY'
import json, sys, glob, os
from decimal import Decimal
billed = {"azure-openai": "azure", "google-gemini": "google"}
for mf in sorted(glob.glob(os.path.join(sys.argv[1], "*.meta.json"))):
    m = json.load(open(mf), parse_float=Decimal)
    req = json.load(open(mf.replace(".meta.json", ".request.json")))
    host = m["host"].replace("<resource>", "my-resource").split(":")[0]
    model = req.get("model", "") if isinstance(req, dict) else ""
    eu = m.get("expected_usage") or {}
    cost = "%d" % int(Decimal(eu["cost"]) * 10**12) if "cost" in eu else "-"
    print("|".join([m["case"], host, m["url_path"],
                    billed.get(m["provider"], m["provider"]), model, cost]))
PY
nfx=0
while IFS='|' read -r case host path want_provider model reported; do
  nfx=$((nfx + 1))
  new_budget B
  "$LM" init --budget "$B" >/dev/null
  export LLMMETER_BUDGET=$B LLMMETER_LEDGER=$T/ledger.$case LEDGER=$T/ledger.$case
  call c "$host" "$path" "$(cat "$FX/$case.request.json")" "X-Mock-Fixture: $case" 'X-Mock-Chunked: 1' \
    'Content-Type: application/json'
  unset LLMMETER_LEDGER
  check "${case}_one_ledger_line" test "$(wc -l <"$LEDGER")" = 1
  # every part the ledger recorded (audio, images, web searches, ...) goes
  # into --usage, under the same names
  got=$(last_ledger "'%s|%s|%d|%s' % (j.get('provider'), j['outcome'], j['cost_pusd'], ','.join(['%s=%d' % kv for kv in j['tokens'].items()] + (['web_searches=%d' % j['web_searches']] if j.get('web_searches') else [])))")
  IFS='|' read -r gprov goutcome gcost gusage <<<"$got"
  expect_eq "${case}_ledger_names_who_bills" "$gprov" "$want_provider"
  if [ "$reported" != - ] && [ "$goutcome" != failed ]; then
    # The response reports its own cost: that is what the call is charged.
    expect_eq "${case}_charged_the_reported_cost" "$gcost $(spent "$B")" "$reported $reported"
  else
    expect_eq "${case}_ledger_cost_is_prices_url" "$gcost" \
      "$(price_of "http://$host:$P$path" "$model" "$gusage")"
    expect_eq "${case}_budget_charged_the_ledger_cost" "$(spent "$B")" "$gcost"
  fi
  rm -f "/dev/shm/$B"
done <"$T/plan"
expect_eq fixtures_every_fixture_played "$nfx" "$(ls $FX/*.meta.json | wc -l)"

# --- report: old and new ledger lines together ---------------------------
# Lines written before "api" existed held the API in "provider".
cat "$T/ledger.curl" >"$T/mixed"
cat >>"$T/mixed" <<'J'
{"time":"2026-01-02T03:04:05.000Z","pid":1,"budget":"b","agent":"a","provider":"openai-chat","model":"gpt-4o","tokens":{"input":1,"output":1,"cache_read":0,"cache_write":0,"reasoning":0},"cost_usd":0.0000125,"cost_pusd":12500000,"status":200,"duration_ms":1,"outcome":"ok","unpriced":false}
{"time":"2026-01-02T03:04:06.000Z","pid":1,"budget":"b","agent":"a","provider":"anthropic-messages","model":"claude-haiku-4-5","tokens":{"input":1,"output":1,"cache_read":0,"cache_write":0,"reasoning":0},"cost_usd":0.000006,"cost_pusd":6000000,"status":200,"duration_ms":1,"outcome":"ok","unpriced":false}
J
expect_eq report_by_provider_reads_old_lines \
  "$("$LM" report "$T/mixed" --by provider --json | json_get - "sorted((r['key'], r['calls'], r['cost_pusd']) for r in j['rows']), j['skipped_lines']")" \
  "[('?', 2, 18500000), ('groq', 1, $GROQ_1M), ('openrouter', 1, $OR_1M)] 0"
expect_eq report_by_api_reads_old_lines \
  "$("$LM" report "$T/mixed" --by api --json | json_get - "sorted((r['key'], r['calls']) for r in j['rows'])")" \
  "[('anthropic-messages', 1), ('openai-chat', 3)]"
check report_by_provider_table grep -q '^PROVIDER ' <("$LM" report "$T/mixed" --by provider)
