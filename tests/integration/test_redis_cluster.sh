#!/usr/bin/env bash
# test_redis_cluster.sh — one Redis budget on a Redis Cluster: three
# masters on loopback (Debian's redis-server, no replicas, a password).
#
# hiredis 0.14 has no cluster client; what makes a cluster work is that
# every key of a budget carries its hash tag {NAME} (one slot, one node)
# and that the backend follows a MOVED reply to the node that owns the
# slot. So the budget is named by a node that does NOT own its slot, and
# every process must still land on the owner: calls exact to the pico-USD
# against a shm reference, a rate limit held, every key on the owner, a
# database other than 0 refused with one line, and the password never
# shown; list through any node shows every master's budgets. And while a
# budget's slot is being migrated to another node, its
# calls are refused with one line and nothing of it changes (a script that
# failed half-way would keep what it wrote).
set -u
source tests/integration/lib.sh

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  fail redis_cluster_prerequisites "redis-server and redis-cli are needed (scripts/deps.sh)"
  exit 0
fi
if [ "${SAN:-0}" = 1 ]; then
  export ASAN_OPTIONS=detect_leaks=0
  LIB=$PWD/build/libllmmeter.so # curl is not an ASan program (see test_redis.sh)
fi

PW="cl-$$-secret"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORTS=()
PIDS=()
for i in 1 2 3; do
  p=$(free_port)
  # the cluster bus listens on port + 10000: both must be free
  while [ "$p" -gt 55000 ] || ! python3 -c "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1',$p+10000))" 2>/dev/null; do p=$(free_port); done
  d=$T/node$i
  mkdir -p "$d"
  cat >"$d/redis.conf" <<EOF
port $p
bind 127.0.0.1
requirepass $PW
masterauth $PW
cluster-enabled yes
cluster-config-file $d/nodes.conf
cluster-node-timeout 5000
dir $d
save ""
appendonly no
EOF
  redis-server "$d/redis.conf" >"$d/log" 2>&1 &
  PIDS+=($!)
  PORTS+=("$p")
done
start_mock
trap 'kill ${PIDS[*]} $MOCK_PID 2>/dev/null; cleanup_budgets' EXIT
RC() { local p=$1; shift; redis-cli -p "$p" -a "$PW" --no-auth-warning "$@"; }
up() {
  for p in "${PORTS[@]}"; do
    for _ in $(seq 1 200); do RC "$p" ping 2>/dev/null | grep -q PONG && break; sleep 0.05; done
    RC "$p" ping 2>/dev/null | grep -q PONG || return 1
  done
}
check redis_cluster_nodes_started up
redis-cli -a "$PW" --no-auth-warning --cluster create \
  "127.0.0.1:${PORTS[0]}" "127.0.0.1:${PORTS[1]}" "127.0.0.1:${PORTS[2]}" \
  --cluster-replicas 0 --cluster-yes >"$T/create.log" 2>&1
cluster_ok() {
  for _ in $(seq 1 200); do
    local all=1
    for p in "${PORTS[@]}"; do
      RC "$p" cluster info | grep -q 'cluster_state:ok' || all=0
    done
    [ $all = 1 ] && return 0
    sleep 0.05
  done
  return 1
}
check redis_cluster_three_masters_ok cluster_ok

# slot_nodes NAME: "OWNER OTHER" of the budget's slot: the node that owns
# it answers a read of its key; the others MOVED (OTHER: the first of
# them); "-" for none
slot_nodes() {
  local key="llmmeter:{$1}:cfg" own= oth= p
  for p in "${PORTS[@]}"; do
    if RC "$p" exists "$key" 2>&1 | grep -q MOVED; then oth=${oth:-$p}; else own=$p; fi
  done
  echo "${own:--} ${oth:--}"
}
NAME=team
KEY="llmmeter:{$NAME}:cfg"
SLOT=$(RC "${PORTS[0]}" cluster keyslot "$KEY")
read -r OWNER OTHER <<<"$(slot_nodes "$NAME")"
check redis_cluster_slot_has_one_owner test "$OWNER" != - -a "$OTHER" != -
echo "slot $SLOT owner $OWNER, naming the budget by $OTHER"

MU=http://127.0.0.1:$MOCK_PORT/v1/chat/completions
REQ='{"model":"gpt-4o","max_tokens":200,"messages":[{"role":"user","content":"hello"}]}'
USAGE='X-Mock-Usage: input=1000,output=150,cache_read=200'
url() { echo "redis://:$PW@127.0.0.1:$1/$2"; }
sj() { "$LM" status --json --budget "$1"; }
call() {
  LLMMETER_QUIET=1 LLMMETER_WAIT_S=0 LLMMETER_BUDGET=$1 LD_PRELOAD=$LIB timeout 60 \
    curl -sS "$MU" -H "$USAGE" -d "$REQ" -o /dev/null 2>/dev/null
  echo $?
}

# the reference: one call on a shm budget
new_budget SHM
"$LM" init --budget "$SHM" >/dev/null
call "$SHM" >/dev/null
ONE=$(sj "$SHM" | json_get - 'j["spent_pusd"]')

B=$(url "$OTHER" "$NAME")
out=$("$LM" init --budget "$B" --force --limit 100 2>&1)
expect_eq redis_cluster_init_through_a_non_owner "$out" "created budget 'redis://127.0.0.1:$OTHER/0/$NAME' (limit \$100.00)"
expect_eq redis_cluster_budget_lives_on_the_owner "$(RC "$OWNER" exists "$KEY")" 1
# 4 processes x 5 calls, each process naming the non-owner
before=$(wc -l <"$MOCK_LOG")
cpids=()
for p in 1 2 3 4; do (for _ in 1 2 3 4 5; do call "$B"; done >"$T/c.$p") & cpids+=($!); done
wait "${cpids[@]}"
expect_eq redis_cluster_20_calls_pass "$(cat "$T"/c.* | sort | uniq -c | tr -s ' ' | sed 's/^ //')" "20 0"
S=$(sj "$B")
expect_eq redis_cluster_spent_exact "$(json_get - 'j["spent_pusd"], j["requests"], j["reserved_pusd"], j["in_flight"]' <<<"$S")" "$((ONE * 20)) 20 0 0"
expect_eq redis_cluster_every_call_reached_mock "$(( $(wc -l <"$MOCK_LOG") - before ))" 20
expect_eq redis_cluster_status_same_through_the_owner "$(sj "$(url "$OWNER" "$NAME")" | json_get - 'j["spent_pusd"]')" "$((ONE * 20))"
# every key of the budget is on the owner; none anywhere else
others=0
for p in "${PORTS[@]}"; do
  [ "$p" = "$OWNER" ] && continue
  others=$((others + $(RC "$p" --scan --pattern "llmmeter:{$NAME}:*" | wc -l)))
done
expect_eq redis_cluster_no_key_on_other_nodes "$others" 0
check redis_cluster_keys_on_owner test "$(RC "$OWNER" --scan --pattern "llmmeter:{$NAME}:*" | wc -l)" -ge 4

# a rate limit holds on the cluster too
"$LM" set --budget "$B" --rpm 2 >/dev/null
expect_eq redis_cluster_rpm_held "$(for _ in 1 2 3; do call "$B"; done | paste -sd' ')" "0 0 42"

# what cannot work says so in one line
out=$("$LM" init --budget "redis://:$PW@127.0.0.1:$OTHER/3/$NAME" 2>&1)
check redis_cluster_db_other_than_0_one_line bash -c "[ \$(printf '%s\n' \"\$1\" | wc -l) = 1 ] && printf '%s' \"\$1\" | grep -q 'SELECT refused'" _ "$out"
out=$("$LM" list --budget "redis://:$PW@127.0.0.1:$OWNER")
check redis_cluster_list_on_the_owner grep -q "^redis://127.0.0.1:$OWNER/0/$NAME " <<<"$out"
# list, through any node, shows the budgets of every master (l3's slot is
# on the first, l1's on the second, l4's and team's on the third)
for nm in l1 l2 l3 l4 l5 l6; do
  "$LM" init --budget "$(url "$OTHER" "$nm")" --force --limit 1 >/dev/null
done
holders=$(for p in "${PORTS[@]}"; do
  RC "$p" --scan --pattern 'llmmeter:{l?}:cfg' | grep -q . && echo "$p"; done | wc -l)
expect_eq redis_cluster_list_budgets_on_three_nodes "$holders" 3
i=0
for p in "${PORTS[@]}"; do
  i=$((i + 1))
  got=$("$LM" list --budget "redis://:$PW@127.0.0.1:$p" | awk '{print $1}' |
    sed 's#.*/##' | paste -sd' ')
  expect_eq "redis_cluster_list_through_node_${i}_shows_all" "$got" "l1 l2 l3 l4 l5 l6 team"
done
for nm in l1 l2 l3 l4 l5 l6; do "$LM" rm --budget "$(url "$OTHER" "$nm")" >/dev/null; done
out="$out $("$LM" status --budget "$B" 2>&1) $(LLMMETER_BUDGET=$B LLMMETER_WAIT_S=0 LD_PRELOAD=$LIB curl -sS "$MU" -d "$REQ" -o /dev/null 2>&1)"
check redis_cluster_password_never_shown bash -c "printf '%s' \"\$1\" | grep -q 'rate limit rpm' && ! printf '%s' \"\$1\" | grep -q '$PW'" _ "$out"
# ---- the budget's slot being migrated (resharding): refused, nothing kept ----
# A killed stream's lease (TTL 1 s) has expired and waits to be refunded.
# The budget's slot is then set MIGRATING to another node and one key of
# it, the rule's counter, moved there first, as `redis-cli --cluster
# reshard` moves a slot key by key. A script let run would refund the
# lease, fail at the moved key and keep the refund (Redis keeps what a
# script wrote before an error), again at every call: reserved below zero,
# more admitted than the limit. Every call is refused with one line, no
# key left on the owner changes, nothing reaches the mock; with the key
# back and the slot stable, a call passes and the lease is refunded once.
MIG=mig
MKEY="llmmeter:{$MIG}:cfg"
MSLOT=$(RC "${PORTS[0]}" cluster keyslot "$MKEY")
read -r MOWN MDST <<<"$(slot_nodes "$MIG")"
check redis_cluster_migrate_has_two_nodes test "$MOWN" != - -a "$MDST" != -
node_id() { RC "$1" cluster myid; }
BM=$(url "$MOWN" "$MIG")
"$LM" init --budget "$BM" --force --limit 100 >/dev/null
"$LM" set --budget "$BM" --model-limit 'gpt-4*=50' >/dev/null
SREQ='{"model":"gpt-4o","max_tokens":200,"stream":true,"messages":[{"role":"user","content":"hello"}]}'
LLMMETER_LEASE_TTL_S=1 LLMMETER_QUIET=1 LLMMETER_BUDGET=$BM LD_PRELOAD=$LIB \
  curl -sS -N "$MU" -H 'X-Mock-Delay-Ms: 200' -H 'X-Mock-Output-Chunks: 100' \
  -d "$SREQ" -o /dev/null 2>/dev/null &
SPID=$!
for _ in $(seq 1 200); do
  [ "$(RC "$MOWN" zcard "llmmeter:{$MIG}:leases")" = 1 ] && break
  sleep 0.05
done
{ kill -9 "$SPID"; wait "$SPID"; } 2>/dev/null
# until Redis's clock is past the lease's expiry (the score, in ms)
expiry=$(RC "$MOWN" zrange "llmmeter:{$MIG}:leases" 0 0 withscores | tail -1)
redis_ms() { RC "$MOWN" time | paste -sd' ' | awk '{printf "%.0f\n", $1 * 1000 + int($2 / 1000)}'; }
for _ in $(seq 1 100); do [ "$(redis_ms)" -gt "${expiry:-0}" ] && break; sleep 0.05; done
check redis_cluster_migrate_lease_expired test "$(redis_ms)" -gt "${expiry:-0}"
check redis_cluster_migrate_lease_reserves test "$(RC "$MOWN" hget "llmmeter:{$MIG}:tot" rs)" -gt 0
dumps() { for k in $(RC "$MOWN" --scan --pattern "llmmeter:{$MIG}:*" | sort); do
  echo "$k $(RC "$MOWN" --no-raw dump "$k" | md5sum | cut -c1-16)"; done; }
RC "$MDST" cluster setslot "$MSLOT" importing "$(node_id "$MOWN")" >/dev/null
RC "$MOWN" cluster setslot "$MSLOT" migrating "$(node_id "$MDST")" >/dev/null
RC "$MOWN" migrate 127.0.0.1 "$MDST" "llmmeter:{$MIG}:r:1" 0 5000 AUTH "$PW" >/dev/null
before_dump=$(dumps)
before=$(wc -l <"$MOCK_LOG")
expect_eq redis_cluster_migrating_refused "$(for _ in 1 2 3; do call "$BM"; done | paste -sd' ')" "42 42 42"
out=$(LLMMETER_BUDGET=$BM LLMMETER_WAIT_S=0 LD_PRELOAD=$LIB curl -sS "$MU" -d "$REQ" -o /dev/null 2>&1)
check redis_cluster_migrating_says_why bash -c "[ \$(printf '%s\n' \"\$1\" | grep -c 'llmmeter: call refused: .*MIGRATING its cluster slot is moving to another node') = 1 ]" _ "$out"
expect_eq redis_cluster_migrating_nothing_written "$(dumps)" "$before_dump"
expect_eq redis_cluster_migrating_nothing_sent "$(( $(wc -l <"$MOCK_LOG") - before ))" 0
# the key back, the slot stable: a call passes, the lease refunded once
RC "$MDST" migrate 127.0.0.1 "$MOWN" "llmmeter:{$MIG}:r:1" 0 5000 AUTH "$PW" >/dev/null
RC "$MOWN" cluster setslot "$MSLOT" stable >/dev/null
RC "$MDST" cluster setslot "$MSLOT" stable >/dev/null
expect_eq redis_cluster_migrated_back_passes "$(call "$BM")" 0
expect_eq redis_cluster_lease_refunded_once "$(sj "$BM" | json_get - 'j["reserved_pusd"], j["in_flight"], j["reclaimed"]')" "0 0 1"
check redis_cluster_migrate_rm "$LM" rm --budget "$BM"

check redis_cluster_rm "$LM" rm --budget "$B"
expect_eq redis_cluster_rm_left_no_config "$(RC "$OWNER" exists "$KEY")" 0
