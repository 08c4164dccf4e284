#!/usr/bin/python3
"""tests/tls/clients/py_httpx_async.py - httpx.AsyncClient on asyncio
(SSLObject over memory BIOs: SSL_*_ex return WANT_READ). Reads iter_raw(),
the bytes as sent. Flags: rawcli.py."""
import asyncio
import sys

import httpx

import rawcli


async def one(a, sink, state):
    if "c" not in state:
        state["c"] = httpx.AsyncClient(verify=rawcli.ssl_context(a.cafile), timeout=60)
        state["aclose"] = state["c"].aclose
    async with state["c"].stream(a.method, a.url, content=a.body, headers=a.headers) as r:
        async for data in r.aiter_raw():
            sink(data)
        return r.status_code


if __name__ == "__main__":
    sys.exit(asyncio.run(rawcli.run_async(one, (httpx.TransportError, OSError))))
