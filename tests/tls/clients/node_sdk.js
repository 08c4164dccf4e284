// tests/tls/clients/node_sdk.js - the npm SDKs (pinned in scripts/deps.sh,
// in .deps/node_modules) under Debian's node 18: `openai` (chat
// completions) or `@anthropic-ai/sdk` (messages), as users run them:
// default retries, globalThis.fetch, the key from OPENAI_API_KEY /
// ANTHROPIC_API_KEY, the CA from NODE_EXTRA_CA_CERTS.
//   node18 node_sdk.js openai|anthropic --base-url URL [--mode json|stream|
//     async|async-stream] [--model M] [--prompt T] [--max-tokens N]
//     [--header K:V]... [--out F] [--repeat N]
// In JavaScript every call is async: json and async are the same call,
// stream and async-stream too. Output and exit codes as sdkcli.py; the
// retry count is the number of fetch calls past one per SDK call (fetch is
// wrapped before the client is made, which is when the SDK takes it).
'use strict';
const fs = require('fs');

function parse(argv) {
  const a = { sdk: argv[0], headers: {}, repeat: 1, mode: 'json', prompt: 'hello', maxTokens: 64 };
  for (let i = 1; i < argv.length; i++) {
    const k = argv[i], v = argv[++i];
    if (v === undefined) throw new Error('missing value for ' + k);
    if (k === '--base-url') a.baseURL = v;
    else if (k === '--mode') a.mode = v;
    else if (k === '--model') a.model = v;
    else if (k === '--prompt') a.prompt = v;
    else if (k === '--max-tokens') a.maxTokens = Number(v);
    else if (k === '--header') {
      const n = v.indexOf(':');
      if (n < 0) throw new Error('--header wants K:V');
      a.headers[v.slice(0, n).trim()] = v.slice(n + 1).trim();
    } else if (k === '--out') a.out = v;
    else if (k === '--repeat') a.repeat = Number(v);
    else throw new Error('unknown flag ' + k);
  }
  if (!['openai', 'anthropic'].includes(a.sdk)) throw new Error('first argument: openai or anthropic');
  if (!['json', 'stream', 'async', 'async-stream'].includes(a.mode)) throw new Error('bad --mode');
  if (!a.baseURL) throw new Error('--base-url is required');
  a.stream = a.mode.endsWith('stream');
  return a;
}

async function openaiCall(c, a) {
  const req = { model: a.model || 'gpt-4o-mini', messages: [{ role: 'user', content: a.prompt }] };
  if (!a.stream) {
    const r = await c.chat.completions.create(req);
    return [r.choices[0].message.content || '', r.usage ? [r.usage.prompt_tokens, r.usage.completion_tokens] : null];
  }
  const s = await c.chat.completions.create({ ...req, stream: true, stream_options: { include_usage: true } });
  let text = '', usage = null;
  for await (const ch of s) {
    if (ch.choices && ch.choices.length && ch.choices[0].delta.content) text += ch.choices[0].delta.content;
    if (ch.usage) usage = [ch.usage.prompt_tokens, ch.usage.completion_tokens];
  }
  return [text, usage];
}

async function anthropicCall(c, a) {
  const req = { model: a.model || 'claude-haiku-4-5', max_tokens: a.maxTokens,
                messages: [{ role: 'user', content: a.prompt }] };
  if (!a.stream) {
    const m = await c.messages.create(req);
    return [m.content.filter((b) => b.type === 'text').map((b) => b.text).join(''),
            [m.usage.input_tokens, m.usage.output_tokens]];
  }
  const s = await c.messages.create({ ...req, stream: true });
  let text = '', inp = null, out = null;
  for await (const ev of s) {
    if (ev.type === 'message_start') { inp = ev.message.usage.input_tokens; out = ev.message.usage.output_tokens; }
    else if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') text += ev.delta.text;
    else if (ev.type === 'message_delta') out = ev.usage.output_tokens;
  }
  return [text, inp === null ? null : [inp, out]];
}

async function main() {
  const a = parse(process.argv.slice(2));
  let fetches = 0;
  const realFetch = globalThis.fetch;
  globalThis.fetch = (...args) => { fetches++; return realFetch(...args); };
  const mod = require(a.sdk === 'openai' ? 'openai' : '@anthropic-ai/sdk');
  const Client = mod.default || mod;
  const c = new Client({ baseURL: a.baseURL, defaultHeaders: a.headers });
  const call = a.sdk === 'openai' ? openaiCall : anthropicCall;
  const results = [];
  let err = null;
  try {
    for (let i = 0; i < a.repeat; i++) results.push(await call(c, a));
  } catch (e) {
    err = e;
  }
  if (a.out) fs.writeFileSync(a.out, results.map(([t]) => t).join(''));
  for (const [, u] of results) console.log('ok usage=' + (u ? u.join('/') : '-'));
  const calls = results.length + (err ? 1 : 0);
  console.log('retries=' + (fetches - calls));
  if (!err) return 0;
  if (err instanceof mod.APIError && err.status !== undefined) {
    console.log('api_error=' + err.status + ': ' + err.message);
    return 3;
  }
  const cause = err.cause ? ' (' + (err.cause.code || err.cause.message || err.cause.name) + ')' : '';
  console.log('error=' + (err.constructor && err.constructor.name) + ': ' + err.message + cause);
  return 4;
}
main().then((rc) => { process.exitCode = rc; },
            (e) => { console.error('node_sdk: ' + (e.stack || e)); process.exitCode = 2; });
