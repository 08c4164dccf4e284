# test_tls_baseline.sh — the real clients over real TLS, WITHOUT llmmeter:
# what every client of tests/tls/clients/ receives from the mock served
# over HTTPS (Content-Length and chunked, split into random TLS records;
# identity, gzip, deflate, br and zstd; JSON and SSE), so that
# test_tls.sh can demand the same with the library loaded. Each call
# must print its status, exit with the documented code, reach the mock
# exactly once (SDK retries counted), carry the LLM host as SNI, and
# deliver exactly the bytes the mock sent (decoded, for a client that
# decodes). Nothing here loads libllmmeter.so, so under SAN=1 it is not
# run again.
. tests/integration/lib.sh
. tests/integration/lib_tls.sh
if [ "${SAN:-0}" = 1 ]; then
  echo "test_tls_baseline: skipped under SAN=1: no llmmeter code runs in it"
  exit 0
fi
tls_setup || { fail tls_baseline_setup "$TLS_SETUP_ERR"; exit 1; }
start_tls_mock || { fail tls_baseline_mock_started "$(cat "$T/mock.out")"; exit 1; }
echo "tls_baseline: host mapping: $TLS_MAP"

JREQ='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}'
SREQ='{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}'
AREQ='{"model":"claude-haiku-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}'
U='X-Mock-Usage:input=1000,output=500'
OAI=api.openai.com
ANT=api.anthropic.com

# the cases: NAME HOST PATH BODY ENCODING HEADERS...
cases=(
  "json_length_split_records|$OAI|/v1/chat/completions|$JREQ|identity|$U|X-Mock-Split-Max:40"
  "json_gzip_chunked|$OAI|/v1/chat/completions|$JREQ|gzip|$U|X-Mock-Chunked:1|X-Mock-Split-Max:9"
  "json_br|$OAI|/v1/chat/completions|$JREQ|br|$U"
  "stream_gzip|$ANT|/v1/messages|$AREQ|gzip|$U|X-Mock-Split-Max:50"
  "stream_br_fixture|$OAI|/v1/chat/completions|$SREQ|br|X-Mock-Fixture:openai_chat_stream_include_usage"
)
STREAM="stream_chunked|$OAI|/v1/chat/completions|$SREQ|identity|$U|X-Mock-Split-Max:7"
# rarer encodings, through one client: zstd (Codex-style), deflate (zlib)
extra_cases=(
  "json_zstd|$OAI|/v1/chat/completions|$JREQ|zstd|$U"
  "stream_deflate_fixture|$ANT|/v1/messages|$AREQ|deflate|X-Mock-Fixture:anthropic_messages_stream"
)

# one_call CLIENT CASE N: runs CASE N times on one client; checks status,
# exit code, the mock's count, SNI, ALPN and the bytes
one_call() {
  local c=$1 spec=$2 n=${3:-1}
  local name host path body enc hdrs=()
  IFS='|' read -r name host path body enc rest <<<"$spec"
  local h
  IFS='|' read -ra hs <<<"$rest"
  for h in "${hs[@]}"; do hdrs+=(--header "$h"); done
  [ "$enc" = identity ] || hdrs+=(--header "X-Mock-Encoding:$enc")
  local t=${c}_$name${4:-}
  local n0
  n0=$(mock_requests)
  tls_client "$c" --url "$(raw_url "$host" "$path")" --body "$body" "${hdrs[@]}" \
    --cafile "$TLS_CA/ca.pem" --out "$T/$t.out" --repeat "$n" >"$T/$t.txt" 2>"$T/$t.err"
  local rc=$?
  expect_eq "${t}_exit_0" "$rc" 0
  expect_eq "${t}_status_printed" "$(grep -c '^status=200$' "$T/$t.txt")" "$n"
  expect_eq "${t}_reached_the_mock_${n}x" "$(($(mock_requests) - n0))" "$n"
  if client_decodes "$c" "$enc"; then
    check "${t}_bytes_decoded_equal_sent" cmp -s "$T/$t.out" <(sent_bodies $((n0 + 1)) $((n0 + n)) | decoded "$enc")
  else
    check "${t}_bytes_equal_sent" cmp -s "$T/$t.out" <(sent_bodies $((n0 + 1)) $((n0 + n)))
  fi
  case $name in *fixture)
    local fx
    fx=$(echo "$rest" | sed -n 's/.*X-Mock-Fixture:\([a-z0-9_]*\).*/\1/p')
    if client_decodes "$c" "$enc"; then
      check "${t}_is_the_fixture" cmp -s "$T/$t.out" "tests/fixtures/$fx.response"
    else
      check "${t}_is_the_fixture" cmp -s <(decoded "$enc" <"$T/$t.out") "tests/fixtures/$fx.response"
    fi
    ;;
  esac
  [ "$rc" = 0 ] || sed 's/^/    /' "$T/$t.txt" "$T/$t.err" | head -5
}

for c in $RAW_CLIENTS; do
  tls_skipped "$c" && continue
  for spec in "${cases[@]}"; do one_call "$c" "$spec"; done
  expect_eq "${c}_sni_is_the_llm_host" "$(mock_last "j['tls']['sni']")" "$OAI"
  check "${c}_alpn_not_h2" test "$(mock_last "j['tls']['alpn'] or 'none'")" != h2
  # a stream three times: keep-alive reuses the connection (urllib and
  # PHP close theirs)
  one_call "$c" "$STREAM" 3 _x3
  conns=$(tail -n 3 "$MOCK_LOG" | python3 -c 'import json,sys; print(len({json.loads(l)["conn"] for l in sys.stdin}))')
  case $c in
    py_urllib | php_stream) expect_eq "${c}_a_connection_per_call" "$conns" 3 ;;
    *) check "${c}_keepalive_reuses_connections" test "$conns" -lt 3 ;;
  esac
  # an HTTP error status: exit 3, its body delivered
  n0=$(mock_requests)
  tls_client "$c" --url "$(raw_url $OAI /v1/chat/completions)" --body "$JREQ" --header X-Mock-Status:429 \
    --cafile "$TLS_CA/ca.pem" --out "$T/$c.429.out" >"$T/$c.429.txt" 2>&1
  expect_eq "${c}_http_error_exit_3" "$?" 3
  check "${c}_http_error_status_printed" grep -q '^status=429$' "$T/$c.429.txt"
  check "${c}_http_error_body_delivered" cmp -s "$T/$c.429.out" <(sent_bodies $((n0 + 1)) $((n0 + 1)))
  # a connection error: exit 4
  tls_client "$c" --url "https://$OAI:1/v1/chat/completions" --body "$JREQ" \
    --cafile "$TLS_CA/ca.pem" >"$T/$c.refused.txt" 2>&1
  expect_eq "${c}_connection_error_exit_4" "$?" 4
done

for spec in "${extra_cases[@]}"; do one_call py_httpclient "$spec"; done

# ALPN: the mock prefers h2; a client that offers it gets it (the mock
# speaks HTTP/1.1 regardless). With the library, an LLM host's offer
# loses h2 (test_tls.sh).
tls_client py_httpclient --url "$(raw_url $OAI /v1/chat/completions)" --body "$JREQ" --alpn h2,http/1.1 \
  --cafile "$TLS_CA/ca.pem" >"$T/alpn.txt" 2>&1
expect_eq tls_alpn_h2_offered_is_chosen "$(mock_last "j['tls']['alpn']")" h2

# --- the SDKs: fixtures through the SDK's own parsing, default retries ------
# sdk_call CLIENT MODE FIXTURE WANT_USAGE
sdk_call() {
  local c=$1 mode=$2 fx=$3 want=$4 base model
  case $c in
    *openai) base=https://$OAI:$MOCK_PORT/v1 model=gpt-4o-mini ;;
    *) base=https://$ANT:$MOCK_PORT model=claude-haiku-4-5 ;;
  esac
  local t=${c}_$mode n0
  n0=$(mock_requests)
  tls_client "$c" --base-url "$base" --mode "$mode" --model "$model" \
    --header "X-Mock-Fixture:$fx" --header X-Mock-Encoding:accept --out "$T/$t.text" >"$T/$t.txt" 2>"$T/$t.err"
  local rc=$?
  expect_eq "${t}_exit_0" "$rc" 0
  check "${t}_usage_parsed" grep -q "^ok usage=$want\$" "$T/$t.txt"
  check "${t}_no_retry" grep -q '^retries=0$' "$T/$t.txt"
  expect_eq "${t}_reached_the_mock_once" "$(($(mock_requests) - n0))" 1
  check "${t}_text_received" test -s "$T/$t.text"
  check "${t}_key_not_printed" eval "! grep -qF -e '$TLS_SECRET_OPENAI' -e '$TLS_SECRET_ANTHROPIC' '$T/$t.txt' '$T/$t.err'"
  [ "$rc" = 0 ] || sed 's/^/    /' "$T/$t.txt" "$T/$t.err" | head -5
}
for c in $SDK_CLIENTS; do
  tls_skipped "$c" && continue
  modes="json stream async async-stream"
  case $c in node_*) modes="json stream" ;; esac # every JS call is async
  for m in $modes; do
    case $c:$m in
      *openai:*stream) sdk_call "$c" "$m" openai_chat_stream_include_usage 78/9 ;;
      *openai:*) sdk_call "$c" "$m" openai_chat_nonstream_reasoning 7/87 ;;
      *anthropic:*stream) sdk_call "$c" "$m" anthropic_messages_stream 25/15 ;;
      *anthropic:*) sdk_call "$c" "$m" anthropic_messages_nonstream_cache 3/33 ;;
    esac
  done
  # a 429 is retried twice by default: three requests reach the mock
  case $c in *openai) base=https://$OAI:$MOCK_PORT/v1 ;; *) base=https://$ANT:$MOCK_PORT ;; esac
  n0=$(mock_requests)
  tls_client "$c" --base-url "$base" --header X-Mock-Status:429 >"$T/$c.429.txt" 2>&1
  expect_eq "${c}_429_exit_3" "$?" 3
  check "${c}_429_retried_twice" grep -q '^retries=2$' "$T/$c.429.txt"
  expect_eq "${c}_429_three_requests" "$(($(mock_requests) - n0))" 3
  check "${c}_429_error_message" grep -q '^api_error=429: .*mock error status 429' "$T/$c.429.txt"
done
