#!/usr/bin/python3
"""tests/tls/clients/py_prior_h2.py - speaks HTTP/2 with prior knowledge
over TLS (no ALPN: the h2 filter has nothing to strip), as a client that
bypasses HTTP/1.1 would: the connection preface and an empty SETTINGS
frame, then reads what the server answers. The mock speaks HTTP/1.1, so
the answer is a 400 or a close; what matters is whether the bytes left.
usage: py_prior_h2.py --url https://HOST:PORT/ --cafile CA
Prints sent=N (bytes written) and exits 0, or error=... and exits 4."""
import socket
import ssl
import sys
from urllib.parse import urlsplit

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def main(argv):
    args = dict(zip(argv[0::2], argv[1::2]))
    u = urlsplit(args["--url"])
    ctx = ssl.create_default_context(cafile=args["--cafile"])
    try:
        with socket.create_connection((u.hostname, u.port or 443), timeout=30) as raw:
            with ctx.wrap_socket(raw, server_hostname=u.hostname) as s:
                s.sendall(PREFACE)
                print("sent=%d" % len(PREFACE))
                s.recv(4096)
    except OSError as e:
        print("error=%s: %s" % (type(e).__name__, e))
        return 4
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
