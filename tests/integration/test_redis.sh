#!/usr/bin/env bash
# test_redis.sh — one budget across machines: the Redis backend against a
# real redis-server (a password, appendonly), with real clients.
#
# "Machines" are separate IPC + mount namespaces, each with a private
# /dev/shm (unshare): first shown not to share a shm budget, then sharing
# one Redis budget exactly. Then a hard limit held across them (refused
# calls never reach the mock), kill -9 mid-stream (reservations come back
# once the leases expire), a settle whose reply is lost (charged once),
# Redis killed (calls refused at once with one line, no hang) and
# restarted from its AOF (nothing acknowledged lost), and the password
# never shown. Rates, rate rules and the tpm correction run the same
# sequences on a shm budget and a Redis one and must agree; a swarm is
# paced by --rpm; --downgrade as test_pace checks it on shm; list by SCAN.
# (A Redis Cluster: test_redis_cluster.sh.)
set -u
source tests/integration/lib.sh

if ! command -v redis-server >/dev/null || ! command -v unshare >/dev/null; then
  fail redis_prerequisites "redis-server and unshare are needed (scripts/deps.sh)"
  exit 0
fi

if [ "${SAN:-0}" = 1 ]; then
  # Debian's curl and python3 are not ASan programs: they preload the
  # ordinary build; the sanitized CLI still drives the backend throughout.
  export ASAN_OPTIONS=detect_leaks=0
  PRE_PROBE="$(gcc -print-file-name=libasan.so) $LIB" # resolve_probe is ASan
  LIB=$PWD/build/libllmmeter.so
else
  PRE_PROBE=$LIB
fi
PW="pw-$$-secret"
RPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RDIR=$T/redis
mkdir -p "$RDIR"
cat >"$RDIR/redis.conf" <<EOF
port $RPORT
bind 127.0.0.1
requirepass $PW
appendonly yes
appendfsync always
dir $RDIR
save ""
enable-debug-command local
EOF
RPID=
start_redis() {
  redis-server "$RDIR/redis.conf" >>"$RDIR/log" 2>&1 &
  RPID=$!
  for _ in $(seq 1 200); do
    redis-cli -p "$RPORT" -a "$PW" --no-auth-warning ping 2>/dev/null | grep -q PONG && return 0
    sleep 0.05
  done
  return 1
}
R() { redis-cli -p "$RPORT" -a "$PW" --no-auth-warning "$@"; }
start_mock
trap 'kill $RPID $MOCK_PID 2>/dev/null; cleanup_budgets' EXIT
check redis_started start_redis

MU=http://127.0.0.1:$MOCK_PORT/v1/chat/completions
REQ='{"model":"gpt-4o","max_tokens":200,"messages":[{"role":"user","content":"hello"}]}'
SREQ='{"model":"gpt-4o-mini","max_tokens":200,"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}'
USAGE='X-Mock-Usage: input=1000,output=150,cache_read=200'
url() { echo "redis://:$PW@127.0.0.1:$RPORT/$1"; }
shown() { echo "redis://127.0.0.1:$RPORT/0/$1"; }
sj() { "$LM" status --json --budget "$1"; }
# conserved NAME: the budget's totals against its leases, read from Redis
# itself (every lease, settled or reclaimed, keeps its tombstone for minutes
# at least): spent is what the settled leases were charged plus what the
# reclaimed ones had received; requests are the settled leases and the
# reclaimed ones that were charged; reserved is what the live leases still
# hold. Prints "ok" or what differs.
conserved() {
  local name=$1 k
  {
    R hmget "llmmeter:{$name}:tot" sp rq rs | tr -d '\r' | paste -sd' '
    R --scan --pattern "llmmeter:{$name}:l:*" | while read -r k; do
      R hmget "$k" st ch rs | tr -d '\r' | paste -sd' '
    done
  } | python3 -c '
import sys
lines = [l.split() for l in sys.stdin.read().splitlines() if l.strip()]
tot = [int(x or 0) for x in lines[0]] + [0] * (3 - len(lines[0]))
sp = rq = rs = 0
for st, ch, r in ((l + ["", "0", "0"])[:3] for l in lines[1:]):
    ch, r = int(ch or 0), int(r or 0)
    sp += ch
    rq += st in ("s", "rc")
    rs += r if st == "a" else 0
got = (sp, rq, rs)
print("ok" if tuple(tot) == got else f"totals {tuple(tot)} leases {got}")
'
}
call() { # call BUDGET stream|json [CURL ARGS]: one metered call; prints curl's exit code
  local b=$1 kind=$2; shift 2
  local body=$REQ; [ "$kind" = stream ] && body=$SREQ
  LLMMETER_QUIET=1 LLMMETER_BUDGET=$b LD_PRELOAD=$LIB timeout 60 \
    curl -sS -N "$MU" -H "${CALL_USAGE:-$USAGE}" "$@" -d "$body" -o /dev/null 2>/dev/null
  echo $?
}

# ---- the reference: what a call costs, on a shm budget ----------------------
new_budget SHM
"$LM" init --budget "$SHM" >/dev/null
call "$SHM" json >/dev/null
call "$SHM" stream >/dev/null
PAIR=$(sj "$SHM" | json_get - 'j["spent_pusd"]')
PAIR_IN=$(sj "$SHM" | json_get - 'j["tokens"]["input"]')
check redis_reference_pair_costs_something test "${PAIR:-0}" -gt 0

# ---- a budget in Redis, through the CLI --------------------------------------
B1=$(url team1)
out=$("$LM" init --budget "$B1" --force 2>&1)
expect_eq redis_init_names_it_without_password "$out" "created budget '$(shown team1)' (limit none)"
check redis_status_json_has_no_password bash -c "! '$LM' status --json --budget '$B1' | grep -q '$PW'"
out=$("$LM" status --budget "redis://:wrong@127.0.0.1:$RPORT/team1" 2>&1)
check redis_wrong_password_one_line bash -c "[ \$(printf '%s\n' \"\$1\" | wc -l) = 1 ] && printf '%s' \"\$1\" | grep -q 'Redis 127.0.0.1:$RPORT' && ! printf '%s' \"\$1\" | grep -q wrong" _ "$out"
out=$(LLMMETER_REDIS_PASSWORD=$PW "$LM" status --json --budget "redis://127.0.0.1:$RPORT/team1" | json_get - 'j["budget"]')
expect_eq redis_password_from_environment "$out" "$(shown team1)"
out=$("$LM" init --budget "$B1" 2>&1)
check redis_init_refuses_overwrite bash -c "printf '%s' \"\$1\" | grep -q 'exists'" _ "$out"

# ---- machines: private /dev/shm each -----------------------------------------
machine() { # machine CMD...: runs CMD in new IPC + mount namespaces, own /dev/shm
  unshare -im bash -c 'mount -t tmpfs -o mode=1777 tmpfs /dev/shm && exec "$@"' _ "$@"
}
new_budget LOCAL
machine bash -c "'$LM' init --budget '$LOCAL' >/dev/null && [ -e /dev/shm/$LOCAL ]"
expect_eq redis_machine_has_its_own_shm $? 0
machine bash -c "[ ! -e /dev/shm/$LOCAL ] && ! '$LM' status --budget '$LOCAL' >/dev/null 2>&1"
expect_eq redis_shm_budget_not_shared_between_machines $? 0

# 3 machines x 6 processes x 20 calls (10 non-stream, 10 stream) on one budget
before=$(mock_requests)
worker() { for _ in $(seq 1 10); do call "$1" json; call "$1" stream; done; }
export -f worker call
export LIB MU REQ SREQ USAGE
mpids=()
for m in 1 2 3; do
  machine bash -c "for p in 1 2 3 4 5 6; do worker '$B1' > '$T/mach$m.out'\$p & done; wait" &
  mpids+=($!)
done
wait "${mpids[@]}" # only the machines: the servers run on
codes=$(cat "$T"/mach*.out* | sort | uniq -c | tr -s ' ' | sed 's/^ //')
expect_eq redis_360_calls_all_pass "$codes" "360 0"
S=$(machine "$LM" status --json --budget "$B1")
expect_eq redis_spent_exact_across_machines "$(json_get - 'j["spent_pusd"]' <<<"$S")" "$((PAIR * 180))"
expect_eq redis_input_tokens_exact "$(json_get - 'j["tokens"]["input"]' <<<"$S")" "$((PAIR_IN * 180))"
expect_eq redis_requests_exact "$(json_get - 'j["requests"]' <<<"$S")" 360
expect_eq redis_nothing_left_reserved "$(json_get - 'j["reserved_pusd"],j["in_flight"]' <<<"$S")" "0 0"
expect_eq redis_every_call_reached_the_mock "$(( $(mock_requests) - before ))" 360
expect_eq redis_rows_per_model "$(json_get - '" ".join(sorted(m["model"] for m in j["models"]))' <<<"$S")" "gpt-4o gpt-4o-mini"

# ---- a hard limit held across machines ---------------------------------------
# usage below the estimate (max_tokens 200), so that strict can promise
HUSAGE='X-Mock-Usage: input=1,output=150'
new_budget SHM1
"$LM" init --budget "$SHM1" >/dev/null
CALL_USAGE=$HUSAGE call "$SHM1" json >/dev/null
one=$(sj "$SHM1" | json_get - 'j["spent_pusd"]')
export HUSAGE
for mode in optimistic strict; do
  B2=$(url "hard-$mode")
  lim=$(python3 -c "print('%.12f' % ($one * 25 / 1e12))")
  "$LM" init --budget "$B2" --force --limit "$lim" "--$mode" >/dev/null
  rm -f "$T"/hard*.out*
  before=$(mock_requests)
  mpids=()
  for m in 1 2 3; do
    machine bash -c "for p in 1 2 3 4 5 6; do (for i in 1 2 3 4; do CALL_USAGE=\$HUSAGE call '$B2' json; done) > '$T/hard$m.out'\$p & done; wait" &
    mpids+=($!)
  done
  wait "${mpids[@]}"
  S=$(sj "$B2")
  spent=$(json_get - 'j["spent_pusd"]' <<<"$S")
  reqs=$(json_get - 'j["requests"]' <<<"$S")
  denied=$(cat "$T"/hard*.out* | grep -c '^42$')
  passed=$(cat "$T"/hard*.out* | grep -c '^0$')
  limp=$((one * 25))
  if [ "$mode" = optimistic ]; then
    check redis_optimistic_overshoot_at_most_concurrency test "$spent" -le $((limp + 18 * one))
  else
    check redis_strict_never_over test "$spent" -le "$limp"
  fi
  check "redis_${mode}_some_refused" test "$denied" -gt 0
  expect_eq "redis_${mode}_refused_never_reached_mock" "$(( $(mock_requests) - before ))" "$passed"
  expect_eq "redis_${mode}_requests_are_the_passed_calls" "$reqs" "$passed"
done

# ---- model and agent rules ----------------------------------------------------
B7=$(url rules)
"$LM" init --budget "$B7" --force --limit 100 >/dev/null
call "$B7" json >/dev/null # gpt-4o, before the rule: the rule counts it
lim=$(python3 -c "print('%.12f' % ($one * 1.5 / 1e12))")
CALL_USAGE=$HUSAGE call "$B7" json >/dev/null
"$LM" set --budget "$B7" --model-limit "gpt-4*=$lim" --agent-limit "other-*=0.000001" >/dev/null
expect_eq redis_rule_counts_past_spend "$(sj "$B7" | json_get - '[str(int(r["spent_usd"] * 10**12)) for r in j["limits"] if r["pattern"] == "gpt-4*"][0]')" "$(sj "$B7" | json_get - 'j["spent_pusd"]')"
expect_eq redis_model_rule_refuses "$(CALL_USAGE=$HUSAGE call "$B7" json)" 42
expect_eq redis_agent_rule_refuses "$(LLMMETER_AGENT=other-1 call "$B7" stream)" 42
"$LM" set --budget "$B7" --model-limit "gpt-4*=none" >/dev/null
expect_eq redis_rule_removed_passes "$(CALL_USAGE=$HUSAGE call "$B7" json)" 0
expect_eq redis_rules_listed "$(sj "$B7" | json_get - '" ".join(r["pattern"] for r in j["limits"])')" "other-*"

# ---- rates: the same GCRA buckets as shm, on the server's clock ----------------
# Each sequence runs on a shm budget and a Redis one with the same limits;
# the exit codes and counts must be the same, refusals never sent.
rate_seq() { # rate_seq BUDGET N [CURL ARGS]: N calls, refused at once past the rate
  local b=$1 k=$2; shift 2
  for _ in $(seq 1 "$k"); do LLMMETER_WAIT_S=0 call "$b" json "$@"; done | paste -sd' '
}
new_budget SHMR
declare -A RT # RT[what_kind]: the result of one sequence on one backend
for kind in shm redis; do
  if [ $kind = shm ]; then RB=$SHMR; else RB=$(url rates); fi
  "$LM" init --budget "$RB" --force --rpm 5 >/dev/null
  before=$(mock_requests)
  RT[rpm_$kind]=$(rate_seq "$RB" 7)
  RT[sent_$kind]=$(( $(mock_requests) - before ))
  RT[st_$kind]=$(sj "$RB" | json_get - 'j["requests"], j["denied"], j["rates"]["rpm"]["limit"]')
  LLMMETER_WAIT_S=0 LLMMETER_QUIET=0 LLMMETER_BUDGET=$RB LD_PRELOAD=$LIB curl -sS "$MU" -d "$REQ" -o /dev/null 2>"$T/rate_$kind.err"
  "$LM" init --budget "$RB" --force --model-rpm 'gpt-4o=2' >/dev/null
  RT[rule_$kind]="$(rate_seq "$RB" 3) $(LLMMETER_WAIT_S=0 call "$RB" stream)"
  RT[rulest_$kind]=$(sj "$RB" | json_get - '[(r["pattern"], r["rpm"], r["used"]) for r in j["limits"]]')
  # tpm: an estimate of ~215 tokens a call, 20 used: without the correction
  # at settlement only two calls would fit in 500
  "$LM" init --budget "$RB" --force --tpm 500 >/dev/null
  RT[tpm_$kind]=$(CALL_USAGE='X-Mock-Usage: input=10,output=10' rate_seq "$RB" 6)
  RT[tpmused_$kind]=$(sj "$RB" | json_get - 'j["rates"]["tpm"]["used"]')
done
expect_eq redis_rpm_5_refuses_call_6_and_7 "${RT[rpm_redis]}" "0 0 0 0 0 42 42"
expect_eq redis_rpm_same_as_shm "${RT[rpm_redis]}" "${RT[rpm_shm]}"
expect_eq redis_rpm_refused_never_reached_mock "${RT[sent_redis]}" 5
expect_eq redis_rpm_status_same_as_shm "${RT[st_redis]}" "${RT[st_shm]}"
check redis_rpm_refusal_says_rate_and_retry grep -q "rate limit rpm 5/min reached.*retry after [0-9]*s" "$T/rate_redis.err"
expect_eq redis_rpm_refusal_same_words_as_shm "$(sed 's/budget .[^ ]*//' "$T/rate_redis.err")" "$(sed 's/budget .[^ ]*//' "$T/rate_shm.err")"
expect_eq redis_model_rpm_rule_refuses_third_gpt4o "${RT[rule_redis]}" "0 0 42 0"
expect_eq redis_model_rpm_rule_same_as_shm "${RT[rule_redis]}" "${RT[rule_shm]}"
expect_eq redis_rate_rule_status_same_as_shm "${RT[rulest_redis]}" "${RT[rulest_shm]}"
expect_eq redis_tpm_corrected_by_actual_usage "${RT[tpm_redis]}" "0 0 0 0 0 0"
expect_eq redis_tpm_same_as_shm "${RT[tpm_redis]}" "${RT[tpm_shm]}"
check redis_tpm_used_is_the_actual_tokens test "${RT[tpmused_redis]}" -le 120 -a "${RT[tpmused_redis]}" -ge 100

# a token rate so large that a correction is under a microsecond: nothing
# to move, and the settle must still land (HINCRBY refuses "-0")
RB=$(url hugetpm)
"$LM" init --budget "$RB" --force --tpm 100000000000 >/dev/null
errs() { R INFO errorstats | grep -o '^errorstat_ERR:count=[0-9]*' || echo none; }
e0=$(errs)
expect_eq redis_huge_tpm_call_passes "$(CALL_USAGE=$HUSAGE call "$RB" json)" 0
expect_eq redis_huge_tpm_no_script_error "$(errs)" "$e0"
expect_eq redis_huge_tpm_settled "$(sj "$RB" | json_get - 'j["requests"], j["in_flight"], j["reserved_pusd"]')" "1 0 0"

# a paced call's lease outlives its sleep: 30 calls fill --rpm 30, the 31st
# sleeps ~2 s for its turn under a 1 s lease TTL while status polls
# (each poll reclaims expired leases); it must not be taken for dead
RB=$(url pacedlease)
"$LM" init --budget "$RB" --force --rpm 30 >/dev/null
fpids=()
for i in 1 2 3; do (for j in $(seq 1 10); do CALL_USAGE=$HUSAGE call "$RB" json >/dev/null; done) & fpids+=($!); done
wait "${fpids[@]}"
t0=$(date +%s%N)
LLMMETER_LEASE_TTL_S=1 CALL_USAGE=$HUSAGE call "$RB" json >"$T/pl.rc" &
plpid=$!
while kill -0 "$plpid" 2>/dev/null; do sj "$RB" >/dev/null; sleep 0.1; done
wait "$plpid"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check redis_paced_call_slept_for_its_turn test "$ms" -ge 1000
expect_eq redis_paced_lease_not_reclaimed "$(cat "$T/pl.rc") $(sj "$RB" | json_get - 'j["requests"], j["reclaimed"], j["reserved_pusd"]')" "0 31 0 0"

# the C API on a rate-limited budget (under SAN=1 capi_client is an ASan
# program: the backend's admission, rates and settle run sanitized)
CAPI=$PWD/$BUILD/tests/capi_client
if [ -x "$CAPI" ]; then
  new_budget SHMC
  for kind in shm redis; do
    if [ $kind = shm ]; then RB=$SHMC; else RB=$(url capi-rates); fi
    "$LM" init --budget "$RB" --force --rpm 2 --tpm 1000 >/dev/null
    RT[capi_$kind]=$(LLMMETER_WAIT_S=0 "$CAPI" run "$RB" agent1 admit:gpt-4o:openai:100,100,0,0,0 \
      settle:10,10,0,0,0 admit:gpt-4o:openai:100,100,0,0,0 settle:10,10,0,0,0 \
      admit:gpt-4o:openai:100,100,0,0,0 | sed "s|budget '[^']*'|budget|" | paste -sd'|')
    RT[capitpm_$kind]=$(sj "$RB" | json_get - 'j["rates"]["tpm"]["used"], j["requests"], j["denied"]')
  done
  check redis_capi_rpm_2_refuses_the_third bash -c "[[ '${RT[capi_redis]}' == *'admit -7 budget: rate limit rpm 2/min reached'* ]]"
  expect_eq redis_capi_same_as_shm "${RT[capi_redis]}" "${RT[capi_shm]}"
  check redis_capi_tpm_corrected_to_actual bash -c "read u r d <<<'${RT[capitpm_redis]}'; [ \$u -ge 35 ] && [ \$u -le 40 ] && [ \$r = 2 ] && [ \$d = 1 ]"
else
  echo "skipped the C API checks: $CAPI is not built (make $BUILD/tests/capi_client)"
fi

# every rate setting shows in status --json as on shm
for kind in shm redis; do
  if [ $kind = shm ]; then RB=$SHMR; else RB=$(url rates); fi
  "$LM" init --budget "$RB" --force --rpm 7 --tpm 8 --input-tpm 9 --output-tpm 10 \
    --model-rpm 'gpt-*=11' --model-tpm 'o3*=12' >/dev/null
  RT[json_$kind]=$(sj "$RB" | json_get - 'sorted(j["rates"].items()), [sorted(r.items()) for r in j["limits"]]')
done
expect_eq redis_status_rates_same_as_shm "${RT[json_redis]}" "${RT[json_shm]}"
check redis_status_rates_all_four grep -q "output_tpm" <<<"${RT[json_redis]}"

# Paced, not refused: 8 processes x 8 calls against --rpm 60 (LLMMETER_WAIT_S
# 30): 60 at once, the other 4 one a second, none refused.
RB=$(url paced)
"$LM" init --budget "$RB" --force --rpm 60 >/dev/null
PQ='{"model":"gpt-4o-mini","max_tokens":20,"messages":[{"role":"user","content":"redis-paced"}]}'
pids=()
for i in $(seq 1 8); do
  ( for j in $(seq 1 8); do LLMMETER_QUIET=1 LLMMETER_BUDGET=$RB LD_PRELOAD=$LIB curl -sS "$MU" -H "$HUSAGE" -d "$PQ" -o /dev/null; echo $?; done >"$T/paced.$i" ) &
  pids+=($!)
done
wait "${pids[@]}"
expect_eq redis_paced_64_calls_none_refused "$(cat "$T"/paced.* | sort | uniq -c | tr -s ' ' | sed 's/^ //')" "64 0"
check redis_paced_60_at_once_then_one_a_second python3 - "$MOCK_LOG" <<'PY'
import json, sys, datetime
t = sorted(datetime.datetime.fromisoformat(j['time'].replace('Z', '+00:00')).timestamp()
           for j in map(json.loads, open(sys.argv[1])) if 'redis-paced' in j.get('body', ''))
a = [x - t[0] for x in t]
gaps = [y - x for x, y in zip(a[60:], a[61:])]
print('arrivals', len(a), 'first 60 within %.2fs' % a[59], 'gaps', ' '.join('%.2f' % g for g in gaps))
sys.exit(not (len(a) == 64 and a[59] < 3.0 and min(gaps) > 0.6 and max(gaps) < 1.5 and 3.0 < a[-1] < 7.0))
PY
expect_eq redis_paced_counts "$(sj "$RB" | json_get - 'j["requests"], j["denied"]')" "64 0"

# ---- --downgrade above the soft limit, as on shm --------------------------------
# Each call is a new process: the map comes with its open, and the soft
# limit another process crossed is asked of Redis before the call leaves.
BG=$(url downgrade)
"$LM" init --budget "$BG" --force --soft 0.000001 --downgrade 'gpt-4o=gpt-4o-mini,claude-opus-*=claude-haiku-4-5' >/dev/null
DQ='{"model":"gpt-4o","messages":[{"role":"user","content":"redis-downgrade"}]}'
last_model() { tail -1 "$MOCK_LOG" | json_get - "json.loads(j['body'])['model']"; }
dcall() { LLMMETER_QUIET=1 LLMMETER_BUDGET=$BG LLMMETER_LEDGER=$T/dg.ledger LD_PRELOAD=$LIB curl -sS "$MU" -H 'X-Mock-Usage: input=100,output=10' -d "$1" -o /dev/null; }
dcall "$DQ"
expect_eq redis_downgrade_not_below_soft "$(last_model)" gpt-4o
dcall "$DQ"
expect_eq redis_downgrade_seen_by_provider "$(last_model)" gpt-4o-mini
expect_eq redis_downgrade_in_ledger "$(tail -1 "$T/dg.ledger" | json_get - "j['model'], j['requested_model']")" "gpt-4o-mini gpt-4o"
dcall '{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"redis-downgrade"}]}'
expect_eq redis_downgrade_streaming_too "$(last_model)" gpt-4o-mini
dcall '{"model":"gpt-4.1","messages":[]}'
expect_eq redis_downgrade_never_unlisted_model "$(last_model)" gpt-4.1
expect_eq redis_downgrade_in_status "$(sj "$BG" | json_get - 'j["downgrade"]')" 'gpt-4o=gpt-4o-mini,claude-opus-*=claude-haiku-4-5'
"$LM" set --budget "$BG" --downgrade none >/dev/null
dcall "$DQ"
expect_eq redis_downgrade_none_sends_as_asked "$(last_model)" gpt-4o
expect_eq redis_downgrade_none_in_status "$(sj "$BG" | json_get - 'j["downgrade"]')" ''

# ---- kill -9 mid-stream: the leases expire, the reservations come back -------
B3=$(url crash)
"$LM" init --budget "$B3" --force --limit 100 >/dev/null
pids=()
for i in $(seq 1 10); do
  LLMMETER_LEASE_TTL_S=2 LLMMETER_QUIET=1 LLMMETER_BUDGET=$B3 LD_PRELOAD=$LIB \
    curl -sS -N "$MU" -H 'X-Mock-Delay-Ms: 200' -H 'X-Mock-Output-Chunks: 100' \
    -d "$SREQ" -o /dev/null 2>/dev/null &
  pids+=($!)
done
for _ in $(seq 1 200); do
  [ "$(sj "$B3" | json_get - 'j["in_flight"]')" = 10 ] && break
  sleep 0.05
done
expect_eq redis_ten_streams_in_flight "$(sj "$B3" | json_get - 'j["in_flight"]')" 10
{ kill -9 "${pids[@]}"; wait "${pids[@]}"; } 2>/dev/null # (no "Killed" lines)
check redis_killed_streams_still_hold_reservations test "$(sj "$B3" | json_get - 'j["reserved_pusd"]')" -gt 0
t0=$(date +%s)
until [ "$(sj "$B3" | json_get - 'j["reserved_pusd"],j["in_flight"]')" = "0 0" ] ||
      [ $(( $(date +%s) - t0 )) -gt 15 ]; do sleep 0.2; done
expect_eq redis_expired_leases_returned "$(sj "$B3" | json_get - 'j["reserved_pusd"],j["in_flight"]')" "0 0"
check redis_expired_leases_counted test "$(sj "$B3" | json_get - 'j["reclaimed"]')" -ge 10
expect_eq redis_next_call_passes "$(call "$B3" json)" 0
expect_eq redis_killed_clients_conserved "$(conserved crash)" ok

# ---- a stream longer than the lease's TTL keeps it by flowing ----------------
B6=$(url long)
"$LM" init --budget "$B6" --force --limit 100 >/dev/null
LLMMETER_LEASE_TTL_S=1 LLMMETER_QUIET=1 LLMMETER_BUDGET=$B6 LD_PRELOAD=$LIB \
  curl -sS -N "$MU" -H 'X-Mock-Delay-Ms: 100' -H 'X-Mock-Output-Chunks: 30' \
  -H "$USAGE" -d "$SREQ" -o /dev/null 2>/dev/null &
lpid=$!
polls=0
while kill -0 "$lpid" 2>/dev/null; do # each status reclaims expired leases
  sj "$B6" >/dev/null
  polls=$((polls + 1))
done
wait "$lpid"
S=$(sj "$B6")
check redis_long_stream_polled_past_its_ttl test "$polls" -gt 3
expect_eq redis_long_stream_lease_never_expired "$(json_get - 'j["reclaimed"],j["requests"],j["reserved_pusd"]' <<<"$S")" "0 1 0"

# ---- a call only reservations block waits for them (LLMMETER_WAIT_S) ---------
B8=$(url waits)
"$LM" init --budget "$B8" --force --limit 100 --strict >/dev/null
LLMMETER_QUIET=1 LLMMETER_BUDGET=$B8 LD_PRELOAD=$LIB \
  curl -sS -N "$MU" -H 'X-Mock-Delay-Ms: 100' -H 'X-Mock-Output-Chunks: 25' \
  -H "$HUSAGE" -d "$SREQ" -o /dev/null 2>/dev/null &
wpid=$!
for _ in $(seq 1 200); do
  [ "$(sj "$B8" | json_get - 'j["in_flight"]')" = 1 ] && break
  sleep 0.02
done
held=$(sj "$B8" | json_get - 'j["reserved_pusd"]')
# two reservations do not fit; one call's actual cost (3/4 of its estimate
# here) and one reservation do
"$LM" set --budget "$B8" --limit "$(python3 -c "print('%.12f' % ($held * 1.9 / 1e12))")" >/dev/null
expect_eq redis_blocked_by_reservation_refused_at_once "$(LLMMETER_WAIT_S=0 CALL_USAGE=$HUSAGE call "$B8" stream)" 42
expect_eq redis_blocked_by_reservation_waits_then_passes "$(LLMMETER_WAIT_S=30 CALL_USAGE=$HUSAGE call "$B8" stream)" 0
check redis_waiting_call_came_after_the_first_settled bash -c "! kill -0 $wpid 2>/dev/null"
wait "$wpid"
expect_eq redis_waits_count_one_denial "$(sj "$B8" | json_get - 'j["denied"],j["requests"]')" "1 2"

# ---- a settle whose reply is lost is charged once -----------------------------
B4=$(url retry)
"$LM" init --budget "$B4" --force >/dev/null
stall="redis-cli -p $RPORT -a $PW --no-auth-warning DEBUG SLEEP 1.6 >/dev/null & \
until ! timeout 0.2 redis-cli -p $RPORT -a $PW --no-auth-warning ping >/dev/null 2>&1; do :; done"
t0=$(date +%s%N)
out=$(python3 tests/capi/capi_ctypes.py "$LIB" run "$B4" agent1 admit:gpt-4o:openai:1000,200,0,0,0 \
  charge:1000,150,0,0,0 "exec:$stall" settle:1000,150,0,0,0 2>&1)
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
cost=$(awk '/^settle 0/{print $3}' <<<"$out")
S=$(sj "$B4")
expect_eq redis_lost_reply_settled_once "$(json_get - 'j["spent_pusd"],j["requests"],j["reserved_pusd"]' <<<"$S")" "$cost 1 0"
check redis_lost_reply_settle_bounded test "$ms" -lt 6000

# ---- Redis killed: refused at once, one line; restarted from its AOF ---------
B5=$(url outage)
"$LM" init --budget "$B5" --force --limit 50 >/dev/null
call "$B5" json >/dev/null
spent_before=$(sj "$B5" | json_get - 'j["spent_pusd"]')
kill -9 "$RPID"; wait "$RPID" 2>/dev/null
before=$(mock_requests)
t0=$(date +%s%N)
LLMMETER_BUDGET=$B5 LD_PRELOAD=$LIB timeout 20 curl -sS "$MU" -d "$REQ" -o /dev/null 2>"$T/outage.err"
rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
expect_eq redis_down_call_refused "$rc" 42
check redis_down_refused_within_2s test "$ms" -lt 2000
check redis_down_one_line_names_redis grep -q "Redis 127.0.0.1:$RPORT unreachable" "$T/outage.err"
check redis_down_line_has_no_password bash -c "! grep -q '$PW' '$T/outage.err'"
expect_eq redis_down_nothing_reached_mock "$(( $(mock_requests) - before ))" 0
rc=$(LLMMETER_ON_ERROR=open LLMMETER_QUIET=1 LLMMETER_BUDGET=$B5 LD_PRELOAD=$LIB timeout 20 \
  curl -sS "$MU" -d "$REQ" -o /dev/null 2>/dev/null; echo $?)
expect_eq redis_down_on_error_open_passes "$rc" 0
check redis_restarted start_redis
expect_eq redis_aof_kept_spent "$(sj "$B5" | json_get - 'j["spent_pusd"]')" "$spent_before"
expect_eq redis_admitted_again "$(call "$B5" json)" 0
expect_eq redis_killed_redis_conserved "$(conserved outage)" ok

# ---- round trips: a whole response's charge rides with its settle -----------
# One process, one non-stream call whose usage is past its reservation
# (1,000 input tokens against an estimate from "hello"): the open (one
# script run that creates a missing budget and reads its limits), the
# admission, the settle. A stream's charge past its reservation is sent at
# once (its cut depends on it): one more.
evalshas() { R info commandstats | tr -d '\r' | awk -F'[=,:]' '/^cmdstat_evalsha:/ {print $3}'; }
R config resetstat >/dev/null
call "$B5" json >/dev/null
expect_eq redis_whole_response_two_round_trips "$(evalshas)" 3
R config resetstat >/dev/null
call "$B5" stream >/dev/null
check redis_stream_charge_past_reservation_sent test "$(evalshas)" -ge 4
check redis_password_never_in_ledger_or_logs bash -c "! grep -rq '$PW' '$T'/*.err '$T'/*.p 2>/dev/null"

# ---- the leak guard asks a Redis budget too -----------------------------------
# A program with no TLS llmmeter sees, under a Redis budget with a hard
# limit, is refused the LLM host before any call (the limit came with the
# open, not with a first admission); with no limit it is only warned.
PROBE=$PWD/$BUILD/tests/resolve_probe
if [ -x "$PROBE" ]; then
  B9=$(url guard)
  "$LM" init --budget "$B9" --force --limit 5 >/dev/null
  out=$(LLMMETER_BUDGET=$B9 LD_PRELOAD="$PRE_PROBE" timeout 30 "$PROBE" api.openai.com 2>/dev/null)
  expect_eq redis_leak_guard_refuses_under_hard_limit "$out" "api.openai.com EAI_FAIL"
  "$LM" init --budget "$B9" --force >/dev/null
  out=$(LLMMETER_BUDGET=$B9 LD_PRELOAD="$PRE_PROBE" timeout 30 "$PROBE" api.openai.com 2>/dev/null)
  check redis_leak_guard_only_warns_without_limit bash -c "[ '$out' != 'api.openai.com EAI_FAIL' ]"
else
  fail redis_leak_guard_probe_built "missing $PROBE"
fi

# ---- list: the budgets of one Redis, by SCAN -------------------------------------
"$LM" init --budget "redis://:$PW@127.0.0.1:$RPORT/5/in-db5" --force --limit 2 >/dev/null
R CONFIG RESETSTAT >/dev/null
out=$("$LM" list --budget "redis://:$PW@127.0.0.1:$RPORT" 2>&1)
want=$(R --scan --pattern 'llmmeter:{*}:cfg' | sed 's/^llmmeter:{\(.*\)}:cfg$/\1/' | sort | sed "s|^|$(shown '')|" | paste -sd' ')
expect_eq redis_list_names_every_budget_of_the_db "$(awk '{print $1}' <<<"$out" | paste -sd' ')" "$want"
check redis_list_has_many test "$(wc -l <<<"$out")" -ge 10
expect_eq redis_list_shows_limit_and_spent "$(grep "^$(shown team1) " <<<"$out" | awk '{print $3, $5}')" "\$$(python3 -c "print('%.4f' % ($PAIR * 180 / 1e12))") none"
check redis_list_never_shows_password bash -c "! grep -q '$PW' <<<\"\$1\"" _ "$out"
check redis_list_by_scan_not_keys bash -c "R() { redis-cli -p $RPORT -a $PW --no-auth-warning \"\$@\"; }; R INFO commandstats | grep -q '^cmdstat_scan:' && ! R INFO commandstats | grep -q '^cmdstat_keys:'"
out=$(LLMMETER_REDIS_PASSWORD=$PW "$LM" list --budget "redis://127.0.0.1:$RPORT/5")
expect_eq redis_list_one_database "$out" "$(printf '%-32s spent $%-12s limit $2.00' "redis://127.0.0.1:$RPORT/5/in-db5" 0.0000)"
out=$(LLMMETER_BUDGET=$(url team1) "$LM" list | grep -c "^redis://127.0.0.1:$RPORT/0/")
check redis_list_of_llmmeter_budget_server test "$out" -ge 10
out=$("$LM" list --budget "redis://:wrong@127.0.0.1:$RPORT" 2>&1)
rc=$?
check redis_list_wrong_password_one_line bash -c "[ $rc = 1 ] && [ \$(printf '%s\n' \"\$1\" | wc -l) = 1 ] && printf '%s' \"\$1\" | grep -q 'AUTH refused' && ! printf '%s' \"\$1\" | grep -q wrong" _ "$out"

# ---- rm: every key of the budget goes ---------------------------------------
check redis_rm_removes "$LM" rm --budget "$B7"
out=$("$LM" status --budget "$B7" 2>&1)
check redis_rm_status_says_no_budget bash -c "printf '%s' \"\$1\" | grep -q 'no budget'" _ "$out"
# (settled leases' tombstones expire on their own)
expect_eq redis_rm_left_no_keys "$(R --scan --pattern 'llmmeter:{rules}:*' | grep -vc ':l:')" 0
