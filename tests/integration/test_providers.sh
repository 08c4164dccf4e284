# test_providers.sh — every recorded provider response in tests/fixtures,
# replayed by the mock (random chunk splits) into real libcurl programs
# with the library preloaded: the curl CLI, the C test client (easy and
# multi), pycurl and PHP. For each fixture and client, into a fresh budget:
#   bytes   what the program received is the .response file, byte for byte
#           (and the same as without the library);
#   tokens  status --json tokens equal the fixture's expected_normalized
#           (Cohere: billed units, no cache read);
#   charge  spent_pusd is the exact price of those tokens (and of the
#           audio, image and video parts, web searches and the per-call fee
#           the fixture and the model have) for the priced model
#           (`llmmeter prices MODEL --usage ...`), OpenRouter's own
#           usage.cost in pico-USD, $0 for local Ollama models; an HTTP
#           error without usage is refunded and not counted; a 2xx body
#           without usage is counted unmetered and charged its estimate.
. tests/integration/lib.sh
CLIENT=$PWD/$BUILD/tests/lm_client
PY=/usr/bin/python3
FX=tests/fixtures
start_mock || { fail providers_mock_started "$(cat "$T/mock.out")"; exit 1; }
if [ "${SAN:-0}" = 1 ]; then
  # As in test_hooks.sh: the ASan-built C client gets the ASan runtime first
  # and the sanitized library; foreign hosts get the ordinary build.
  export ASAN_OPTIONS=detect_leaks=0
  PRE=$PWD/build/libllmmeter.so
  PRE_CLIENT="$(gcc -print-file-name=libasan.so) $LIB"
else
  PRE=$LIB
  PRE_CLIENT=$LIB
fi
export LLMMETER_QUIET=1

cat >"$T/pc.py" <<'PY'
import pycurl, io, sys
url, req, case = sys.argv[1:4]
b = io.BytesIO()
c = pycurl.Curl()
c.setopt(c.URL, url)
c.setopt(c.POSTFIELDS, open(req, "rb").read())
c.setopt(c.HTTPHEADER, ["X-Mock-Fixture: " + case, "X-Mock-Chunked: 1",
                        "Content-Type: application/json"])
c.setopt(c.WRITEDATA, b)
c.perform()
sys.stdout.buffer.write(b.getvalue())
PY
cat >"$T/pc.php" <<'PHP'
<?php
$c = curl_init($argv[1]);
curl_setopt($c, CURLOPT_POSTFIELDS, file_get_contents($argv[2]));
curl_setopt($c, CURLOPT_HTTPHEADER, ["X-Mock-Fixture: " . $argv[3], "X-Mock-Chunked: 1",
                                     "Content-Type: application/json"]);
curl_setopt($c, CURLOPT_RETURNTRANSFER, true);
$r = curl_exec($c);
fwrite(STDOUT, $r === false ? "" : $r);
PHP

# One line per fixture: case|url path+query|kind|tokens|priced model|usage
# (kind: priced, provider_cost:<pusd>, local, error, unmetered).
"$PY" - "$FX" >"$T/plan" <<'PY'
import json, sys, glob, os, re
from decimal import Decimal
for mf in sorted(glob.glob(os.path.join(sys.argv[1], "*.meta.json"))):
    m = json.load(open(mf), parse_float=Decimal)
    case = m["case"]
    req = json.load(open(mf.replace(".meta.json", ".request.json")))
    eu, en = m.get("expected_usage"), m.get("expected_normalized")
    model = req.get("model") if isinstance(req, dict) else None
    if not model:
        g = re.search(r"/deployments/([^/?]+)/", m["url_path"]) or \
            re.search(r"/models/([^/:?]+):", m["url_path"])
        model = g.group(1) if g else ""
        if "/deployments/" in m["url_path"] and m.get("model_reported"):
            # Azure: the deployment names no model; the response does.
            model = m["model_reported"]
    if m.get("http_status", 200) >= 400:
        kind, tok = "error", [0, 0, 0, 0, 0]
    elif eu is None:
        kind, tok = "unmetered", None
    else:
        if en is not None:
            r = en.get("reasoning_tokens", eu.get("reasoning_tokens", 0))
            tok = [en["total_input_tokens"], en["output_tokens_incl_reasoning"],
                   en["cache_read_tokens"], en["cache_write_tokens"], r]
        else:  # Cohere: billed units; cached_tokens are on the raw basis
            tok = [eu["input_tokens"], eu["output_tokens"], 0, 0, 0]
        if "cost" in eu:
            kind = "provider_cost:%d" % int(Decimal(eu["cost"]) * 10**12)
        elif m["provider"] == "ollama":
            kind = "local"
        else:
            kind = "priced"
    usage = ""
    if tok:
        usage = "input=%d,output=%d,cache_read=%d,cache_write=%d,reasoning=%d" % tuple(tok)
        # The parts beyond text and the counts beside the totals, priced at
        # their own rates (absent from a fixture: none).
        for key, arg in (("input_audio_tokens", "input_audio"),
                         ("cache_audio_read_tokens", "cache_audio_read"),
                         ("input_image_tokens", "input_image"),
                         ("cache_image_read_tokens", "cache_image_read"),
                         ("input_video_tokens", "input_video"),
                         ("output_audio_tokens", "output_audio"),
                         ("output_image_tokens", "output_image"),
                         ("output_video_tokens", "output_video"),
                         ("citation_tokens", "citation"),
                         ("separate_reasoning_tokens", "separate_reasoning"),
                         ("web_searches", "web_searches")):
            if en and en.get(key):
                usage += ",%s=%d" % (arg, en[key])
    print("|".join([case, m["url_path"], kind,
                    json.dumps(tok).replace(" ", "") if tok else "-", model, usage]))
PY

# run_client CLIENT CASE URL REQ OUT: one call; fresh budget in $CB.
run_client() {
  local who=$1 case=$2 url=$3 req=$4 out=$5
  case $who in
    curl) LD_PRELOAD=$PRE timeout 30 curl -sS -N -H "X-Mock-Fixture: $case" -H 'X-Mock-Chunked: 1' \
            -H 'Content-Type: application/json' --data-binary @"$req" "$url" -o "$out" ;;
    c-default|c-multi)
      LD_PRELOAD=$PRE_CLIENT timeout 30 "$CLIENT" "${who#c-}" "$url" "$req" \
        "X-Mock-Fixture: $case" 'X-Mock-Chunked: 1' >"$out" 2>/dev/null ;;
    pycurl) LD_PRELOAD=$PRE timeout 30 "$PY" "$T/pc.py" "$url" "$req" "$case" >"$out" 2>/dev/null ;;
    php) LD_PRELOAD=$PRE timeout 30 php "$T/pc.php" "$url" "$req" "$case" >"$out" 2>/dev/null ;;
  esac
}

CLIENTS="curl c-default c-multi pycurl php"
nfx=0
while IFS='|' read -r case path kind tok model usage; do
  nfx=$((nfx + 1))
  url=$MOCK_URL$path
  req=$FX/$case.request.json
  resp=$FX/$case.response
  # Without the library: the mock serves the recorded bytes.
  curl -sS -N -H "X-Mock-Fixture: $case" -H 'X-Mock-Chunked: 1' --data-binary @"$req" "$url" -o "$T/plain"
  check "${case}_plain_bytes_are_fixture" cmp -s "$T/plain" "$resp"
  want_cost=0
  case $kind in
    priced) want_cost=$("$LM" prices "$model" --json --usage "$usage" | json_get - "j.get('cost_pusd', 'unpriced')") ;;
    provider_cost:*) want_cost=${kind#provider_cost:} ;;
  esac
  for who in $CLIENTS; do
    new_budget CB
    "$LM" init --budget "$CB" --limit 1000 >/dev/null
    LLMMETER_BUDGET=$CB run_client "$who" "$case" "$url" "$req" "$T/out"
    status_json "$CB" >"$T/st"
    check "${case}_${who}_bytes_identical" cmp -s "$T/out" "$resp"
    got=$(json_get "$T/st" "'%s|%s|%d|%d|%d|%d' % (str([j['tokens'][k] for k in ('input','output','cache_read','cache_write','reasoning')]).replace(' ',''), j['spent_pusd'], j['requests'], j['unmetered'], j['reserved_pusd'], j['in_flight'])")
    IFS='|' read -r gtok gspent greq gunm gres gfl <<<"$got"
    case $kind in
      error)
        expect_eq "${case}_${who}_refunded_not_counted" "$gtok $gspent $greq $gunm $gres $gfl" "[0,0,0,0,0] 0 0 0 0 0" ;;
      unmetered)
        check "${case}_${who}_unmetered_charged_estimate" test "$greq $gunm $gres $gfl" = "1 1 0 0" -a "$gspent" -gt 0 ;;
      *)
        expect_eq "${case}_${who}_tokens" "$gtok" "$tok"
        expect_eq "${case}_${who}_exact_charge" "$gspent $greq $gunm $gres $gfl" "$want_cost 1 0 0 0" ;;
    esac
    rm -f "/dev/shm/$CB"
  done
done <"$T/plan"
expect_eq providers_every_fixture_played "$nfx" "$(ls $FX/*.meta.json | wc -l)"
