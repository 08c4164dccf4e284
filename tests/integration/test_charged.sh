# test_charged.sh — charge what was delivered, deliver what was charged.
#
# A call whose final usage crosses the hard limit was already generated
# and billed: it completes byte for byte (exit 0) and only the next call is
# refused, before it leaves. A stream whose running total crosses the limit
# before its end is still cut: the bytes received are a prefix of the full
# response and what arrived is charged. Through the curl CLI, the C client
# in every callback mode, pycurl and PHP, against the mock.
. tests/integration/lib.sh
CLIENT=$PWD/$BUILD/tests/lm_client
PY=/usr/bin/python3
start_mock || { fail charged_mock_started; exit 1; }
if [ "${SAN:-0}" = 1 ]; then
  export ASAN_OPTIONS=detect_leaks=0
  PRE=$PWD/build/libllmmeter.so # foreign hosts: see test_hooks.sh
  PRE_CLIENT="$(gcc -print-file-name=libasan.so) $LIB"
else
  PRE=$LIB
  PRE_CLIENT=$LIB
fi
export LLMMETER_QUIET=1
cost() { "$LM" prices "$1" --json --usage "$2" | json_get - "j['cost_pusd']"; }
spent() { status_json "$1" | json_get - "j['spent_pusd'], j['reserved_pusd']"; }

JREQ='{"model":"gpt-4o","messages":[{"role":"user","content":"hello"}]}'
SREQ='{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}'
USAGE='X-Mock-Usage: input=1000,output=500'
ONE=$(cost gpt-4o input=1000,output=500) # $0.0075: one call
U=$MOCK_URL/v1/chat/completions

# fresh VAR: a budget of $0.001, which the first call's final usage crosses
fresh() {
  new_budget "$1"
  "$LM" init --budget "${!1}" --limit 0.001 >/dev/null
}

# after_first NAME BUDGET N0: the second call was refused and never sent,
# and the overshoot is exactly the one call that was delivered
after_first() {
  expect_eq "${1}_next_call_never_sent" "$(mock_requests)" "$3"
  expect_eq "${1}_charged_the_one_call" "$(spent "$2")" "$ONE 0"
}

# --- the curl CLI: a JSON body and a stream ---------------------------------
for kind in json stream; do
  req=$JREQ; [ $kind = stream ] && req=$SREQ
  curl -sS -N "$U" -H "$USAGE" -d "$req" >"$T/curl.$kind.plain"
  fresh B
  LLMMETER_BUDGET=$B LD_PRELOAD=$PRE curl -sS -N "$U" -H "$USAGE" -d "$req" >"$T/curl.$kind.metered"
  expect_eq "curl_${kind}_crossing_call_exit_0" "$?" 0
  check "curl_${kind}_crossing_call_bytes_identical" cmp -s "$T/curl.$kind.plain" "$T/curl.$kind.metered"
  n0=$(mock_requests)
  LLMMETER_BUDGET=$B LD_PRELOAD=$PRE curl -sS -N "$U" -H "$USAGE" -d "$req" -o /dev/null 2>/dev/null
  expect_eq "curl_${kind}_next_call_refused" "$?" 42
  after_first "curl_$kind" "$B" "$n0"
done

# --- the C client in every callback mode --------------------------------------
echo "$SREQ" >"$T/sreq.json"
for mode in default wf wf-late hd-only hf header pause dup reset copy read multi; do
  "$CLIENT" $mode "$U" "$T/sreq.json" "$USAGE" >"$T/c.plain" 2>"$T/c.plain.err"
  fresh C
  LLMMETER_BUDGET=$C LD_PRELOAD=$PRE_CLIENT timeout 60 "$CLIENT" $mode "$U" "$T/sreq.json" "$USAGE" \
    >"$T/c.metered" 2>"$T/c.metered.err"
  check "client_${mode}_crossing_call_completes" cmp -s "$T/c.plain.err" "$T/c.metered.err"
  check "client_${mode}_crossing_call_bytes_identical" cmp -s <(grep -av '^Date: ' "$T/c.plain") <(grep -av '^Date: ' "$T/c.metered")
  n0=$(mock_requests)
  LLMMETER_BUDGET=$C LD_PRELOAD=$PRE_CLIENT timeout 60 "$CLIENT" $mode "$U" "$T/sreq.json" "$USAGE" \
    >/dev/null 2>"$T/c.denied.err"
  check "client_${mode}_next_call_refused" grep -q '^curle=42 ' "$T/c.denied.err"
  after_first "client_$mode" "$C" "$n0"
done

# --- pycurl and PHP ---------------------------------------------------------------
cat >"$T/pc.py" <<PY
import pycurl, io, sys
b = io.BytesIO()
c = pycurl.Curl()
c.setopt(c.URL, "$U")
c.setopt(c.POSTFIELDS, sys.argv[1])
c.setopt(c.HTTPHEADER, ["$USAGE"])
c.setopt(c.WRITEDATA, b)
try:
    c.perform()
    code = c.getinfo(c.RESPONSE_CODE)
except pycurl.error as e:
    code = "error %d" % e.args[0]
sys.stdout.buffer.write(b.getvalue())
sys.stderr.write("code=%s\n" % code)
PY
cat >"$T/pc.php" <<'PHP'
<?php
$c = curl_init(getenv("URL"));
curl_setopt($c, CURLOPT_POSTFIELDS, $argv[1]);
curl_setopt($c, CURLOPT_HTTPHEADER, [getenv("USAGE")]);
curl_setopt($c, CURLOPT_RETURNTRANSFER, true);
$out = curl_exec($c);
fwrite(STDOUT, $out === false ? "" : $out);
fwrite(STDERR, "errno=" . curl_errno($c) . " code=" . curl_getinfo($c, CURLINFO_RESPONSE_CODE) . "\n");
PHP
for host in pycurl php; do
  for kind in json stream; do
    req=$JREQ; [ $kind = stream ] && req=$SREQ
    if [ $host = pycurl ]; then run=("$PY" "$T/pc.py"); ok="code=200"; refused="code=error 42"
    else run=(php "$T/pc.php"); ok="errno=0 code=200"; refused="errno=42 code=0"; fi
    URL=$U USAGE=$USAGE "${run[@]}" "$req" >"$T/$host.plain" 2>/dev/null
    fresh H
    LLMMETER_BUDGET=$H URL=$U USAGE=$USAGE LD_PRELOAD=$PRE timeout 60 "${run[@]}" "$req" >"$T/$host.metered" 2>"$T/$host.err"
    check "${host}_${kind}_crossing_call_completes" grep -q "^$ok\$" "$T/$host.err"
    check "${host}_${kind}_crossing_call_bytes_identical" cmp -s "$T/$host.plain" "$T/$host.metered"
    n0=$(mock_requests)
    LLMMETER_BUDGET=$H URL=$U USAGE=$USAGE LD_PRELOAD=$PRE timeout 60 "${run[@]}" "$req" >/dev/null 2>"$T/$host.denied"
    check "${host}_${kind}_next_call_refused" grep -q "^$refused\$" "$T/$host.denied"
    after_first "${host}_$kind" "$H" "$n0"
  done
done

# --- streams whose running total crosses before the end are still cut ---------
# Anthropic: message_start's input tokens cross; the stream is cut there.
AREQ='{"model":"claude-sonnet-4-5","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hi"}]}'
AU='X-Mock-Usage: input=100000,output=5000'
curl -sS -N "$MOCK_URL/v1/messages" -H "$AU" -H 'X-Mock-Output-Chunks: 40' -d "$AREQ" >"$T/a.plain"
new_budget A
"$LM" init --budget "$A" --limit 0.1 >/dev/null # input alone is $0.30
LLMMETER_BUDGET=$A LD_PRELOAD=$PRE curl -sS -N "$MOCK_URL/v1/messages" -H "$AU" -H 'X-Mock-Output-Chunks: 40' \
  -d "$AREQ" >"$T/a.metered" 2>/dev/null
expect_eq anthropic_running_total_cut "$?" 23
sz=$(stat -c %s "$T/a.metered")
check anthropic_cut_is_a_prefix cmp -s "$T/a.metered" <(head -c "$sz" "$T/a.plain")
check anthropic_cut_before_the_end test "$sz" -lt "$(stat -c %s "$T/a.plain")"
expect_eq anthropic_cut_charges_what_arrived "$(spent "$A")" "$(cost claude-sonnet-4-5 input=100000,output=1) 0"
# Gemini: a usage snapshot in every chunk; the first ones cross, before the
# chunk with a finishReason.
GF=gemini_stream_sse
GU="$MOCK_URL/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
curl -sS -N "$GU" -H "X-Mock-Fixture: $GF" -H 'X-Mock-Split-Max: 200' -H 'X-Mock-Delay-Ms: 20' \
  -d @tests/fixtures/$GF.request.json >"$T/g.plain"
new_budget G
"$LM" init --budget "$G" --limit 0.00001 >/dev/null
LLMMETER_BUDGET=$G LD_PRELOAD=$PRE curl -sS -N "$GU" -H "X-Mock-Fixture: $GF" -H 'X-Mock-Split-Max: 200' \
  -H 'X-Mock-Delay-Ms: 20' -d @tests/fixtures/$GF.request.json >"$T/g.metered" 2>/dev/null
expect_eq gemini_running_total_cut "$?" 23
sz=$(stat -c %s "$T/g.metered")
check gemini_cut_is_a_prefix cmp -s "$T/g.metered" <(head -c "$sz" "$T/g.plain")
check gemini_cut_before_the_end test "$sz" -lt "$(stat -c %s "$T/g.plain")"
read -r gs gr < <(spent "$G")
final=$(cost gemini-2.5-flash input=18,output=115) # 80 candidates + 35 thoughts
check gemini_cut_charges_what_arrived test "$gs" -gt 10000000 -a "$gs" -lt "$final" -a "$gr" = 0
# The same stream under a limit that only its last chunk crosses completes.
new_budget G2
"$LM" init --budget "$G2" --limit 0.000291 >/dev/null # 2nd snapshot $0.0002904, final $0.0002929
LLMMETER_BUDGET=$G2 LD_PRELOAD=$PRE curl -sS -N "$GU" -H "X-Mock-Fixture: $GF" -H 'X-Mock-Split-Max: 200' \
  -d @tests/fixtures/$GF.request.json >"$T/g2.metered" 2>/dev/null
expect_eq gemini_crossing_at_finish_completes "$?" 0
check gemini_crossing_at_finish_bytes_identical cmp -s "$T/g.plain" "$T/g2.metered"
expect_eq gemini_crossing_at_finish_charged "$(spent "$G2")" "$final 0"
