# test_security.sh — hostile neighbours, leaked secrets, bad settings.
#
#  - segments are 0600 and ours, whoever creates them and whatever umask;
#  - a budget name squatted by another user (uid 65534) is refused by the
#    CLI and by the library: with LLMMETER_LIMIT_USD the library fails
#    closed, without it LLM calls pass unmetered — one stderr line either
#    way, and the squatter's segment is never written;
#  - an API key (sk-llmmeter-test-SECRET-123 in Authorization, x-api-key,
#    api-key, x-goog-api-key and ?key=) never appears in anything we print
#    or store: stderr, error buffers, status (json, prom, table), list, the
#    ledger, the synthesised 402 — on allowed, refused, cut and failed calls;
#  - misconfiguration (README "Configuration"): one stderr line, the
#    documented default, and the host still gets its own bytes and exit code.
. tests/integration/lib.sh
CLIENT=$PWD/$BUILD/tests/lm_client
if [ "${SAN:-0}" = 1 ]; then
  export ASAN_OPTIONS=detect_leaks=0
  PRE=$PWD/build/libllmmeter.so
  PRE_CLIENT="$(gcc -print-file-name=libasan.so) $LIB"
else
  PRE=$LIB
  PRE_CLIENT=$LIB
fi
start_mock || { fail security_mock_started "$(cat "$T/mock.out")"; exit 1; }
unset LLMMETER_QUIET LLMMETER_MIDSTREAM LLMMETER_DENY LLMMETER_LIMIT_USD LLMMETER_ON_ERROR \
  LLMMETER_PRICES LLMMETER_DEFAULT_MAX_TOKENS LLMMETER_BUDGET LLMMETER_LEDGER
CAP=$T/cap # everything we print or store goes here, to be searched for the key
mkdir -p "$CAP"
SECRET=sk-llmmeter-test-SECRET-123
KEYS=(-H "Authorization: Bearer $SECRET" -H "x-api-key: $SECRET" -H "api-key: $SECRET"
      -H "x-goog-api-key: $SECRET")
REQ='{"model":"gpt-4o-mini","max_tokens":20,"messages":[{"role":"user","content":"hello"}]}'
SREQ='{"model":"claude-sonnet-4-5","max_tokens":20,"stream":true,"messages":[{"role":"user","content":"hi"}]}'
echo "$REQ" >"$T/req.json"
OAI=$MOCK_URL/v1/chat/completions
n=0
# llm NAME ENV... -- CURL-ARGS: a metered curl call; stdout to $CAP/NAME.out,
# stderr to $CAP/NAME.err, exit code to $CAP/NAME.rc.
llm() {
  local name=$1; shift
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done; shift
  env "${envs[@]}" LD_PRELOAD="$PRE" timeout 60 curl -sS "$@" >"$CAP/$name.out" 2>"$CAP/$name.err"
  echo $? >"$CAP/$name.rc"
}
rc_of() { cat "$CAP/$1.rc"; }
lib_lines() { grep -c '^llmmeter: ' "$CAP/$1.err"; } # the library's own lines

# --- segments are 0600 and ours ---------------------------------------------
new_budget P1; new_budget P2; new_budget P3
"$LM" init --budget "$P1" --limit 1 >/dev/null
expect_eq security_cli_segment_0600_ours "$(stat -c '%a %u' "/dev/shm/$P1")" "600 $(id -u)"
(umask 000; "$LM" init --budget "$P2" >/dev/null)
expect_eq security_cli_segment_0600_despite_umask_000 "$(stat -c %a "/dev/shm/$P2")" 600
(umask 000; llm perm_lib LLMMETER_BUDGET="$P3" LLMMETER_LIMIT_USD=1 -- "$OAI" -d "$REQ")
expect_eq security_library_segment_0600_ours "$(stat -c '%a %u' "/dev/shm/$P3" 2>&1)" "600 $(id -u)"

# --- a name squatted by another user ------------------------------------------
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
  new_budget SQ; new_budget SQ0
  # A real budget made by uid 65534, and a bare file it left in the way.
  setpriv --reuid 65534 --regid 65534 --clear-groups "$LM" init --budget "$SQ" --limit 1 >/dev/null 2>&1
  : >"/dev/shm/$SQ0"; chown 65534:65534 "/dev/shm/$SQ0"; chmod 600 "/dev/shm/$SQ0"
  expect_eq security_squat_segment_made_by_uid_65534 "$(stat -c %u "/dev/shm/$SQ" 2>&1)" 65534
  sum0=$(md5sum <"/dev/shm/$SQ")
  for sq in "$SQ" "$SQ0"; do
    if [ "$sq" = "$SQ" ]; then tag=_segment; else tag=_file; fi
    for cmd in "status" "init --limit 5" "init --force --limit 5" "set --limit 5" "reset" "rm"; do
      "$LM" $cmd --budget "$sq" >/dev/null 2>"$T/sq.err"; rc=$?
      if [ $rc = 1 ] && [ "$(wc -l <"$T/sq.err")" = 1 ]; then pass "security_squat${tag}_cli_${cmd// /_}_refused"
      else fail "security_squat${tag}_cli_${cmd// /_}_refused" "rc=$rc: $(cat "$T/sq.err")"; fi
    done
    expect_eq "security_squat${tag}_still_theirs" "$(stat -c '%u' "/dev/shm/$sq" 2>&1)" 65534
    n0=$(mock_requests)
    # With a limit asked for: fail closed, one line, never on the wire.
    llm "sq${tag}_closed" LLMMETER_BUDGET="$sq" LLMMETER_LIMIT_USD=1 -- "${KEYS[@]}" "$OAI" "$OAI" -d "$REQ"
    expect_eq "security_squat${tag}_library_fails_closed" "$(rc_of "sq${tag}_closed")" 42
    expect_eq "security_squat${tag}_library_closed_one_line" "$(lib_lines "sq${tag}_closed")" 1
    expect_eq "security_squat${tag}_closed_calls_never_sent" "$(mock_requests)" "$n0"
    # Without: the calls pass unmetered, one line, the program's own bytes.
    curl -sS "$OAI" "$OAI" -d "$REQ" >"$T/sq.plain"
    llm "sq${tag}_open" LLMMETER_BUDGET="$sq" -- "${KEYS[@]}" "$OAI" "$OAI" -d "$REQ"
    expect_eq "security_squat${tag}_library_passes_open" "$(rc_of "sq${tag}_open")" 0
    expect_eq "security_squat${tag}_library_open_one_line" "$(lib_lines "sq${tag}_open")" 1
    check "security_squat${tag}_open_bytes_identical" cmp -s "$T/sq.plain" "$CAP/sq${tag}_open.out"
  done
  expect_eq security_squat_segment_never_written "$(md5sum <"/dev/shm/$SQ")" "$sum0"
  expect_eq security_squat_file_never_written "$(stat -c %s "/dev/shm/$SQ0")" 0
else
  echo "security: not root (or no setpriv): squatting by another user not tested"
fi

# --- the key never shows -------------------------------------------------------
new_budget K
"$LM" init --budget "$K" --limit 5 >/dev/null
export LLMMETER_LEDGER=$CAP/ledger.jsonl
GEM="$MOCK_URL/v1beta/models/gemini-2.5-flash:generateContent?key=$SECRET"
llm key_openai LLMMETER_BUDGET="$K" -- "${KEYS[@]}" "$OAI?key=$SECRET" -d "$REQ"
llm key_anthropic LLMMETER_BUDGET="$K" -- -N "${KEYS[@]}" "$MOCK_URL/v1/messages?key=$SECRET" -d "$SREQ"
llm key_gemini LLMMETER_BUDGET="$K" -- "${KEYS[@]}" "$GEM" -H 'X-Mock-Fixture: gemini_generate_content_nonstream' \
  -d '{"contents":[{"parts":[{"text":"hi"}]}],"generationConfig":{"maxOutputTokens":2000}}'
llm key_error LLMMETER_BUDGET="$K" -- "${KEYS[@]}" "$OAI?key=$SECRET" -H 'X-Mock-Status: 500' -d "$REQ"
llm key_refused_conn LLMMETER_BUDGET="$K" -- "${KEYS[@]}" "http://127.0.0.1:1/v1/chat/completions?key=$SECRET" -d "$REQ"
expect_eq security_key_allowed_calls_pass "$(rc_of key_openai) $(rc_of key_anthropic) $(rc_of key_gemini) $(rc_of key_error)" "0 0 0 0"
LD_PRELOAD=$PRE_CLIENT LLMMETER_BUDGET=$K timeout 60 "$CLIENT" wf "$OAI?key=$SECRET" "$T/req.json" \
  "Authorization: Bearer $SECRET" "x-api-key: $SECRET" >"$CAP/client_ok.out" 2>"$CAP/client_ok.err"
# A stream cut at the limit.
new_budget KC
"$LM" init --budget "$KC" --limit 0.01 >/dev/null
llm key_cut LLMMETER_BUDGET="$KC" -- -N "${KEYS[@]}" "$MOCK_URL/v1/messages?key=$SECRET" \
  -H 'X-Mock-Usage: input=100000,output=5' -d "$SREQ"
expect_eq security_key_cut_path_taken "$(rc_of key_cut)" 23
# Refused calls, both styles, and the C client's error buffer.
"$LM" set --budget "$K" --limit 0 >/dev/null
llm key_denied LLMMETER_BUDGET="$K" -- "${KEYS[@]}" "$OAI?key=$SECRET" -d "$REQ"
llm key_denied_http LLMMETER_BUDGET="$K" LLMMETER_DENY=http -- -i "${KEYS[@]}" "$OAI?key=$SECRET" -d "$REQ"
LD_PRELOAD=$PRE_CLIENT LLMMETER_BUDGET=$K timeout 60 "$CLIENT" wf "$OAI?key=$SECRET" "$T/req.json" \
  "Authorization: Bearer $SECRET" >"$CAP/client_denied.out" 2>"$CAP/client_denied.err"
expect_eq security_key_denied_paths_taken "$(rc_of key_denied) $(rc_of key_denied_http)" "42 0"
check security_key_denied_http_is_402 grep -q '^HTTP/1.1 402' "$CAP/key_denied_http.out"
check security_key_client_errorbuffer_has_reason grep -q "^curle=42 .*err=llmmeter: budget '$K'" "$CAP/client_denied.err"
# The CLI's views, and `run` with the key on the command line.
for v in "" --json --prom; do "$LM" status --budget "$K" $v >"$CAP/status$v.out" 2>&1; done
"$LM" status --budget "$KC" --json >"$CAP/status_cut.out" 2>&1
"$LM" list >"$CAP/list.out" 2>&1
"$LM" run --budget "$K" -- /nonexistent/agent -H "Authorization: Bearer $SECRET" >"$CAP/run.out" 2>&1
"$LM" run --budget "$K" -- sh -c "exit 3" "Authorization: Bearer $SECRET" >"$CAP/run2.out" 2>&1
[ -f "$CAP/ledger.jsonl" ] && "$LM" report "$CAP/ledger.jsonl" >"$CAP/report.out" 2>&1
unset LLMMETER_LEDGER
check security_key_captures_not_empty test "$(cat "$CAP"/*.err "$CAP"/status*.out | wc -l)" -gt 10
leaks=$(grep -l -e "$SECRET" -e 'SECRET-123' -r "$CAP" | sed "s|$CAP/||" | tr '\n' ' ')
expect_eq security_key_never_printed_or_stored "$leaks" ""
echo "security: searched $(ls "$CAP" | wc -l) captures for the key$([ -f "$CAP/ledger.jsonl" ] && echo ", ledger included")"

# --- misconfiguration ----------------------------------------------------------
curl -sS "$OAI" "$OAI" -d "$REQ" >"$T/plain2"
curl -sS --fail "$OAI" -H 'X-Mock-Status: 500' -d "$REQ" >/dev/null 2>&1; FAIL_RC=$?
# bad VAR=VALUE: one stderr line for two calls, the program's bytes and code
bad_env() {
  local name=$1; shift
  new_budget MB
  llm "$name" LLMMETER_BUDGET="$MB" "$@" -- "$OAI" "$OAI" -d "$REQ"
  expect_eq "security_${name}_passes" "$(rc_of "$name")" 0
  check "security_${name}_bytes_identical" cmp -s "$T/plain2" "$CAP/$name.out"
  expect_eq "security_${name}_one_line" "$(lib_lines "$name")" 1
  check "security_${name}_line_names_setting" grep -qE "LLMMETER_|prices.json" "$CAP/$name.err"
  llm "${name}_fail" LLMMETER_BUDGET="$MB" "$@" -- --fail "$OAI" -H 'X-Mock-Status: 500' -d "$REQ"
  expect_eq "security_${name}_host_exit_code_kept" "$(rc_of "${name}_fail")" "$FAIL_RC"
}
bad_env bad_limit LLMMETER_LIMIT_USD=abc
expect_eq security_bad_limit_still_metered_no_limit "$(status_json "$MB" | json_get - "j['requests'], j['limit_usd']")" "2 None"
bad_env bad_deny LLMMETER_DENY=bogus
bad_env bad_max_tokens LLMMETER_DEFAULT_MAX_TOKENS=-3
bad_env bad_all LLMMETER_DEFAULT_MAX_TOKENS=-3 LLMMETER_DENY=bogus LLMMETER_LIMIT_USD=abc
"$LM" set --budget "$MB" --limit 0 >/dev/null
llm bad_deny_refused LLMMETER_BUDGET="$MB" LLMMETER_DENY=bogus -- "$OAI" -d "$REQ"
expect_eq security_bad_deny_refuses_with_error_style "$(rc_of bad_deny_refused)" 42
# LLMMETER_LIMIT_USD=abc asked for a limit: an unusable budget fails closed.
if [ -n "${SQ:-}" ]; then
  llm bad_limit_squat LLMMETER_BUDGET="$SQ" LLMMETER_LIMIT_USD=abc -- "$OAI" -d "$REQ"
  expect_eq security_bad_limit_unusable_budget_fails_closed "$(rc_of bad_limit_squat)" 42
fi
# Price files: the embedded table stays; one line says why.
echo '{"gpt-4o-mini": {"input_cost_per_token": ' >"$T/bad_prices.json"
bad_env missing_prices LLMMETER_PRICES=/nonexistent/prices.json
expect_eq security_missing_prices_embedded_table_used "$(status_json "$MB" | json_get - "j['unpriced'], j['spent_pusd'] > 0")" "0 True"
bad_env malformed_prices LLMMETER_PRICES="$T/bad_prices.json"
for f in /nonexistent/prices.json "$T/bad_prices.json"; do
  LLMMETER_PRICES=$f "$LM" prices gpt-4o-mini >/dev/null 2>"$T/cli_prices.err"
  expect_eq "security_cli_prices_bad_file_one_line_${f##*/}" "$(wc -l <"$T/cli_prices.err")" 1
done
# The CLI: an unknown window is bad usage.
new_budget W
for cmd in init set; do
  [ $cmd = set ] && "$LM" init --budget "$W" >/dev/null
  "$LM" $cmd --budget "$W" --window fortnight >/dev/null 2>"$T/win.err"; rc=$?
  expect_eq "security_cli_${cmd}_unknown_window_exit2_one_line" "$rc $(wc -l <"$T/win.err")" "2 1"
done
# A segment of an older layout version: refused everywhere, never rewritten.
new_budget OLD
"$LM" init --budget "$OLD" --limit 1 >/dev/null
printf '\x00' | dd of="/dev/shm/$OLD" bs=1 seek=8 conv=notrunc 2>/dev/null
sum0=$(md5sum <"/dev/shm/$OLD")
"$LM" status --budget "$OLD" >/dev/null 2>"$T/old.err"; rc=$?
expect_eq security_old_layout_cli_exit1_one_line "$rc $(wc -l <"$T/old.err")" "1 1"
check security_old_layout_cli_message grep -q "another layout version" "$T/old.err"
n0=$(mock_requests)
llm old_closed LLMMETER_BUDGET="$OLD" LLMMETER_LIMIT_USD=1 -- "$OAI" "$OAI" -d "$REQ"
expect_eq security_old_layout_library_fails_closed "$(rc_of old_closed) $(lib_lines old_closed)" "42 1"
expect_eq security_old_layout_closed_never_sent "$(mock_requests)" "$n0"
llm old_open LLMMETER_BUDGET="$OLD" -- "$OAI" "$OAI" -d "$REQ"
expect_eq security_old_layout_library_passes_open "$(rc_of old_open) $(lib_lines old_open)" "0 1"
check security_old_layout_open_bytes_identical cmp -s "$T/plain2" "$CAP/old_open.out"
llm old_forced_closed LLMMETER_BUDGET="$OLD" LLMMETER_ON_ERROR=closed -- "$OAI" -d "$REQ"
expect_eq security_old_layout_on_error_closed "$(rc_of old_forced_closed)" 42
expect_eq security_old_layout_never_rewritten "$(md5sum <"/dev/shm/$OLD")" "$sum0"
