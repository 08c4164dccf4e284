# test_capi.sh — the public C API (include/llmmeter.h): a C program built
# against libllmmeter.so with only the public header, and a Python ctypes
# script (Debian's python3), charge a fresh budget for calls no hook sees;
# `llmmeter status --json` must show exactly what they charged, priced
# independently by `llmmeter prices`. Then refusals, the export list of the
# library (hooks unversioned, the API under LLMMETER_1), and `make install`.
. tests/integration/lib.sh
CLIENT=$PWD/$BUILD/tests/capi_client
PY=/usr/bin/python3
DRIVER=tests/capi/capi_ctypes.py
export LLMMETER_QUIET=1
unset LLMMETER_BUDGET LLMMETER_AGENT LLMMETER_LIMIT_USD LLMMETER_UNPRICED \
  LLMMETER_LEDGER LLMMETER_PRICES LLMMETER_DEFAULT_PRICE LLMMETER_MIDSTREAM

for f in "$CLIENT" "$LIB" "$LM"; do
  [ -x "$f" ] || [ -f "$f" ] || { fail capi_built "missing $f"; exit 1; }
done

# Python loads the library with ctypes. Under SAN=1 the library is
# sanitized, and a plain python can only load it with the ASan runtime
# preloaded; if even that fails, the ctypes checks are skipped (no PASS).
py() { "$PY" "$DRIVER" "$LIB" "$@"; }
PY_OK=1
if [ "${SAN:-0}" = 1 ]; then
  ASAN_RT=$(${CC:-cc} -print-file-name=libasan.so)
  py() { # python's own allocations are not ours to leak-check
    LD_PRELOAD=$ASAN_RT ASAN_OPTIONS=detect_leaks=0 "$PY" "$DRIVER" "$LIB" "$@"
  }
  if ! py price gpt-4o openai 1,1,0,0,0 >/dev/null 2>"$T/py_san.err"; then
    PY_OK=0
    echo "SKIP: capi_py_* (ctypes checks) under SAN=1: python3 cannot load the" \
         "sanitized library ($(head -c 160 "$T/py_san.err"))"
  fi
fi

# cost MODEL USAGE: the exact pico-USD of a usage, from the CLI's price
# table (`llmmeter prices`); cost_usd: the same in USD as it prints it
cost() { "$LM" prices "$1" --json --usage "$2" | grep -oE '"cost_pusd":-?[0-9]+' | cut -d: -f2; }
cost_usd() { "$LM" prices "$1" --json --usage "$2" | grep -oE '"cost_usd":[0-9.]+' | cut -d: -f2; }
# usd PUSD: as status --json shows money: exact, at least two decimals
usd() {
  local i=$(($1 / 1000000000000)) f
  printf -v f '%012d' $(($1 % 1000000000000))
  while [ ${#f} -gt 2 ] && [ "${f%0}" != "$f" ]; do f=${f%0}; done
  echo "$i.$f"
}

# --- prices: the API prices as the table does ------------------------------
expect_eq capi_c_price_matches_table \
  "$("$CLIENT" price gpt-4o openai 1200,300,1000,0,100)" \
  "price 0 $(cost gpt-4o input=1200,output=300,cache_read=1000) $(cost_usd gpt-4o input=1200,output=300,cache_read=1000)"
expect_eq capi_c_price_unpriced_is_provider_max \
  "$("$CLIENT" price no-such-model-x openai 1000,100,0,0,0 | cut -d' ' -f1-3)" \
  "price 2 $(cost max:openai input=1000,output=100)"
expect_eq capi_c_price_ollama_is_free \
  "$("$CLIENT" price llama3 ollama 1000,100,0,0,0 | cut -d' ' -f1-3)" "price 0 0"
expect_eq capi_c_price_rejects_inconsistent_usage \
  "$("$CLIENT" price gpt-4o openai 10,0,20,0,0 | cut -d' ' -f1-2)" "price -1"
if [ "$PY_OK" = 1 ]; then
  expect_eq capi_py_price_matches_table \
    "$(py price claude-sonnet-4-5 anthropic 5000,800,0,2000,0)" \
    "price 0 $(cost claude-sonnet-4-5 input=5000,output=800,cache_write=2000)"
fi

# --- a C program and a ctypes script charge one budget ---------------------
new_budget B
"$LM" init --budget "$B" --limit 10 >/dev/null
C1=$(cost gpt-4o input=1200,output=300,cache_read=1000)
C2=$(cost claude-sonnet-4-5 input=5000,output=800,cache_write=2000)
C3=$(cost gpt-4o-mini input=400,output=50)
# 1: a stream charged as it flows, settled with the provider's final usage;
# 2: charged, settled with the usage unknown (what was charged stands);
# 3: settled with more than was charged; 4: failed before any usage.
"$CLIENT" run "$B" c-agent \
  admit:gpt-4o:openai:2000,1000,0,0,0 charge:1200,0,1000,0,0 \
  charge:0,300,0,0,100 settle:1200,300,1000,0,100 \
  admit:claude-sonnet-4-5:anthropic:- charge:5000,0,0,2000,0 \
  charge:0,800,0,0,0 settle:- \
  admit:gpt-4o-mini:openai:500,100,0,0,0 charge:100,10,0,0,0 \
  settle:400,50,0,0,0 \
  admit:gpt-4o:openai:100,100,0,0,0 release \
  status:"$T/c_status.json" >"$T/c.out" 2>&1
expect_eq capi_c_calls_succeed "$(tr '\n' ' ' <"$T/c.out")" \
  "admit 0 charge 0 charge 0 settle 0 $C1 admit 0 charge 0 charge 0 settle 0 $C2 admit 0 charge 0 settle 0 $C3 admit 0 release 0 status 0 "
C=$((C1 + C2 + C3))
status_json "$B" >"$T/cli_status_after_c.json"

P=0
if [ "$PY_OK" = 1 ]; then
  P1=$(cost gemini-2.5-flash input=3000,output=700)
  P2=$(cost gpt-4o input=1000,output=500)
  py run "$B" py-agent \
    admit:gemini-2.5-flash:google:3000,1000,0,0,0 charge:3000,0,0,0,0 \
    charge:0,700,0,0,200 settle:3000,700,0,0,200 \
    admit:gpt-4o:openai:- settle:1000,500,0,0,0 >"$T/py.out" 2>&1
  expect_eq capi_py_calls_succeed "$(tr '\n' ' ' <"$T/py.out")" \
    "admit 0 charge 0 charge 0 settle 0 $P1 admit 0 settle 0 $P2 "
  P=$((P1 + P2))
fi

status_json "$B" >"$T/status.json"
S=$T/status.json
expect_eq capi_status_spent_exactly_what_was_charged \
  "$(json_get "$S" "j['spent_pusd'], j['reserved_pusd'], j['in_flight']")" "$((C + P)) 0 0"
if [ "$PY_OK" = 1 ]; then
  TOK="[1200+5000+400+3000+1000, 300+800+50+700+500, 1000, 2000, 100+200]"
  REQ=5
else
  TOK="[1200+5000+400, 300+800+50, 1000, 2000, 100]"
  REQ=3
fi
expect_eq capi_status_tokens_exact \
  "$(json_get "$S" "[j['tokens'][k] for k in ('input','output','cache_read','cache_write','reasoning')]")" \
  "$(python3 -c "print($TOK)")"
expect_eq capi_status_requests_released_call_not_counted \
  "$(json_get "$S" "j['requests'], j['denied'], j['unmetered'], j['unpriced']")" "$REQ 0 0 0"
row() { # row models|agents NAME: "spent_usd requests input output"
  json_get "$S" "[' '.join(str(r[k]) for k in ('spent_usd','requests')) + ' ' + str(r['tokens']['input']) + ' ' + str(r['tokens']['output']) for r in j['$1'] if r['${1%s}'] == '$2'][0]"
}
expect_eq capi_status_model_row_claude "$(row models claude-sonnet-4-5)" "$(usd "$C2") 1 5000 800"
expect_eq capi_status_model_row_mini "$(row models gpt-4o-mini)" "$(usd "$C3") 1 400 50"
expect_eq capi_status_agent_row_c "$(row agents c-agent)" "$(usd "$C") 3 6600 1150"
if [ "$PY_OK" = 1 ]; then
  expect_eq capi_status_model_row_gpt4o_both_programs "$(row models gpt-4o)" \
    "$(usd $((C1 + P2))) 2 2200 800"
  expect_eq capi_status_model_row_gemini "$(row models gemini-2.5-flash)" "$(usd "$P1") 1 3000 700"
  expect_eq capi_status_agent_row_py "$(row agents py-agent)" "$(usd "$P") 2 4000 1200"
else
  expect_eq capi_status_model_row_gpt4o "$(row models gpt-4o)" "$(usd "$C1") 1 1200 300"
fi
# llmmeter_status_json is the CLI's document (both taken before Python ran),
# but for the CLI's pace: the rate of spend comes from the ledger or watch's
# samples, which a library call has not got (README, "C API").
expect_eq capi_status_json_is_the_cli_document \
  "$(python3 -c "import json,sys; c=json.load(open(sys.argv[2])); c.pop('pace',None); print(json.load(open(sys.argv[1])) == c)" "$T/c_status.json" "$T/cli_status_after_c.json")" True
expect_eq capi_status_json_shows_the_c_calls \
  "$(json_get "$T/c_status.json" "j['budget'], j['spent_pusd'], j['requests'], sorted(m['model'] for m in j['models']), [a['agent'] for a in j['agents']]")" \
  "$B $C 3 ['claude-sonnet-4-5', 'gpt-4o', 'gpt-4o-mini'] ['c-agent']"

# The default agent is the program's name; NULL budget = LLMMETER_BUDGET.
LLMMETER_BUDGET=$B "$CLIENT" run "" - admit:gpt-4o-mini:openai:- settle:10,10,0,0,0 >/dev/null
expect_eq capi_default_budget_and_agent \
  "$(status_json "$B" | json_get - "[a['requests'] for a in j['agents'] if a['agent'] == 'capi_client']")" "[1]"

# --- refusals ----------------------------------------------------------------
new_budget R
"$LM" init --budget "$R" --limit 0.01 >/dev/null
CR=$(cost gpt-4o input=10000,output=1000)
"$CLIENT" run "$R" c-agent admit:gpt-4o:openai:100,10,0,0,0 \
  charge:10000,1000,0,0,0 settle:- admit:gpt-4o:openai:100,10,0,0,0 \
  >"$T/r.out" 2>&1
expect_eq capi_charge_over_hard_limit_says_stop "$(sed -n 2p "$T/r.out")" \
  "charge 1 budget '$R': hard limit reached"
expect_eq capi_stopped_call_is_charged "$(sed -n 3p "$T/r.out")" "settle 0 $CR"
check capi_refused_admit_distinct_code_and_reason \
  grep -q "^admit -7 budget '$R': hard limit \$0.01 reached" "$T/r.out"
if [ "$PY_OK" = 1 ]; then
  py run "$R" py-agent admit:claude-sonnet-4-5:anthropic:- >"$T/rp.out" 2>&1
  check capi_py_refused_admit_names_budget \
    grep -q "^admit -7 budget '$R': hard limit \$0.01 reached" "$T/rp.out"
fi
expect_eq capi_refusals_counted_nothing_reserved \
  "$(status_json "$R" | json_get - "j['spent_pusd'], j['reserved_pusd'], j['requests'], j['denied']")" \
  "$CR 0 1 $((1 + PY_OK))"

LLMMETER_UNPRICED=deny "$CLIENT" run "$B" c-agent admit:no-such-model-x:openai:- >"$T/u.out" 2>&1
check capi_unpriced_deny_refuses \
  grep -q "^admit -7 budget '$B': model 'no-such-model-x' has no price" "$T/u.out"
"$CLIENT" run "$B" c-agent admit:no-such-model-x:openai:- settle:1000,100,0,0,0 >"$T/u2.out" 2>&1
expect_eq capi_unpriced_charged_at_provider_max "$(sed -n 2p "$T/u2.out")" \
  "settle 0 $(cost max:openai input=1000,output=100)"
"$CLIENT" run "$B" c-agent admit:gpt-4o:openai:- charge:10,0,20,0,0 close release close >"$T/e.out" 2>&1
expect_eq capi_bad_usage_and_busy_close "$(cut -d' ' -f1-2 "$T/e.out" | tr '\n' ' ')" \
  "admit 0 charge -1 close -8 release 0 close 0 "
"$CLIENT" run no-such-budget-$$ - >"$T/n.out" 2>&1
check capi_missing_budget_enoent grep -q "^open -3 " "$T/n.out"

# --- the export list ----------------------------------------------------------
# Exactly the hooked symbols, unversioned (the base version, so that
# programs' curl_easy_perform@CURL_OPENSSL_4 binds to them), and the API
# under LLMMETER_1. A new hook or API function belongs in these lists.
HOOKS="curl_easy_cleanup curl_easy_duphandle curl_easy_getinfo curl_easy_init
curl_easy_perform curl_easy_reset curl_easy_setopt curl_multi_add_handle
curl_multi_cleanup curl_multi_info_read curl_multi_init curl_multi_perform
curl_multi_remove_handle curl_multi_socket_action dlopen getaddrinfo
SSL_CTX_set_alpn_protos SSL_connect SSL_do_handshake SSL_get_error
SSL_get_shutdown SSL_peek SSL_peek_ex SSL_read SSL_read_ex SSL_set_alpn_protos
SSL_write SSL_write_ex"
API="llmmeter_admit llmmeter_budget_name llmmeter_charge llmmeter_close
llmmeter_format_usd llmmeter_free llmmeter_last_error llmmeter_open
llmmeter_price llmmeter_release llmmeter_settle llmmeter_status_json
llmmeter_strerror llmmeter_version"
want=$( { echo LLMMETER_1; printf '%s\n' $HOOKS; printf '%s@@LLMMETER_1\n' $API; } | sort)
got=$(nm -D --defined-only "$LIB" | awk '{print $NF}' | sort)
expect_eq capi_exports_exactly_hooks_and_versioned_api "$(echo $got)" "$(echo $want)"
expect_eq capi_header_declares_exactly_the_api \
  "$(grep -oE '^LLMMETER_API [^(]*\bllmmeter_[a-z_]+\(' include/llmmeter.h | grep -oE 'llmmeter_[a-z_]+' | sort | tr '\n' ' ')" \
  "$(printf '%s\n' $API | sort | tr '\n' ' ')"
# A link-time property of the version script: under SAN=1 it is checked on
# the plain build, as curl under a preloaded ASan runtime deadlocks (see
# test_hooks.sh).
BIND_LIB=$LIB
[ "${SAN:-0}" = 1 ] && BIND_LIB=$PWD/build/libllmmeter.so
if [ -f "$BIND_LIB" ]; then
  LD_DEBUG=bindings LD_PRELOAD=$BIND_LIB curl -s -o /dev/null file:///dev/null 2>"$T/bind"
  check capi_versioned_reference_binds_to_unversioned_hook \
    grep -qE "to $BIND_LIB \[0\]: normal symbol \`curl_easy_perform' \[CURL_OPENSSL_4\]" "$T/bind"
else
  echo "SKIP: capi_versioned_reference_binds_to_unversioned_hook needs the plain build ($BIND_LIB)"
fi

# --- the header: C99 and C++, and make install ---------------------------------
check capi_header_compiles_c99_pedantic \
  ${CC:-cc} -std=c99 -pedantic -Wall -Wextra -Werror -fsyntax-only -x c include/llmmeter.h
if command -v c++ >/dev/null; then
  check capi_header_compiles_cxx c++ -Wall -Wextra -Werror -fsyntax-only -x c++ include/llmmeter.h
fi
INST=$T/prefix
if make --no-print-directory -s install PREFIX="$INST" SAN="${SAN:-0}" >"$T/install.out" 2>&1; then
  check capi_install_header cmp -s include/llmmeter.h "$INST/include/llmmeter.h"
  SF=""
  [ "${SAN:-0}" = 1 ] && SF="-fsanitize=address,undefined"
  if ${CC:-cc} -std=c11 $SF -I"$INST/include" -o "$T/inst_client" tests/capi/capi_client.c \
       -L"$INST/lib" -lllmmeter -Wl,-rpath,"$INST/lib" 2>"$T/inst_cc.err"; then
    expect_eq capi_installed_header_and_library_link \
      "$("$T/inst_client" price gpt-4o openai 1000,500,0,0,0 | cut -d' ' -f1-3)" \
      "price 0 $(cost gpt-4o input=1000,output=500)"
  else
    fail capi_installed_header_and_library_link "$(head -c 300 "$T/inst_cc.err")"
  fi
else
  fail capi_install_header "$(tail -c 300 "$T/install.out")"
fi
