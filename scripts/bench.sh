#!/usr/bin/env bash
# bench.sh — llmmeter's benchmark suite (make bench / make bench-quick).
#
# Every "with the library" figure comes from runs interleaved with runs
# without it in this one invocation: ROUNDS rounds, each running both
# sides back to back (the order alternates), and the figure is the median
# of the per-round differences or ratios, with their min..max spread.
# Absolute figures differ about 2x between machine kinds, so the
# throughputs and per-request CPU are also given as ratios to a physical
# reference measured in the same run: parsing against a memchr line scan
# of the same bytes in the same chunks (bench_parse), the budget against a
# bare atomic add from as many processes (bench_budget), added CPU against
# the client's own CPU per request (the run without the library). The
# table's header line names the CPU model and core count.
#
# Ends with a table "figure | measured | target | met?". Exit 0 unless
# something is broken (a tool fails, a total is inexact, usage is wrong);
# a missed timing target is reported, never fatal.
#
#   BUILD=build bash scripts/bench.sh           full run (< 10 min)
#   BUILD=build QUICK=1 bash scripts/bench.sh   reduced counts (< 60 s)
#   PORTKEY_DIR=dir                             where @portkey-ai/gateway is
#                                               (npm-installed on first use)
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
QUICK=${QUICK:-0}
B=$PWD/$BUILD/tests
LIB=$PWD/$BUILD/libllmmeter.so
LM=$PWD/$BUILD/llmmeter
T=$(mktemp -d)
RAW=$T/raw
: >"$RAW"
BUDGET=llmmeter-bench-$$
PIDS=()
BROKEN=0
START=$(date +%s)

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  rm -f "/dev/shm/$BUDGET"
  rm -rf "$T"
}
trap cleanup EXIT

if [ "$QUICK" = 1 ]; then
  ROUNDS=4; REQS=1600; SPAWN_TRUE=400; SPAWN_CURL=100; PARSE_MB=4; PARSE_REPS=3
  BUDGET_OPS=200000; DL_BYTES=200000000; STREAM_BYTES=20000000; GW_REQS=400
  XFER_N=5000; TLS_RT=300; TLS_REPS=41; TLS_DL_BYTES=150000000; TLS_DL_ROUNDS=4; REDIS_OPS=2000
  SPAWN_PY=40; IR_N1=50; IR_N2=250; PAIRED_ROUNDS=1; PAIRED_REPS=10
else
  ROUNDS=20; REQS=20000; SPAWN_TRUE=2000; SPAWN_CURL=500; PARSE_MB=16; PARSE_REPS=5
  BUDGET_OPS=2000000; DL_BYTES=1000000000; STREAM_BYTES=100000000; GW_REQS=2000
  XFER_N=20000; TLS_RT=500; TLS_REPS=101; TLS_DL_BYTES=1000000000; TLS_DL_ROUNDS=10; REDIS_OPS=20000
  SPAWN_PY=200; IR_N1=200; IR_N2=1200; PAIRED_ROUNDS=4; PAIRED_REPS=40
fi

say() { printf '%s\n' "$*" >&2; }
broken() { say "BROKEN: $*"; BROKEN=1; }
rec() { echo "$*" >>"$RAW"; } # rec FIGURE VALUE: one sample

for f in "$LIB" "$LM" "$B/bench_server" "$B/bench_client" "$B/bench_parse" \
         "$B/bench_budget" "$B/bench_spawn" "$B/bench_tls" "$B/bench_paired"; do
  [ -x "$f" ] || [ -f "$f" ] || { say "missing $f (run make bench)"; exit 1; }
done

"$LM" init --budget "$BUDGET" --force >/dev/null || { say "llmmeter init failed"; exit 1; }
export LLMMETER_QUIET=1
on() { LLMMETER_BUDGET=$BUDGET LD_PRELOAD=$LIB "$@"; }

# field NAME LINE: the value of NAME=... in a bench_client line
field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2"; }

# ---- the canned-response server ------------------------------------------
"$B/bench_server" "$T/port" &
PIDS+=($!)
for _ in $(seq 1 100); do [ -s "$T/port" ] && break; sleep 0.05; done
PORT=$(cat "$T/port" 2>/dev/null)
[ -n "$PORT" ] || { say "bench_server did not start"; exit 1; }
URL=http://127.0.0.1:$PORT
say "bench: server on $URL; $ROUNDS rounds; quick=$QUICK"

# ---- 1. per request --------------------------------------------------------
per_round=$((REQS / ROUNDS))
for conc in 1 16; do
  for kind in hello json stream; do
    n=$per_round
    [ "$conc" = 16 ] && n=$(( (per_round / 16) * 16 ))
    "$B/bench_client" "$kind" "$URL" 200 "$conc" >/dev/null 2>&1 # warm-up
    on "$B/bench_client" "$kind" "$URL" 200 "$conc" >/dev/null 2>&1
    for r in $(seq 1 "$ROUNDS"); do
      if [ $((r % 2)) = 1 ]; then
        off=$("$B/bench_client" "$kind" "$URL" "$n" "$conc") || broken "client $kind off"
        onl=$(on "$B/bench_client" "$kind" "$URL" "$n" "$conc") || broken "client $kind on"
      else
        onl=$(on "$B/bench_client" "$kind" "$URL" "$n" "$conc") || broken "client $kind on"
        off=$("$B/bench_client" "$kind" "$URL" "$n" "$conc") || broken "client $kind off"
      fi
      rec "req.$kind.c$conc.wall_ratio $(awk -v a="$(field wall_s "$onl")" -v b="$(field wall_s "$off")" 'BEGIN{printf "%.4f", a/b}')"
      rec "req.$kind.c$conc.cpu_us $(awk -v a="$(field cpu_s "$onl")" -v b="$(field cpu_s "$off")" -v n="$n" 'BEGIN{printf "%.3f", (a-b)/n*1e6}')"
      rec "req.$kind.c$conc.base_cpu_us $(awk -v b="$(field cpu_s "$off")" -v n="$n" 'BEGIN{printf "%.3f", b/n*1e6}')"
      rec "req.$kind.c$conc.cpu_ratio $(awk -v a="$(field cpu_s "$onl")" -v b="$(field cpu_s "$off")" 'BEGIN{printf "%.5f", (b>0)? (a-b)/b : 0}')"
      rec "req.$kind.c$conc.p50_us $(awk -v a="$(field p50_us "$onl")" -v b="$(field p50_us "$off")" 'BEGIN{printf "%.2f", a-b}')"
      rec "req.$kind.c$conc.p99_us $(awk -v a="$(field p99_us "$onl")" -v b="$(field p99_us "$off")" 'BEGIN{printf "%.2f", a-b}')"
      rec "req.$kind.c$conc.base_p50_us $(field p50_us "$off")"
    done
    say "bench: per-request $kind c=$conc done"
  done
done

# The same added CPU measured side by side in one process (bench_paired):
# a hooked libcurl and a second copy of it in a dlmopen namespace the
# library cannot see, alternating blocks on every thread. Without the
# preload both sides are libcurl alone: the method's own noise and bias.
for conc in 1 16; do
  for kind in hello json stream; do
    for r in $(seq 1 "$PAIRED_ROUNDS"); do
      onl=$(on "$B/bench_paired" "$kind" "$URL" "$conc" 50 "$PAIRED_REPS") || broken "bench_paired $kind on"
      off=$("$B/bench_paired" "$kind" "$URL" "$conc" 50 "$PAIRED_REPS") || broken "bench_paired $kind off"
      rec "pair.$kind.c$conc.cpu_us $(field added_us_per_req "$onl")"
      rec "pair.$kind.c$conc.base_cpu_us $(field base_us_per_req "$onl")"
      rec "pair.$kind.c$conc.floor_us $(field added_us_per_req "$off")"
    done
    say "bench: paired $kind c=$conc done (last: added $(field added_us_per_req "$onl") us over $(field base_us_per_req "$onl"); without the library $(field added_us_per_req "$off"))"
  done
done

# The library's own path per LLM request, in one process, on the responses
# the server above sends: no socket, no second process, so none of their
# noise (see tests/tools/bench_transfer.c).
for kind in json stream; do
  if [ "$kind" = stream ]; then
    curl -s -X POST -d '{"model":"gpt-4o-mini","stream":true}' "$URL/v1/chat/completions" -o "$T/resp.$kind"
    ct="text/event-stream; charset=utf-8"
  else
    curl -s -X POST -d '{"model":"gpt-4o-mini"}' "$URL/v1/chat/completions" -o "$T/resp.$kind"
    ct="application/json"
  fi
  out=$(LLMMETER_BUDGET=$BUDGET "$B/bench_transfer" "$T/resp.$kind" "$ct" "$XFER_N" 5) ||
    broken "bench_transfer $kind"
  rec "xfer.$kind.us $(field us_median "$out")"
  say "bench: library path alone, $kind: $out"
done

# ---- 2. process start ------------------------------------------------------
spawn_pair() { # spawn_pair NAME COUNT PROGRAM ARGS...
  local name=$1 count=$2; shift 2
  local per=$((count / ROUNDS)) a b
  for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then
      a=$("$B/bench_spawn" "$per" - "$@") || broken "spawn $name"
      b=$("$B/bench_spawn" "$per" "$LIB" "$@") || broken "spawn $name (preload)"
    else
      b=$("$B/bench_spawn" "$per" "$LIB" "$@") || broken "spawn $name (preload)"
      a=$("$B/bench_spawn" "$per" - "$@") || broken "spawn $name"
    fi
    rec "start.$name.added_us $(awk -v a="$(field us_per_start "$b")" -v b="$(field us_per_start "$a")" 'BEGIN{printf "%.1f", a-b}')"
    rec "start.$name.base_us $(field us_per_start "$a")"
  done
}
spawn_pair true "$SPAWN_TRUE" /bin/true
CURL_BIN=$(command -v curl)
if [ -n "$CURL_BIN" ]; then
  spawn_pair curl "$SPAWN_CURL" "$CURL_BIN" --version
fi
# Debian's python3 (the OpenSSL transport's commonest user), no import.
[ -x /usr/bin/python3 ] && spawn_pair python "$SPAWN_PY" /usr/bin/python3 -c pass
say "bench: process start done"

# Nothing mapped or allocated at load: a process that never calls libcurl.
( unset LD_PRELOAD; cat /proc/self/maps ) >"$T/maps.off"
LD_PRELOAD=$LIB cat /proc/self/maps >"$T/maps.on"
deps=$(ldd "$LIB" 2>/dev/null | awk '/=>/{print $3}' | xargs -r -n1 basename | paste -sd'|')
extra_maps=$(grep -c . "$T/maps.on")
base_maps=$(grep -c . "$T/maps.off")
keep() { grep -v -E "libllmmeter|${deps:-NONE}"; }
foreign=$(diff <(awk '{print $6}' "$T/maps.off" | keep | sort | uniq -c) \
               <(awk '{print $6}' "$T/maps.on" | keep | sort | uniq -c) | grep -c '^[<>]')
shm=$(grep -c /dev/shm "$T/maps.on")
heap_size() { # bytes of [heap] in a maps file
  local total=0 range lo hi
  while read -r range _ _ _ _ name; do
    [ "$name" = "[heap]" ] || continue
    lo=${range%-*}; hi=${range#*-}
    total=$((total + 16#$hi - 16#$lo))
  done <"$1"
  echo "$total"
}
heap_off=$(heap_size "$T/maps.off")
heap_on=$(heap_size "$T/maps.on")
say "bench: maps: $base_maps lines without, $extra_maps with the preload; lines other than libllmmeter.so and its libraries ($deps) that differ: $foreign; /dev/shm mappings: $shm; [heap] $heap_off -> $heap_on bytes"
rec "load.foreign_maps $foreign"
rec "load.shm_maps $shm"
rec "load.heap_added $((heap_on - heap_off))"
if command -v strace >/dev/null; then
  strace -f -qq -e trace=openat,open,mmap,brk -o "$T/st.off" cat /dev/null 2>/dev/null
  LD_PRELOAD=$LIB strace -f -qq -E LD_PRELOAD="$LIB" -e trace=openat,open,mmap,brk -o "$T/st.on" cat /dev/null 2>/dev/null
  opens_extra=$(grep -E '^[0-9]* *open' "$T/st.on" | grep -v ENOENT | grep -v -E "libllmmeter|${deps:-NONE}" | wc -l)
  opens_base=$(grep -E '^[0-9]* *open' "$T/st.off" | grep -v ENOENT | grep -v -E "${deps:-NONE}" | wc -l)
  mm_on=$(grep -c 'mmap(' "$T/st.on"); mm_off=$(grep -c 'mmap(' "$T/st.off")
  brk_on=$(grep -c 'brk(' "$T/st.on"); brk_off=$(grep -c 'brk(' "$T/st.off")
  say "bench: strace cat: open(at) $opens_base -> $opens_extra (not counting libllmmeter.so and its libraries), mmap $mm_off -> $mm_on, brk $brk_off -> $brk_on; files opened besides the libraries: $(grep -E 'open' "$T/st.on" | grep -v ENOENT | grep -v -E "libllmmeter|${deps:-NONE}|ld.so.cache|libc.so" | sed -n 's/.*"\(.*\)".*/\1/p' | paste -sd' ')"
  rec "load.opens_added $((opens_extra - opens_base))"
  rec "load.brk_added $((brk_on - brk_off))"
fi

# ---- 2b. the OpenSSL transport ---------------------------------------------
# Programs that call OpenSSL themselves (tests/tools/bench_tls.c): the
# client's SSL_read/SSL_write are the library's hooks under the preload,
# the server's side never is. A throw-away CA from tests/tls/make_ca.sh in
# this run's temp dir (its certificate names localhost and the LLM hosts).
if bash tests/tls/make_ca.sh "$T/tls" 2>"$T/tls.err"; then
  CERT=$T/tls/server.pem; KEY=$T/tls/server.key
  # Per client call on a non-LLM connection (raw: bytes that are not HTTP,
  # the transport stops following at once; http: small keep-alive
  # requests to Host: localhost, followed) and per metered LLM call (to
  # api.openai.com, the canned OpenAI JSON answer). bench_tls paired puts
  # a hooked and an unhooked connection in one process and alternates
  # blocks of TLS_RT round trips on each, TLS_REPS times: its figure is the
  # median of the per-block differences, so drift between processes and
  # runs cancels. The same run without the preload (both sides libssl's)
  # measures the method's own noise: its median should be ~0.
  tls_requests() { "$LM" status --budget "$BUDGET" 2>/dev/null | awk '$1=="requests"{print $2}'; }
  req0=$(tls_requests)
  for kind in raw http llm; do
    "$B/bench_tls" pair "$CERT" "$KEY" "$kind" 200 1 >/dev/null 2>&1 || broken "bench_tls $kind"
    for r in $(seq 1 "$ROUNDS"); do
      onl=$(on "$B/bench_tls" paired "$CERT" "$KEY" "$kind" "$TLS_RT" "$TLS_REPS") || broken "bench_tls $kind on"
      off=$("$B/bench_tls" paired "$CERT" "$KEY" "$kind" "$TLS_RT" "$TLS_REPS") || broken "bench_tls $kind off"
      rec "tls.$kind.ns_per_op $(field added_ns_per_op "$onl")"
      rec "tls.$kind.us_per_rt $(field added_us_per_rt "$onl")"
      rec "tls.$kind.base_ns_per_op $(field base_ns_per_op "$onl")"
      rec "tls.$kind.base_us_per_rt $(field base_us_per_rt "$onl")"
      rec "tls.$kind.floor_ns_per_op $(field added_ns_per_op "$off")"
    done
    say "bench: TLS $kind done (last round: added $(field added_ns_per_op "$onl") ns/call over $(field base_ns_per_op "$onl"); without the library $(field added_ns_per_op "$off"))"
  done
  # Every LLM round trip under the preload was a metered call.
  want=$(( ROUNDS * TLS_RT * (TLS_REPS + 1) ))
  req1=$(tls_requests)
  if [ -n "$req0" ] && [ -n "$req1" ] && [ $((req1 - req0)) -ge "$want" ]; then
    rec "tls.llm.metered yes"
  else
    rec "tls.llm.metered no"
    broken "bench_tls llm: the budget counted $(( ${req1:-0} - ${req0:-0} )) requests, not $want"
  fi

  # A non-LLM HTTPS download through Debian's python3 (http.client over
  # ssl, readinto a 64 KiB buffer) from bench_tls serve: the download's
  # wall time (on/off) and peak RSS (ru_maxrss: the transfer's own, after
  # a 64 KiB warm-up request on the same connection, and the process's).
  if [ -x /usr/bin/python3 ]; then
    cat >"$T/dl.py" <<'PY'
import http.client, resource, ssl, sys, time
cafile, port, nbytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ctx = ssl.create_default_context(cafile=cafile)
mv = memoryview(bytearray(65536))
def get(conn, n):
    conn.request("GET", f"/{n}")
    r = conn.getresponse()
    got = 0
    while True:
        k = r.readinto(mv)
        if not k:
            break
        got += k
    return r.status, got
c = http.client.HTTPSConnection("localhost", port, context=ctx)
get(c, 65536)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.monotonic()
st, got = get(c, nbytes)
wall = time.monotonic() - t0
c.close()
ok = st == 200 and got == nbytes
print(f"dl wall_s={wall:.4f} bytes={got} rss_kb={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} rss_base_kb={base} ok={'yes' if ok else 'no'}")
sys.exit(0 if ok else 1)
PY
    "$B/bench_tls" serve "$CERT" "$KEY" "$T/tls.port" &
    PIDS+=($!)
    for _ in $(seq 1 100); do [ -s "$T/tls.port" ] && break; sleep 0.05; done
    TPORT=$(cat "$T/tls.port" 2>/dev/null)
    if [ -z "$TPORT" ]; then
      broken "bench_tls serve did not start"
    else
      pydl() { "$@" /usr/bin/python3 "$T/dl.py" "$T/tls/ca.pem" "$TPORT" "$TLS_DL_BYTES"; }
      for r in $(seq 1 "$TLS_DL_ROUNDS"); do
        if [ $((r % 2)) = 1 ]; then
          off=$(pydl env) || broken "python download off"
          onl=$(pydl on) || broken "python download on"
        else
          onl=$(pydl on) || broken "python download on"
          off=$(pydl env) || broken "python download off"
        fi
        rec "tls.dl.wall_ratio $(awk -v a="$(field wall_s "$onl")" -v b="$(field wall_s "$off")" 'BEGIN{printf "%.4f", a/b}')"
        rec "tls.dl.transfer_kib $(( ($(field rss_kb "$onl") - $(field rss_base_kb "$onl")) - ($(field rss_kb "$off") - $(field rss_base_kb "$off")) ))"
        rec "tls.dl.process_kib $(( $(field rss_kb "$onl") - $(field rss_kb "$off") ))"
        rec "tls.dl.bytes $(field bytes "$onl")"
        rec "tls.dl.base_s $(field wall_s "$off")"
      done
      say "bench: TLS python download done"
    fi
  fi
else
  say "bench: TLS figures SKIPPED: tests/tls/make_ca.sh failed ($(head -1 "$T/tls.err"))"
fi

# ---- 3. parsing ------------------------------------------------------------
if ! "$B/bench_parse" tests/fixtures "$PARSE_MB" "$PARSE_REPS" >"$T/parse"; then
  broken "bench_parse (wrong usage)"
fi
while read -r _ name chunk med mn mx _bytes ref ratio rmin rmax; do
  rec "parse.$name.$chunk $med"
  echo "parse.$name.$chunk.spread $mn $mx" >>"$T/parse.spread"
  rec "parse.$name.$chunk.memchr $ref"
  rec "parse.$name.$chunk.ratio $ratio"
  rec "parse.$name.$chunk.ratio_spread [$rmin..$rmax]"
done <"$T/parse"
say "bench: parsing done"

# ---- 4. budget -------------------------------------------------------------
if ! "$B/bench_budget" "$BUDGET_OPS" 1 2 16 >"$T/budget"; then
  broken "bench_budget (totals inexact or the reference failed)"
fi
while read -r line; do
  procs=$(awk '{print $2}' <<<"$line")
  rec "budget.p$procs.admit_settle $(field admit_settle_per_s "$line")"
  rec "budget.p$procs.admit_charge_settle $(field admit_charge_settle_per_s "$line")"
  rec "budget.p$procs.exact $(field exact "$line")"
  rec "budget.p$procs.atomic_add $(field atomic_add_per_s "$line")"
  rec "budget.p$procs.ratio $(field admit_settle_per_atomic_add "$line")"
  say "bench: budget $procs process(es): $(cut -d' ' -f5- <<<"$line")"
done <"$T/budget"

# ---- 4a. instructions per call (callgrind) ----------------------------------
# Timings on a shared VM move by tens of percent between runs; instruction
# counts do not. Each client runs under callgrind twice, N1 and N2 calls,
# with and without the preload: (on(N2) - on(N1) - off(N2) + off(N1)) /
# (N2 - N1) is what the library adds per call, start-up and warm-up gone.
# bench_client: one thread, libcurl, an LLM call without stream (json) and
# with (stream); bench_tls: OpenSSL, a metered LLM call and a non-LLM
# keep-alive round trip (http). bench_tls pair makes a warm-up pass and
# REPS passes, so its N calls are 2N round trips here (REPS = 1).
if command -v valgrind >/dev/null; then
  irefs() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null |
            awk '/refs:/{gsub(",","",$4); print $4}'; }
  per_call() { # per_call KEY PER_N N1 N2 CMD... (@N@ in CMD: the call count)
    local key=$1 per=$2 n1=$3 n2=$4; shift 4
    local a b c e
    a=$(on irefs "${@/@N@/$n1}") b=$(on irefs "${@/@N@/$n2}")
    c=$(irefs "${@/@N@/$n1}") e=$(irefs "${@/@N@/$n2}")
    if [ -n "$a" ] && [ -n "$b" ] && [ -n "$c" ] && [ -n "$e" ]; then
      rec "$key $(( (b - a - e + c) / ((n2 - n1) * per) ))"
    else
      broken "callgrind $key"
    fi
  }
  per_call ir.json 1 "$IR_N1" "$IR_N2" "$B/bench_client" json "$URL" @N@ 1
  per_call ir.stream 1 "$IR_N1" "$IR_N2" "$B/bench_client" stream "$URL" @N@ 1
  if [ -n "${CERT:-}" ]; then
    per_call ir.tls.llm 2 $((IR_N1 / 2)) $((IR_N2 / 2)) \
      "$B/bench_tls" pair "$CERT" "$KEY" llm @N@ 1
    per_call ir.tls.http 2 $((IR_N1 / 2)) $((IR_N2 / 2)) \
      "$B/bench_tls" pair "$CERT" "$KEY" http @N@ 1
  fi
  say "bench: instruction counts done"
else
  say "bench: instruction counts SKIPPED (no valgrind)"
fi

# ---- 4b. a budget in Redis ---------------------------------------------------
# A redis-server of our own on a free loopback port (appendonly, fsync every
# second, as a deployment would run it): the backend's admit+charge+settle
# rate from 1 and 16 processes (each its own connection), exact totals, the
# Redis commands a call costs (INFO commandstats), and the wall an LLM call
# adds on a Redis budget beside a shm one (bench_client, interleaved).
if command -v redis-server >/dev/null && [ -x "$B/bench_redis" ]; then
  RPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly yes \
    --appendfsync everysec --dir "$T" >"$T/redis.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 100); do
    redis-cli -p "$RPORT" ping 2>/dev/null | grep -q PONG && break; sleep 0.05
  done
  RURL=redis://127.0.0.1:$RPORT/bench
  if "$B/bench_redis" "$RURL" "$REDIS_OPS" 1 16 >"$T/redis"; then :; else
    broken "bench_redis (totals inexact or a call refused)"
  fi
  while read -r _ procs rest; do
    rec "redis.p$procs.admit_settle $(field admit_settle_per_s "$rest")"
    rec "redis.p$procs.exact $(field exact "$rest")"
  done <"$T/redis"
  # commands per call: one LLM call through the library
  "$LM" init --budget "$RURL" --force >/dev/null
  redis-cli -p "$RPORT" config resetstat >/dev/null
  LLMMETER_BUDGET=$RURL "$B/bench_client" json "$URL" 100 1 >/dev/null 2>&1
  LLMMETER_BUDGET=$RURL LD_PRELOAD=$LIB "$B/bench_client" json "$URL" 100 1 >"$T/rc1" ||
    broken "bench_client on a Redis budget"
  # Round trips: the commands the client sends (EVALSHA, and EVAL, SCRIPT
  # LOAD, AUTH, SELECT if it does), not the ones its script runs inside
  # Redis, which commandstats counts too.
  calls=$(redis-cli -p "$RPORT" info commandstats | tr -d '\r' |
          awk -F'[=,:]' '/^cmdstat_(evalsha|eval|script\|load|auth|select|hello):/ {n += $3} END {print n+0}')
  rec "redis.cmds_per_call $(awk -v c="$calls" 'BEGIN{printf "%.2f", c/101}')"
  for r in $(seq 1 "$ROUNDS"); do
    n=$(( per_round > 400 ? 400 : per_round ))
    a=$(on "$B/bench_client" json "$URL" "$n" 1) || broken "client on shm"
    b=$(LLMMETER_BUDGET=$RURL LD_PRELOAD=$LIB "$B/bench_client" json "$URL" "$n" 1) ||
      broken "client on Redis"
    rec "redis.added_wall_us $(awk -v a="$(field wall_s "$b")" -v b="$(field wall_s "$a")" -v n="$n" 'BEGIN{printf "%.1f", (a-b)/n*1e6}')"
  done
  say "bench: Redis done ($(tr '\n' ' ' <"$T/redis"))"
else
  say "bench: Redis figures SKIPPED (no redis-server or bench_redis)"
fi

# ---- 5. memory -------------------------------------------------------------
mem_pair() { # mem_pair NAME KIND BYTES
  local a b
  a=$("$B/bench_client" "$2" "$URL" 1 1 "$3") || broken "memory $1"
  b=$(on "$B/bench_client" "$2" "$URL" 1 1 "$3") || broken "memory $1 (preload)"
  local da=$(( $(field rss_kb "$a") - $(field rss_base_kb "$a") ))
  local db=$(( $(field rss_kb "$b") - $(field rss_base_kb "$b") ))
  rec "mem.$1.transfer_kib $((db - da))"
  rec "mem.$1.process_kib $(( $(field rss_kb "$b") - $(field rss_kb "$a") ))"
  rec "mem.$1.bytes $(field bytes "$b")"
}
for r in 1 2 3; do
  mem_pair download download "$DL_BYTES"
  mem_pair download_small download $((DL_BYTES / 10))
  mem_pair stream bigstream "$STREAM_BYTES"
  mem_pair stream_small bigstream $((STREAM_BYTES / 10))
done
say "bench: memory done"

# ---- 6. the peer: Portkey's gateway ----------------------------------------
PK_DIR=${PORTKEY_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/llmmeter-bench/portkey}
PK_JS=$PK_DIR/node_modules/@portkey-ai/gateway/build/start-server.js
PEER=skip
if ! command -v node >/dev/null; then
  PEER_WHY="node is not installed"
elif [ ! -f "$PK_JS" ] && ! command -v npm >/dev/null; then
  PEER_WHY="npm is not installed"
else
  if [ ! -f "$PK_JS" ]; then
    mkdir -p "$PK_DIR"
    say "bench: npm install @portkey-ai/gateway into $PK_DIR"
    (cd "$PK_DIR" && timeout 180 npm install --no-audit --no-fund @portkey-ai/gateway >npm.log 2>&1)
  fi
  if [ ! -f "$PK_JS" ]; then
    PEER_WHY="npm install @portkey-ai/gateway failed (registry unreachable?)"
  else
    GW_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    NODE_ENV=production node "$PK_JS" --port="$GW_PORT" --headless >"$T/gw.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$GW_PORT/" && break; sleep 0.1; done
    GWH="x-portkey-provider: openai|x-portkey-custom-host: $URL/v1"
    if BENCH_HEADERS=$GWH "$B/bench_client" json "http://127.0.0.1:$GW_PORT" 200 1 >/dev/null 2>&1; then
      PEER=ok
      per=$((GW_REQS / ROUNDS))
      for r in $(seq 1 "$ROUNDS"); do
        off=$("$B/bench_client" json "$URL" "$per" 1) || broken "peer direct"
        lib=$(on "$B/bench_client" json "$URL" "$per" 1) || broken "peer library"
        gw=$(BENCH_HEADERS=$GWH "$B/bench_client" json "http://127.0.0.1:$GW_PORT" "$per" 1) || broken "peer gateway"
        for q in p50 p99; do
          l=$(awk -v a="$(field ${q}_us "$lib")" -v b="$(field ${q}_us "$off")" 'BEGIN{printf "%.2f", a-b}')
          g=$(awk -v a="$(field ${q}_us "$gw")" -v b="$(field ${q}_us "$off")" 'BEGIN{printf "%.2f", a-b}')
          rec "peer.lib.$q $l"
          rec "peer.gw.$q $g"
          rec "peer.ratio.$q $(awk -v l="$l" -v g="$g" 'BEGIN{printf "%.5f", (g>0)? l/g : 1}')"
        done
      done
      # The gateway's streaming path on this Node: reported, not measured.
      if ! BENCH_HEADERS=$GWH "$B/bench_client" stream "http://127.0.0.1:$GW_PORT" 1 1 >/dev/null 2>&1; then
        PEER_NOTE="streamed requests fail through this gateway version ($(grep -o 'TypeError: [a-z]*' "$T/gw.log" | head -1)); non-streamed chat completions measured"
      fi
    else
      PEER_WHY="the gateway did not answer ($(grep -m1 -i error "$T/gw.log"))"
    fi
  fi
fi
[ "$PEER" = skip ] && say "bench: peer comparison SKIPPED: $PEER_WHY"
say "bench: peer done"

# ---- the table -------------------------------------------------------------
ELAPSED=$(( $(date +%s) - START ))
# The machine: CPU model, cores (distinct physical id/core id pairs) and
# logical CPUs, as /proc/cpuinfo shows them (lscpu where it has no model).
CPU_MODEL=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -1)
[ -n "$CPU_MODEL" ] || CPU_MODEL=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
CPU_THREADS=$(grep -c '^processor' /proc/cpuinfo)
CPU_CORES=$(awk -F: '/^physical id/{p=$2} /^core id/{print p "/" $2}' /proc/cpuinfo | sort -u | grep -c .)
[ "$CPU_CORES" -gt 0 ] || CPU_CORES=$CPU_THREADS
CPU="${CPU_MODEL:-unknown CPU}, $CPU_CORES core$([ "$CPU_CORES" = 1 ] || echo s)"
[ "$CPU_THREADS" = "$CPU_CORES" ] || CPU="$CPU / $CPU_THREADS logical CPUs"
python3 - "$RAW" "$QUICK" "$PEER" "${PEER_WHY:-}" "${PEER_NOTE:-}" "$ELAPSED" "$CPU" <<'EOF'
import sys, statistics as st
raw, quick, peer, peer_why, peer_note, elapsed, cpu = sys.argv[1:8]
d = {}
for line in open(raw):
    if len(line.split(None, 1)) < 2:
        continue  # a tool gave no value: its rows read n/a
    k, v = line.split(None, 1)
    v = v.strip()
    try:
        v = float(v)
    except ValueError:
        pass
    d.setdefault(k, []).append(v)

def med(k):
    return st.median(d[k]) if k in d else None

def spread(k):
    v = d.get(k)
    return f" [{min(v):g}..{max(v):g}]" if v and len(v) > 1 else ""

rows = []
def row(fig, key, fmt, target, ok):
    m = med(key)
    if m is None:
        rows.append((fig, "n/a", target, "n/a"))
        return
    rows.append((fig, fmt.format(m) + spread(key), target, "yes" if ok(m) else "NO"))

# A ratio to the physical reference measured in the same run: no target
# ("—"), the reference itself named in the target column.
def ratio_row(fig, key, ref, spread_text=None):
    m = med(key)
    if m is None:
        rows.append((fig, "n/a", "—", "—"))
        return
    sp = spread(key) if spread_text is None else " " + spread_text
    rows.append((fig, f"{m:.4f}" + sp, f"— ({ref})" if ref else "—", "—"))

for c in ("1", "16"):
    for kind, name in (("hello", "non-LLM"), ("json", "LLM non-stream"), ("stream", "LLM stream 2 KB")):
        row(f"wall ratio, {name}, c={c}", f"req.{kind}.c{c}.wall_ratio", "{:.3f}", "<= 1.02", lambda m: m <= 1.02)
for c in ("1", "16"):
    for kind, name, tgt in (("hello", "non-LLM", 0.5), ("json", "LLM non-stream", 5), ("stream", "LLM stream", 5)):
        row(f"added CPU us/request, {name}, c={c}", f"req.{kind}.c{c}.cpu_us", "{:.2f}", f"<= {tgt:g}", lambda m, t=tgt: m <= t)
for c in ("1", "16"):
    for kind, name, tgt in (("hello", "non-LLM", 0.5), ("json", "LLM non-stream", 5), ("stream", "LLM stream", 5)):
        base = med(f"pair.{kind}.c{c}.base_cpu_us")
        row(f"added CPU us/request, {name}, c={c}, paired in one process", f"pair.{kind}.c{c}.cpu_us",
            "{:.2f}", f"<= {tgt:g} (client {base:.1f} us/request)" if base else f"<= {tgt:g}",
            lambda m, t=tgt: m <= t)
        row(f"paired method's noise, us/request, {name}, c={c} (no library on either side)",
            f"pair.{kind}.c{c}.floor_us", "{:.2f}", "report (~0)", lambda m: True)
for c in ("1", "16"):
    for kind, name in (("hello", "non-LLM"), ("json", "LLM non-stream"), ("stream", "LLM stream")):
        base = med(f"req.{kind}.c{c}.base_cpu_us")
        ratio_row(f"added CPU / client's own CPU, {name}, c={c}", f"req.{kind}.c{c}.cpu_ratio",
                  f"client {base:.1f} us/request" if base is not None else "")
for kind, name in (("json", "LLM non-stream"), ("stream", "LLM stream 2 KB")):
    row(f"library path alone, CPU us/request, {name}", f"xfer.{kind}.us", "{:.2f}",
        "report (in-process)", lambda m: True)
# The library path against the client's own CPU per request of the same
# kind at c=1: two medians of this run, not a per-round ratio.
for kind, name in (("json", "LLM non-stream"), ("stream", "LLM stream 2 KB")):
    x, base = med(f"xfer.{kind}.us"), med(f"req.{kind}.c1.base_cpu_us")
    if x is not None and base:
        d[f"xfer.{kind}.ratio"] = [x / base]
    ratio_row(f"library path alone / client's own CPU, {name}", f"xfer.{kind}.ratio",
              f"client {base:.1f} us/request, c=1" if base else "")
for c in ("1", "16"):
    for kind, name in (("hello", "non-LLM"), ("json", "LLM non-stream"), ("stream", "LLM stream")):
        for q in ("p50", "p99"):
            base = med(f"req.{kind}.c{c}.base_p50_us")
            row(f"added {q} latency us, {name}, c={c}", f"req.{kind}.c{c}.{q}_us", "{:.1f}",
                f"report (base p50 {base:.0f} us)" if base else "report", lambda m: True)
row("process start added us, /bin/true", "start.true.added_us", "{:.1f}", "<= 100", lambda m: m <= 100)
row("process start added us, curl --version", "start.curl.added_us", "{:.1f}", "<= 100", lambda m: m <= 100)
row("process start added us, python3 -c pass", "start.python.added_us", "{:.1f}", "<= 100", lambda m: m <= 100)
for kind, name in (("raw", "non-LLM, not HTTP"), ("http", "non-LLM, HTTP/1.1 keep-alive")):
    base = med(f"tls.{kind}.base_ns_per_op")
    row(f"TLS added CPU ns per SSL_read/SSL_write, {name}", f"tls.{kind}.ns_per_op", "{:.1f}",
        f"<= 20 (base {base:.0f} ns/call)" if base else "<= 20", lambda m: m <= 20)
for kind in ("raw", "http", "llm"):
    row(f"TLS paired method's noise, ns per call, {kind} (no library on either side)",
        f"tls.{kind}.floor_ns_per_op", "{:.1f}", "report (~0)", lambda m: True)
base = med("tls.llm.base_us_per_rt")
row("TLS added CPU us per LLM call (OpenSSL client)", "tls.llm.us_per_rt", "{:.2f}",
    f"<= 5 (base {base:.1f} us/call)" if base else "<= 5", lambda m: m <= 5)
v = d.get("tls.llm.metered")
if v:
    rows.append(("TLS LLM calls all metered", ",".join(map(str, v)), "yes", "yes" if all(x == "yes" for x in v) else "NO"))
b, base = med("tls.dl.bytes"), med("tls.dl.base_s")
size = f"{b/1e6:.0f} MB" if b else "?"
row(f"TLS wall ratio, python3 non-LLM HTTPS download ({size})", "tls.dl.wall_ratio", "{:.3f}",
    f"<= 1.01 (base {base:.2f} s)" if base else "<= 1.01", lambda m: m <= 1.01)
row(f"TLS extra peak RSS KiB per transfer, python3 download ({size})", "tls.dl.transfer_kib", "{:.0f}", "<= 64", lambda m: m <= 64)
row(f"TLS extra peak RSS KiB per process, python3 download ({size})", "tls.dl.process_kib", "{:.0f}", "report", lambda m: True)
row("maps at load besides the library's own", "load.foreign_maps", "{:.0f}", "0", lambda m: m == 0)
row("/dev/shm mapped at load", "load.shm_maps", "{:.0f}", "0", lambda m: m == 0)
row("files opened at load besides libraries", "load.opens_added", "{:.0f}", "0", lambda m: m == 0)
row("brk (heap) calls added at load", "load.brk_added", "{:.0f}", "0", lambda m: m <= 0)
row("[heap] bytes added at load", "load.heap_added", "{:.0f}", "0", lambda m: m <= 0)
for s in ("openai-chat-sse", "anthropic-sse", "gemini-sse", "ollama-ndjson", "gemini-json-array", "openai-responses-sse"):
    for ch in ("1", "100", "16384"):
        tgt = "report" if ch != "16384" else ">= 1000"
        row(f"parse MB/s, {s}, {ch} B chunks", f"parse.{s}.{ch}", "{:.0f}", tgt,
            lambda m, ch=ch: ch != "16384" or m >= 1000)
        ref = med(f"parse.{s}.{ch}.memchr")
        sp = d.get(f"parse.{s}.{ch}.ratio_spread", [""])[0]
        ratio_row(f"parse / memchr line scan, {s}, {ch} B chunks", f"parse.{s}.{ch}.ratio",
                  f"memchr {ref:,.0f} MB/s" if ref is not None else "", str(sp))
row("budget admit+settle/s, 1 process", "budget.p1.admit_settle", "{:,.0f}", ">= 5,000,000", lambda m: m >= 5e6)
row("budget admit+settle/s, 2 processes", "budget.p2.admit_settle", "{:,.0f}", "report", lambda m: True)
row("budget admit+settle/s, 16 processes", "budget.p16.admit_settle", "{:,.0f}", "report", lambda m: True)
row("budget admit+charge+settle/s, 1 process", "budget.p1.admit_charge_settle", "{:,.0f}", "report", lambda m: True)
for p in ("1", "2", "16"):
    ref = med(f"budget.p{p}.atomic_add")
    ratio_row(f"budget admit+settle / atomic add, {p} process(es)", f"budget.p{p}.ratio",
              f"atomic add {ref:,.0f}/s" if ref is not None else "")
for p in ("1", "2", "16"):
    k = f"budget.p{p}.exact"
    v = d.get(k, ["n/a"])
    rows.append((f"budget totals exact, {p} process(es)", ",".join(map(str, v)), "yes", "yes" if v and all(x == "yes" for x in v) else "NO"))
for key, name in (("ir.json", "LLM non-stream, libcurl"), ("ir.stream", "LLM stream 2 KB, libcurl"),
                  ("ir.tls.llm", "LLM call, OpenSSL"), ("ir.tls.http", "non-LLM HTTP/1.1 round trip, OpenSSL")):
    row(f"instructions added per call (callgrind), {name}", key, "{:,.0f}", "report", lambda m: True)
row("Redis budget admit+charge+settle/s, 1 process", "redis.p1.admit_settle", "{:,.0f}", "report", lambda m: True)
row("Redis budget admit+charge+settle/s, 16 processes", "redis.p16.admit_settle", "{:,.0f}", "report", lambda m: True)
for p in ("1", "16"):
    v = d.get(f"redis.p{p}.exact", ["n/a"])
    rows.append((f"Redis budget totals exact, {p} process(es)", ",".join(map(str, v)), "yes", "yes" if v and all(x == "yes" for x in v) else "NO"))
row("Redis commands per LLM call (INFO commandstats)", "redis.cmds_per_call", "{:.2f}", "<= 2", lambda m: m <= 2.05)
row("added wall us per LLM call, Redis budget vs shm (loopback)", "redis.added_wall_us", "{:.1f}", "report", lambda m: True)
for name, what in (("download", "non-LLM download"), ("download_small", "non-LLM download 1/10 size"),
                   ("stream", "LLM stream"), ("stream_small", "LLM stream 1/10 size")):
    b = med(f"mem.{name}.bytes")
    size = f"{b/1e6:.0f} MB" if b else "?"
    row(f"extra peak RSS KiB per transfer, {what} ({size})", f"mem.{name}.transfer_kib", "{:.0f}", "<= 64", lambda m: m <= 64)
    row(f"extra peak RSS KiB per process, {what} ({size})", f"mem.{name}.process_kib", "{:.0f}", "report", lambda m: True)
if peer == "ok":
    for q in ("p50", "p99"):
        row(f"Portkey gateway added {q} us (LLM non-stream)", f"peer.gw.{q}", "{:.0f}", "report", lambda m: True)
        row(f"llmmeter added {q} us (same requests)", f"peer.lib.{q}", "{:.1f}", "report", lambda m: True)
        row(f"llmmeter / gateway added {q}", f"peer.ratio.{q}", "{:.4f}", "<= 0.01", lambda m: m <= 0.01)
else:
    rows.append(("Portkey gateway comparison", "skipped: " + peer_why, "<= 1/100", "skipped"))

w = [max(len(r[i]) for r in rows + [("figure", "measured", "target", "met?")]) for i in range(4)]
print()
print(f"llmmeter benchmarks on {cpu} ({'quick' if quick == '1' else 'full'} run, {elapsed} s; medians over interleaved rounds, [min..max])")
fmt = "| {:<%d} | {:<%d} | {:<%d} | {:<%d} |" % tuple(w)
print(fmt.format("figure", "measured", "target", "met?"))
print("|" + "|".join("-" * (x + 2) for x in w) + "|")
for r in rows:
    print(fmt.format(*r))
if peer_note:
    print(f"\nnote: {peer_note}")
missed = sum(1 for r in rows if r[3] == "NO")
print(f"\n{missed} figure(s) below target")
EOF
exit $BROKEN
