#!/usr/bin/python3
"""tests/tls/clients/py_async_load.py - N concurrent streams from one
asyncio process (aiohttp, Debian's python3): the async load of the TLS
transport (every stream an SSLObject over memory BIOs, all in flight at
once).

  --url URL --body B (@FILE or text) --header K:V... --cafile F
  --streams N        concurrent calls (each its own connection)

Prints "ok=N failed=M" and one "status=S count=C" line per status seen
(connection errors as status=error). Exit 0 when all were 2xx, else 3.
"""
import argparse
import asyncio
import collections
import ssl
import sys

import aiohttp


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--body", required=True)
    ap.add_argument("--header", action="append", default=[])
    ap.add_argument("--cafile")
    ap.add_argument("--streams", type=int, default=200)
    a = ap.parse_args()
    body = open(a.body[1:], "rb").read() if a.body.startswith("@") else a.body.encode()
    headers = {"Content-Type": "application/json"}
    for h in a.header:
        k, _, v = h.partition(":")
        headers[k.strip()] = v.strip()
    ctx = ssl.create_default_context(cafile=a.cafile)
    seen = collections.Counter()
    conn = aiohttp.TCPConnector(ssl=ctx, limit=0)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=300)) as s:
        async def one():
            try:
                async with s.post(a.url, data=body, headers=headers) as r:
                    async for _ in r.content.iter_any():
                        pass
                    seen[str(r.status)] += 1
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
                seen["error"] += 1
        await asyncio.gather(*(one() for _ in range(a.streams)))
    ok = sum(c for st, c in seen.items() if st.startswith("2"))
    print("ok=%d failed=%d" % (ok, a.streams - ok))
    for st, c in sorted(seen.items()):
        print("status=%s count=%d" % (st, c))
    return 0 if ok == a.streams else 3


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
