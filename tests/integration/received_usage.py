"""received_usage.py — the usage a client had received, read from the bytes
it had received (imported by test_stress.sh and test_chaos.sh).

Written independently of src/extract.c, from the providers' documented
wire formats, so the tests compare the library against a second reading.
Only complete events count (an SSE event ends with a blank line, an NDJSON
record with a newline), because a usage figure is not known until its event
is complete. Every result is on the normalised basis of X-Mock-Usage:
input = all prompt tokens incl. cache reads and writes; output = all
completion tokens incl. reasoning.

  usage_events(api, data) -> list of usage dicts, one per complete event
                             that changed the running usage (in order)
  usage_of(api, data)     -> the last of them, or None
"""
import json
import re

KINDS = ("input", "output", "cache_read", "cache_write", "reasoning")


def _zero():
    return {k: 0 for k in KINDS}


def _sse_events(data):
    # CR, LF and CRLF all end a line (WHATWG SSE): a blank line ended by a
    # lone CR is a complete event even if the LF of its CRLF never came.
    text = re.sub(r"\r\n|\r", "\n", data.decode("utf-8", "replace"))
    parts = text.split("\n\n")
    # The last part has no blank line yet. The library reads the JSON as it
    # streams, so a data object whose closing brace arrived is received even
    # before the event's blank line: count it if it parses whole.
    for n, ev in enumerate(parts):
        if n == len(parts) - 1 and not ev.rstrip("\n").endswith("}"):
            continue
        lines = [l[5:].lstrip() for l in ev.split("\n") if l.startswith("data:")]
        if not lines:
            continue
        payload = "\n".join(lines)
        if payload == "[DONE]":
            continue
        try:
            yield json.loads(payload)
        except ValueError:
            continue


def _anthropic(u, cur):
    out = dict(cur)
    if any(k in u for k in ("input_tokens", "cache_read_input_tokens",
                            "cache_creation_input_tokens")):
        cr = u.get("cache_read_input_tokens") or 0
        cw = u.get("cache_creation_input_tokens") or 0
        out["input"] = (u.get("input_tokens") or 0) + cr + cw
        out["cache_read"], out["cache_write"] = cr, cw
    if "output_tokens" in u:
        out["output"] = u["output_tokens"] or 0
    return out


def _openai(u):
    r = _zero()
    r["input"] = u.get("prompt_tokens") or 0
    r["output"] = u.get("completion_tokens") or 0
    d = u.get("prompt_tokens_details") or {}
    r["cache_read"] = d.get("cached_tokens") or 0
    r["cache_write"] = d.get("cache_write_tokens") or 0
    r["reasoning"] = (u.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    return r


def _gemini(m):
    r = _zero()
    r["input"] = m.get("promptTokenCount") or 0
    r["cache_read"] = m.get("cachedContentTokenCount") or 0
    r["reasoning"] = m.get("thoughtsTokenCount") or 0
    r["output"] = (m.get("candidatesTokenCount") or 0) + r["reasoning"]
    return r


def _ollama(o):
    r = _zero()
    r["input"] = o.get("prompt_eval_count") or 0
    r["output"] = o.get("eval_count") or 0
    return r


def _objects(api, data):
    """The complete JSON objects of a response, in order."""
    if api == "ollama":
        text = data.decode("utf-8", "replace")
        for line in text.split("\n")[:-1] if "\n" in text else []:
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError:
                    pass
        tail = text.rsplit("\n", 1)[-1].strip()
        if tail.startswith("{"):
            try:
                yield json.loads(tail)  # a non-streamed object without newline
            except ValueError:
                pass
        return
    stripped = data.lstrip()
    if stripped.startswith(b"{"):  # not streamed: one JSON document
        try:
            yield json.loads(data)
        except ValueError:
            pass
        return
    yield from _sse_events(data)


def usage_events(api, data):
    seen, cur = [], None
    for o in _objects(api, data):
        if not isinstance(o, dict):
            continue
        nxt = cur
        if api == "anthropic":
            t = o.get("type")
            if t == "message_start":
                nxt = _anthropic((o.get("message") or {}).get("usage") or {}, cur or _zero())
            elif t == "message_delta" and o.get("usage"):
                nxt = _anthropic(o["usage"], cur or _zero())
            elif t == "message" and o.get("usage"):
                nxt = _anthropic(o["usage"], _zero())
        elif api == "openai":
            if o.get("usage"):
                nxt = _openai(o["usage"])
        elif api == "gemini":
            if o.get("usageMetadata"):
                nxt = _gemini(o["usageMetadata"])
        elif api == "ollama":
            if o.get("done") and ("eval_count" in o or "prompt_eval_count" in o):
                nxt = _ollama(o)
        if nxt is not None and nxt != cur:
            seen.append(nxt)
            cur = nxt
    return seen


def usage_of(api, data):
    ev = usage_events(api, data)
    return ev[-1] if ev else None


def usage_arg(u):
    """A usage as `llmmeter prices --usage` takes it."""
    return ",".join("%s=%d" % (k, u[k]) for k in KINDS)


if __name__ == "__main__":
    import sys
    print(json.dumps(usage_of(sys.argv[1], open(sys.argv[2], "rb").read())))
