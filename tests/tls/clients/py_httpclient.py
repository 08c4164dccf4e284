#!/usr/bin/python3
"""tests/tls/clients/py_httpclient.py - http.client.HTTPSConnection (one
connection, kept alive across --repeat). Never decompresses. Flags:
rawcli.py."""
import http.client
import sys
from urllib.parse import urlsplit

import rawcli


def one(a, sink, state):
    u = urlsplit(a.url)
    if "conn" not in state:
        state["conn"] = http.client.HTTPSConnection(u.hostname, u.port or 443,
                                                    context=rawcli.ssl_context(a.cafile), timeout=60)
        state["close"] = state["conn"].close
    c = state["conn"]
    c.request(a.method, u.path + ("?" + u.query if u.query else ""), body=a.body,
              headers=dict(a.headers))
    r = c.getresponse()
    while True:
        data = r.read1(65536)
        if not data:
            break
        sink(data)
    return r.status


if __name__ == "__main__":
    sys.exit(rawcli.run(one, (OSError, http.client.HTTPException)))
