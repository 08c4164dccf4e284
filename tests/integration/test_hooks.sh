# test_hooks.sh — LD_PRELOAD=libllmmeter.so inside real libcurl programs:
# the curl CLI (serial and -Z), the C test client in every callback
# combination, pycurl (RTLD_LOCAL, libcurl-gnutls) and PHP's curl extension
# (RTLD_DEEPBIND). For each: bytes identical to a run without the library,
# exact tokens and cost, denials that never reach the server, streams cut
# at the limit, and LLMMETER_DENY=http.
. tests/integration/lib.sh
CLIENT=$PWD/$BUILD/tests/lm_client
PY=/usr/bin/python3
start_mock || { fail hooks_mock_started "$(cat "$T/mock.out")"; exit 1; }
if [ "${SAN:-0}" = 1 ]; then
  # Under SAN=1 the C client is itself built with ASan, so the sanitized
  # library runs inside it with the ASan runtime loaded first. Foreign hosts
  # (curl, python, php) are not ASan programs, and preloading the ASan
  # runtime into Debian's curl deadlocks in setlocale before main even
  # without llmmeter: they get the ordinary build of the library.
  export ASAN_OPTIONS=detect_leaks=0
  PRE=$PWD/build/libllmmeter.so
  PRE_CLIENT="$(gcc -print-file-name=libasan.so) $LIB"
  export LLMMETER_LIBRARY=$PRE # what `llmmeter run` preloads
else
  PRE=$LIB
  PRE_CLIENT=$LIB
fi
new_budget B
"$LM" init --budget "$B" --limit 100 >/dev/null
export LLMMETER_BUDGET=$B LLMMETER_QUIET=1
metered() { LD_PRELOAD=$PRE timeout 60 "$@"; }
metered_client() { LD_PRELOAD=$PRE_CLIENT timeout 60 "$@"; }
cost() { "$LM" prices "$1" --json --usage "$2" | json_get - "j['cost_pusd']"; }
snap() { status_json "$B" >"$T/snap.$1"; }
delta() { # delta A B EXPR: EXPR on snapshot B minus snapshot A
  python3 - "$T/snap.$1" "$T/snap.$2" "$3" <<'PY'
import json,sys
a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2]))
def g(j): return eval(sys.argv[3], {'j': j})
x, y = g(a), g(b)
if isinstance(x, dict): print({k: y[k]-x[k] for k in x})
elif isinstance(x, (list, tuple)): print([q-p for p, q in zip(x, y)])
else: print(y - x)
PY
}
TOK="[j['tokens'][k] for k in ('input','output','cache_read','cache_write','reasoning')]"

# --- the curl CLI ----------------------------------------------------------
REQ='{"model":"gpt-4o","messages":[{"role":"user","content":"hello"}]}'
U_CHAT=$MOCK_URL/v1/chat/completions
curl -sS "$MOCK_URL/v1/chat/completions" -H 'X-Mock-Usage: input=1000,output=500' -d "$REQ" >"$T/plain"
snap 0
metered curl -sS "$MOCK_URL/v1/chat/completions" -H 'X-Mock-Usage: input=1000,output=500' -d "$REQ" >"$T/metered"
snap 1
check curl_json_bytes_identical cmp -s "$T/plain" "$T/metered"
expect_eq curl_json_exact_cost "$(delta 0 1 "j['spent_pusd']")" "$(cost gpt-4o input=1000,output=500)"
expect_eq curl_json_exact_tokens "$(delta 0 1 "$TOK")" "[1000, 500, 0, 0, 0]"
expect_eq curl_json_counts_one_request "$(delta 0 1 "j['requests']")" 1
# What is sent is the request target: --request-target (CURLOPT_REQUEST_TARGET)
# names the LLM path while the URL's path is another (it went unmetered)
metered curl -sS "$MOCK_URL/other" --request-target /v1/chat/completions \
  -H 'X-Mock-Usage: input=1000,output=500' -d "$REQ" >"$T/rt.metered"
snap 1t
check curl_request_target_bytes_identical cmp -s "$T/plain" "$T/rt.metered"
expect_eq curl_request_target_metered "$(delta 1 1t "j['requests'], j['spent_pusd']")" "[1, $(cost gpt-4o input=1000,output=500)]"

SREQ='{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}'
curl -sS -N "$MOCK_URL/v1/chat/completions" -H 'X-Mock-Usage: input=321,output=123,cache_read=64,reasoning=20' -d "$SREQ" >"$T/plain"
metered curl -sS -N "$MOCK_URL/v1/chat/completions" -H 'X-Mock-Usage: input=321,output=123,cache_read=64,reasoning=20' -d "$SREQ" >"$T/metered"
snap 2
check curl_openai_stream_bytes_identical cmp -s "$T/plain" "$T/metered"
expect_eq curl_openai_stream_exact_tokens "$(delta 1t 2 "$TOK")" "[321, 123, 64, 0, 20]"
expect_eq curl_openai_stream_exact_cost "$(delta 1t 2 "j['spent_pusd']")" "$(cost gpt-4o-mini input=321,output=123,cache_read=64,reasoning=20)"

AREQ='{"model":"claude-sonnet-4-5","max_tokens":1024,"stream":true,"messages":[{"role":"user","content":"hi"}]}'
curl -sS -N "$MOCK_URL/v1/messages" -H 'X-Mock-Usage: input=5000,output=300,cache_read=1000,cache_write=2000' -d "$AREQ" >"$T/plain"
metered curl -sS -N "$MOCK_URL/v1/messages" -H 'X-Mock-Usage: input=5000,output=300,cache_read=1000,cache_write=2000' -d "$AREQ" >"$T/metered"
snap 3
check curl_anthropic_stream_bytes_identical cmp -s "$T/plain" "$T/metered"
expect_eq curl_anthropic_stream_output_replaced_not_added "$(delta 2 3 "$TOK")" "[5000, 300, 1000, 2000, 0]"
expect_eq curl_anthropic_stream_exact_cost "$(delta 2 3 "j['spent_pusd']")" "$(cost claude-sonnet-4-5 input=5000,output=300,cache_read=1000,cache_write=2000)"

# Base-URL prefixes on any host and port.
for path in /openai/v1/chat/completions /api/v1/chat/completions; do
  snap a
  metered curl -sS "$MOCK_URL$path" -H 'X-Mock-Usage: input=10,output=10' -d "$REQ" >/dev/null
  snap b
  expect_eq "curl_detects_prefix_${path//\//_}" "$(delta a b "j['requests']")" 1
done

# curl -Z: six transfers in parallel through the multi interface.
snap 4
metered curl -sS -Z --parallel-max 6 -H 'X-Mock-Usage: input=100,output=10' -d "$REQ" \
  $(for i in 1 2 3 4 5 6; do echo "$MOCK_URL/v1/chat/completions"; done) >"$T/z" 2>"$T/z.err"
snap 5
expect_eq curl_parallel_Z_counts_every_transfer "$(delta 4 5 "j['requests']")" 6
expect_eq curl_parallel_Z_exact_tokens "$(delta 4 5 "$TOK")" "[600, 60, 0, 0, 0]"

# Non-LLM traffic passes untouched and uncounted.
curl -sS "$MOCK_URL/download?bytes=3000000" | md5sum >"$T/d.plain"
snap 6
metered curl -sS "$MOCK_URL/download?bytes=3000000" | md5sum >"$T/d.metered"
snap 7
check curl_non_llm_bytes_identical cmp -s "$T/d.plain" "$T/d.metered"
expect_eq curl_non_llm_not_counted "$(delta 6 7 "j['requests']")" 0

# --- the C client in every callback combination -----------------------------
FX=tests/fixtures/anthropic_messages_stream
for mode in default wf wf-late hd-only hf header pause dup reset copy read multi twice short curlu; do
  LM_CLIENT_HEADERS=$T/h.plain "$CLIENT" $mode "$MOCK_URL/v1/messages" $FX.request.json \
    'X-Mock-Fixture: anthropic_messages_stream' >"$T/c.plain" 2>"$T/c.plain.err"
  snap c0
  LM_CLIENT_HEADERS=$T/h.metered metered_client "$CLIENT" $mode "$MOCK_URL/v1/messages" $FX.request.json \
    'X-Mock-Fixture: anthropic_messages_stream' >"$T/c.metered" 2>"$T/c.metered.err"
  snap c1
  check "client_${mode}_body_identical" cmp -s <(grep -av '^Date: ' "$T/c.plain") <(grep -av '^Date: ' "$T/c.metered")
  check "client_${mode}_headers_identical" cmp -s <(grep -vi '^date:' "$T/h.plain") <(grep -vi '^date:' "$T/h.metered")
  check "client_${mode}_result_identical" cmp -s "$T/c.plain.err" "$T/c.metered.err"
  case $mode in
    # the program aborts the 200's body at its first callback: the provider
    # bills the call all the same, charged at its estimate (never free)
    short)
      expect_eq client_short_count_abort_charged_estimate "$(delta c0 c1 "j['requests'], j['unmetered'], j['reserved_pusd']")" "[1, 1, 0]"
      check client_short_count_abort_not_free test "$(delta c0 c1 "j['spent_pusd']")" -gt 0 ;;
    twice) expect_eq client_twice_meters_both "$(delta c0 c1 "$TOK")" "[50, 30, 0, 0, 0]" ;;
    *) expect_eq "client_${mode}_tokens_exactly_once" "$(delta c0 c1 "$TOK")" "[25, 15, 0, 0, 0]" ;;
  esac
done
"$CLIENT" default "$MOCK_URL/v1/messages" $FX.request.json 'X-Mock-Fixture: anthropic_messages_stream' 2>/dev/null >"$T/c.fx"
check client_receives_fixture_bytes cmp -s "$T/c.fx" $FX.response

# --- pycurl (RTLD_LOCAL, libcurl-gnutls) and PHP (RTLD_DEEPBIND) -------------
cat >"$T/pc.py" <<PY
import pycurl, io, sys
b = io.BytesIO()
c = pycurl.Curl()
c.setopt(c.URL, "$MOCK_URL/v1/chat/completions")
c.setopt(c.POSTFIELDS, open("$T/req.json").read())
c.setopt(c.HTTPHEADER, ["X-Mock-Usage: input=700,output=70"])
c.setopt(c.WRITEDATA, b)
try:
    c.perform()
    code = c.getinfo(c.RESPONSE_CODE)
except pycurl.error as e:
    code = "error %d" % e.args[0]
sys.stdout.buffer.write(b.getvalue())
sys.stderr.write("code=%s\n" % code)
PY
echo "$SREQ" >"$T/req.json"
$PY "$T/pc.py" >"$T/p.plain" 2>/dev/null
snap p0
metered $PY "$T/pc.py" >"$T/p.metered" 2>"$T/p.err"
snap p1
check pycurl_stream_bytes_identical cmp -s "$T/p.plain" "$T/p.metered"
expect_eq pycurl_metered_exact_tokens "$(delta p0 p1 "$TOK")" "[700, 70, 0, 0, 0]"

cat >"$T/pc.php" <<PHP
<?php
\$c = curl_init("$MOCK_URL/v1/chat/completions");
curl_setopt(\$c, CURLOPT_POSTFIELDS, file_get_contents("$T/req.json"));
curl_setopt(\$c, CURLOPT_HTTPHEADER, ["X-Mock-Usage: input=800,output=80"]);
curl_setopt(\$c, CURLOPT_RETURNTRANSFER, true);
\$r = curl_exec(\$c);
fwrite(STDOUT, \$r === false ? "" : \$r);
fwrite(STDERR, "errno=" . curl_errno(\$c) . " code=" . curl_getinfo(\$c, CURLINFO_HTTP_CODE) . "\n");
PHP
php "$T/pc.php" >"$T/php.plain" 2>/dev/null
snap h0
metered php "$T/pc.php" >"$T/php.metered" 2>"$T/php.err"
snap h1
check php_stream_bytes_identical cmp -s "$T/php.plain" "$T/php.metered"
expect_eq php_metered_exact_tokens "$(delta h0 h1 "$TOK")" "[800, 80, 0, 0, 0]"

# --- several processes at once, one budget -----------------------------------
snap m0
pids=()
for i in $(seq 1 8); do
  ( for j in $(seq 1 10); do
      metered curl -sS "$MOCK_URL/v1/chat/completions" -H "X-Mock-Usage: input=$i,output=$j" -d "$REQ" >/dev/null
    done ) &
  pids+=($!)
done
wait "${pids[@]}"
snap m1
expect_eq parallel_processes_exact_requests "$(delta m0 m1 "j['requests']")" 80
expect_eq parallel_processes_exact_tokens "$(delta m0 m1 "$TOK")" "[360, 440, 0, 0, 0]"

# fork: a child keeps metering into the same budget.
cat >"$T/fork.py" <<PY
import os, pycurl
def call():
    c = pycurl.Curl()
    c.setopt(c.URL, "$MOCK_URL/v1/chat/completions")
    c.setopt(c.POSTFIELDS, '$REQ')
    c.setopt(c.HTTPHEADER, ["X-Mock-Usage: input=11,output=1"])
    c.setopt(c.WRITEFUNCTION, lambda b: None)
    c.perform()
call()
pid = os.fork()
if pid == 0:
    call(); os._exit(0)
os.waitpid(pid, 0)
PY
snap f0
metered $PY "$T/fork.py"
snap f1
expect_eq fork_child_keeps_metering "$(delta f0 f1 "$TOK")" "[22, 2, 0, 0, 0]"

# llmmeter run: an exec'd tree inherits metering; exit codes pass through.
new_budget R
cat >"$T/tree.sh" <<SH
curl -sS '$MOCK_URL/v1/chat/completions' -H 'X-Mock-Usage: input=5,output=5' -d '$REQ' >/dev/null
sh -c "curl -sS '$MOCK_URL/v1/chat/completions' -H 'X-Mock-Usage: input=5,output=5' -d @$T/req1.json >/dev/null"
SH
echo "$REQ" >"$T/req1.json"
"$LM" run --budget "$R" --limit 5 -- bash "$T/tree.sh" 2>"$T/run.err"
expect_eq run_meters_exec_tree "$(status_json "$R" | json_get - "j['requests'], j['limit_usd']")" "2 5.00"
check run_prints_summary grep -q "^llmmeter: spent \$0.000[0-9]* in 2 LLM calls (0 denied); budget '$R'" "$T/run.err"
"$LM" run --budget "$R" --quiet -- sh -c 'exit 7'
expect_eq run_passes_exit_code "$?" 7
"$LM" run --budget "$R" --quiet -- /nonexistent/cmd 2>/dev/null
expect_eq run_command_not_found_127 "$?" 127

# --- enforcement ---------------------------------------------------------------
"$LM" set --budget "$B" --limit 0.000001 >/dev/null  # already spent more
n0=$(mock_requests)
snap d0
metered curl -sS "$MOCK_URL/v1/chat/completions" -d "$REQ" >"$T/denied.out" 2>"$T/denied.err"
rc=$?
expect_eq denied_curl_exit_aborted_by_callback "$rc" 42
# a limit below a cent reads as what it is, never as $0.00
check denied_curl_message_names_budget grep -q "budget '$B': hard limit \$0.000001 reached" "$T/denied.err"
metered_client "$CLIENT" wf "$MOCK_URL/v1/messages" $FX.request.json >/dev/null 2>"$T/denied.c"
check denied_errorbuffer_holds_reason grep -q "^curle=42 http=0 err=llmmeter: budget '$B': hard limit" "$T/denied.c"
metered_client "$CLIENT" multi "$MOCK_URL/v1/messages" $FX.request.json >/dev/null 2>"$T/denied.m"
check denied_multi_completes_with_error grep -q "^curle=42 " "$T/denied.m"
metered $PY "$T/pc.py" >/dev/null 2>"$T/denied.py"
check denied_pycurl_raises grep -q "code=error 42" "$T/denied.py"
metered php "$T/pc.php" >/dev/null 2>"$T/denied.php"
check denied_php_errno grep -q "errno=42 code=0" "$T/denied.php"
LLMMETER_DENY=http metered_client "$CLIENT" wf "$MOCK_URL/v1/chat/completions" "$T/req.json" >"$T/402.body" 2>"$T/402.err"
check deny_http_gives_402 grep -q "^curle=0 http=402 " "$T/402.err"
expect_eq deny_http_body_is_provider_json "$(json_get "$T/402.body" "j['error']['code']")" budget_exceeded
LLMMETER_DENY=http metered php "$T/pc.php" >"$T/402.php" 2>"$T/402.php.err"
check deny_http_php_sees_402 grep -q "errno=0 code=402" "$T/402.php.err"
expect_eq denied_calls_never_reach_server "$(mock_requests)" "$n0"
snap d1
expect_eq denied_calls_counted "$(delta d0 d1 "j['denied'], j['requests'], j['spent_pusd']")" "[7, 0, 0]"

# A stream that crosses the limit is cut mid-way; what arrived is charged.
new_budget C
"$LM" init --budget "$C" --limit 0.05 >/dev/null
BIG='{"model":"claude-sonnet-4-5","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hi"}]}'
curl -sS -N "$MOCK_URL/v1/messages" -H 'X-Mock-Usage: input=100000,output=5000' -d "$BIG" >"$T/cut.plain"
LLMMETER_BUDGET=$C metered curl -sS -N "$MOCK_URL/v1/messages" -H 'X-Mock-Usage: input=100000,output=5000' -d "$BIG" >"$T/cut.metered" 2>/dev/null
rc=$?
expect_eq stream_cut_exit_write_error "$rc" 23
check stream_cut_mid_way test "$(stat -c %s "$T/cut.metered")" -gt 0 -a "$(stat -c %s "$T/cut.metered")" -lt "$(stat -c %s "$T/cut.plain")"
check stream_cut_output_is_prefix cmp -s "$T/cut.metered" <(head -c "$(stat -c %s "$T/cut.metered")" "$T/cut.plain")
expect_eq stream_cut_charges_what_arrived "$(status_json "$C" | json_get - "j['spent_pusd'], j['reserved_pusd']")" "$(cost claude-sonnet-4-5 input=100000,output=1) 0"
LLMMETER_BUDGET=$C LLMMETER_MIDSTREAM=finish metered curl -sS -N "$MOCK_URL/v1/messages" -H 'X-Mock-Usage: input=10,output=5000' -d "$BIG" >/dev/null 2>&1
expect_eq stream_refused_after_limit "$?" 42

# A POST to another URL that 307s into an LLM endpoint (curl -L): libcurl
# would follow it unseen by the meter (it went unmetered past a hard
# limit). Under a hard limit it is refused before the redirected request
# leaves, with one line; without one it passes, warned once.
new_budget RD
"$LM" init --budget "$RD" --limit 5 >/dev/null
RDU="$MOCK_URL/redirect?to=$MOCK_URL/v1/chat/completions&code=307"
n0=$(mock_requests)
LLMMETER_BUDGET=$RD LLMMETER_QUIET=0 metered curl -sS -L "$RDU" -H 'X-Mock-Usage: input=1000,output=500' \
  -d "$REQ" -o /dev/null 2>"$T/rd.err"
expect_eq redirect_into_llm_refused_under_a_hard_limit "$?" 42
check redirect_into_llm_one_line bash -c "[ \$(grep -c 'refused a connection to 127.0.0.1:$MOCK_PORT .*redirected into an LLM endpoint' \"\$1\") = 1 ]" _ "$T/rd.err"
expect_eq redirect_into_llm_never_sent "$(tail -n +$((n0 + 1)) "$MOCK_LOG" | grep -c '"served": *"dynamic')" 0
new_budget RW
"$LM" init --budget "$RW" >/dev/null
n0=$(mock_requests)
LLMMETER_BUDGET=$RW LLMMETER_QUIET=0 metered curl -sS -L "$RDU" -H 'X-Mock-Usage: input=1000,output=500' \
  -d "$REQ" -o "$T/rw.out" 2>"$T/rw.err"
expect_eq redirect_into_llm_passes_without_a_limit "$?" 0
check redirect_into_llm_warned bash -c "grep -q 'NOT metered' \"\$1\"" _ "$T/rw.err"
expect_eq redirect_into_llm_sent_when_let_through "$(tail -n +$((n0 + 1)) "$MOCK_LOG" | grep -c '"served": *"dynamic')" 1

# --- LLMMETER_ENDPOINTS: extra patterns, checked first -------------------------
new_budget E
"$LM" init --budget "$E" >/dev/null
LLMMETER_BUDGET=$E LLMMETER_ENDPOINTS='/llm/gw/*=openai-chat' metered curl -sS "$MOCK_URL/llm/gw/chat" \
  -H 'X-Mock-Fixture: openai_chat_nonstream_reasoning' -d @tests/fixtures/openai_chat_nonstream_reasoning.request.json -o /dev/null
expect_eq endpoints_pattern_metered_with_api "$(status_json "$E" | json_get - "j['requests'], j['tokens']['input'], j['tokens']['output']")" "1 7 87"
LLMMETER_BUDGET=$E LLMMETER_ENDPOINTS='/v1/chat/completions=none' metered curl -sS "$U_CHAT" -d "$REQ" -o /dev/null 2>/dev/null
expect_eq endpoints_none_exempts "$(status_json "$E" | json_get - "j['requests']")" 1

# --- many handles on many threads (pycurl releases the GIL in perform) ------------
cat >"$T/threads.py" <<PY
import pycurl, threading
def worker(n):
    for i in range(5):
        c = pycurl.Curl()
        c.setopt(c.URL, "$MOCK_URL/v1/chat/completions")
        c.setopt(c.POSTFIELDS, '{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[]}')
        c.setopt(c.HTTPHEADER, ["X-Mock-Usage: input=%d,output=%d" % (n + 1, i + 1)])
        c.setopt(c.WRITEFUNCTION, lambda b: None)
        c.perform(); c.close()
ts = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
[t.start() for t in ts]; [t.join() for t in ts]
PY
new_budget TH
"$LM" init --budget "$TH" >/dev/null
LLMMETER_BUDGET=$TH metered $PY "$T/threads.py"
expect_eq threads_many_handles_exact "$(status_json "$TH" | json_get - "j['requests'], j['tokens']['input'], j['tokens']['output'], j['reserved_pusd']")" "40 180 120 0"

# --- the handle outlives an LLM transfer: nothing of ours stays on it --------------
# (found by review: a synthesised 402 status, and our callbacks and body after
# a multi cleaned up without removing the handle)
new_budget H0
"$LM" init --budget "$H0" --limit 0 >/dev/null
LLMMETER_BUDGET=$H0 LLMMETER_DENY=http LM_CLIENT_SECOND_URL=$MOCK_URL/hello metered_client "$CLIENT" wf "$U_CHAT" "$T/req.json" \
  >/dev/null 2>"$T/second.err"
check deny_http_status_not_left_on_handle grep -q "^second=200 curle=0" "$T/second.err"
new_budget H1
"$LM" init --budget "$H1" >/dev/null
LLMMETER_BUDGET=$H1 LM_CLIENT_SECOND_URL=$MOCK_URL/hello metered_client "$CLIENT" multi-noremove "$U_CHAT" "$T/req.json" \
  'X-Mock-Usage: input=3,output=2' >"$T/nr.out" 2>"$T/nr.err"
check multi_cleanup_without_remove_restores_handle grep -q "^second=200 curle=0" "$T/nr.err"
expect_eq multi_cleanup_without_remove_no_body_left "$(tail -1 "$MOCK_LOG" | json_get - "j['method'], j['path'], j['body_len']")" "GET /hello 0"
expect_eq multi_cleanup_without_remove_metered "$(status_json "$H1" | json_get - "j['requests'], j['tokens']['input'], j['reserved_pusd']")" "1 3 0"
new_budget H2
"$LM" init --budget "$H2" >/dev/null
LLMMETER_BUDGET=$H2 metered_client "$CLIENT" multi-noinfo "$U_CHAT" tests/fixtures/openai_chat_stream_no_usage.request.json \
  'X-Mock-Fixture: openai_chat_stream_no_usage' >/dev/null 2>&1
expect_eq multi_without_info_read_is_never_free "$(status_json "$H2" | json_get - "j['requests'], j['unmetered'], j['spent_pusd'] > 0, j['reserved_pusd']")" "1 1 True 0"
