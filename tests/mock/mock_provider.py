#!/usr/bin/env python3
"""tests/mock/mock_provider.py - mock LLM provider for llmmeter's tests and benchmarks.

Owns: the HTTP/1.1 server on 127.0.0.1 that the integration tests and the
benchmarks talk to instead of real providers.  It (a) replays the recorded
fixtures in tests/fixtures/ byte for byte (X-Mock-Fixture), (b) synthesises
OpenAI chat / Anthropic messages / Ollama chat responses with chosen usage
numbers (dynamic mode), and (c) serves plain non-LLM endpoints (/download,
/hello, /__health).  Every request gets one JSON line in --log.
With --tls-cert/--tls-key it speaks HTTPS (Python's ssl, the handshake in
the connection's own thread), and X-Mock-Encoding compresses what it sends.
All options and X-Mock-* headers are documented in tests/mock/README.md.
Python 3 standard library only; br and zstd bodies need the brotli and
zstandard modules (Debian's python3-brotli, python3-zstandard), imported
only when a request asks for them.
"""
import argparse
import base64
import hashlib
import itertools
import json
import os
import random
import re
import signal
import socket
import ssl
import string
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SEED = 0
FIXTURES = ""
LOG_FD = None
LOG_LOCK = threading.Lock()

REDACT = {"authorization", "x-api-key", "api-key", "x-goog-api-key"}
ALNUM = string.ascii_letters + string.digits
WORDS = ("the quick brown fox jumps over lazy dog metered tokens flow "
         "through a small mock server while budgets hold steady and "
         "every stream ends with usage").split()
PATTERN = bytes(range(256)) * 256            # 64 KiB; byte i of /download is i % 256
ROUTES = (("/v1/messages", "anthropic"), ("/api/chat", "ollama"),
          ("/chat/completions", "openai"))   # matched as path suffixes
USAGE_KEYS = ("input", "output", "cache_read", "cache_write", "reasoning",
              "input_audio", "output_audio", "web_searches")
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
SSE = "text/event-stream; charset=utf-8"
TLS_CTX = None
RECORD_DIR = None
RECORD_SEQ = itertools.count(1)
CONN_SEQ = itertools.count(1)
ACTIVE = [0]                                  # requests being handled now
ENCODINGS = ("gzip", "deflate", "br", "zstd", "identity")



def content_hash(body):
    """What seeds a dynamic answer: the request without stream_options, so a
    client that adds include_usage gets the same ids and text as one that
    does not (as a real server would, but for the usage it adds)."""
    try:
        j = json.loads(body)
        if isinstance(j, dict):
            j.pop("stream_options", None)
            return hashlib.sha256(json.dumps(j, sort_keys=True).encode()).hexdigest()
    except (ValueError, UnicodeDecodeError):
        pass
    return hashlib.sha256(body).hexdigest()

class BadRequest(Exception):
    pass


class Encoder:
    """Content-Encoding of one response body, fed piece by piece: every
    piece is flushed (Z_SYNC_FLUSH, brotli flush, a zstd block), as servers
    that compress SSE do, so a stream stays a stream."""

    def __init__(self, name):
        self.name = name
        if name in ("gzip", "deflate"):     # HTTP's deflate is the zlib format
            c = zlib.compressobj(6, zlib.DEFLATED, 31 if name == "gzip" else 15)
            self.piece = lambda b: c.compress(b) + c.flush(zlib.Z_SYNC_FLUSH)
            self.end = c.flush
        elif name == "br":
            try:
                import brotli
            except ImportError:
                raise BadRequest("X-Mock-Encoding: br needs the brotli module")
            c = brotli.Compressor()
            self.piece = lambda b: c.process(b) + c.flush()
            self.end = c.finish
        elif name == "zstd":
            try:
                import zstandard
            except ImportError:
                raise BadRequest("X-Mock-Encoding: zstd needs the zstandard module")
            c = zstandard.ZstdCompressor().compressobj()
            self.piece = lambda b: c.compress(b) + c.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
            self.end = c.flush
        else:
            self.piece, self.end = (lambda b: b), (lambda: b"")

    def stream(self, it):
        for b in it:
            out = self.piece(b)
            if out:
                yield out
        out = self.end()
        if out:
            yield out

    def whole(self, data):
        return b"".join(self.stream([data]))


def flush_points(data):
    """A fixture's bytes cut where a server would flush: after each SSE
    event (blank line) or NDJSON line."""
    if b"\n\n" in data or b"\r\n\r\n" in data:
        parts = re.split(rb"(?<=\n\n)|(?<=\r\n\r\n)", data)
    else:
        parts = re.split(rb"(?<=\n)", data)
    return [p for p in parts if p]


def compact(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def parse_usage(hdr, body):
    u = dict.fromkeys(USAGE_KEYS, 0)
    if hdr is None:
        u["input"], u["output"] = max(1, len(body) // 4), 5
        return u
    for part in hdr.split(","):
        if not part.strip():
            continue
        k, sep, v = part.partition("=")
        k = k.strip()
        if not sep or k not in u or not v.strip().isdigit():
            raise BadRequest("bad X-Mock-Usage item %r" % part.strip())
        u[k] = int(v)
    return u


class Gen:
    """Deterministic content for one dynamic request (same request + seed -> same bytes)."""

    def __init__(self, rng, model, usage, nchunks, stream_bytes, include_usage):
        self.rng, self.model, self.usage = rng, model, usage
        self.stream_bytes, self.include_usage = stream_bytes, include_usage
        self.emitted = 0
        self.texts = []
        for i in range(nchunks):
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 3)))
            self.texts.append(("" if i == 0 else " ") + words)
        self.created = 1700000000 + rng.randrange(10 ** 7)

    def rid(self, prefix, n):
        return prefix + "".join(self.rng.choice(ALNUM) for _ in range(n))

    def counted(self, it):
        for b in it:
            self.emitted += len(b)
            yield b

    def padding(self, ev):
        """Repeat the pre-serialised event `ev` until ~stream_bytes were emitted (lazily)."""
        if not self.stream_bytes:
            return
        per = max(1, 65536 // len(ev))
        batch = ev * per
        while self.emitted < self.stream_bytes:
            need = -(-(self.stream_bytes - self.emitted) // len(ev))
            yield batch if need >= per else ev * need


def openai_chat(g, stream):
    u = g.usage
    ptd = {"cached_tokens": u["cache_read"]}
    if u["cache_write"]:
        ptd["cache_write_tokens"] = u["cache_write"]
    ptd["audio_tokens"] = u["input_audio"]
    usage = {"prompt_tokens": u["input"], "completion_tokens": u["output"],
             "total_tokens": u["input"] + u["output"], "prompt_tokens_details": ptd,
             "completion_tokens_details": {"reasoning_tokens": u["reasoning"],
                                           "audio_tokens": u["output_audio"],
                                           "accepted_prediction_tokens": 0,
                                           "rejected_prediction_tokens": 0}}
    cid, fp = g.rid("chatcmpl-mock", 20), g.rid("fp_", 10).lower()
    if not stream:
        body = {"id": cid, "object": "chat.completion", "created": g.created, "model": g.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(g.texts),
                                                     "refusal": None, "annotations": []},
                             "finish_reason": "stop"}],
                "usage": usage, "service_tier": "default", "system_fingerprint": fp}
        return json.dumps(body, indent=2, ensure_ascii=False).encode()

    def chunk(choices, usage_val=None, obf=None):
        d = {"id": cid, "object": "chat.completion.chunk", "created": g.created, "model": g.model,
             "service_tier": "default", "system_fingerprint": fp, "choices": choices}
        if g.include_usage:
            d["usage"] = usage_val
        d["obfuscation"] = obf or g.rid("", g.rng.randint(1, 12))
        return b"data: " + compact(d).encode() + b"\n\n"

    def delta(d, finish=None):
        return [{"index": 0, "delta": d, "logprobs": None, "finish_reason": finish}]

    def events():
        yield chunk(delta({"role": "assistant", "content": "", "refusal": None}))
        for t in g.texts:
            yield chunk(delta({"content": t}))
        yield from g.padding(chunk(delta({"content": " padding padding padding"}), obf="mockpad"))
        yield chunk(delta({}, "stop"))
        if g.include_usage:
            yield chunk([], usage)
        yield b"data: [DONE]\n\n"
    return events()


def anthropic_messages(g, stream):
    u = g.usage
    cr, cw, out = u["cache_read"], u["cache_write"], u["output"]
    inp = max(0, u["input"] - cr - cw)          # Anthropic input_tokens excludes cache
    mid = g.rid("msg_mock", 20)
    full = {"input_tokens": inp, "cache_creation_input_tokens": cw, "cache_read_input_tokens": cr,
            "cache_creation": {"ephemeral_5m_input_tokens": cw, "ephemeral_1h_input_tokens": 0},
            "output_tokens": out, "service_tier": "standard", "inference_geo": "not_available"}
    searches = {}
    if u["web_searches"]:                       # as the API reports server tools
        searches = {"server_tool_use": {"web_search_requests": u["web_searches"],
                                        "web_fetch_requests": 0}}
        full.update(searches)
    if not stream:
        body = {"model": g.model, "id": mid, "type": "message", "role": "assistant",
                "content": [{"type": "text", "text": "".join(g.texts)}],
                "stop_reason": "end_turn", "stop_sequence": None, "usage": full}
        return compact(body).encode()

    def ev(name, obj, pad=None):
        s = compact(obj)                          # Anthropic pads events with spaces before '}'
        s = s[:-1] + " " * (g.rng.randint(0, 12) if pad is None else pad) + "}"
        return ("event: %s\ndata: %s\n\n" % (name, s)).encode()

    def text_delta(t):
        return {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}

    def events():
        msg = {"model": g.model, "id": mid, "type": "message", "role": "assistant", "content": [],
               "stop_reason": None, "stop_sequence": None, "usage": dict(full, output_tokens=1)}
        if searches:                            # none have run when the message starts
            msg["usage"]["server_tool_use"] = {"web_search_requests": 0, "web_fetch_requests": 0}
        yield ev("message_start", {"type": "message_start", "message": msg})
        yield ev("content_block_start", {"type": "content_block_start", "index": 0,
                                         "content_block": {"type": "text", "text": ""}})
        yield b'event: ping\ndata: {"type": "ping"}\n\n'
        for t in g.texts:
            yield ev("content_block_delta", text_delta(t))
        yield from g.padding(ev("content_block_delta", text_delta(" padding padding padding"), 4))
        yield ev("content_block_stop", {"type": "content_block_stop", "index": 0})
        yield ev("message_delta", {"type": "message_delta",
                                   "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                   "usage": dict({"input_tokens": inp, "cache_creation_input_tokens": cw,
                                                  "cache_read_input_tokens": cr, "output_tokens": out},
                                                 **searches)})
        yield ev("message_stop", {"type": "message_stop"})
    return events()


def ollama_chat(g, stream):
    u = g.usage

    def ts(i):
        return "2024-01-01T00:00:%02d.%09dZ" % (i // 50 % 60, i % 50 * 20000000)
    final = {"done": True, "done_reason": "stop", "total_duration": 4883583458,
             "load_duration": 1334875, "prompt_eval_count": u["input"],
             "prompt_eval_duration": 342546000, "eval_count": u["output"],
             "eval_duration": 4535599000}
    if not stream:
        body = {"model": g.model, "created_at": ts(0),
                "message": {"role": "assistant", "content": "".join(g.texts)}}
        body.update(final)
        return compact(body).encode()

    def line(i, text, done=None):
        d = {"model": g.model, "created_at": ts(i), "message": {"role": "assistant", "content": text}}
        d.update(done or {"done": False})
        return compact(d).encode() + b"\n"

    def events():
        for i, t in enumerate(g.texts):
            yield line(i, t)
        yield from g.padding(line(0, " padding padding padding"))
        yield line(len(g.texts), "", final)
    return events()


KINDS = {"openai": (openai_chat, SSE, "application/json"),
         "anthropic": (anthropic_messages, SSE, "application/json"),
         "ollama": (ollama_chat, "application/x-ndjson", "application/json; charset=utf-8")}


def error_body(kind, code, msg):
    if kind == "anthropic":
        t = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
             404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
             529: "overloaded_error"}.get(code, "api_error")
        return compact({"type": "error", "error": {"type": t, "message": msg},
                        "request_id": "req_mock"}).encode()
    if kind == "ollama":
        return compact({"error": msg}).encode()
    t = "invalid_request_error" if code < 500 else "server_error"
    return compact({"error": {"message": msg, "type": t, "param": None,
                              "code": "mock_error_%d" % code}}).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "llmmeter-mock/1.0"
    disable_nagle_algorithm = True

    def log_message(self, *args):           # silence stderr; we have our own log
        pass

    def setup(self):
        """TLS: the handshake runs here, in the connection's thread, so a
        slow or failing client never holds up accept(). A failed handshake
        is no request: it goes to stderr, not to --log."""
        self.tls, self.conn_id = None, next(CONN_SEQ)
        if TLS_CTX is not None:
            raw = self.request
            raw.settimeout(30)
            try:
                self.request = TLS_CTX.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError) as e:
                print("mock_provider: TLS handshake failed: %s" % e, file=sys.stderr, flush=True)
                raw.close()
                raise ConnectionAbortedError("TLS handshake failed")
            self.request.settimeout(None)
            self.tls = {"version": self.request.version(),
                        "alpn": self.request.selected_alpn_protocol(),
                        "sni": getattr(self.request, "lm_sni", None)}
        super().setup()

    def finish(self):
        try:
            super().finish()
        finally:
            if self.tls is not None:
                try:
                    self.request.close()
                except OSError:
                    pass

    def do_GET(self):
        self.dispatch()
    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    # ---- plumbing -----------------------------------------------------------
    def dispatch(self):
        self.t0, self.kind, self.sent_headers, self.chunked = time.time(), None, False, False
        self.rec = {"served": None, "status": None, "bytes_sent": 0, "conn": self.conn_id}
        self.sent_hash, self.identity_hash = hashlib.sha256(), hashlib.sha256()
        self.record = None
        if self.tls is not None:
            self.rec["tls"] = self.tls
        body = b""
        with LOG_LOCK:
            ACTIVE[0] += 1
            self.rec["in_flight"] = ACTIVE[0]
        try:
            body = self.read_body()
            self.route(body)
        except BadRequest as e:
            self.fail(400, str(e), "error:400")
        except (ConnectionError, TimeoutError, socket.timeout, ssl.SSLError) as e:
            self.rec["error"] = "client disconnected: %s" % type(e).__name__
            self.close_connection = True
        except Exception as e:              # never let one request kill the server
            self.rec["error"] = "internal: %r" % e
            self.fail(500, "mock internal error", "error:500")
        finally:
            with LOG_LOCK:
                ACTIVE[0] -= 1
            self.write_log(body)

    def fail(self, code, msg, served):
        if self.sent_headers:               # too late for a status: drop the connection
            self.close_connection = True
            return
        try:
            self.send_body(code, "application/json", error_body(self.kind, code, msg), served,
                           allow_chunked=False)
        except OSError:
            self.close_connection = True

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = bytearray()
            while True:
                line = self.rfile.readline(65537)
                try:
                    n = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    self.close_connection = True
                    raise BadRequest("malformed chunked request body")
                if n == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(n)
                self.rfile.readline()
        cl = self.headers.get("Content-Length")
        if cl is None:
            return b""
        if not cl.strip().isdigit():
            self.close_connection = True
            raise BadRequest("bad Content-Length")
        data = self.rfile.read(int(cl))
        if len(data) < int(cl):
            self.close_connection = True
            raise ConnectionError("short request body")
        return data

    def hint(self, name, default, lo=0):
        v = self.headers.get(name)
        if v is None:
            return default
        if not v.strip().isdigit() or int(v) < lo:
            raise BadRequest("bad %s header %r" % (name, v))
        return int(v)

    def encoding(self):
        """X-Mock-Encoding: gzip|deflate|br|zstd|identity, or `accept`: the
        first of those the request's Accept-Encoding names (q=0 excluded)."""
        v = (self.headers.get("X-Mock-Encoding") or "identity").strip().lower()
        if v == "accept":
            offered = []
            for part in (self.headers.get("Accept-Encoding") or "").split(","):
                name, _, params = part.strip().lower().partition(";")
                if params.replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000"):
                    continue
                offered.append(name.strip())
            v = next((e for e in offered if e in ENCODINGS), "identity")
        if v not in ENCODINGS:
            raise BadRequest("bad X-Mock-Encoding %r" % v)
        return v

    def start(self, status, ctype, length=None, encoding="identity"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if encoding != "identity":
            self.send_header("Content-Encoding", encoding)
            self.rec["encoding"] = encoding
        if RECORD_DIR:
            seq = next(RECORD_SEQ)
            self.rec["record"] = "%d.body" % seq
            self.record = open(os.path.join(RECORD_DIR, "%d.body" % seq), "wb")
        if length is not None:
            self.send_header("Content-Length", str(length))
        elif self.request_version == "HTTP/1.1":
            self.send_header("Transfer-Encoding", "chunked")
            self.chunked = True
        else:                               # HTTP/1.0: stream raw until close
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.sent_headers = True
        self.rec["status"] = status

    def write(self, data):
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if self.chunked else data)
            self.rec["bytes_sent"] += len(data)
            self.sent_hash.update(data)
            if self.record:
                self.record.write(data)

    def write_stream(self, it, split_max=None):
        """One HTTP chunk per item, or (split_max) random sizes 1..split_max across items."""
        delay, first = self.delay, True

        def emit(piece):
            nonlocal first
            if delay and not first:
                time.sleep(delay)
            first = False
            self.write(piece)
            self.wfile.flush()
        if split_max:
            rng = random.Random("split|%d|%s" % (SEED, self.body_hash))
            n, pend = rng.randint(1, split_max), b""
            for data in it:
                data = pend + data if pend else data
                pos = 0
                while len(data) - pos >= n:
                    emit(data[pos:pos + n])
                    pos += n
                    n = rng.randint(1, split_max)
                pend = data[pos:]
            emit(pend)
        else:
            for data in it:
                emit(data)
        if self.chunked:
            self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def send_body(self, status, ctype, data, served, allow_chunked=True):
        self.rec["served"] = served
        if status in (204, 304):
            data = b""
        enc = self.encoding() if allow_chunked else "identity"
        self.identity_hash.update(data)
        if enc != "identity" and data:
            data = Encoder(enc).whole(data)
        else:
            enc = "identity"
        if allow_chunked and self.headers.get("X-Mock-Chunked") == "1":
            split = self.hint("X-Mock-Split-Max", 64, 1)
            self.start(status, ctype, encoding=enc)
            self.write_stream([data], split)
        elif allow_chunked and self.headers.get("X-Mock-Split-Max") is not None:
            split = self.hint("X-Mock-Split-Max", 64, 1)   # Content-Length, written in
            self.start(status, ctype, len(data), enc)        # random pieces (one TLS
            self.write_stream([data], split)                 # record each over HTTPS)
        else:
            self.start(status, ctype, len(data), enc)
            self.write(data)

    def send_stream(self, status, ctype, pieces, split):
        """A streamed body: each piece (an event, a line) is hashed as the
        identity body, encoded and flushed, then split into chunks."""
        enc = self.encoding()

        def hashed(it):
            for b in it:
                self.identity_hash.update(b)
                yield b
        self.start(status, ctype, encoding=enc)
        self.write_stream(Encoder(enc).stream(hashed(pieces)), split)

    # ---- routing ------------------------------------------------------------
    def route(self, body):
        self.body_hash = content_hash(body)
        self.delay = self.hint("X-Mock-Delay-Ms", 0) / 1000.0
        url = urlsplit(self.path)
        q = parse_qs(url.query)
        fx = self.headers.get("X-Mock-Fixture") or q.get("mock_fixture", [None])[0]
        if fx:
            return self.serve_fixture(fx)
        p = url.path
        if p == "/__health":
            return self.send_body(200, "text/plain", b"ok", "health")
        if p == "/hello":
            return self.send_body(200, "text/plain", b"hello from llmmeter mock\n", "hello")
        if p == "/redirect":                # ?to=URL[&code=307]: a redirect
            code = q.get("code", ["307"])[0]
            to = q.get("to", [""])[0]
            if code not in ("301", "302", "303", "307", "308") or not to:
                raise BadRequest("bad redirect parameters")
            self.rec["served"] = "redirect"
            self.send_response(int(code))
            self.send_header("Location", to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.sent_headers = True
            self.rec["status"] = int(code)
            return
        if p == "/download":
            v = q.get("bytes", ["0"])[0]
            if not v.isdigit():
                raise BadRequest("bad bytes= parameter")
            return self.serve_download(int(v))
        for suffix, kind in ROUTES:
            if p.endswith(suffix):
                self.kind = kind
                return self.serve_dynamic(kind, body)
        self.send_body(404, "application/json",
                       error_body(None, 404, "no route for %s" % p), "error:404", False)

    def serve_download(self, n):
        self.rec["served"] = "download"

        def pieces():
            left = n
            while left > 0:
                yield PATTERN if left >= len(PATTERN) else PATTERN[:left]
                left -= len(PATTERN)
        self.start(200, "application/octet-stream")
        self.write_stream(pieces())

    def serve_fixture(self, name):
        if not NAME_RE.match(name):
            raise BadRequest("bad fixture name %r" % name)
        base = os.path.join(FIXTURES, name)
        try:
            with open(base + ".meta.json", "rb") as f:
                meta = json.load(f)
            with open(base + ".response", "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return self.send_body(404, "application/json",
                                  error_body(None, 404, "no fixture %s" % name),
                                  "fixture-missing:" + name, False)
        status = int(meta.get("http_status") or 200)
        ctype = meta.get("response_content_type") or "application/json"
        served = "fixture:" + name
        if meta.get("streamed"):
            self.rec["served"] = served
            split = self.hint("X-Mock-Split-Max", 64, 1)
            self.send_stream(status, ctype, flush_points(data), split)
        else:
            self.send_body(status, ctype, data, served)

    def serve_dynamic(self, kind, body):
        if self.headers.get("X-Mock-Status") is not None:
            code = self.hint("X-Mock-Status", 0)
            if not 200 <= code <= 599:
                raise BadRequest("X-Mock-Status must be 200..599")
            return self.send_body(code, "application/json",
                                  error_body(kind, code, "mock error status %d" % code),
                                  "status:%d" % code, False)
        try:
            req = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise BadRequest("request body is not valid JSON")
        if not isinstance(req, dict):
            raise BadRequest("request body must be a JSON object")
        usage = parse_usage(self.headers.get("X-Mock-Usage"), body)
        self.rec["usage"] = usage
        stream = req.get("stream", kind == "ollama") is True
        so = req.get("stream_options")
        include_usage = isinstance(so, dict) and so.get("include_usage") is True
        model = req.get("model") if isinstance(req.get("model"), str) else "mock-model"
        rng = random.Random("gen|%d|%s|%s|%s" % (SEED, kind, self.path, self.body_hash))
        g = Gen(rng, model, usage, self.hint("X-Mock-Output-Chunks", 5),
                self.hint("X-Mock-Stream-Bytes", 0), include_usage)
        fn, stream_ct, plain_ct = KINDS[kind]
        served = "dynamic:%s_%s" % (kind, "stream" if stream else "nonstream")
        if not stream:
            return self.send_body(200, plain_ct, fn(g, False), served)
        self.rec["served"] = served
        split = self.hint("X-Mock-Split-Max", 0, 1) or None
        events = g.counted(fn(g, True))
        next_ev = next(events)               # build the first event before committing to 200
        self.send_stream(200, stream_ct, itertools.chain((next_ev,), events), split)

    # ---- logging ------------------------------------------------------------
    def send_error(self, code, message=None, explain=None):
        # Only reached for requests the stdlib could not parse (bad request line,
        # unsupported method, oversized headers): log those too.
        super().send_error(code, message, explain)
        self.rec = {"served": "error:%d" % code, "status": code, "bytes_sent": None}
        self.t0 = time.time()
        self.write_log(b"")

    def write_log(self, body):
        if LOG_FD is None:
            return
        hdrs = {}
        for k, v in (getattr(self, "headers", None) or {}).items():
            v = "<redacted>" if k.lower() in REDACT else v
            hdrs[k] = hdrs[k] + ", " + v if k in hdrs else v
        try:
            text, enc = body.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, enc = base64.b64encode(body).decode("ascii"), "base64"
        now = time.time()
        rec = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%03dZ" % (now % 1 * 1000),
               "method": getattr(self, "command", None),
               "path": getattr(self, "path", None) or getattr(self, "requestline", None),
               "headers": hdrs, "body": text, "body_encoding": enc, "body_len": len(body)}
        rec.update(self.rec)
        if hasattr(self, "sent_hash") and rec.get("bytes_sent") is not None:
            rec["body_sha256"] = self.sent_hash.hexdigest()
            rec["identity_sha256"] = self.identity_hash.hexdigest()
        if getattr(self, "record", None):
            self.record.close()
            self.record = None
        rec["duration_ms"] = round((now - self.t0) * 1000, 3)
        line = (compact(rec) + "\n").encode("utf-8", "replace")
        with LOG_LOCK:
            os.write(LOG_FD, line)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024             # the TLS load tests open 1,600 at once

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError, ssl.SSLError)):
            super().handle_error(request, client_address)


def main():
    global SEED, FIXTURES, LOG_FD, RECORD_DIR, TLS_CTX
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description="Mock LLM provider for llmmeter tests.")
    ap.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0 = any free)")
    ap.add_argument("--port-file", help="write the bound port here (atomically) once listening")
    ap.add_argument("--log", help="append one JSON line per request to this file")
    ap.add_argument("--seed", type=int, default=0, help="seed for ids, text and chunk splitting")
    ap.add_argument("--fixtures", default=os.path.normpath(os.path.join(here, "..", "fixtures")))
    ap.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM, chain allowed)")
    ap.add_argument("--tls-key", help="the certificate's private key (PEM)")
    ap.add_argument("--alpn", help="ALPN protocols to accept, in preference order, e.g. h2,http/1.1 "
                    "(the mock speaks HTTP/1.1 whatever is chosen)")
    ap.add_argument("--record-dir", help="write each response body, as sent, to DIR/<n>.body")
    a = ap.parse_args()
    SEED, FIXTURES, RECORD_DIR = a.seed, a.fixtures, a.record_dir
    if bool(a.tls_cert) != bool(a.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    if a.alpn and not a.tls_cert:
        ap.error("--alpn needs --tls-cert")
    if a.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.tls_cert, a.tls_key)
        if a.alpn:
            ctx.set_alpn_protocols(a.alpn.split(","))

        def on_sni(sock, name, _ctx):
            sock.lm_sni = name
        ctx.sni_callback = on_sni
        TLS_CTX = ctx
    if a.log:
        LOG_FD = os.open(a.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def on_term(signum, frame):
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, on_term)
    srv = Server(("127.0.0.1", a.port), Handler)
    port = srv.server_address[1]
    if a.port_file:
        tmp = "%s.tmp.%d" % (a.port_file, os.getpid())
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, a.port_file)
    print("mock_provider listening on %s127.0.0.1:%d" % ("https://" if TLS_CTX else "", port),
          flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    except (SystemExit, KeyboardInterrupt):
        pass
    finally:
        srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
