"""tests/tls/clients/sdkcli.py - what the Python SDK clients share (they
run under .deps/venv/bin/python, the venv scripts/deps.sh makes).

Owns: the command line, the retry count, the output and the exit codes.
The SDKs run as users run them: default retries (max_retries=2), the
SDK's own HTTP client, the API key from the environment (OPENAI_API_KEY,
ANTHROPIC_API_KEY); the CA comes from SSL_CERT_FILE, which the SDKs'
default SSL context honours.

  --base-url URL     e.g. https://api.openai.com:PORT/v1
  --mode M           json | stream | async | async-stream | stream-break
                     (stream-break: a stream that does not ask for usage,
                     left at its finish_reason, as programs that have the
                     whole answer then do: openai only)
  --model NAME       the model asked for
  --prompt TEXT      the user message ("hello")
  --max-tokens N     (anthropic; 64)
  --header K:V       a default header of the client (repeatable): the
                     mock's X-Mock-* controls
  --out F            the text the SDK assembled, every call in order
  --repeat N         N calls on one client

Prints per call "ok usage=IN/OUT" (the usage the SDK parsed, "-" when
none), then "retries=N" (the SDK's "Retrying request" log records). On
an API error: "api_error=STATUS: MESSAGE", exit 3; on a connection error
or reset: "error=CLASS: MESSAGE", exit 4; else exit 0. Never prints the
key.
"""
import argparse
import logging
import sys


class RetryCounter(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.n = 0

    def emit(self, record):
        if record.getMessage().startswith("Retrying request"):
            self.n += 1


def parse(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--mode", choices=("json", "stream", "async", "async-stream", "stream-break"),
                    default="json")
    ap.add_argument("--model", default="gpt-4o-mini")
    ap.add_argument("--prompt", default="hello")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--header", action="append", default=[])
    ap.add_argument("--out")
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args(argv)
    a.headers = {}
    for h in a.header:
        k, sep, v = h.partition(":")
        if not sep:
            ap.error("--header wants K:V")
        a.headers[k.strip()] = v.strip()
    return a


def count_retries(sdk_name):
    c = RetryCounter()
    lg = logging.getLogger(sdk_name + "._base_client")
    lg.addHandler(c)
    lg.setLevel(logging.INFO)
    lg.propagate = False
    return c


def report(sdk, a, results, err, counter):
    """results: [(text, (in, out) or None)]; err: the exception or None."""
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            f.write("".join(t for t, _ in results))
    for _, u in results:
        print("ok usage=%s" % ("%s/%s" % u if u else "-"))
    print("retries=%d" % counter.n)
    if err is None:
        return 0
    if isinstance(err, sdk.APIStatusError):
        print("api_error=%d: %s" % (err.status_code, err.message))
        return 3
    if isinstance(err, sdk.APIConnectionError):
        cause = err.__cause__ or err.__context__
        print("error=%s: %s%s" % (type(err).__name__, err,
                                  " (%s)" % type(cause).__name__ if cause else ""))
        return 4
    print("error=%s: %s" % (type(err).__name__, err))
    return 4
