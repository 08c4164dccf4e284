#!/usr/bin/env python3
"""gen_prices.py — data/prices.json (genai-prices v2) -> src/price/price_table.c.

Usage: python3 scripts/gen_prices.py [--feed data/prices.json]
                                      [--out src/price/price_table.c] [--check]
                                      [--hosts-out src/price/provider_host_table.c]

Also writes the provider host table (who bills a call, by its host) from
the feed's `api_pattern`s: see "Provider hosts" below.

Writes the embedded price table that src/price/price.c searches. Python standard
library only. Every price goes from the feed's decimal text to an integer of
pico-USD per token by exact decimal arithmetic (the feed is read with
json.loads(parse_float=decimal.Decimal)); a price that is not an exact
integer of pico-USD per token stops the generator instead of being rounded.

The output is deterministic: it depends on the feed only, never on the date
the generator runs (dated price changes are emitted as a schedule that the
library applies at run time, see below). --check regenerates into memory and
exits 1 if the committed file differs.

How the feed maps onto the table
--------------------------------
* Keys. Every model's `match` tree is walked:
  - `equals` X           -> exact key X;
  - `starts_with` X      -> prefix key X (matches X and anything after it);
  - `contains` X         -> prefix key X (approximation: matches the names
                            that *start* with X, a subset of what the feed
                            matches; literals shorter than 4 are skipped);
  - `regex` "^lit..."    -> prefix key with the literal head of the pattern
                            (a superset of the regex: anything after the head
                            matches); a regex without a leading literal is
                            skipped;
  - `ends_with`, `and`   -> skipped (counted in the header comment);
  - the model's own `id` -> exact key, when the model's match tree accepts
                            it (so ids behind `ends_with`/`contains`/`regex`
                            still have a key).
  Keys are lower-cased (the library lower-cases the name it looks up).
  When a provider lists the same key under two models the first model wins
  (genai-prices evaluates models in order, first match wins).
* First party: an entry is flagged LM_PRICE_KEY_FIRST_PARTY when its
  provider's own `model_match` accepts the key (openai for gpt-*/o1/o3/o4,
  anthropic for claude-*, google for gemini-*, x-ai for grok, ...). Without
  a provider hint the library searches first-party entries before the rest
  (so "claude-sonnet-4-5-20250929" is Anthropic's price, not a Bedrock
  region's), like genai-prices, which picks the provider before the model.
* Same key, several providers: entries sort by key, then first party first,
  then feed order.
* Prices: input_mtok, output_mtok, cache_read_mtok, cache_write_mtok,
  cache_write_1h_mtok. Absent cache prices are LM_PRICE_UNSET (billed at the
  input price). An absent output_mtok (embeddings, legacy completions) is
  billed at the input price: conservative, and an embedding has no output.
* Part rates, for the parts of usage.h (pico-USD per token, like the text
  rates): input_audio_mtok, cache_audio_read_mtok, input_image_mtok,
  cache_image_read_mtok, input_video_mtok, output_audio_mtok,
  output_image_mtok, output_video_mtok, output_reasoning_mtok (the reasoning
  part of output, and Perplexity's reasoning billed beside it), and
  output_citation_mtok (Perplexity's citation tokens, beside input and
  output). Each present one sets its LM_PRICE_HAS_* bit in the set's
  `parts`; an absent one leaves a part's tokens at the text rates and the
  counts beside the totals unbilled (lm_price_cost). The feed tiers none of
  them; the generator fails if one ever is.
* Fees per event: requests_kcount and web_searches_kcount are USD per 1,000
  calls or searches, so pico-USD per event = value x 10^12 / 1000 = value x
  10^9, exact for every value in the feed (same repair rules as tokens).
* Any other price key stops the generator: every price the feed carries is
  either in the table or a deliberate decision here.
* Tiers {"base":..,"tiers":[{"start":N,"price":..}]}: a cliff; the first
  tier is kept (the feed has no model with more than one tier, nor a model
  whose fields tier at different starts; the generator fails if it ever
  does, so nothing is dropped silently). Fields without a tier repeat their
  base price in the tier.
* Conditional price lists [{"prices":..},{"constraint":..,"prices":..}]:
  - constraint {"start_date": D}: a dated change. The unconstrained element
    is the entry's base price; each dated element goes into the change
    schedule (lm_price_changes), and the library uses the latest change whose
    date is <= the current UTC date (so a table generated before a price
    change is still right after it);
  - constraint {"start_time","end_time"} (time-of-day windows, DeepSeek's
    peak/off-peak): the per-field maximum of the base and the window prices
    (a budget must not under-count; the library does not price by time of
    day).
* lm_price_provider_maxima: per provider, the highest input and highest
  output price over its entries (base, tier and scheduled prices), for
  pricing unknown models conservatively.
"""

import argparse
import datetime
import decimal
import json
import os
import re
import sys

FEED_DEFAULT = "data/prices.json"
OUT_DEFAULT = "src/price/price_table.c"
FEED_NAME = "genai-prices v2 price feed (MIT, data/LICENSE.genai-prices)"
FEED_DATE = "2026-08-21"

UNSET = None  # LM_PRICE_UNSET
FIELDS = ("input", "output", "cache_read", "cache_write", "cache_write_1h")
FEED_FIELD = {
    "input": "input_mtok",
    "output": "output_mtok",
    "cache_read": "cache_read_mtok",
    "cache_write": "cache_write_mtok",
    "cache_write_1h": "cache_write_1h_mtok",
}
# Part rates: the struct lm_price field, its LM_PRICE_HAS_* bit, the feed key.
PARTS = (
    ("input_audio", "LM_PRICE_HAS_INPUT_AUDIO", "input_audio_mtok"),
    ("cache_audio_read", "LM_PRICE_HAS_CACHE_AUDIO_READ", "cache_audio_read_mtok"),
    ("input_image", "LM_PRICE_HAS_INPUT_IMAGE", "input_image_mtok"),
    ("cache_image_read", "LM_PRICE_HAS_CACHE_IMAGE_READ", "cache_image_read_mtok"),
    ("input_video", "LM_PRICE_HAS_INPUT_VIDEO", "input_video_mtok"),
    ("citation", "LM_PRICE_HAS_CITATION", "output_citation_mtok"),
    ("output_audio", "LM_PRICE_HAS_OUTPUT_AUDIO", "output_audio_mtok"),
    ("output_image", "LM_PRICE_HAS_OUTPUT_IMAGE", "output_image_mtok"),
    ("output_video", "LM_PRICE_HAS_OUTPUT_VIDEO", "output_video_mtok"),
    ("output_reasoning", "LM_PRICE_HAS_OUTPUT_REASONING", "output_reasoning_mtok"),
)
# Fees per event (USD per 1,000 in the feed): the struct field, the feed key.
EVENTS = (("request", "requests_kcount"), ("web_search", "web_searches_kcount"))
KNOWN_KEYS = (set(FEED_FIELD.values()) | {k for _, _, k in PARTS}
              | {k for _, k in EVENTS})
CONTAINS_MIN = 4
MAX_KEY = 255

FLAG_EXACT = 1  # equals / id: matches itself, and as a prefix at a boundary
FLAG_PREFIX = 2  # starts_with / contains / regex head: any continuation
FLAG_CHANGES = 4  # has dated price changes in lm_price_changes
FLAG_FIRST_PARTY = 16  # the provider's own model_match accepts the key

REGEX_META = set(".^$*+?{}[]\\|()")


class Stats:
    def __init__(self):
        self.skipped = {}  # reason -> count
        self.examples = {}
        self.key_conflicts = 0
        self.multi_tier = 0

    def skip(self, reason, example):
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        self.examples.setdefault(reason, example)


REPAIRED = []  # inexact feed values and what the table holds instead


def pusd(value):
    """USD per million tokens (Decimal, int or decimal string) -> exact int
    of pico-USD per token.

    The feed's prices are exact at pico-USD per token, with two kinds of
    exception, both listed in the generated header:
    - a binary-float artifact of a 6-decimal price (within 0.001 pUSD of an
      integer, e.g. 0.18000000000000002) is read as that integer;
    - a price that is not a whole pico-USD per token (e.g.
      0.08333333333333334 = 1/12) is rounded UP to the next pico-USD per
      token: a budget may over-count by less than 1 pUSD per token, never
      under-count."""
    if isinstance(value, bool):
        raise ValueError("boolean price")
    d = decimal.Decimal(str(value))
    if d < 0:
        raise ValueError("negative price %r" % value)
    p = d * 1000000
    if p != p.to_integral_value():
        near = p.to_integral_value(rounding=decimal.ROUND_HALF_EVEN)
        if abs(p - near) < decimal.Decimal("0.001"):
            REPAIRED.append("%s read as %s (float artifact)" % (value, near / 1000000))
            p = near
        else:
            p = p.to_integral_value(rounding=decimal.ROUND_CEILING)
            REPAIRED.append("%s rounded up to %s" % (value, p / 1000000))
    return int(p)


def pusd_per_event(value):
    """USD per 1,000 events -> exact int of pico-USD per event (x 10^9),
    with the repair rules of pusd()."""
    # USD per 1,000 x 10^12 / 1,000 = USD-per-1,000 x 10^9; pusd() scales by
    # 10^6, so scale the value by 10^3 first.
    return pusd(decimal.Decimal(str(value)) * 1000)


def regex_head(pattern):
    """Literal head of an anchored regex ('^gpt-5\\.6-luna-\\d' ->
    'gpt-5.6-luna-'), or None."""
    if not pattern.startswith("^"):
        return None
    out = []
    i = 1
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern) and pattern[i + 1] in REGEX_META | {"-", "/"}:
            out.append(pattern[i + 1])
            i += 2
            continue
        if c in REGEX_META:
            break
        out.append(c)
        i += 1
    # A quantifier applies to the last literal char: drop it.
    if i < len(pattern) and pattern[i] in "*?{" and out:
        out.pop()
    head = "".join(out)
    return head or None


def tree_matches(tree, name):
    """Evaluates a genai-prices match tree on name (used for first-party
    ranking and to check that a model id is one of its own names)."""
    if tree is None:
        return False
    for op, arg in tree.items():
        if op == "or":
            return any(tree_matches(t, name) for t in arg)
        if op == "and":
            return all(tree_matches(t, name) for t in arg)
        if op == "equals":
            return name == arg.lower()
        if op == "starts_with":
            return name.startswith(arg.lower())
        if op == "ends_with":
            return name.endswith(arg.lower())
        if op == "contains":
            return arg.lower() in name
        if op == "regex":
            return re.search(arg, name, re.IGNORECASE) is not None
        raise ValueError("unknown match op %r" % op)
    return False


def collect_keys(tree, model_ref, stats, out):
    """Appends (key, flag) pairs for one match tree."""
    for op, arg in tree.items():
        if op == "or":
            for t in arg:
                collect_keys(t, model_ref, stats, out)
        elif op == "and":
            stats.skip("and", model_ref)
        elif op == "equals":
            out.append((arg.lower(), FLAG_EXACT))
        elif op == "starts_with":
            out.append((arg.lower(), FLAG_PREFIX))
        elif op == "contains":
            if len(arg) >= CONTAINS_MIN:
                out.append((arg.lower(), FLAG_PREFIX))
            else:
                stats.skip("contains (too short)", "%s: %r" % (model_ref, arg))
        elif op == "regex":
            head = regex_head(arg)
            if head and len(head) >= CONTAINS_MIN:
                out.append((head.lower(), FLAG_PREFIX))
            else:
                stats.skip("regex (no literal head)", "%s: %r" % (model_ref, arg))
        elif op == "ends_with":
            stats.skip("ends_with", "%s: %r" % (model_ref, arg))
        else:
            raise ValueError("%s: unknown match op %r" % (model_ref, op))


def price_field(prices, name, model_ref):
    """(base, tier_start, tier_price) of one field; values in pUSD/token or
    None when the field is absent."""
    v = prices.get(FEED_FIELD[name])
    if v is None:
        return None, None, None
    if isinstance(v, dict):
        tiers = v.get("tiers") or []
        if len(tiers) != 1:
            raise ValueError("%s: %s has %d tiers; the table keeps one" %
                             (model_ref, name, len(tiers)))
        return pusd(v["base"]), int(tiers[0]["start"]), pusd(tiers[0]["price"])
    return pusd(v), None, None


def convert_prices(prices, model_ref):
    """One feed `prices` map -> dict with FIELDS, tier_start, tier (dict),
    parts (field -> pUSD/token or None) and events (field -> pUSD/event)."""
    unknown = sorted(set(prices) - KNOWN_KEYS)
    if unknown:
        raise ValueError("%s: price keys the table does not know: %s" %
                         (model_ref, ", ".join(unknown)))
    parts = {}
    for field, _, key in PARTS:
        v = prices.get(key)
        if isinstance(v, dict):
            raise ValueError("%s: %s is tiered; the table tiers text rates only"
                             % (model_ref, key))
        parts[field] = None if v is None else pusd(v)
    events = {}
    for field, key in EVENTS:
        v = prices.get(key)
        if isinstance(v, dict):
            raise ValueError("%s: %s is tiered" % (model_ref, key))
        events[field] = 0 if v is None else pusd_per_event(v)
    base = {}
    tier = {}
    start = None
    for f in FIELDS:
        b, s, t = price_field(prices, f, model_ref)
        base[f] = b
        if s is not None:
            if start is not None and s != start:
                raise ValueError("%s: fields tier at different starts" % model_ref)
            start = s
            tier[f] = t
    if base["input"] is None:
        raise ValueError("%s: no input_mtok" % model_ref)
    if base["output"] is None:
        base["output"] = base["input"]  # see the header: conservative
    out = dict(base)
    out["tier_start"] = start or 0
    out["tier"] = {f: tier.get(f, base[f]) for f in FIELDS} if start else None
    if start and "output" not in tier and prices.get("output_mtok") is None:
        out["tier"]["output"] = out["tier"]["input"]
    out["parts"] = parts
    out["events"] = events
    return out


def max_prices(a, b):
    """Per-field maximum of two converted price sets (time-of-day windows)."""
    out = {}
    for f in FIELDS:
        va, vb = a[f], b[f]
        out[f] = vb if va is None else va if vb is None else max(va, vb)
    if "parts" in a:
        out["parts"] = {}
        for f, _, _ in PARTS:
            va, vb = a["parts"][f], b["parts"][f]
            out["parts"][f] = vb if va is None else va if vb is None else max(va, vb)
        out["events"] = {f: max(a["events"][f], b["events"][f]) for f, _ in EVENTS}
    if a["tier"] or b["tier"]:
        if a["tier_start"] and b["tier_start"] and a["tier_start"] != b["tier_start"]:
            raise ValueError("time windows tier at different starts")
        out["tier_start"] = a["tier_start"] or b["tier_start"]
        ta = a["tier"] or {f: a[f] for f in FIELDS}
        tb = b["tier"] or {f: b[f] for f in FIELDS}
        out["tier"] = max_prices(dict(ta, tier=None, tier_start=0),
                                 dict(tb, tier=None, tier_start=0))
        out["tier"] = {f: out["tier"][f] for f in FIELDS}
    else:
        out["tier_start"] = 0
        out["tier"] = None
    return out


def days_since_epoch(iso):
    d = datetime.date.fromisoformat(iso)
    return (d - datetime.date(1970, 1, 1)).days


def model_prices(model, model_ref):
    """-> (base price set, [(day, price set)] sorted by day)."""
    p = model["prices"]
    if isinstance(p, dict):
        return convert_prices(p, model_ref), []
    base = None
    windows = []
    changes = []
    for cond in p:
        c = cond.get("constraint")
        ps = convert_prices(cond["prices"], model_ref)
        if c is None:
            if base is not None:
                raise ValueError("%s: two unconstrained prices" % model_ref)
            base = ps
        elif set(c) == {"start_date"}:
            changes.append((days_since_epoch(c["start_date"]), c["start_date"], ps))
        elif set(c) <= {"start_time", "end_time"}:
            windows.append(ps)
        else:
            raise ValueError("%s: unknown constraint %r" % (model_ref, c))
    if base is None:
        raise ValueError("%s: no unconstrained price" % model_ref)
    for w in windows:
        base = max_prices(base, w)
    changes.sort(key=lambda x: x[0])
    return base, changes


# A price tuple: the 5 text rates, tier start, the 5 tier rates, then the
# part rates (PARTS order, None when absent) and the event fees (EVENTS).
P_PARTS = 2 * len(FIELDS) + 1
P_EVENTS = P_PARTS + len(PARTS)


def price_tuple(ps):
    t = ps["tier"]
    return (tuple(ps[f] for f in FIELDS) + (ps["tier_start"],) + (
        tuple(t[f] for f in FIELDS) if t else (None,) * len(FIELDS)) +
        tuple(ps["parts"][f] for f, _, _ in PARTS) +
        tuple(ps["events"][f] for f, _ in EVENTS))


def c_i64(v):
    return "LM_PRICE_UNSET" if v is None else "%dLL" % v


def c_price(pt):
    base = ", ".join(c_i64(v) for v in pt[:5])
    if pt[5]:
        tier = "{%dULL, %s}" % (pt[5], ", ".join(c_i64(v) for v in pt[6:11]))
    else:
        tier = "{0}"
    # The part rates and fees by name (designated, so that a text-only set
    # stays short and every field is still initialised: parts 0, fees 0).
    parts = pt[P_PARTS:P_EVENTS]
    events = pt[P_EVENTS:]
    bits = " | ".join(bit for (_, bit, _), v in zip(PARTS, parts) if v is not None)
    extra = [".parts = %s" % (bits or "0")]
    extra += [".%s = %dLL" % (f, v) for (f, _, _), v in zip(PARTS, parts)
              if v is not None]
    extra += [".%s = %dLL" % (f, v) for (f, _), v in zip(EVENTS, events) if v]
    return "{%s, %s, %s}" % (base, tier, ", ".join(extra))


def c_string(s):
    out = []
    for ch in s:
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= o < 127 and ch != "?":
            out.append(ch)
        else:
            out.extend("\\%03o" % b for b in ch.encode("utf-8"))
    return "".join(out)


def c_comment(s):
    return s.replace("*/", "*\\/").encode("ascii", "backslashreplace").decode()


def generate(feed):
    stats = Stats()
    providers = [p["id"] for p in feed]
    entries = {}  # (key, provider index) -> dict
    sets = {}  # price tuple -> index
    set_list = []

    def set_index(ps):
        pt = price_tuple(ps)
        if pt not in sets:
            sets[pt] = len(set_list)
            set_list.append(pt)
        return sets[pt]

    for pi, prov in enumerate(feed):
        for model in prov["models"]:
            ref = "%s/%s" % (prov["id"], model["id"])
            try:
                base, changes = model_prices(model, ref)
            except ValueError as e:
                raise SystemExit("gen_prices: %s" % e)
            keys = []
            collect_keys(model["match"], ref, stats, keys)
            mid = model["id"].lower()
            if tree_matches(model["match"], mid):
                keys.append((mid, FLAG_EXACT))
            else:
                stats.skip("model id not a key (match rejects it)", ref)
            if not keys:
                stats.skip("model without any usable key", ref)
                continue
            bidx = set_index(base)
            cidx = [(day, iso, set_index(ps)) for day, iso, ps in changes]
            for key, flag in keys:
                if len(key) > MAX_KEY or not key:
                    stats.skip("key too long", ref)
                    continue
                e = entries.get((key, pi))
                if e is None:
                    rank = 0 if tree_matches(prov.get("model_match"), key) else 1
                    entries[(key, pi)] = {
                        "key": key, "provider": pi, "flags": flag,
                        "set": bidx, "changes": cidx, "rank": rank,
                        "model": model["id"],
                    }
                elif e["model"] == model["id"]:
                    e["flags"] |= flag
                else:
                    stats.key_conflicts += 1  # first model wins

    ordered = sorted(entries.values(),
                     key=lambda e: (e["key"].encode("utf-8"), e["rank"], e["provider"]))
    return providers, ordered, set_list, stats


def emit(feed_path, providers, ordered, set_list, stats):
    counts = {}
    for e in ordered:
        counts[e["provider"]] = counts.get(e["provider"], 0) + 1
    L = []
    w = L.append
    w("/* price_table.c — GENERATED by scripts/gen_prices.py; do not edit.")
    w(" *")
    w(" * Source: %s," % FEED_NAME)
    w(" * %s, snapshot of %s. Regenerate with" % (feed_path, FEED_DATE))
    w(" *   python3 scripts/gen_prices.py")
    w(" * Prices are pico-USD per token (USD per million tokens x 10^6), exact.")
    w(" *")
    w(" * %d entries, %d distinct price sets, %d dated changes, %d providers."
      % (len(ordered), len(set_list),
         sum(len(e["changes"]) for e in ordered), len(providers)))
    w(" * Entries per provider:")
    line = " *  "
    for pi, name in enumerate(providers):
        item = " %s %d," % (name, counts.get(pi, 0))
        if len(line) + len(item) > 78:
            w(line.rstrip())
            line = " *  "
        line += item
    w(line.rstrip(","))
    w(" * Converted: every `equals` (exact keys), `starts_with` (prefix keys),")
    w(" * `contains` of %d+ chars and anchored `regex` heads (prefix keys)." % CONTAINS_MIN)
    w(" * Skipped (see the generator's header for the rules):")
    for reason in sorted(stats.skipped):
        w(" *   %-38s %4d  e.g. %s" % (reason, stats.skipped[reason],
                                      c_comment(str(stats.examples[reason]))[:60]))
    w(" *   %-38s %4d  (same key, same provider: first model wins)"
      % ("key claimed by two models", stats.key_conflicts))
    for r in sorted(set(REPAIRED)):
        w(" * Inexact feed price: %s USD/Mtok" % r)
    w(" * No model has more than one tier; no model tiers fields at different")
    w(" * starts (the generator fails if one ever does).")
    w(" */")
    w('#include "price.h"')
    w("")
    w("const char *const lm_price_providers[] = {")
    for name in providers:
        w('    "%s",' % c_string(name))
    w("};")
    w("const size_t lm_price_provider_count = %d;" % len(providers))
    w("")
    w("const struct lm_price lm_price_sets[] = {")
    for i, pt in enumerate(set_list):
        w("    /* %4d */ %s," % (i, c_price(pt)))
    w("};")
    w("const size_t lm_price_set_count = %d;" % len(set_list))
    w("")
    # Key pool: every key once, NUL-separated (no pointers, no relocations).
    pool = []
    offs = {}
    pos = 0
    for e in ordered:
        if e["key"] not in offs:
            offs[e["key"]] = pos
            pool.append(e["key"])
            pos += len(e["key"].encode("utf-8")) + 1
    w("const char lm_price_keys[] =")
    for k in pool:
        w('    "%s\\0"' % c_string(k))
    w("    ;")
    w("")
    w("const struct lm_price_entry lm_price_entries[] = {")
    changes = []
    for i, e in enumerate(ordered):
        flags = e["flags"] | (FLAG_CHANGES if e["changes"] else 0) | (
            FLAG_FIRST_PARTY if e["rank"] == 0 else 0)
        fl = []
        if flags & FLAG_EXACT:
            fl.append("LM_PRICE_KEY_EXACT")
        if flags & FLAG_PREFIX:
            fl.append("LM_PRICE_KEY_PREFIX")
        if flags & FLAG_CHANGES:
            fl.append("LM_PRICE_KEY_CHANGES")
        if flags & FLAG_FIRST_PARTY:
            fl.append("LM_PRICE_KEY_FIRST_PARTY")
        w("    {%d, %d, %d, %s, %d}, /* %s: %s */" % (
            offs[e["key"]], len(e["key"].encode("utf-8")), e["provider"],
            " | ".join(fl), e["set"], providers[e["provider"]],
            c_comment(e["key"])))
        for day, iso, si in e["changes"]:
            changes.append((i, day, iso, si))
    w("};")
    w("const size_t lm_price_entry_count = %d;" % len(ordered))
    w("")
    w("/* Dated price changes, by entry then date: from UTC day `day` (days")
    w(" * since 1970-01-01) the entry is priced at set `set`. */")
    w("const struct lm_price_change lm_price_changes[] = {")
    for i, day, iso, si in changes:
        w("    {%d, %d, %d}, /* %s: %s from %s */" % (
            i, day, si, providers[ordered[i]["provider"]],
            c_comment(ordered[i]["key"]), iso))
    if not changes:
        w("    {0, 0, 0},")
    w("};")
    w("const size_t lm_price_change_count = %d;" % len(changes))
    w("")
    # Provider maxima over every price the provider's entries can take.
    maxima = []
    for pi in range(len(providers)):
        mi = mo = mreq = mws = 0
        seen = set()
        for e in ordered:
            if e["provider"] != pi:
                continue
            seen.add(e["set"])
            seen.update(si for _, _, si in e["changes"])
        for si in seen:
            pt = set_list[si]
            vals_in = [pt[0]] + ([pt[6]] if pt[5] else [])
            vals_out = [pt[1]] + ([pt[7]] if pt[5] else [])
            mi = max([mi] + [v for v in vals_in if v is not None])
            mo = max([mo] + [v for v in vals_out if v is not None])
            mreq = max(mreq, pt[P_EVENTS])
            mws = max(mws, pt[P_EVENTS + 1])
        maxima.append((mi, mo, mreq, mws))
    w("/* Per provider (same order as lm_price_providers): the highest input")
    w(" * and the highest output price of its models, tiers and dated changes")
    w(" * included, and its highest request and web search fees. */")
    w("const struct lm_price_provider_max lm_price_provider_maxima[] = {")
    for pi, (mi, mo, mreq, mws) in enumerate(maxima):
        w("    {%dLL, %dLL, %dLL, %dLL}, /* %s */" % (mi, mo, mreq, mws,
                                                  providers[pi]))
    w("};")
    return "\n".join(L) + "\n", counts


# ---- Provider hosts: src/price/provider_host_table.c ----------------------
#
# Who bills a call is decided by the host it goes to (the library's
# lm_price_provider_for_host, src/price/provider_host.c). The feed gives
# every provider an `api_pattern`, a regex on the base URL; this section
# turns each into host globs (at most one '*', for one or more host
# characters) and an optional path prefix, and writes them as a table of
# fixed-size strings with their lengths (no pointers, so no relocations at
# library load; the lengths let a lookup skip most rules on one compare). Self-contained: it
# reads the feed and writes its own file; the price table above does not
# depend on it.

HOSTS_OUT_DEFAULT = "src/price/provider_host_table.c"
HOST_MAX = 47  # the C fields: char host[48], path[24], provider[32]
PATH_MAX = 23
PROVIDER_MAX = 31
HOST_CHARS = re.compile(r"^[a-z0-9.*-]+$")

# Hosts of providers the feed does not list (no prices in it). A call there
# is priced from LLMMETER_PRICES, else by the API's own provider; the ledger
# and status still name who billed it. The generator stops if the feed ever
# carries one of these hosts itself (then this line must go).
EXTRA_HOSTS = [
    ("api.deepinfra.com", "", "deepinfra",
     "DeepInfra (not in the feed)"),
]


def expand_pattern(pattern):
    """The strings an api_pattern describes, as a list, with '*' for a run
    of host characters ([...]+, [...]*, .*, .+). The subset of regex the
    feed uses: literals, backslash escapes, groups (...) and (?:...) with
    '|', '?' after a group or a literal, a leading '^' and '$'. Anything
    else stops the generator, so a new pattern shape is never guessed at."""
    pos = [0]
    n = len(pattern)

    def fail(why):
        raise SystemExit("gen_prices: api_pattern %r: %s at %d"
                         % (pattern, why, pos[0]))

    def alternatives():
        alts = [sequence()]
        while pos[0] < n and pattern[pos[0]] == "|":
            pos[0] += 1
            alts.append(sequence())
        return [s for a in alts for s in a]

    def sequence():
        out = [""]
        while pos[0] < n and pattern[pos[0]] not in "|)":
            atom = atom_strings()
            if pos[0] < n and pattern[pos[0]] == "?":
                pos[0] += 1
                atom = atom + [""]
            out = [a + b for a in out for b in atom]
        return out

    def atom_strings():
        c = pattern[pos[0]]
        if c == "^" and pos[0] == 0:
            pos[0] += 1
            return [""]
        if c == "$":
            pos[0] += 1
            return [""]
        if c == "\\":
            if pos[0] + 1 >= n or pattern[pos[0] + 1] not in ".-/:":
                fail("unsupported escape")
            pos[0] += 2
            return literal(pattern[pos[0] - 1])
        if c == "(":
            pos[0] += 1
            if pattern.startswith("?:", pos[0]):
                pos[0] += 2
            alts = alternatives()
            if pos[0] >= n or pattern[pos[0]] != ")":
                fail("unclosed group")
            pos[0] += 1
            return alts
        if c == "[":
            end = pattern.find("]", pos[0])
            if end < 0:
                fail("unclosed class")
            pos[0] = end + 1
            return wildcard()
        if c == ".":
            pos[0] += 1
            return wildcard()
        if c in "*+{}":
            fail("unsupported quantifier")
        pos[0] += 1
        return literal(c)

    def literal(c):
        if pos[0] < n and pattern[pos[0]] in "*+{":
            fail("quantifier on a literal")
        return [c]

    def wildcard():
        if pos[0] >= n or pattern[pos[0]] not in "*+":
            fail("a class or '.' without '*' or '+'")
        pos[0] += 1
        return ["*"]

    strings = alternatives()
    if pos[0] != n:
        fail("unexpected ')'")
    return strings


def host_rules(pattern):
    """api_pattern -> sorted unique (host glob, path prefix) pairs, each
    checked against the regex itself (a sample with every '*' filled in
    must match), so the table never claims more than the feed says."""
    rules = set()
    for s in expand_pattern(pattern):
        s = re.sub(r"\*+", "*", s)
        for scheme in ("https://", "http://"):
            if s.startswith(scheme):
                s = s[len(scheme):]
                break
        host, slash, path = s.partition("/")
        path = (slash + path).rstrip("/")
        if host.endswith(".") or host.endswith("-"):
            host += "*"  # the regex is a prefix: "api.moonshot." + any TLD
        if not HOST_CHARS.match(host) or host.startswith("*") and \
                not host.startswith("*."):
            raise SystemExit("gen_prices: api_pattern %r: host %r is not a "
                             "host glob" % (pattern, host))
        if "*" in path:
            raise SystemExit("gen_prices: api_pattern %r: wildcard in the "
                             "path" % pattern)
        if host.count("*") > 1:
            raise SystemExit("gen_prices: api_pattern %r: host %r has more "
                             "than one '*' (the matcher takes one)"
                             % (pattern, host))
        sample = host.replace("*", "xx") + path
        if not re.match(pattern, "https://" + sample):
            raise SystemExit("gen_prices: api_pattern %r: expansion %r does "
                             "not match it" % (pattern, sample))
        rules.add((host, path))
    return sorted(rules)


def host_table(feed):
    """-> [(host, path, provider id, comment)] in match order: a path
    prefix before a bare host, an exact host before a glob, then the longer
    literal first; the first rule that matches wins."""
    rows = {}
    notes = []
    for prov in feed:
        pat = prov.get("api_pattern")
        if not pat:
            notes.append("%s: no api_pattern" % prov["id"])
            continue
        for host, path in host_rules(pat):
            if (host, path) in rows:
                notes.append("%s%s: %s, kept %s" % (host, path, prov["id"],
                                                    rows[(host, path)][0]))
                continue
            rows[(host, path)] = (prov["id"], pat)
    for host, path, pid, why in EXTRA_HOSTS:
        if (host, path) in rows:
            raise SystemExit("gen_prices: the feed now maps %s%s (to %s): "
                             "remove it from EXTRA_HOSTS"
                             % (host, path, rows[(host, path)][0]))
        rows[(host, path)] = (pid, why)
    out = []
    for (host, path), (pid, why) in rows.items():
        if len(host) > HOST_MAX or len(path) > PATH_MAX or \
                len(pid) > PROVIDER_MAX:
            raise SystemExit("gen_prices: host rule %s%s -> %s does not fit "
                             "the table's fields" % (host, path, pid))
        out.append((host, path, pid, why))
    out.sort(key=lambda r: (0 if r[1] else 1, 1 if "*" in r[0] else 0,
                            -len(r[0].replace("*", "")), r[0], r[1]))
    return out, notes


def emit_hosts(feed_path, rows, notes):
    L = []
    w = L.append
    w("/* provider_host_table.c — GENERATED by scripts/gen_prices.py; do not "
      "edit.")
    w(" *")
    w(" * Who bills a call, by the host it goes to: every provider's")
    w(" * `api_pattern` of %s," % FEED_NAME)
    w(" * %s, snapshot of %s, as host globs ('*': one or more" % (feed_path,
                                                                   FEED_DATE))
    w(" * host characters) with an optional path prefix, in match order (the")
    w(" * first rule that matches wins; src/price/provider_host.c). Plus the")
    w(" * hosts of providers the feed does not list (EXTRA_HOSTS). Regenerate")
    w(" * with")
    w(" *   python3 scripts/gen_prices.py")
    w(" *")
    w(" * %d rules." % len(rows))
    for note in notes:
        w(" * Not a rule: %s." % c_comment(note))
    w(" */")
    w('#include "provider_host.h"')
    w("")
    w("const struct lm_price_host lm_price_hosts[] = {")
    for host, path, pid, why in rows:
        star = host.find("*")
        w('    {"%s", "%s", "%s", %d, %d, %d}, /* %s */'
          % (c_string(host), c_string(path), c_string(pid), len(host),
             255 if star < 0 else star, len(path), c_comment(why)))
    w("};")
    w("const size_t lm_price_host_count = %d;" % len(rows))
    return "\n".join(L) + "\n"


def write_or_check(path, text, check):
    """Writes text to path (atomically), or with check says whether path
    already holds it. Returns True when all is well."""
    if check:
        try:
            with open(path, encoding="utf-8") as f:
                same = f.read() == text
        except OSError:
            same = False
        if not same:
            print("gen_prices: %s is stale; run scripts/gen_prices.py" % path,
                  file=sys.stderr)
        return same
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--feed", default=FEED_DEFAULT)
    ap.add_argument("--out", default=OUT_DEFAULT)
    ap.add_argument("--check", action="store_true",
                    help="exit 1 if --out is not what the feed generates")
    ap.add_argument("--stats", action="store_true",
                    help="print entries per provider and skipped matchers")
    ap.add_argument("--hosts-out", default=HOSTS_OUT_DEFAULT,
                    help="the provider host table (default %(default)s)")
    args = ap.parse_args()
    with open(args.feed, "rb") as f:
        feed = json.loads(f.read().decode("utf-8"), parse_float=decimal.Decimal)
    hosts_ok = write_or_check(args.hosts_out,
                              emit_hosts(args.feed, *host_table(feed)),
                              args.check)
    providers, ordered, set_list, stats = generate(feed)
    if len(set_list) > 65535 or len(ordered) > 65535:
        raise SystemExit("gen_prices: table too large for 16-bit indices")
    text, counts = emit(args.feed, providers, ordered, set_list, stats)
    if args.stats:
        for pi, name in enumerate(providers):
            print("%-28s %5d" % (name, counts.get(pi, 0)))
        print("total %d entries, %d price sets" % (len(ordered), len(set_list)))
        for reason in sorted(stats.skipped):
            print("skipped %-34s %d" % (reason, stats.skipped[reason]))
        print("key conflicts (first model wins) %d" % stats.key_conflicts)
    if args.check:
        try:
            with open(args.out, encoding="utf-8") as f:
                same = f.read() == text
        except OSError:
            same = False
        if not same:
            print("gen_prices: %s is stale; run scripts/gen_prices.py" % args.out,
                  file=sys.stderr)
            return 1
        return 0 if hosts_ok else 1
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
