#!/usr/bin/python3
"""tests/tls/clients/py_urllib.py - urllib.request.urlopen (a new
connection per request: urllib closes it). Never decompresses. An HTTP
error status still delivers its body. Flags: rawcli.py."""
import http.client
import sys
import urllib.error
import urllib.request

import rawcli


def one(a, sink, state):
    req = urllib.request.Request(a.url, data=a.body, method=a.method, headers=dict(a.headers))
    try:
        r = urllib.request.urlopen(req, context=rawcli.ssl_context(a.cafile), timeout=60)
    except urllib.error.HTTPError as e:
        r = e
    with r:
        while True:
            data = r.read1(65536) if hasattr(r, "read1") else r.read(65536)
            if not data:
                break
            sink(data)
        return r.status if hasattr(r, "status") else r.code


if __name__ == "__main__":
    sys.exit(rawcli.run(one, (urllib.error.URLError, OSError, http.client.HTTPException)))
