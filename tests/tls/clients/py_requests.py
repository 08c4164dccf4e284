#!/usr/bin/python3
"""tests/tls/clients/py_requests.py - requests.Session (urllib3; one pooled
connection across --repeat). requests decompresses gzip/deflate (and br
with brotli) by default; this client reads r.raw with decode_content=False,
so --out holds the bytes as sent. Flags: rawcli.py."""
import sys

import requests
import urllib3

import rawcli


def one(a, sink, state):
    if "s" not in state:
        state["s"] = requests.Session()
        state["close"] = state["s"].close
    r = state["s"].request(a.method, a.url, data=a.body, headers=dict(a.headers),
                           verify=a.cafile or True, stream=True, timeout=60)
    for data in r.raw.stream(65536, decode_content=False):
        sink(data)
    r.close()
    return r.status_code


if __name__ == "__main__":
    # reading r.raw directly, a broken body surfaces as urllib3's own error
    sys.exit(rawcli.run(one, (requests.exceptions.RequestException, urllib3.exceptions.HTTPError,
                              OSError)))
