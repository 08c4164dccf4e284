# test_valgrind.sh — memcheck over the CLI (init, status, set, reset, rm on
# a fresh budget) and over one C client run with libllmmeter.so preloaded
# making a metered LLM call. Any memcheck error or definite/possible leak
# fails (--error-exitcode=99). tests/valgrind.supp hides only libcurl,
# OpenSSL and ld.so one-time initialisation, never our code.
# Not run under SAN=1: ASan and valgrind do not mix.
. tests/integration/lib.sh
if [ "${SAN:-0}" = 1 ]; then
  echo "valgrind: skipped under SAN=1 (ASan and valgrind do not mix)"
  exit 0
fi
if ! command -v valgrind >/dev/null; then
  echo "valgrind: not installed; skipped"
  exit 0
fi
VG=(valgrind -q --tool=memcheck --error-exitcode=99 --leak-check=full
    --errors-for-leak-kinds=definite,possible --show-leak-kinds=definite,possible
    --suppressions="$PWD/tests/valgrind.supp" --track-origins=yes)
CLIENT=$PWD/$BUILD/tests/lm_client

# vg NAME CMD...: passes if memcheck finds nothing and CMD exits 0
vg() {
  local name=$1; shift
  "${VG[@]}" --log-file="$T/$name.vg" "$@" >"$T/$name.out" 2>"$T/$name.err"
  local rc=$?
  if [ $rc = 0 ] && [ ! -s "$T/$name.vg" ]; then pass "$name"
  else fail "$name" "rc=$rc: $(head -c 600 "$T/$name.vg" "$T/$name.err" | tr '\n' ' ')"; fi
}
new_budget B
vg valgrind_cli_init "$LM" init --budget "$B" --limit 5 --window day --model-limit 'claude-*=2' --strict
vg valgrind_cli_status "$LM" status --budget "$B"
vg valgrind_cli_status_json "$LM" status --budget "$B" --json
vg valgrind_cli_status_prom "$LM" status --budget "$B" --prom
vg valgrind_cli_set "$LM" set --budget "$B" --limit 7 --agent-limit 'planner=1' --optimistic
vg valgrind_cli_prices "$LM" prices gpt-4o --json --usage input=10,output=5

start_mock || { fail valgrind_mock_started "$(cat "$T/mock.out")"; exit 1; }
REQ='{"model":"claude-sonnet-4-5","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hi"}]}'
echo "$REQ" >"$T/req.json"
# The preloaded library inside a valgrinded host: a metered stream.
LLMMETER_BUDGET=$B LD_PRELOAD=$LIB vg valgrind_hosted_client_stream \
  "$CLIENT" wf "$MOCK_URL/v1/messages" "$T/req.json" 'X-Mock-Usage: input=40,output=30'
expect_eq valgrind_hosted_client_was_metered "$(status_json "$B" | json_get - "j['requests'], j['tokens']['input'], j['tokens']['output']")" "1 40 30"
LLMMETER_BUDGET=$B LD_PRELOAD=$LIB vg valgrind_hosted_client_multi \
  "$CLIENT" multi "$MOCK_URL/v1/messages" "$T/req.json" 'X-Mock-Usage: input=40,output=30'
"$LM" set --budget "$B" --limit 0 >/dev/null
LLMMETER_BUDGET=$B LD_PRELOAD=$LIB "${VG[@]}" --log-file="$T/denied.vg" \
  "$CLIENT" wf "$MOCK_URL/v1/messages" "$T/req.json" >/dev/null 2>"$T/denied.err"
expect_eq valgrind_hosted_client_denied_clean "$? $(wc -c <"$T/denied.vg")" "42 0"
vg valgrind_cli_reset "$LM" reset --budget "$B"
vg valgrind_cli_rm "$LM" rm --budget "$B"
