#!/usr/bin/env python3
"""tests/tls/clients/py_anthropic.py - the anthropic SDK from PyPI (pinned
in scripts/deps.sh): messages.create, sync or async, whole or streamed
(stream=True, the raw events). Flags and output: sdkcli.py."""
import asyncio
import sys

import anthropic

import sdkcli


def kwargs(a, stream):
    k = {"model": a.model, "max_tokens": a.max_tokens,
         "messages": [{"role": "user", "content": a.prompt}]}
    if stream:
        k["stream"] = True
    return k


def text_of(msg):
    return "".join(b.text for b in msg.content if b.type == "text")


class Acc:
    """Usage from the raw stream events: input from message_start,
    output from the (cumulative) message_delta."""

    def __init__(self):
        self.text, self.inp, self.out = [], None, None

    def feed(self, ev):
        if ev.type == "message_start":
            self.inp, self.out = ev.message.usage.input_tokens, ev.message.usage.output_tokens
        elif ev.type == "content_block_delta" and ev.delta.type == "text_delta":
            self.text.append(ev.delta.text)
        elif ev.type == "message_delta":
            self.out = ev.usage.output_tokens

    def result(self):
        return "".join(self.text), (self.inp, self.out) if self.inp is not None else None


def sync_calls(a, results):
    c = anthropic.Anthropic(base_url=a.base_url, default_headers=a.headers)
    for _ in range(a.repeat):
        if a.mode == "json":
            m = c.messages.create(**kwargs(a, False))
            results.append((text_of(m), (m.usage.input_tokens, m.usage.output_tokens)))
            continue
        acc = Acc()
        for ev in c.messages.create(**kwargs(a, True)):
            acc.feed(ev)
        results.append(acc.result())


async def async_calls(a, results):
    c = anthropic.AsyncAnthropic(base_url=a.base_url, default_headers=a.headers)
    for _ in range(a.repeat):
        if a.mode == "async":
            m = await c.messages.create(**kwargs(a, False))
            results.append((text_of(m), (m.usage.input_tokens, m.usage.output_tokens)))
            continue
        acc = Acc()
        async for ev in await c.messages.create(**kwargs(a, True)):
            acc.feed(ev)
        results.append(acc.result())


def main():
    a = sdkcli.parse()
    counter = sdkcli.count_retries("anthropic")
    results, err = [], None
    try:
        if a.mode.startswith("async"):
            asyncio.run(async_calls(a, results))
        else:
            sync_calls(a, results)
    except anthropic.AnthropicError as e:
        err = e
    return sdkcli.report(anthropic, a, results, err, counter)


if __name__ == "__main__":
    sys.exit(main())
