# test_chaos.sh — 100 clients killed with SIGKILL at a random moment of a
# slow stream (X-Mock-Delay-Ms between events), each on a fresh budget:
# the curl CLI (-N, so every write is flushed to its --output file) and the
# C client build/tests/lm_stress in "once" mode (every chunk write(2)n to
# disk before its callback returns), on Anthropic messages (input charged
# at message_start, output replaced at message_delta), OpenAI chat (usage
# in the last event) and Gemini (a usage snapshot in every event, from a
# recorded fixture split into random small chunks).
#
# The invariant. The library hands each chunk to the program first and
# charges the usage it carries right after the program accepted it, so at
# any instant:  charged = cost(usage of the complete events the program
# received), or — if the kill landed between the program's write and the
# charge, a window of microseconds — the cost of all but the last
# usage-bearing event received. Nothing else: never more than was
# received, never a reservation left behind. So per run, after the kill:
#  1. `llmmeter status` (which refunds dead owners' leases) shows
#     reserved 0, in_flight 0, no lease held;
#  2. spent == cost(usage in the received bytes) (the lagging case is
#     counted and printed, and tolerated only for the last event);
#  3. a later call on the same budget completes (under a timeout) and
#     is charged normally.
# Usage is read from the received bytes by received_usage.py, a reader
# independent of the library's extractor.
. tests/integration/lib.sh
STRESS=$PWD/$BUILD/tests/lm_stress
RUNS=${LM_CHAOS_RUNS:-100}
PAR=4
if [ "${SAN:-0}" = 1 ]; then
  export ASAN_OPTIONS=detect_leaks=0
  PRE=$PWD/build/libllmmeter.so
  PRE_CLIENT="$(gcc -print-file-name=libasan.so) $LIB"
else
  PRE=$LIB
  PRE_CLIENT=$LIB
fi
start_mock || { fail chaos_mock_started "$(cat "$T/mock.out")"; exit 1; }
export LLMMETER_QUIET=1
unset LLMMETER_MIDSTREAM LLMMETER_DENY LLMMETER_LIMIT_USD

ANT='{"model":"claude-sonnet-4-5","max_tokens":1000,"stream":true,"messages":[{"role":"user","content":"tell me a long story"}]}'
OAI='{"model":"gpt-4o","max_tokens":1000,"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"tell me a long story"}]}'
GEM='{"contents":[{"role":"user","parts":[{"text":"count to 30"}]}],"generationConfig":{"maxOutputTokens":1000}}'
NOW='{"model":"gpt-4o-mini","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}'
echo "$ANT" >"$T/ant.json"; echo "$OAI" >"$T/oai.json"
echo "$GEM" >"$T/gem.json"; echo "$NOW" >"$T/now.json"

# one_run I KIND KILL_MS: a fresh budget, one client of KIND (0-3) killed
# after KILL_MS milliseconds (-1: never).
one_run() {
  local i=$1 kind=$2 kill_ms=$3 d=$T/run.$1 B=$PREFIX-chaos-$1
  mkdir -p "$d"
  "$LM" init --budget "$B" --limit 10 >/dev/null 2>"$d/init.err"
  local url hdr body api model
  case $kind in
    0|1) api=anthropic model=claude-sonnet-4-5 url=$MOCK_URL/v1/messages body=$T/ant.json
         hdr="X-Mock-Usage: input=2000,output=300,cache_read=500" ;;
    2) api=gemini model=gemini-2.5-flash body=$T/gem.json
       url="$MOCK_URL/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
       hdr="X-Mock-Fixture: gemini_stream_sse" ;;
    3) api=openai model=gpt-4o url=$MOCK_URL/v1/chat/completions body=$T/oai.json
       hdr="X-Mock-Usage: input=1500,output=700,cache_read=200" ;;
  esac
  echo "$api $model" >"$d/meta"
  if [ "$kind" = 0 ] || [ "$kind" = 3 ]; then
    LLMMETER_BUDGET=$B LD_PRELOAD=$PRE curl -sS -N "$url" --data-binary "@$body" \
      -H "$hdr" -H 'X-Mock-Delay-Ms: 25' -H 'X-Mock-Output-Chunks: 8' \
      -H 'X-Mock-Split-Max: 200' -o "$d/out" 2>"$d/client.err" &
  else
    LLMMETER_BUDGET=$B LD_PRELOAD=$PRE_CLIENT "$STRESS" once "$url" "$body" "$d/out" \
      "$hdr" 'X-Mock-Delay-Ms: 12' 'X-Mock-Output-Chunks: 8' 2>"$d/client.err" &
  fi
  local pid=$! t0
  t0=$(date +%s%N)
  if [ "$kill_ms" -ge 0 ]; then
    sleep "$(printf '%d.%03d' $((kill_ms / 1000)) $((kill_ms % 1000)))"
    kill -9 "$pid" 2>/dev/null && echo killed >"$d/killed"
  fi
  wait "$pid" 2>/dev/null
  echo $((($(date +%s%N) - t0) / 1000000)) >"$d/ms"
  touch "$d/out"
  "$LM" status --budget "$B" --json >"$d/status.json" 2>"$d/status.err"
  # A later call on the same budget must neither hang nor be refused.
  LLMMETER_BUDGET=$B LD_PRELOAD=$PRE timeout 10 curl -sS "$MOCK_URL/v1/chat/completions" \
    --data-binary "@$T/now.json" -H 'X-Mock-Usage: input=10,output=5' -o /dev/null 2>"$d/later.err"
  echo $? >"$d/later.rc"
  "$LM" status --budget "$B" --json >"$d/after.json" 2>>"$d/status.err"
  "$LM" rm --budget "$B" >/dev/null 2>&1
}

# Calibration: one whole stream of each kind, unkilled (and checked like
# the others); the kills are then spread over 0..1.2x its duration.
start=$SECONDS
for k in 0 1 2 3; do
  BUDGETS+=("$PREFIX-chaos-$((RUNS + 1 + k))")
  one_run $((RUNS + 1 + k)) "$k" -1
  DUR[$k]=$(cat "$T/run.$((RUNS + 1 + k))/ms")
done
echo "chaos: whole streams take ${DUR[*]} ms (curl anthropic, C anthropic, C gemini, curl openai)"
batch=()
for i in $(seq 1 "$RUNS"); do
  BUDGETS+=("$PREFIX-chaos-$i")
  k=$((i % 4))
  one_run "$i" "$k" $((RANDOM % (DUR[k] * 12 / 10 + 1))) &
  batch+=($!)
  if [ "${#batch[@]}" = "$PAR" ] || [ "$i" = "$RUNS" ]; then
    wait "${batch[@]}" # never a bare wait: the mock is a child too
    batch=()
  fi
done
echo "chaos: $RUNS runs in $((SECONDS - start)) s"

python3 - "$T" "$RUNS" "$LM" <<'PY'
import json, os, subprocess, sys
sys.path.insert(0, os.path.join(os.environ.get("LM_ROOT", "."), "tests/integration"))
from received_usage import usage_events, usage_arg
t, runs, lm = sys.argv[1], int(sys.argv[2]), sys.argv[3]
cache = {}
def cost(model, u):
    if u is None:
        return 0
    key = (model, usage_arg(u))
    if key not in cache:
        out = subprocess.run([lm, "prices", model, "--json", "--usage", key[1]],
                             capture_output=True, text=True).stdout
        cache[key] = json.loads(out)["cost_pusd"]
    return cache[key]
bad = {"reserved": [], "charge": [], "later": [], "status": []}
stats = {"killed": 0, "no_usage_yet": 0, "partial": 0, "complete": 0, "lagging": 0}
for i in range(1, runs + 5):  # the killed runs, then the 4 whole ones
    d = "%s/run.%d" % (t, i)
    api, model = open(d + "/meta").read().split()
    try:
        st = json.load(open(d + "/status.json"))
        after = json.load(open(d + "/after.json"))
    except (OSError, ValueError):
        bad["status"].append(i)
        continue
    stats["killed"] += os.path.exists(d + "/killed")
    if (st["reserved_pusd"], st["in_flight"], st["in_flight_leases"]) != (0, 0, 0):
        bad["reserved"].append("%d: reserved %s in_flight %s leases %s" % (
            i, st["reserved_pusd"], st["in_flight"], st["in_flight_leases"]))
    ev = usage_events(api, open(d + "/out", "rb").read())
    full = cost(model, ev[-1] if ev else None)
    prev = cost(model, ev[-2] if len(ev) > 1 else None)
    spent = st["spent_pusd"]
    data = open(d + "/out", "rb").read()
    complete = (b"message_stop" in data if api == "anthropic" else
                b"[DONE]" in data if api == "openai" else b'"finishReason"' in data)
    stats["complete" if complete else "partial" if ev else "no_usage_yet"] += 1
    if spent == full:
        pass
    elif ev and spent == prev:
        stats["lagging"] += 1
    else:
        bad["charge"].append("%d (%s): spent %d, received usage costs %d (%s)" % (
            i, api, spent, full, ev[-1] if ev else "none"))
    rc = open(d + "/later.rc").read().strip()
    ok_after = (rc == "0" and after["requests"] == st["requests"] + 1 and
                after["reserved_pusd"] == 0 and after["in_flight_leases"] == 0)
    if not ok_after:
        bad["later"].append("%d: rc %s, requests %s->%s, reserved %s" % (
            i, rc, st["requests"], after["requests"], after["reserved_pusd"]))
print("chaos: %d runs (+4 whole streams), %d killed while running; received: %d nothing billable, "
      "%d part of the stream, %d all of it; charge one event behind: %d" % (
      runs, stats["killed"], stats["no_usage_yet"], stats["partial"], stats["complete"],
      stats["lagging"]))
def check(name, fails):
    print(("PASS: " if not fails else "FAIL: ") + name +
          ("" if not fails else " — %d runs: %s" % (len(fails), "; ".join(map(str, fails[:4])))))
check("chaos_status_readable_after_every_kill", bad["status"])
check("chaos_no_reservation_left_after_status", bad["reserved"])
check("chaos_charged_equals_usage_received", bad["charge"])
check("chaos_later_call_completes_and_is_charged", bad["later"])
check("chaos_kills_landed_mid_stream", [] if stats["partial"] >= runs // 5 else
      ["only %d of %d runs were killed mid-stream" % (stats["partial"], runs)])
PY
