#!/usr/bin/env python3
"""tests/tls/clients/py_openai.py - the openai SDK from PyPI (pinned in
scripts/deps.sh): chat completions, sync or async, whole or streamed
(streams ask for include_usage). Flags and output: sdkcli.py."""
import asyncio
import sys

import openai

import sdkcli


def kwargs(a, stream):
    k = {"model": a.model, "messages": [{"role": "user", "content": a.prompt}]}
    if stream:
        k.update(stream=True, stream_options={"include_usage": True})
    return k


def usage_of(u):
    return (u.prompt_tokens, u.completion_tokens) if u else None


def sync_calls(a, results):
    c = openai.OpenAI(base_url=a.base_url, default_headers=a.headers)
    for _ in range(a.repeat):
        if a.mode == "json":
            r = c.chat.completions.create(**kwargs(a, False))
            results.append((r.choices[0].message.content or "", usage_of(r.usage)))
            continue
        if a.mode == "stream-break":
            text = []
            with c.chat.completions.create(**dict(kwargs(a, False), stream=True)) as s:
                for ch in s:
                    if ch.choices and ch.choices[0].delta.content:
                        text.append(ch.choices[0].delta.content)
                    if ch.choices and ch.choices[0].finish_reason:
                        break
            results.append(("".join(text), None))
            continue
        text, usage = [], None
        for ch in c.chat.completions.create(**kwargs(a, True)):
            if ch.choices and ch.choices[0].delta.content:
                text.append(ch.choices[0].delta.content)
            usage = usage_of(ch.usage) or usage
        results.append(("".join(text), usage))


async def async_calls(a, results):
    c = openai.AsyncOpenAI(base_url=a.base_url, default_headers=a.headers)
    for _ in range(a.repeat):
        if a.mode == "async":
            r = await c.chat.completions.create(**kwargs(a, False))
            results.append((r.choices[0].message.content or "", usage_of(r.usage)))
            continue
        text, usage = [], None
        async for ch in await c.chat.completions.create(**kwargs(a, True)):
            if ch.choices and ch.choices[0].delta.content:
                text.append(ch.choices[0].delta.content)
            usage = usage_of(ch.usage) or usage
        results.append(("".join(text), usage))


def main():
    a = sdkcli.parse()
    counter = sdkcli.count_retries("openai")
    results, err = [], None
    try:
        if a.mode.startswith("async"):
            asyncio.run(async_calls(a, results))
        else:
            sync_calls(a, results)
    except openai.OpenAIError as e:
        err = e
    return sdkcli.report(openai, a, results, err, counter)


if __name__ == "__main__":
    sys.exit(main())
