#!/usr/bin/python3
"""tests/tls/clients/py_pipeline.py - HTTP/1.1 pipelining over one ssl
socket (Debian's python3): --count requests written before any response
is read, each in its own write (--each) or all in one, then the responses
read in order.

  --url URL --body B --header K:V... --cafile F --count N [--each]

Prints "status=S" per response read (a response that says Connection:
close ends the connection: fewer lines then), exit 0.
"""
import argparse
import socket
import ssl
import sys
from urllib.parse import urlsplit


def read_response(f):
    line = f.readline()
    if not line:
        return None, True
    status = int(line.split()[1])
    headers = {}
    while True:
        h = f.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        k, _, v = h.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    if n:
        f.read(n)
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int(f.readline().split(b";")[0], 16)
            f.read(size + 2)
            if size == 0:
                break
    return status, headers.get("connection", "").lower() == "close"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--body", required=True)
    ap.add_argument("--header", action="append", default=[])
    ap.add_argument("--cafile")
    ap.add_argument("--count", type=int, default=2)
    ap.add_argument("--each", action="store_true")
    a = ap.parse_args()
    u = urlsplit(a.url)
    body = a.body.encode()
    head = "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n" % (u.path, u.hostname)
    for h in a.header:
        k, _, v = h.partition(":")
        head += "%s: %s\r\n" % (k.strip(), v.strip())
    req = (head + "Content-Length: %d\r\n\r\n" % len(body)).encode() + body
    ctx = ssl.create_default_context(cafile=a.cafile)
    with socket.create_connection((u.hostname, u.port or 443), timeout=120) as raw:
        with ctx.wrap_socket(raw, server_hostname=u.hostname) as s:
            if a.each:
                for _ in range(a.count):
                    s.sendall(req)
            else:
                s.sendall(req * a.count)
            f = s.makefile("rb")
            for _ in range(a.count):
                status, closed = read_response(f)
                if status is None:
                    break
                print("status=%d" % status)
                if closed:
                    break
    return 0


if __name__ == "__main__":
    sys.exit(main())
