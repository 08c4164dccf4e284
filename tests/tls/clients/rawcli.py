"""tests/tls/clients/rawcli.py - what the raw Python HTTPS clients share.

Owns: the command line every raw client takes, the output file, and the
exit codes; each client module supplies one function that makes one
request and streams the body it received, undecoded, into a sink.

  --url URL           https://HOST:PORT/PATH (HOST mapped to the mock)
  --body B            the request body: @FILE or the literal text; a body
                      makes the request a POST (else GET, or --method)
  --header K:V        a request header (repeatable)
  --cafile F          the CA to trust (the suite's test CA)
  --alpn P,P          ALPN protocols to offer (http.client and urllib;
                      httpx and aiohttp set their own), e.g. h2,http/1.1
                      to see that the transport takes h2 out of the offer
  --out F             every response body received, byte for byte,
                      appended in order (a cut stream keeps its prefix)
  --repeat N          N requests, on one connection where the library
                      keeps connections alive

Prints "status=N" per response. Exit: 0 when every status was 2xx, 3 when
one was not, 4 on a connection error or reset (printed as "error=...").
Never prints a header value: an API key must not reach the output.
"""
import argparse
import sys


def parse(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--body")
    ap.add_argument("--method")
    ap.add_argument("--header", action="append", default=[])
    ap.add_argument("--cafile")
    ap.add_argument("--alpn")
    ap.add_argument("--out")
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args(argv)
    if a.body is not None and a.body.startswith("@"):
        with open(a.body[1:], "rb") as f:
            a.body = f.read()
    elif a.body is not None:
        a.body = a.body.encode()
    global ALPN
    ALPN = a.alpn
    a.method = a.method or ("POST" if a.body is not None else "GET")
    a.headers = []
    for h in a.header:
        k, sep, v = h.partition(":")
        if not sep:
            ap.error("--header wants K:V, got %r" % h)
        a.headers.append((k.strip(), v.strip()))
    if a.body is not None and not any(k.lower() == "content-type" for k, _ in a.headers):
        a.headers.append(("Content-Type", "application/json"))
    return a


ALPN = None


def ssl_context(cafile):
    import ssl
    ctx = ssl.create_default_context(cafile=cafile)
    if ALPN:
        ctx.set_alpn_protocols(ALPN.split(","))
    return ctx


class Sink:
    def __init__(self, path):
        self.f = open(path, "wb") if path else None
        self.n = 0

    def __call__(self, data):
        if data:
            self.n += len(data)
            if self.f:
                self.f.write(data)
                self.f.flush()

    def close(self):
        if self.f:
            self.f.close()


CONN_ERRORS = (OSError, EOFError)


def finish(statuses, error):
    """Prints the outcome and returns the exit code."""
    for s in statuses:
        print("status=%d" % s)
    if error is not None:
        print("error=%s: %s" % (type(error).__name__, str(error).splitlines()[0] if str(error) else ""))
        return 4
    return 0 if all(200 <= s < 300 for s in statuses) else 3


def run(one, conn_errors=CONN_ERRORS, argv=None):
    """one(args, sink, state) -> status; state is a dict the client keeps
    its connection in across --repeat."""
    a = parse(argv)
    sink, statuses, err, state = Sink(a.out), [], None, {}
    try:
        for _ in range(a.repeat):
            statuses.append(one(a, sink, state))
    except conn_errors as e:
        err = e
    finally:
        sink.close()
        if "close" in state:
            try:
                state["close"]()
            except Exception:
                pass
    sys.stdout.flush()
    return finish(statuses, err)


async def run_async(one, conn_errors=CONN_ERRORS, argv=None):
    a = parse(argv)
    sink, statuses, err, state = Sink(a.out), [], None, {}
    try:
        for _ in range(a.repeat):
            statuses.append(await one(a, sink, state))
    except conn_errors as e:
        err = e
    finally:
        sink.close()
        if "aclose" in state:
            try:
                await state["aclose"]()
            except Exception:
                pass
    return finish(statuses, err)
