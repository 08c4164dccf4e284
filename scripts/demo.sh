#!/usr/bin/env bash
# demo.sh — llmmeter against the bundled mock provider, end to end.
#
# Starts the mock on a free loopback port, gives a fresh budget a $0.05 hard
# limit, and runs an unmodified "agent" (a shell loop of curl calls to the
# OpenAI and Anthropic APIs, streamed and not) under `llmmeter run` until
# the budget stops it. Then prints where the money went.
set -u
cd "$(dirname "$0")/.."
LM=$PWD/build/llmmeter
[ -x "$LM" ] && [ -f build/libllmmeter.so ] || make -s
tmp=$(mktemp -d)
python3 tests/mock/mock_provider.py --port 0 --port-file "$tmp/port" \
  --log "$tmp/mock.log" >/dev/null 2>&1 &
mock=$!
trap 'kill $mock 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 1 200); do [ -s "$tmp/port" ] && break; sleep 0.05; done
URL=http://127.0.0.1:$(cat "$tmp/port")

"$LM" rm --budget demo 2>/dev/null
"$LM" init --budget demo --limit 0.05 --model-limit 'claude-*=0.03'
cat >"$tmp/agent.sh" <<AGENT
# An "agent": it knows nothing about llmmeter.
for i in \$(seq 1 40); do
  curl -sS -N $URL/v1/messages -H 'X-Mock-Usage: input=2000,output=400' \
    -d '{"model":"claude-sonnet-4-5","max_tokens":1024,"stream":true,"messages":[{"role":"user","content":"step '\$i'"}]}' >/dev/null ||
    echo "agent: claude call \$i failed (exit \$?)"
  curl -sS $URL/v1/chat/completions -H 'X-Mock-Usage: input=3000,output=500' \
    -d '{"model":"gpt-4o","messages":[{"role":"user","content":"step '\$i'"}]}' >/dev/null ||
    { echo "agent: gpt call \$i failed (exit \$?); stopping"; break; }
done
AGENT
echo
echo "== running the agent under a \$0.05 budget (claude-* capped at \$0.03)"
"$LM" run --budget demo -- bash "$tmp/agent.sh" 2>&1
echo
echo "== llmmeter status --budget demo"
"$LM" status --budget demo
echo
echo "The mock provider saw $(wc -l <"$tmp/mock.log") requests; refused calls never left the machine."
"$LM" rm --budget demo
