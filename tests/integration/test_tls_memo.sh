# test_tls_memo.sh — the OpenSSL hooks' per-thread memo of the last
# connection (tls_hook.c) never outlives what it remembers.
#
# bench_tls reuse, in one thread under the preload: a connection that is
# not HTTP (stood aside), freed, then an LLM call on a new connection,
# freed, 40 times. glibc hands each new SSL the address of the one just
# freed, so a memo that survived SSL_free would take the LLM connection
# for the stood-aside one (the call unmetered) or the next one for a
# freed stream (a use after free: a crash here, an ASan report under
# SAN=1, where ASan's quarantine also keeps addresses from being reused).
# Checks: every answer is the server's (the tool exits 0), every LLM call
# is counted in the budget, and (plain build) addresses were reused, so
# the case was made.
. tests/integration/lib.sh
TOOL=$PWD/$BUILD/tests/bench_tls
[ -x "$TOOL" ] || { fail tls_memo_tool_built "missing $TOOL"; exit 1; }
if [ "${SAN:-0}" = 1 ]; then
  export ASAN_OPTIONS=detect_leaks=0
  PRE="$(gcc -print-file-name=libasan.so) $LIB"
else
  PRE=$LIB
fi
unset LLMMETER_LIMIT_USD LLMMETER_ON_ERROR LLMMETER_UNMETERED \
  LLMMETER_ENDPOINTS LLMMETER_DISABLE
export LLMMETER_QUIET=1
if ! bash tests/tls/make_ca.sh "$T/ca" >"$T/ca.out" 2>&1; then
  fail tls_memo_ca "$(tail -1 "$T/ca.out")"
  exit 1
fi
new_budget B
"$LM" init --budget "$B" >/dev/null
N=40
LD_PRELOAD="$PRE" LLMMETER_BUDGET="$B" timeout 120 "$TOOL" reuse \
  "$T/ca/server.pem" "$T/ca/server.key" "$N" >"$T/reuse.out" 2>"$T/reuse.err"
rc=$?
expect_eq tls_memo_every_answer_is_the_servers "$rc" 0
[ "$rc" = 0 ] || tail -3 "$T/reuse.err"
expect_eq tls_memo_every_llm_call_on_a_reused_address_is_counted \
  "$(status_json "$B" | json_get - "j['requests']")" "$N"
if [ "${SAN:-0}" != 1 ]; then
  reused=$(sed -n 's/.*reused=\([0-9]*\).*/\1/p' "$T/reuse.out")
  check tls_memo_new_connections_took_freed_addresses [ "${reused:-0}" -ge "$N" ]
fi
