# test_report.sh — `llmmeter report --html`: a page made from a ledger of
# real calls (curl + LD_PRELOAD against the mock) that headless Chromium
# renders with no network at all, whose numbers are `report --json`'s, and
# whose size stays bounded for a ledger of many lines; and `status`'s pace
# line from that ledger.
. tests/integration/lib.sh
if [ "${SAN:-0}" = 1 ]; then
  echo "skipped under SAN=1: the hosts here are foreign (see test_ledger.sh)"
  exit 0
fi
start_mock || { fail report_mock_started; exit 1; }
new_budget B
"$LM" init --budget "$B" --limit 0.05 --soft 0.03 >/dev/null
L=$T/ledger.jsonl
export LLMMETER_BUDGET=$B LLMMETER_LEDGER=$L LLMMETER_QUIET=1
call() { # call AGENT MODEL INPUT OUTPUT
  LLMMETER_AGENT=$1 LD_PRELOAD=$LIB curl -sS "$MOCK_URL/v1/chat/completions" \
    -H "X-Mock-Usage: input=$3,output=$4" \
    -d "{\"model\":\"$2\",\"max_tokens\":50,\"messages\":[]}" >/dev/null 2>&1
}
for i in $(seq 1 6); do # $0.033: past the soft limit
  call planner gpt-4o 900 40
  call coder gpt-4o-mini 3000 200
  call coder claude-sonnet-4-5 600 30
done
# A stream whose first event already costs more than is left ($0.06):
# admitted on its small estimate, cut at the hard limit.
LLMMETER_AGENT=reviewer LD_PRELOAD=$LIB curl -sS -N "$MOCK_URL/v1/messages" \
  -H 'X-Mock-Usage: input=20000,output=400' -H 'X-Mock-Output-Chunks: 30' \
  -d '{"model":"claude-sonnet-4-5","max_tokens":10,"stream":true,"messages":[]}' >/dev/null 2>&1
call planner gpt-4o 900 40 # denied: the limit is reached
call search gpt-4o-mini 900 40
"$LM" report "$L" --json >"$T/model.json"
"$LM" report "$L" --by agent --json >"$T/agent.json"
expect_eq report_ledger_has_denials_and_cut \
  "$(json_get "$T/model.json" "j['total']['denied'] > 0, j['total']['cut'] > 0")" "True True"

H=$T/report.html
"$LM" report "$L" --html "$H" --budget "$B"; expect_eq report_html_exit0 "$?" 0
check report_html_self_contained bash -c "! grep -Eqi '(src|href)=|url\\(|@import|<script|<link|https?://' '$H'"
check report_html_has_viewport grep -q 'name="viewport" content="width=device-width' "$H"
check report_html_draws_limits bash -c "grep -q 'class=\"hard\"' '$H' && grep -q 'class=\"soft\"' '$H'"

# Chromium in a network namespace of its own (no interface but lo, which
# nothing listens on); where unshare is not allowed, every host maps to
# nothing and every proxy is a closed port.
NONET=()
unshare -n true 2>/dev/null && NONET=(unshare -n)
chrome() {
  timeout 60 "${NONET[@]}" chromium --headless=new --no-sandbox --disable-gpu \
    --hide-scrollbars --no-first-run --user-data-dir="$T/chrome" \
    --host-resolver-rules='MAP * ~NOTFOUND' --proxy-server=127.0.0.1:9 "$@" \
    2>>"$T/chrome.err"
}
chrome --dump-dom "file://$H" >"$T/dom.html"
check report_chromium_dumped_dom grep -q 'id="total-cost"' "$T/dom.html"
expect_eq report_dom_numbers_equal_report_json "$(python3 - "$T/dom.html" "$T/model.json" "$T/agent.json" <<'PY'
import json, sys
from html.parser import HTMLParser
class Dom(HTMLParser):
    """ids' texts, and per table the rows' cells by class."""
    def __init__(self):
        super().__init__()
        self.ids, self.tables, self.stack, self.table, self.row = {}, {}, [], None, None
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.table = self.tables.setdefault(a.get("id"), {})
        if tag == "tr" and a.get("data-key") is not None:
            self.row = self.table.setdefault(a["data-key"], {})
        self.stack.append((a.get("id"), a.get("class"), ""))
    def handle_data(self, d):
        if self.stack:
            i, c, t = self.stack[-1]
            self.stack[-1] = (i, c, t + d)
    def handle_endtag(self, tag):
        if not self.stack:
            return
        i, c, t = self.stack.pop()
        if i:
            self.ids[i] = t
        if tag == "td" and self.row is not None and c:
            self.row[c] = t
        if tag == "tr":
            self.row = None
d = Dom()
d.feed(open(sys.argv[1]).read())
bad = []
for which, path in (("models", sys.argv[2]), ("agents", sys.argv[3])):
    j = json.load(open(path), parse_float=str) # the text, as printed
    t = j["total"]
    want = {"total-cost": "$" + str(t["cost_usd"]), "total-calls": str(t["calls"]),
            "total-denied": str(t["denied"]), "total-cut": str(t["cut"]),
            "total-input": str(t["tokens"]["input"]), "total-output": str(t["tokens"]["output"])}
    for k, v in want.items():
        if d.ids.get(k) != v:
            bad.append("%s %r != %r" % (k, d.ids.get(k), v))
    rows = d.tables.get(which, {})
    if sorted(rows) != sorted(r["key"] for r in j["rows"]):
        bad.append("%s keys %s" % (which, sorted(rows)))
    for r in j["rows"]:
        got = rows.get(r["key"], {})
        w = {"calls": str(r["calls"]), "denied": str(r["denied"]), "cut": str(r["cut"]), "usd": str(r["cost_usd"])}
        if {k: got.get(k) for k in w} != w:
            bad.append("%s %s: %s != %s" % (which, r["key"], got, w))
print("; ".join(bad) or "equal")
PY
)" equal
# cost_usd is printed exactly by both: parse with Decimal to be sure the
# JSON float above was not rounded on its way.
expect_eq report_dom_total_is_exact_pusd \
  "$(python3 -c "
import re,sys; h=open('$T/dom.html').read()
print(re.search(r'id=\"total-cost\" data-pusd=\"(\d+)\"', h).group(1))")" \
  "$(python3 -c "import json,sys; print(json.load(open('$T/model.json'))['total']['cost_pusd'])")"

# Rendered on a wide screen and on a phone: neither screenshot is blank.
chrome --window-size=1280,1500 --screenshot="$T/wide.png" "file://$H" >/dev/null
chrome --window-size=390,2400 --screenshot="$T/phone.png" "file://$H" >/dev/null
for s in wide phone; do
  read -r w h colours ink < <(python3 tests/integration/png_stats.py "$T/$s.png" 2>/dev/null)
  check "report_screenshot_${s}_not_blank" test "${colours:-0}" -gt 50 -a "${ink:-0}" -gt 50
done
# The phone page is the phone's width: the grid stacks, nothing scrolls
# sideways (the screenshot is what Chromium laid out at 390 px).
expect_eq report_screenshot_phone_width "${w:-0}" 390

# A ledger of 200,000 lines spanning two weeks: the page stays bounded
# (aggregated before it is drawn), and its totals are still exact.
python3 - "$T/big.jsonl" <<'PY'
import sys
models = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "o3", "gemini-2.5-pro"] + ["m%d" % i for i in range(30)]
with open(sys.argv[1], "w") as f:
    for i in range(200000):
        t = 1764633600 + i * 6
        d, s = divmod(t, 86400)
        f.write('{"time":"2025-12-%02dT%02d:%02d:%02d.000Z","budget":"big","agent":"a%d","model":"%s",'
                '"api":"openai-chat","tokens":{"input":10,"output":2},"cost_pusd":%d,"outcome":"%s"}\n'
                % (d - 20423, s // 3600, s // 60 % 60, s % 60, i % 40, models[i % len(models)],
                   (i * 7919) % 10**9, "denied" if i % 50 == 0 else "ok"))
PY
t0=$(date +%s%N)
"$LM" report "$T/big.jsonl" --html "$T/big.html" --budget "$B"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
size=$(wc -c <"$T/big.html")
echo "report --html: 200000 lines in $ms ms, page $size bytes (10-line-ish page: $(wc -c <"$H") bytes)"
check report_html_bounded_for_many_lines test "$size" -lt 200000
expect_eq report_html_many_lines_total "$(grep -o 'data-pusd="[0-9]*"' "$T/big.html")" \
  "data-pusd=\"$("$LM" report "$T/big.jsonl" --json | json_get - "j['total']['cost_pusd']")\""
check report_html_many_lines_other_row grep -q 'class="more"' "$T/big.html"

# status's pace from this ledger: dollars per minute and the limit reached.
"$LM" status --budget "$B" >"$T/status.txt"
check status_shows_pace grep -Eq '^pace +\$[0-9.]+/min over the last .*\(ledger\) +hard limit reached' "$T/status.txt"
expect_eq status_json_pace "$("$LM" status --budget "$B" --json | json_get - "j['pace']['source'], j['pace']['pusd_per_min'] > 0, j['pace']['limit_in_s']")" \
  "ledger True 0"
"$LM" report "$L" --html "$T/x.html" --json 2>/dev/null; expect_eq report_html_and_json_exit2 "$?" 2
"$LM" report "$L" --html "$T/no/such/dir/x.html" 2>/dev/null; expect_eq report_html_unwritable_exit1 "$?" 1
