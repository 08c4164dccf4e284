# test_leak_guard.sh — a process llmmeter cannot meter is refused an LLM
# host under a hard limit, and warned about otherwise.
#
# Real processes under LD_PRELOAD: resolve_probe (a C program that links no
# TLS library, and can dlopen one halfway), Python with and without its
# `ssl` module, and /usr/bin/node when it is a node with OpenSSL linked in
# statically (nodesource), whose fetch resolves through getaddrinfo on
# libuv's threads. This machine has no internet: the real resolver fails
# api.openai.com with EAI_NONAME or EAI_AGAIN, so a resolution that passed
# is told from a refused one by the code (EAI_FAIL is ours), and a name
# that does resolve (this machine's hostname, from /etc/hosts) is made an
# LLM host with LLMMETER_ENDPOINTS to see a pass resolve for real.
. tests/integration/lib.sh
PROBE=$PWD/$BUILD/tests/resolve_probe
PY=/usr/bin/python3
if [ "${SAN:-0}" = 1 ]; then
  export ASAN_OPTIONS=detect_leaks=0
  PRE=$PWD/build/libllmmeter.so # foreign hosts: see test_hooks.sh
  PRE_PROBE="$(gcc -print-file-name=libasan.so) $LIB"
else
  PRE=$LIB
  PRE_PROBE=$LIB
fi
[ -x "$PROBE" ] || { fail leak_guard_probe_built "missing $PROBE"; exit 1; }
[ -f "$PRE" ] || { fail leak_guard_library_built "missing $PRE"; exit 1; }
unset LLMMETER_QUIET LLMMETER_LIMIT_USD LLMMETER_ON_ERROR LLMMETER_UNMETERED \
  LLMMETER_ENDPOINTS LLMMETER_DISABLE

# run NAME [VAR=VALUE...] -- CMD...: CMD under the preload with the given
# settings; its stdout in $T/NAME.out, stderr in $T/NAME.err.
run() {
  local name=$1; shift
  local vars=()
  while [ "$1" != -- ]; do vars+=("$1"); shift; done
  shift
  local pre=$PRE
  [ "$1" = "$PROBE" ] && pre=$PRE_PROBE
  env "${vars[@]}" LD_PRELOAD="$pre" timeout 60 "$@" >"$T/$name.out" 2>"$T/$name.err"
}
out() { tr '\n' ' ' <"$T/$1.out" | sed 's/ $//'; }
lines() { wc -l <"$T/$1.err" | tr -d ' '; }
said() { grep -q -- "$2" "$T/$1.err"; }
# The real resolver's answer for a host this machine cannot resolve.
not_ours() { case "$1" in EAI_NONAME | EAI_AGAIN) return 0 ;; esac; return 1; }

new_budget B   # no limit
new_budget H   # a hard limit of $5
"$LM" init --budget "$H" --limit 5 >/dev/null

# --- refused under a hard limit ---------------------------------------------
run deny LLMMETER_BUDGET="$H" -- "$PROBE" api.openai.com api.anthropic.com
expect_eq leak_guard_hard_limit_refuses_with_eai_fail "$(out deny)" \
  "api.openai.com EAI_FAIL api.anthropic.com EAI_FAIL"
expect_eq leak_guard_refusal_is_one_line "$(lines deny)" 1
check leak_guard_refusal_names_program_and_host \
  said deny "^llmmeter: refused to resolve api.openai.com for resolve_probe\[[0-9]*\]: "
check leak_guard_refusal_says_why said deny "no TLS library llmmeter can see.*budget '$H' has a hard limit"
check leak_guard_refusal_names_the_override said deny "LLMMETER_UNMETERED=allow"
# The LLM-only hosts the price feed names only inside broad globs (Gemini,
# Vertex AI, Azure OpenAI, Bedrock) are refused too; the rest of those
# globs (storage.googleapis.com) is not an LLM host. (A budget of its own:
# the counts of $H are checked below.)
new_budget G
"$LM" init --budget "$G" --limit 5 >/dev/null
run deny_glob LLMMETER_BUDGET="$G" -- "$PROBE" generativelanguage.googleapis.com \
  us-central1-aiplatform.googleapis.com my-res.openai.azure.com \
  bedrock-runtime.us-east-1.amazonaws.com storage.googleapis.com
r=$(awk '$1 == "storage.googleapis.com" {print $2}' "$T/deny_glob.out")
expect_eq leak_guard_llm_namespaces_refused "$(grep -c ' EAI_FAIL$' "$T/deny_glob.out") $(lines deny_glob)" "4 1"
check leak_guard_rest_of_a_glob_resolves_for_real not_ours "$r"
run deny_env LLMMETER_BUDGET="$B" LLMMETER_LIMIT_USD=5 -- "$PROBE" api.groq.com
expect_eq leak_guard_limit_usd_is_a_hard_limit "$(out deny_env) $(lines deny_env)" \
  "api.groq.com EAI_FAIL 1"
"$LM" rm --budget "$B" >/dev/null # LLMMETER_LIMIT_USD made it with $5
run deny_threads LLMMETER_BUDGET="$H" -- "$PROBE" -t8 api.openai.com
expect_eq leak_guard_threads_all_refused_one_line \
  "$(grep -c ' EAI_FAIL$' "$T/deny_threads.out") $(lines deny_threads)" "8 1"
run deny_open LLMMETER_BUDGET="$H" LLMMETER_ON_ERROR=open -- "$PROBE" api.openai.com
r=$(cut -d' ' -f2 "$T/deny_open.out")
check leak_guard_fail_open_only_warns not_ours "$r"
check leak_guard_fail_open_warning said deny_open "^llmmeter: warning: resolve_probe\[[0-9]*\] resolves api.openai.com"

# --- warned once without one ------------------------------------------------
run warn LLMMETER_BUDGET="$B" -- "$PROBE" api.openai.com api.openai.com api.anthropic.com
r=$(cut -d' ' -f2 "$T/warn.out" | sort -u | tr '\n' ' ')
check leak_guard_no_limit_resolves_for_real eval 'for x in $r; do not_ours "$x" || exit 1; done'
expect_eq leak_guard_no_limit_warns_once "$(lines warn)" 1
check leak_guard_warning_names_program_host_and_that_it_is_not_metered \
  said warn "^llmmeter: warning: resolve_probe\[[0-9]*\] resolves api.openai.com .*NOT metered"

# --- what is never touched ----------------------------------------------------
run untouched LLMMETER_BUDGET="$H" LLMMETER_UNMETERED=deny -- \
  "$PROBE" 127.0.0.1 ::1 localhost example.invalid openai.com.invalid
expect_eq leak_guard_numeric_localhost_and_other_hosts_untouched "$(out untouched)" \
  "127.0.0.1 ok ::1 ok localhost ok example.invalid EAI_NONAME openai.com.invalid EAI_NONAME"
expect_eq leak_guard_untouched_says_nothing "$(lines untouched)" 0

# --- LLMMETER_UNMETERED -------------------------------------------------------
run allow LLMMETER_BUDGET="$H" LLMMETER_UNMETERED=allow -- "$PROBE" api.openai.com
check leak_guard_allow_passes not_ours "$(cut -d' ' -f2 "$T/allow.out")"
expect_eq leak_guard_allow_says_nothing "$(lines allow)" 0
run warn_mode LLMMETER_BUDGET="$H" LLMMETER_UNMETERED=warn -- "$PROBE" api.openai.com api.openai.com
check leak_guard_warn_never_refuses eval '! grep -q EAI_FAIL "$T/warn_mode.out"'
expect_eq leak_guard_warn_mode_one_line "$(lines warn_mode)" 1
check leak_guard_warn_mode_names_itself said warn_mode "LLMMETER_UNMETERED=warn"
new_budget N
run deny_mode LLMMETER_BUDGET="$N" LLMMETER_UNMETERED=deny -- "$PROBE" api.openai.com
expect_eq leak_guard_deny_mode_refuses_without_a_limit "$(out deny_mode) $(lines deny_mode)" \
  "api.openai.com EAI_FAIL 1"
check leak_guard_deny_mode_names_itself said deny_mode "LLMMETER_UNMETERED=deny refuses it"
run bad_mode LLMMETER_BUDGET="$H" LLMMETER_UNMETERED=sometimes -- "$PROBE" api.openai.com
expect_eq leak_guard_wrong_value_is_the_default "$(out bad_mode)" "api.openai.com EAI_FAIL"
check leak_guard_wrong_value_one_clear_line \
  said bad_mode "^llmmeter: ignoring bad settings: LLMMETER_UNMETERED='sometimes' is not allow, warn or deny"
expect_eq leak_guard_wrong_value_then_the_refusal "$(lines bad_mode)" 2
run disabled LLMMETER_BUDGET="$H" LLMMETER_DISABLE=1 -- "$PROBE" api.openai.com
expect_eq leak_guard_disabled_passes_silently \
  "$(not_ours "$(cut -d' ' -f2 "$T/disabled.out")" && echo pass) $(lines disabled)" "pass 0"
run quiet LLMMETER_BUDGET="$H" LLMMETER_QUIET=1 -- "$PROBE" api.openai.com
expect_eq leak_guard_quiet_refuses_silently "$(out quiet) $(lines quiet)" "api.openai.com EAI_FAIL 0"
run unusable LLMMETER_BUDGET="no/such/budget" LLMMETER_ON_ERROR=closed -- "$PROBE" api.openai.com
expect_eq leak_guard_unusable_budget_failing_closed_refuses "$(out unusable)" "api.openai.com EAI_FAIL"
check leak_guard_unusable_budget_says_so said unusable "budget .* cannot be used"

# --- a TLS library llmmeter can see ----------------------------------------------
run visible_ssl LLMMETER_BUDGET="$H" -- "$PROBE" +libssl.so.3 api.openai.com
check leak_guard_libssl_loaded_passes not_ours "$(cut -d' ' -f2 "$T/visible_ssl.out")"
expect_eq leak_guard_libssl_loaded_says_nothing "$(lines visible_ssl)" 0
run visible_curl LLMMETER_BUDGET="$H" -- "$PROBE" +libcurl.so.4 api.openai.com
check leak_guard_libcurl_loaded_passes not_ours "$(cut -d' ' -f2 "$T/visible_curl.out")"
run late_ssl LLMMETER_BUDGET="$H" -- "$PROBE" api.openai.com +libssl.so.3 api.openai.com
r=$(cut -d' ' -f2 "$T/late_ssl.out" | tr '\n' ' ')
check leak_guard_libssl_loaded_late_is_seen_at_once eval \
  '[ "${r%% *}" = EAI_FAIL ] && not_ours "$(echo $r | cut -d" " -f2)"'
# (libnss3's libssl3.so is not OpenSSL and is not seen)
run nss_ssl LLMMETER_BUDGET="$H" -- "$PROBE" +libssl3.so api.openai.com
if grep -q "cannot load" "$T/nss_ssl.err"; then
  echo "note: no libssl3.so (NSS) here; its case is skipped"
else
  expect_eq leak_guard_nss_libssl3_is_not_openssl "$(out nss_ssl)" "api.openai.com EAI_FAIL"
fi

# --- hosts named in LLMMETER_ENDPOINTS ------------------------------------------
me=$(hostname)
if [ -n "$me" ] && getent hosts "$me" >/dev/null 2>&1 && [ "$me" != localhost ]; then
  EP="*://$me:8000/*=openai-chat"
  run ep_warn LLMMETER_BUDGET="$N" LLMMETER_ENDPOINTS="$EP" -- "$PROBE" "$me" "$me"
  expect_eq leak_guard_endpoints_host_resolves_for_real_with_one_warning \
    "$(out ep_warn) $(lines ep_warn)" "$me ok $me ok 1"
  check leak_guard_endpoints_host_warning_names_it said ep_warn "resolves $me "
  run ep_deny LLMMETER_BUDGET="$H" LLMMETER_ENDPOINTS="$EP" -- "$PROBE" "$me"
  expect_eq leak_guard_endpoints_host_refused_under_a_limit "$(out ep_deny) $(lines ep_deny)" \
    "$me EAI_FAIL 1"
  run ep_other LLMMETER_BUDGET="$H" LLMMETER_ENDPOINTS="*://*/v1/*=openai-chat" -- "$PROBE" "$me"
  expect_eq leak_guard_endpoints_wildcard_host_names_no_host "$(out ep_other) $(lines ep_other)" \
    "$me ok 0"
else
  echo "note: this machine's hostname does not resolve; the LLMMETER_ENDPOINTS cases are skipped"
fi

# --- Python: `ssl` loads libssl, and only then is it seen --------------------------
PYGAI='import socket, sys
try:
    socket.getaddrinfo(sys.argv[1], 443); print("ok")
except socket.gaierror as e:
    print({socket.EAI_FAIL: "EAI_FAIL", socket.EAI_NONAME: "EAI_NONAME",
           socket.EAI_AGAIN: "EAI_AGAIN"}.get(e.errno, e.errno))'
run py_nossl LLMMETER_BUDGET="$H" -- "$PY" -c "$PYGAI" api.openai.com
expect_eq leak_guard_python_without_ssl_refused "$(out py_nossl) $(lines py_nossl)" "EAI_FAIL 1"
check leak_guard_python_refusal_names_python said py_nossl "refused to resolve api.openai.com for python3"
run py_ssl LLMMETER_BUDGET="$H" -- "$PY" -c "import ssl
$PYGAI" api.openai.com
check leak_guard_python_with_ssl_passes not_ours "$(out py_ssl)"
expect_eq leak_guard_python_with_ssl_says_nothing "$(lines py_ssl)" 0

# A fork()ed child is a process of its own: warned (and counted) again.
new_budget F
run py_fork LLMMETER_BUDGET="$F" -- "$PY" -c 'import os, socket
def gai():
    try: socket.getaddrinfo("api.openai.com", 443)
    except socket.gaierror: pass
gai(); gai()
pid = os.fork()
if pid == 0:
    gai(); os._exit(0)
os.waitpid(pid, 0)'
expect_eq leak_guard_forked_child_warned_once_more \
  "$(lines py_fork) $(grep -o '^llmmeter: warning: python3\[[0-9]*\]' "$T/py_fork.err" | sort -u | wc -l)" "2 2"
expect_eq leak_guard_forked_child_counted \
  "$("$LM" status --budget "$F" --json | json_get - "j['unmetered_processes']['warned']")" 2

# --- node with OpenSSL linked in statically --------------------------------------
NODE=/usr/bin/node
FETCH='fetch("https://api.openai.com/v1/models").then(
  r => console.log("status", r.status),
  e => console.log("error", (e.cause && e.cause.code) || e.message))'
if [ ! -x "$NODE" ]; then
  echo "note: no $NODE here; the node cases are skipped"
elif ldd "$NODE" | grep -qE 'libssl\.so|libnode'; then
  echo "note: $NODE loads libssl (its TLS can be seen); the static-node cases are skipped"
else
  run node_deny LLMMETER_BUDGET="$H" -- "$NODE" -e "$FETCH"
  expect_eq leak_guard_node_fetch_refused_at_resolution "$(out node_deny)" "error EAI_FAIL"
  expect_eq leak_guard_node_refusal_one_line "$(lines node_deny)" 1
  check leak_guard_node_refusal_names_node_and_host \
    said node_deny "^llmmeter: refused to resolve api.openai.com for node\[[0-9]*\]: "
  run node_warn LLMMETER_BUDGET="$N" -- "$NODE" -e "$FETCH"
  check leak_guard_node_without_limit_passes eval \
    '! grep -q EAI_FAIL "$T/node_warn.out" && grep -q "^error " "$T/node_warn.out"'
  expect_eq leak_guard_node_without_limit_one_warning "$(lines node_warn)" 1
  check leak_guard_node_warning_names_node said node_warn "^llmmeter: warning: node\[[0-9]*\] resolves api.openai.com"
fi

# --- status counts them ----------------------------------------------------------
"$LM" status --budget "$H" --json >"$T/h.json"
refused=$(json_get "$T/h.json" "j['unmetered_processes']['refused']")
warned=$(json_get "$T/h.json" "j['unmetered_processes']['warned']")
# Processes refused under H: deny, deny_threads, bad_mode, quiet, late_ssl,
# nss_ssl (when it ran), ep_deny (when it ran), py_nossl, node_deny (when
# it ran). Warned: deny_open, warn_mode.
want_r=6
grep -q "cannot load" "$T/nss_ssl.err" || want_r=$((want_r + 1))
[ -f "$T/ep_deny.out" ] && want_r=$((want_r + 1))
[ -f "$T/node_deny.out" ] && want_r=$((want_r + 1))
expect_eq leak_guard_status_json_counts_processes "$refused $warned" "$want_r 2"
"$LM" status --budget "$H" --prom >"$T/h.prom"
check leak_guard_status_prom_refused \
  grep -qx "llmmeter_unmetered_processes_total{budget=\"$H\",verdict=\"refused\"} $want_r" "$T/h.prom"
check leak_guard_status_prom_warned \
  grep -qx "llmmeter_unmetered_processes_total{budget=\"$H\",verdict=\"warned\"} 2" "$T/h.prom"
"$LM" status --budget "$H" >"$T/h.txt"
check leak_guard_status_text_line grep -q "^unseen    $want_r process(es) refused, 2 warned" "$T/h.txt"
"$LM" status --budget "$N" --json >"$T/n.json"
want_w=0
[ -f "$T/ep_warn.out" ] && want_w=$((want_w + 1))
[ -f "$T/node_warn.out" ] && want_w=$((want_w + 1))
expect_eq leak_guard_status_counts_other_budget \
  "$(json_get "$T/n.json" "j['unmetered_processes']['refused'], j['unmetered_processes']['warned']")" \
  "1 $want_w"
