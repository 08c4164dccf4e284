# test_inject.sh — an OpenAI chat stream requested without
# stream_options.include_usage is metered exactly and invisibly: the option
# is added on the wire (the mock honours it as OpenAI does) and its traces
# are removed, so every client receives byte for byte what it would have
# received without the library. LLMMETER_INJECT=0 turns it off.
. tests/integration/lib.sh
CLIENT=$PWD/$BUILD/tests/lm_client
PY=/usr/bin/python3
start_mock || { fail inject_mock_started; exit 1; }
if [ "${SAN:-0}" = 1 ]; then # see test_hooks.sh
  export ASAN_OPTIONS=detect_leaks=0
  PRE=$PWD/build/libllmmeter.so
  PRE_CLIENT="$(gcc -print-file-name=libasan.so) $LIB"
else
  PRE=$LIB; PRE_CLIENT=$LIB
fi
new_budget B
"$LM" init --budget "$B" >/dev/null
export LLMMETER_BUDGET=$B LLMMETER_QUIET=1
tokens() { status_json "$B" | json_get - "j['tokens']['input'], j['tokens']['output'], j['unmetered']"; }
REQ='{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hello"}]}'
echo "$REQ" >"$T/req.json"
U="$MOCK_URL/v1/chat/completions"
H='X-Mock-Usage: input=40,output=9'

n=0
run_case() { # run_case NAME PRELOAD CMD...: metered vs plain, tokens +40/+9
  local name=$1 pre=$2; shift 2
  "$@" >"$T/$name.plain" 2>/dev/null
  local before after
  before=$(status_json "$B" | json_get - "j['tokens']['input'], j['tokens']['output']")
  LD_PRELOAD=$pre timeout 60 "$@" >"$T/$name.metered" 2>/dev/null
  after=$(status_json "$B" | json_get - "j['tokens']['input'], j['tokens']['output']")
  # (the header mode carries the Date header in the body: it may tick)
  check "inject_${name}_bytes_identical" cmp -s <(grep -av '^Date: ' "$T/$name.plain") <(grep -av '^Date: ' "$T/$name.metered")
  check "inject_${name}_no_usage_visible" bash -c "! grep -q '\"usage\"' '$T/$name.metered'"
  local a=($before) b=($after)
  expect_eq "inject_${name}_exact_usage" "$((b[0] - a[0])) $((b[1] - a[1]))" "40 9"
}
run_case curl "$PRE" curl -sS -N "$U" -H "$H" -d "$REQ"
for mode in default wf pause header hd-only multi copy; do
  run_case "client_$mode" "$PRE_CLIENT" "$CLIENT" $mode "$U" "$T/req.json" "$H"
done
cat >"$T/pc.py" <<PY
import pycurl, sys
c = pycurl.Curl()
c.setopt(c.URL, "$U"); c.setopt(c.POSTFIELDS, open("$T/req.json").read())
c.setopt(c.HTTPHEADER, ["$H"]); c.setopt(c.WRITEFUNCTION, sys.stdout.buffer.write)
c.perform()
PY
run_case pycurl "$PRE" $PY "$T/pc.py"
cat >"$T/pc.php" <<PHP
<?php
\$c = curl_init("$U");
curl_setopt(\$c, CURLOPT_POSTFIELDS, file_get_contents("$T/req.json"));
curl_setopt(\$c, CURLOPT_HTTPHEADER, ["$H"]);
curl_exec(\$c);
PHP
run_case php "$PRE" php "$T/pc.php"

check inject_option_sent_on_the_wire python3 -c "
import json
bodies=[json.loads(json.loads(l)['body']) for l in open('$MOCK_LOG') if json.loads(l)['path']=='/v1/chat/completions']
assert any(b.get('stream_options')=={'include_usage':True} for b in bodies)
assert any('stream_options' not in b for b in bodies)"
expect_eq inject_counts_nothing_unmetered "$(status_json "$B" | json_get - "j['unmetered']")" 0

# A program that asked for usage itself gets it untouched.
OWN='{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[]}'
curl -sS -N "$U" -H "$H" -d "$OWN" >"$T/own.plain"
LD_PRELOAD=$PRE curl -sS -N "$U" -H "$H" -d "$OWN" >"$T/own.metered"
check inject_leaves_programs_own_usage cmp -s "$T/own.plain" "$T/own.metered"
check inject_own_usage_chunk_kept grep -q '"choices":\[\],"usage":{' "$T/own.metered"

# Turned off: nothing added, the stream is charged at its estimate as unmetered.
n0=$(mock_requests)
s0=$(status_json "$B" | json_get - "j['spent_pusd']")
LLMMETER_INJECT=0 LD_PRELOAD=$PRE curl -sS -N "$U" -H "$H" -d "$REQ" >"$T/off.metered"
check inject_off_bytes_identical cmp -s "$T/curl.plain" "$T/off.metered"
expect_eq inject_off_sends_request_unchanged "$(tail -1 "$MOCK_LOG" | python3 -c "import json,sys; print(json.load(sys.stdin)['body'] == sys.argv[1])" "$REQ")" True
expect_eq inject_off_counts_unmetered "$(status_json "$B" | json_get - "j['unmetered'], j['spent_pusd'] > $s0")" "1 True"
