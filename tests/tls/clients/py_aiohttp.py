#!/usr/bin/python3
"""tests/tls/clients/py_aiohttp.py - aiohttp.ClientSession (asyncio, memory
BIOs, one pooled connection across --repeat). aiohttp decompresses by
default; the session here is made with auto_decompress=False, so --out
holds the bytes as sent. Flags: rawcli.py."""
import asyncio
import sys

import aiohttp

import rawcli


async def one(a, sink, state):
    if "s" not in state:
        conn = aiohttp.TCPConnector(ssl=rawcli.ssl_context(a.cafile))
        state["s"] = aiohttp.ClientSession(connector=conn, auto_decompress=False)
        state["aclose"] = state["s"].close
    async with state["s"].request(a.method, a.url, data=a.body, headers=a.headers,
                                  timeout=aiohttp.ClientTimeout(total=60)) as r:
        async for data in r.content.iter_any():
            sink(data)
        return r.status


if __name__ == "__main__":
    sys.exit(asyncio.run(rawcli.run_async(one, (aiohttp.ClientError, OSError))))
