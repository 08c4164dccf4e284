// tests/tls/clients/node_fetch.js - global fetch (undici) under Debian's
// node 18 (tests/tls/node18). The flags and exit codes of rawcli.py:
//   --url --body (@FILE or text) --method --header K:V (repeatable)
//   --cafile (must equal NODE_EXTRA_CA_CERTS: node reads the CA at start)
//   --out F (every body received, in order) --repeat N
// fetch always decodes gzip, deflate and br (undici offers them and gives
// no way to turn decoding off): --out holds the decoded body for those.
'use strict';
const fs = require('fs');

function parse(argv) {
  const a = { headers: [], repeat: 1 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i], v = argv[++i];
    if (v === undefined) throw new Error('missing value for ' + k);
    if (k === '--url') a.url = v;
    else if (k === '--body') a.body = v.startsWith('@') ? fs.readFileSync(v.slice(1)) : Buffer.from(v);
    else if (k === '--method') a.method = v;
    else if (k === '--header') {
      const n = v.indexOf(':');
      if (n < 0) throw new Error('--header wants K:V');
      a.headers.push([v.slice(0, n).trim(), v.slice(n + 1).trim()]);
    } else if (k === '--cafile') a.cafile = v;
    else if (k === '--out') a.out = v;
    else if (k === '--repeat') a.repeat = Number(v);
    else throw new Error('unknown flag ' + k);
  }
  if (!a.url) throw new Error('--url is required');
  a.method = a.method || (a.body !== undefined ? 'POST' : 'GET');
  if (a.body !== undefined && !a.headers.some(([k]) => k.toLowerCase() === 'content-type'))
    a.headers.push(['Content-Type', 'application/json']);
  return a;
}

async function main() {
  const a = parse(process.argv.slice(2));
  if (a.cafile && process.env.NODE_EXTRA_CA_CERTS !== a.cafile)
    console.error('node_fetch: set NODE_EXTRA_CA_CERTS=' + a.cafile + ' (node reads it at start)');
  const out = a.out ? fs.openSync(a.out, 'w') : null;
  const statuses = [];
  let err = null;
  try {
    for (let i = 0; i < a.repeat; i++) {
      const r = await fetch(a.url, { method: a.method, headers: a.headers, body: a.body });
      const reader = r.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (out !== null) fs.writeSync(out, value);
      }
      statuses.push(r.status);
    }
  } catch (e) {
    err = e;
  }
  if (out !== null) fs.closeSync(out);
  for (const s of statuses) console.log('status=' + s);
  if (err) {
    const c = err.cause ? ' (' + (err.cause.code || err.cause.message) + ')' : '';
    console.log('error=' + err.name + ': ' + err.message + c);
    return 4;
  }
  return statuses.every((s) => s >= 200 && s < 300) ? 0 : 3;
}
main().then((rc) => { process.exitCode = rc; },
            (e) => { console.error('node_fetch: ' + e.message); process.exitCode = 2; });
