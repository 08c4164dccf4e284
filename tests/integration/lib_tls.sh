# lib_tls.sh — helpers for the scripts that run real clients over real TLS
# against the mock served over HTTPS (sourced after lib.sh, not run).
#
# What it sets up:
#   tls_setup         the test CA and the mock's certificate (tests/tls/
#                     make_ca.sh, cached in .deps/tls-ca) and the host
#                     mapping below; checks each runtime is installed
#   start_tls_mock    the mock over HTTPS on a free port, advertising ALPN
#                     h2,http/1.1 (it speaks HTTP/1.1 whatever is chosen),
#                     recording every body it sends in $T/rec/<n>.body
#   tls_client NAME ARGS...   one client of tests/tls/clients/ (names in
#                     RAW_CLIENTS and SDK_CLIENTS) in the mapped world; a
#                     leading VAR=value (e.g. LD_PRELOAD=...) goes only to
#                     the client
#
# How LLM host names reach the mock: a client must connect to
# https://api.openai.com:PORT/ (not 127.0.0.1) so that the SNI, the Host
# header and the certificate check carry the real host name, as the
# OpenSSL transport recognises an LLM call by its SNI. Overriding the
# name per client (server_hostname in Python, servername in node, PHP's
# peer_name, Ruby's ipaddr=) would make every client a special case and
# leave the leak guard's getaddrinfo unexercised, and writing the
# machine's /etc/hosts is shared state that other suites on the machine
# would see mid-run. So each client runs under tests/tls/with_hosts: a
# private mount namespace (unshare -m as root, a user namespace as anyone
# else) where the suite's hosts file is bind-mounted over /etc/hosts;
# every runtime resolves through its ordinary getaddrinfo and the machine
# is untouched. Where no namespace can be had (a container without
# CAP_SYS_ADMIN or user namespaces) and /etc/hosts is writable, lines
# tagged "# lmtls-PID" are appended and removed at exit; else the TLS
# tests are skipped with the reason.
#
# Which clients decode Content-Encoding themselves (so their --out holds
# the decoded body): node 18 fetch (gzip, deflate, br; not zstd) and the
# SDKs. The raw Python clients, Ruby (it sends Accept-Encoding: identity)
# and PHP deliver the bytes as sent.
TLS_CA=$PWD/.deps/tls-ca
TLS_HOSTS=$TLS_CA/hosts
VENV_PY=$PWD/.deps/venv/bin/python
NODE18=$PWD/tests/tls/node18
TLS_CLIENTS=$PWD/tests/tls/clients
# LM_TLS_RAW / LM_TLS_SDK narrow the lists (to work on one client)
RAW_CLIENTS=${LM_TLS_RAW-"py_httpclient py_urllib py_requests py_httpx py_httpx_async py_aiohttp node_fetch ruby_net_http php_stream"}
SDK_CLIENTS=${LM_TLS_SDK-"py_openai py_anthropic node_openai node_anthropic"}
TLS_SECRET_OPENAI=sk-lmtls-OPENAI-$$-do-not-print
TLS_SECRET_ANTHROPIC=sk-ant-lmtls-$$-do-not-print
TLS_MAP=ns
declare -A TLS_SKIP=() # client -> why it cannot run here

# tls_setup: CA, host mapping and runtimes. Returns 1 (with a reason in
# TLS_SETUP_ERR) when no TLS test can run at all.
tls_setup() {
  TLS_SETUP_ERR=""
  bash tests/tls/make_ca.sh "$TLS_CA" || { TLS_SETUP_ERR="make_ca.sh failed"; return 1; }
  if ! tests/tls/with_hosts "$TLS_HOSTS" true 2>/dev/null; then
    if [ -w /etc/hosts ]; then
      TLS_MAP=etc
      grep -v '^#\|^$\|localhost' "$TLS_HOSTS" | sed "s/\$/ # lmtls-$$/" >>/etc/hosts
    else
      TLS_SETUP_ERR="no mount namespace for with_hosts and /etc/hosts is not writable"
      return 1
    fi
  fi
  [ -x "$VENV_PY" ] || TLS_SKIP[py_openai]="no .deps/venv (run scripts/deps.sh)"
  [ -x "$VENV_PY" ] || TLS_SKIP[py_anthropic]="no .deps/venv (run scripts/deps.sh)"
  local n
  for n in node_fetch node_openai node_anthropic; do
    "$NODE18" -e 0 2>/dev/null || TLS_SKIP[$n]="no Debian node 18 in .deps/node18 (run scripts/deps.sh)"
  done
  for n in node_openai node_anthropic; do
    [ -d .deps/node_modules/openai ] || TLS_SKIP[$n]="no npm SDKs in .deps/node_modules"
  done
  command -v ruby >/dev/null || TLS_SKIP[ruby_net_http]="ruby is not installed"
  command -v php >/dev/null || TLS_SKIP[php_stream]="php is not installed"
  for n in requests httpx aiohttp; do
    /usr/bin/python3 -c "import $n" 2>/dev/null || TLS_SKIP[py_$n]="python3-$n is not installed"
  done
  [ -z "${TLS_SKIP[py_httpx]:-}" ] || TLS_SKIP[py_httpx_async]=${TLS_SKIP[py_httpx]}
  return 0
}
tls_restore_hosts() {
  [ "$TLS_MAP" = etc ] || return 0
  local keep
  keep=$(grep -v " # lmtls-$$\$" /etc/hosts)
  printf '%s\n' "$keep" >/etc/hosts # in place: /etc/hosts may be a mount
}
tls_cleanup() {
  [ -n "${MOCK_PID:-}" ] && kill "$MOCK_PID" 2>/dev/null
  tls_restore_hosts
  cleanup_budgets
}
trap tls_cleanup EXIT

# tls_skipped NAME: prints the skip line and succeeds when NAME can't run
tls_skipped() {
  [ -n "${TLS_SKIP[$1]:-}" ] || return 1
  echo "skip: $1: ${TLS_SKIP[$1]}"
}

# start_tls_mock [ARGS...]: like lib.sh's start_mock, over HTTPS, under
# Debian's python3 (its brotli and zstandard modules give br and zstd).
# Sets MOCK_PORT, MOCK_LOG, MOCK_REC.
start_tls_mock() {
  MOCK_LOG=$T/mock.log
  MOCK_REC=$T/rec
  : >"$MOCK_LOG"
  rm -rf "$MOCK_REC" "$T/mock.port"
  mkdir -p "$MOCK_REC"
  /usr/bin/python3 tests/mock/mock_provider.py --port 0 --port-file "$T/mock.port" \
    --log "$MOCK_LOG" --seed 7 --tls-cert "$TLS_CA/server.pem" --tls-key "$TLS_CA/server.key" \
    --alpn h2,http/1.1 --record-dir "$MOCK_REC" "$@" >"$T/mock.out" 2>&1 &
  MOCK_PID=$!
  for _ in $(seq 1 200); do
    [ -s "$T/mock.port" ] && break
    kill -0 "$MOCK_PID" 2>/dev/null || break
    sleep 0.05
  done
  MOCK_PORT=$(cat "$T/mock.port" 2>/dev/null)
  [ -n "$MOCK_PORT" ]
}
# wait_mock_requests N: waits (up to 5 s) until the mock has logged N
# requests; a request is logged when its response ended or failed, which
# for a client that gave up can be after the client has exited
wait_mock_requests() {
  local i
  for i in $(seq 1 100); do
    [ "$(mock_requests)" -ge "$1" ] && return 0
    sleep 0.05
  done
  return 1
}
# mock_last K: field K of the mock's last log line (a python expression on j)
mock_last() { tail -n 1 "$MOCK_LOG" | json_get - "$1"; }
# sent_bodies FIRST LAST: the bodies the mock sent for requests FIRST..LAST
# (1-based, in the log's order), concatenated, as sent
sent_bodies() {
  local rec
  for rec in $(sed -n "$1,$2p" "$MOCK_LOG" | python3 -c '
import json, sys
for line in sys.stdin:
    print(json.loads(line).get("record") or "-")'); do
    [ "$rec" = - ] || cat "$MOCK_REC/$rec"
  done
}
# decoded ENCODING: stdin decoded as a client that decodes would
decoded() {
  /usr/bin/python3 -c '
import sys, zlib
d, e = sys.stdin.buffer.read(), sys.argv[1]
if e in ("gzip", "deflate"):
    d = zlib.decompressobj(31 if e == "gzip" else 15).decompress(d)
elif e == "br":
    import brotli; d = brotli.decompress(d)
elif e == "zstd":
    import zstandard; d = zstandard.ZstdDecompressor().decompressobj().decompress(d)
sys.stdout.buffer.write(d)' "$1"
}
# client_decodes NAME ENCODING: does this client hand the program the
# decoded body for ENCODING?
client_decodes() {
  case "$1:$2" in
    node_fetch:gzip | node_fetch:deflate | node_fetch:br) return 0 ;;
    *) return 1 ;;
  esac
}

# tls_client NAME [VAR=value...] ARGS...: runs one client (timeout 60 s)
# in the mapped world with the CA and the API keys in its environment.
tls_client() {
  local name=$1
  shift
  local envs=()
  while [ $# -gt 0 ] && [[ $1 == [A-Z_]*=* ]]; do
    envs+=("$1")
    shift
  done
  local cmd
  case $name in
    py_httpclient | py_urllib | py_requests | py_httpx | py_httpx_async | py_aiohttp | py_async_load | py_prior_h2 | py_pipeline)
      cmd=(/usr/bin/python3 "$TLS_CLIENTS/$name.py") ;;
    py_openai | py_anthropic) cmd=("$VENV_PY" "$TLS_CLIENTS/$name.py") ;;
    node_fetch) cmd=("$NODE18" "$TLS_CLIENTS/node_fetch.js") ;;
    node_static_fetch) cmd=(/usr/bin/node "$TLS_CLIENTS/node_fetch.js") ;; # the installed node: static OpenSSL
    node_openai) cmd=("$NODE18" "$TLS_CLIENTS/node_sdk.js" openai) ;;
    node_anthropic) cmd=("$NODE18" "$TLS_CLIENTS/node_sdk.js" anthropic) ;;
    ruby_net_http) cmd=(ruby "$TLS_CLIENTS/ruby_net_http.rb") ;;
    php_stream) cmd=(php "$TLS_CLIENTS/php_stream.php") ;;
    *) echo "tls_client: unknown client $name" >&2; return 2 ;;
  esac
  local map=(tests/tls/with_hosts "$TLS_HOSTS")
  [ "$TLS_MAP" = etc ] && map=()
  timeout 60 "${map[@]}" env SSL_CERT_FILE="$TLS_CA/ca.pem" NODE_EXTRA_CA_CERTS="$TLS_CA/ca.pem" \
    OPENAI_API_KEY="$TLS_SECRET_OPENAI" ANTHROPIC_API_KEY="$TLS_SECRET_ANTHROPIC" \
    PYTHONDONTWRITEBYTECODE=1 "${envs[@]}" "${cmd[@]}" "$@"
}
# raw_args URL: the raw clients' common arguments
raw_url() { echo "https://$1:$MOCK_PORT$2"; }
