# test_stress.sh — 16 processes × 500 LLM calls against one budget with a
# hard limit: half of them the curl CLI (one process, 500 transfers from a
# config file), half the C client build/tests/lm_stress (500 calls down one
# keep-alive handle). The mix: OpenAI chat, Anthropic messages and Ollama
# chat (dynamic, streamed and not), Gemini generateContent and
# streamGenerateContent (recorded fixtures). The run is done twice, once in
# optimistic and once in strict mode, each on a fresh budget.
#
# What must hold, whatever the interleaving:
#  - tokens: the budget's token totals equal, exactly, the usage the mock
#    sent for every request it answered 200 — except streams the budget cut
#    mid-way, which count the usage the client had received when cut;
#  - a refused call never reaches the mock; every call is settled (nothing
#    reserved, nothing in flight afterwards);
#  - overshoot: optimistic mode ends at most one request's cost past the
#    limit; strict mode never passes it. Both need estimates that are upper
#    bounds, so every request sets max_tokens (the mock's output stays
#    below it) and reports at most as many input tokens as its body's
#    string bytes / 3 + 16 (checked below against the price table).
. tests/integration/lib.sh
STRESS=$PWD/$BUILD/tests/lm_stress
NPROC=16
PER=${LM_STRESS_PER:-500}
if [ "${SAN:-0}" = 1 ]; then
  # See test_hooks.sh: the ASan-built C client gets the sanitized library
  # behind the ASan runtime; the curl CLI gets the ordinary build.
  # (LM_STRESS_PER=N runs fewer calls per process, e.g. on a slow machine.)
  export ASAN_OPTIONS=detect_leaks=0
  PRE=$PWD/build/libllmmeter.so
  PRE_CLIENT="$(gcc -print-file-name=libasan.so) $LIB"
else
  PRE=$LIB
  PRE_CLIENT=$LIB
fi
echo "stress: $NPROC processes x $PER calls per run (SAN=${SAN:-0})"
start_mock || { fail stress_mock_started "$(cat "$T/mock.out")"; exit 1; }
export LLMMETER_QUIET=1
unset LLMMETER_MIDSTREAM LLMMETER_DENY LLMMETER_LIMIT_USD

# --- the request mix ---------------------------------------------------------
# gen_plans DIR MODE: writes DIR/plan.N (lm_stress) and DIR/curl.N (curl -K)
# and DIR/manifest.json (id -> api, fixture, usage sent), deterministic.
gen_plans() {
  python3 - "$1" "$MOCK_URL" "$NPROC" "$PER" "$2" <<'PY'
import json, os, random, sys
d, url, nproc, per, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
os.makedirs(d + "/out", exist_ok=True)
rnd = random.Random(1234 + len(mode))
prompt = lambda n: ("stress " * (n // 7 + 1))[:n]
msgs = [{"role": "user", "content": prompt(300)}]
bodies = {
  "oa": {"model": "gpt-4o-mini", "max_tokens": 400, "messages": msgs},
  "oas": {"model": "gpt-4o-mini", "max_tokens": 400, "stream": True,
          "stream_options": {"include_usage": True}, "messages": msgs},
  "an": {"model": "claude-sonnet-4-5", "max_tokens": 400, "messages": msgs},
  "ans": {"model": "claude-sonnet-4-5", "max_tokens": 400, "stream": True, "messages": msgs},
  "ol": {"model": "llama3.2", "stream": False, "options": {"num_predict": 400}, "messages": msgs},
  "ols": {"model": "llama3.2", "options": {"num_predict": 400}, "messages": msgs},
  "ge": {"contents": [{"role": "user", "parts": [{"text": prompt(4000)}]}],
         "generationConfig": {"maxOutputTokens": 1000}},
  "ges": {"contents": [{"role": "user", "parts": [{"text": prompt(300)}]}],
          "generationConfig": {"maxOutputTokens": 1000}},
}
paths = {"oa": "/v1/chat/completions", "oas": "/v1/chat/completions",
         "an": "/v1/messages", "ans": "/v1/messages", "ol": "/api/chat", "ols": "/api/chat",
         "ge": "/v1beta/models/gemini-2.5-flash:generateContent",
         "ges": "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"}
api = {"oa": "openai", "oas": "openai", "an": "anthropic", "ans": "anthropic",
       "ol": "ollama", "ols": "ollama", "ge": "gemini", "ges": "gemini"}
fixture = {"ge": "gemini_generate_content_nonstream", "ges": "gemini_stream_sse"}
for k, b in bodies.items():
    with open("%s/%s.json" % (d, k), "w") as f:
        json.dump(b, f)
kinds = list(bodies)
manifest = {}
for p in range(nproc):
    client = "curl" if p % 2 == 0 else "c"
    lines = []
    for i in range(per):
        k = kinds[rnd.randrange(len(kinds))]
        rid = "%s%d-%d" % (client, p, i)
        hdrs = ["X-Stress-Id: " + rid]
        u = None
        if k in fixture:
            hdrs.append("X-Mock-Fixture: " + fixture[k])
        else:
            inp = rnd.randint(1, 100)
            u = {"input": inp, "output": rnd.randint(1, 400),
                 "cache_read": rnd.randint(0, inp // 2) if k[:2] != "ol" else 0,
                 "cache_write": 0, "reasoning": 0}
            if k[:2] == "oa":
                u["reasoning"] = rnd.randint(0, u["output"])
            hdrs.append("X-Mock-Usage: " + ",".join("%s=%d" % kv for kv in u.items()))
            hdrs.append("X-Mock-Output-Chunks: %d" % rnd.randint(1, 4))
        if rnd.random() < 0.25:  # split at random bytes: framers see any cut
            hdrs.append("X-Mock-Split-Max: %d" % rnd.randint(1, 64))
        manifest[rid] = {"kind": k, "api": api[k], "fixture": fixture.get(k), "usage": u}
        lines.append((rid, url + paths[k], "%s/%s.json" % (d, k), hdrs))
    if client == "c":
        with open("%s/plan.%d" % (d, p), "w") as f:
            for rid, u, b, hdrs in lines:
                f.write("\t".join([rid, u, b] + hdrs) + "\n")
    else:
        with open("%s/curl.%d" % (d, p), "w") as f:
            for n, (rid, u, b, hdrs) in enumerate(lines):
                if n:
                    f.write("next\n")
                f.write('url = "%s"\ndata-binary = "@%s"\n' % (u, b))
                for h in hdrs:
                    f.write('header = "%s"\n' % h)
                f.write('output = "%s/out/%s"\n' % (d, rid))
                f.write('write-out = "%s %%{exitcode} %%{http_code}\\n"\n' % rid)
json.dump(manifest, open(d + "/manifest.json", "w"))
PY
}

# Every request type's estimate must bound its actual cost, or neither
# bound below is a theorem. The estimate assumed here is a lower bound of
# the library's (prompt text only, not the JSON around it).
python3 - "$LM" <<'PY' >"$T/bounds"
import json, subprocess, sys
lm = sys.argv[1]
def cost(model, usage):
    out = subprocess.run([lm, "prices", model, "--json", "--usage", usage],
                         capture_output=True, text=True).stdout
    return json.loads(out)["cost_pusd"]
rows = [  # model, estimate (prompt chars/3+16, max output), worst actual
  ("gpt-4o-mini", "input=%d,output=400" % (300 // 3 + 16), "input=100,output=400"),
  ("claude-sonnet-4-5", "input=%d,output=400" % (300 // 3 + 16), "input=100,output=400"),
  ("gemini-2.5-flash", "input=%d,output=1000" % (4000 // 3 + 16),
   "input=17713,output=889,cache_read=17379,reasoning=821"),
  ("gemini-2.5-flash", "input=%d,output=1000" % (300 // 3 + 16), "input=18,output=115,reasoning=35"),
]
ok, worst = True, 0
for m, est, act in rows:
    e, a = cost(m, est), cost(m, act)
    ok &= e >= a
    worst = max(worst, e)
print(1 if ok else 0, worst)
PY
read -r BOUNDS_OK MAX_EST <"$T/bounds"
expect_eq stress_estimates_are_upper_bounds "$BOUNDS_OK" 1

# --- one run -----------------------------------------------------------------
# run_once MODE LIMIT: fresh budget, 16 processes in parallel, then checks.
run_once() {
  local mode=$1 limit=$2 d=$T/$1 B
  mkdir -p "$d/cut"
  gen_plans "$d" "$mode"
  new_budget B
  "$LM" init --budget "$B" --limit "$limit" "--$mode" >/dev/null
  local start=$SECONDS log0
  log0=$(mock_requests)
  local pids=()
  for p in $(seq 0 $((NPROC - 1))); do
    if [ $((p % 2)) = 0 ]; then
      LLMMETER_BUDGET=$B LD_PRELOAD=$PRE timeout 300 \
        curl -sS -K "$d/curl.$p" >"$d/res.$p" 2>"$d/err.$p" &
    else
      LLMMETER_BUDGET=$B LD_PRELOAD=$PRE_CLIENT timeout 300 \
        "$STRESS" plan "$d/plan.$p" "$d/res.$p" "$d/cut" 2>"$d/err.$p" &
    fi
    pids+=($!)
  done
  local crashed=0
  for pid in "${pids[@]}"; do
    wait "$pid"
    local rc=$?
    case $rc in 0|23|42) ;; *) crashed=$((crashed + 1)); echo "stress: pid $pid exited $rc" ;; esac
  done
  echo "stress $mode: $((NPROC * PER)) calls in $((SECONDS - start)) s"
  expect_eq "stress_${mode}_no_client_crashed" "$crashed" 0
  "$LM" status --budget "$B" --json >"$d/status.json"
  tail -n +"$((log0 + 1))" "$MOCK_LOG" >"$d/mock.log"
  python3 - "$d" "$LM_ROOT/tests/fixtures" "$limit" "$MAX_EST" "$mode" <<'PY'
import decimal, glob, json, os, sys
sys.path.insert(0, os.path.join(os.environ.get("LM_ROOT", "."), "tests/integration"))
from received_usage import usage_of, KINDS
d, fx, limit, max_est, mode = sys.argv[1:6]
limit_pusd = int(decimal.Decimal(limit) * 10**12)
max_est = int(max_est)
man = json.load(open(d + "/manifest.json"))
st = json.load(open(d + "/status.json"))
res = {}
for f in glob.glob(d + "/res.*"):
    for line in open(f):
        p = line.split()
        if len(p) == 3:
            res[p[0]] = (int(p[1]), int(p[2]))
served = {}
for line in open(d + "/mock.log"):
    j = json.loads(line)
    rid = (j.get("headers") or {}).get("X-Stress-Id")
    if rid:
        served.setdefault(rid, []).append(j)
def fixture_usage(case):
    n = json.load(open("%s/%s.meta.json" % (fx, case)))["expected_normalized"]
    return {"input": n["total_input_tokens"], "output": n["output_tokens_incl_reasoning"],
            "cache_read": n["cache_read_tokens"], "cache_write": n["cache_write_tokens"],
            "reasoning": n["reasoning_tokens"]}
want = {k: 0 for k in KINDS}
problems, counts = [], {"ok": 0, "cut": 0, "denied": 0}
for rid, m in man.items():
    r = res.get(rid)
    logs = served.get(rid, [])
    if r is None:
        problems.append("%s: no result" % rid); continue
    curle, http = r
    if curle == 42:
        counts["denied"] += 1
        if logs:
            problems.append("%s: refused, yet reached the mock" % rid)
        continue
    if len(logs) != 1 or logs[0]["status"] != 200:
        problems.append("%s: curle=%d http=%d, mock saw %s" % (rid, curle, http,
                        [l.get("status") for l in logs])); continue
    if curle == 0:
        counts["ok"] += 1
        u = fixture_usage(m["fixture"]) if m["fixture"] else m["usage"]
    elif curle == 23:  # cut by the budget: what the client had received
        counts["cut"] += 1
        prefix = "/out/" if rid.startswith("curl") else "/cut/"
        u = usage_of(m["api"], open(d + prefix + rid, "rb").read()) or {k: 0 for k in KINDS}
    else:
        problems.append("%s: curle=%d" % (rid, curle)); continue
    for k in KINDS:
        want[k] += u[k]
got = {k: st["tokens"][k] for k in KINDS}
spent = st["spent_pusd"]
over = spent - limit_pusd
print("stress %s: %d answered, %d cut, %d refused; spent %s of limit %s: overshoot %s USD"
      " (bound: one request, %s USD)" % (mode, counts["ok"], counts["cut"], counts["denied"],
      st["spent_usd"], limit, decimal.Decimal(over) / 10**12, decimal.Decimal(max_est) / 10**12))
def check(name, ok, detail=""):
    print(("PASS: " if ok else "FAIL: ") + name + ("" if ok else " — " + detail))
check("stress_%s_every_call_accounted" % mode, not problems, "; ".join(problems[:5]))
check("stress_%s_tokens_equal_mock_exactly" % mode, got == want, "budget %s, mock %s" % (got, want))
check("stress_%s_limit_reached" % mode, counts["denied"] > 0, "no call was refused")
check("stress_%s_requests_and_denials_counted" % mode,
      (st["requests"], st["denied"]) == (counts["ok"] + counts["cut"], counts["denied"]),
      "status %s/%s" % (st["requests"], st["denied"]))
check("stress_%s_nothing_left_reserved" % mode,
      (st["reserved_pusd"], st["in_flight"], st["in_flight_leases"]) == (0, 0, 0),
      "reserved %s, in flight %s, leases %s" % (st["reserved_pusd"], st["in_flight"], st["in_flight_leases"]))
if mode == "strict":
    check("stress_strict_zero_overshoot", spent <= limit_pusd, "spent %s > limit" % st["spent_usd"])
    check("stress_strict_no_stream_cut", counts["cut"] == 0, "%d cut" % counts["cut"])
else:
    check("stress_optimistic_overshoot_at_most_one_request", over <= max_est,
          "overshoot %d pUSD > %d" % (over, max_est))
PY
}

# A limit about three quarters of what the mix would cost unmetered, so the
# limit is crossed mid-run with every process still busy.
LIMIT=$(python3 -c "print(round(5.5 * $PER / 500, 2))")
run_once optimistic "$LIMIT"
run_once strict "$LIMIT"
