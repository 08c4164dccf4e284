#!/usr/bin/env bash
# report_demo.sh — the picture in README: a real run, then its report.
#
# Three unmodified "agents" (shell loops of curl calls to the bundled mock
# provider's OpenAI and Anthropic APIs, streamed and not) run under one
# budget with a $5.50 hard limit for about MINUTES minutes (4), with
# LLMMETER_LEDGER set; then `llmmeter report --html` makes the page and
# headless Chromium takes its screenshot (docs/report-demo.png).
#
#   scripts/report_demo.sh [OUT.png]      MINUTES=2 for a shorter run
set -u
cd "$(dirname "$0")/.."
LM=$PWD/build/llmmeter
[ -x "$LM" ] && [ -f build/libllmmeter.so ] || make -s
out=${1:-docs/report-demo.png}
tmp=$(mktemp -d)
python3 tests/mock/mock_provider.py --port 0 --port-file "$tmp/port" \
  --log "$tmp/mock.log" >/dev/null 2>&1 &
mock=$!
trap 'kill $mock 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 1 200); do [ -s "$tmp/port" ] && break; sleep 0.05; done
URL=http://127.0.0.1:$(cat "$tmp/port")
"$LM" rm --budget report-demo 2>/dev/null
"$LM" init --budget report-demo --limit 5.50 --soft 4.00 >/dev/null
export LLMMETER_LEDGER=$tmp/ledger.jsonl LLMMETER_QUIET=1
end=$(($(date +%s) + ${MINUTES:-4} * 60))
agent() { # agent NAME MODEL... : one call after another, a pause between
  local name=$1 i=0; shift
  while [ "$(date +%s)" -lt "$end" ]; do
    local m=${@:$((i % $# + 1)):1} in=$((500 + RANDOM % 4000)) out=$((50 + RANDOM % 600))
    i=$((i + 1))
    case $m in
    claude-*) curl -sS -N "$URL/v1/messages" -H "X-Mock-Usage: input=$in,output=$out" \
        -d "{\"model\":\"$m\",\"max_tokens\":1024,\"stream\":true,\"messages\":[]}" ;;
    *) curl -sS "$URL/v1/chat/completions" -H "X-Mock-Usage: input=$in,output=$out" \
        -d "{\"model\":\"$m\",\"max_tokens\":1024,\"messages\":[]}" ;;
    esac >/dev/null 2>&1
    sleep "0.$((3 + RANDOM % 7))"
  done
}
export -f agent
export URL end
pids=()
for a in "planner gpt-4o claude-sonnet-4-5" "coder gpt-4o-mini claude-sonnet-4-5 gpt-4o" \
  "reviewer claude-haiku-4-5 gpt-4o-mini"; do
  LLMMETER_AGENT=${a%% *} "$LM" run --budget report-demo --quiet -- bash -c "agent $a" &
  pids+=($!)
done
wait "${pids[@]}" # not the mock
"$LM" status --budget report-demo | head -7
"$LM" report "$LLMMETER_LEDGER" --html "$tmp/report.html" --budget report-demo
chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars \
  --user-data-dir="$tmp/chrome" --window-size=1280,1560 \
  --screenshot="$out" "file://$tmp/report.html" 2>/dev/null
echo "wrote $out ($(wc -l <"$LLMMETER_LEDGER") ledger lines)"
"$LM" rm --budget report-demo
