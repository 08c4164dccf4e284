#!/usr/bin/python3
"""tests/tls/clients/py_httpx.py - httpx.Client (sync, HTTP/1.1, one
pooled connection across --repeat). httpx decodes by default; this client
reads iter_raw(), the bytes as sent. Flags: rawcli.py."""
import sys

import httpx

import rawcli


def one(a, sink, state):
    if "c" not in state:
        state["c"] = httpx.Client(verify=rawcli.ssl_context(a.cafile), timeout=60)
        state["close"] = state["c"].close
    with state["c"].stream(a.method, a.url, content=a.body, headers=a.headers) as r:
        for data in r.iter_raw():
            sink(data)
        return r.status_code


if __name__ == "__main__":
    sys.exit(rawcli.run(one, (httpx.TransportError, OSError)))
