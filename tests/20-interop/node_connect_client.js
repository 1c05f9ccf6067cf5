#!/usr/bin/node
// HBONE client built on Node's http2 + tls modules (an independent HTTP/2 stack).
//
// Role: mTLS 1.3 with ALPN h2 to an HBONE server, HTTP/2 CONNECT with :authority ip:port
// (Node forbids :scheme/:path on CONNECT, which is what HBONE wants), send a payload,
// read it back. Output keywords match h2_connect_client.py so suite.sh can grep the same
// way: TLS, PEER, TLS_ERROR, SAN_MISMATCH, CONNECT_ERROR, STATUS, HEADER, ECHO_OK,
// ECHO_MISMATCH, STREAMS, GOAWAY, TIMEOUT.
// Exit codes: 0 ok, 1 non-200, 2 TLS error, 3 SAN mismatch, 4 TCP error, 5 h2 error,
// 6 echo mismatch, 8 usage.
'use strict';

const http2 = require('http2');
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');

function usage(msg) {
  if (msg) console.error(msg);
  console.error('usage: node_connect_client.js --cert-dir DIR [--host 127.0.0.1] [--port 15008]\n' +
    '  [--expect spiffe://...] [--authority ip:port] [--payload STR | --size N]\n' +
    '  [--streams N] [--std-headers] [--timeout SEC]');
  process.exit(8);
}

const a = {host: '127.0.0.1', port: 15008, authority: '127.0.0.1:9000', payload: 'hello-hbone',
  size: 0, streams: 1, timeout: 10, stdHeaders: false};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const k = argv[i];
  const v = () => { if (i + 1 >= argv.length) usage('missing value for ' + k); return argv[++i]; };
  switch (k) {
    case '--host': a.host = v(); break;
    case '--port': a.port = parseInt(v(), 10); break;
    case '--cert-dir': a.certDir = v(); break;
    case '--cert': a.cert = v(); break;
    case '--key': a.key = v(); break;
    case '--ca': a.ca = v(); break;
    case '--expect': a.expect = v(); break;
    case '--authority': a.authority = v(); break;
    case '--payload': a.payload = v(); break;
    case '--size': a.size = parseInt(v(), 10); break;
    case '--streams': a.streams = parseInt(v(), 10); break;
    case '--timeout': a.timeout = parseFloat(v()); break;
    case '--std-headers': a.stdHeaders = true; break;
    case '-h': case '--help': usage(); break;
    default: usage('unknown flag ' + k);
  }
}
if (a.certDir) {
  a.cert = a.cert || path.join(a.certDir, 'chain.pem');
  a.key = a.key || path.join(a.certDir, 'key.pem');
  a.ca = a.ca || path.join(a.certDir, 'root.pem');
}
if (!a.cert || !a.key || !a.ca) usage('need --cert-dir or --cert/--key/--ca');

function out(line) { process.stdout.write(line + '\n'); }
let finished = false;
function finish(code, line) {
  if (finished) return;
  finished = true;
  if (line) out(line);
  if (session) { try { session.destroy(); } catch (e) { /* already gone */ } }
  // Let stdout drain before exiting.
  process.stdout.write('', () => process.exit(code));
}

function uriSans(cert) {
  return (cert.subjectaltname || '').split(/,\s*/).filter(s => s.startsWith('URI:')).map(s => s.slice(4));
}

const timer = setTimeout(() => finish(5, 'TIMEOUT'), a.timeout * 1000);
timer.unref();

let sanFailed = false;
const session = http2.connect(`https://${a.host}:${a.port}`, {
  ca: fs.readFileSync(a.ca),
  cert: fs.readFileSync(a.cert),
  key: fs.readFileSync(a.key),
  minVersion: 'TLSv1.3',
  ALPNProtocols: ['h2'],
  rejectUnauthorized: true,
  // HBONE verifies the URI SAN, never a hostname.
  checkServerIdentity: (host, cert) => {
    const uris = uriSans(cert);
    for (const u of uris) out('PEER ' + u);
    if (a.expect && !uris.includes(a.expect)) {
      sanFailed = true;
      return new Error(`SAN_MISMATCH got=${uris.join(',') || '-'} expected=${a.expect}`);
    }
    return undefined;
  },
  settings: {initialWindowSize: 4 * 1024 * 1024},
});

let sawRemoteSettings = false;
session.on('remoteSettings', () => { sawRemoteSettings = true; });
session.on('error', (e) => {
  if (sanFailed) return finish(3, e.message);
  const code = e.code || '';
  if (/^ERR_SSL|^ERR_TLS|CERT|ALERT/i.test(code) || /alert|ssl|certificate/i.test(e.message)) {
    return finish(2, 'TLS_ERROR ' + (e.reason || e.code || e.message).replace(/\s+/g, '_'));
  }
  if (/ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ETIMEDOUT/.test(code) && !sawRemoteSettings) {
    if (code === 'ECONNRESET' && tlsDone) return finish(2, 'TLS_ERROR closed_before_h2_settings');
    return finish(4, 'CONNECT_ERROR ' + code);
  }
  finish(5, 'H2_ERROR ' + (code || e.message));
});
session.on('goaway', (errorCode, lastStreamID) => {
  out(`GOAWAY code=${errorCode} last_stream=${lastStreamID}`);
});
session.on('close', () => {
  if (!finished && !sawRemoteSettings) finish(2, 'TLS_ERROR closed_before_h2_settings');
});

let tlsDone = false;
session.on('connect', (s, socket) => {
  tlsDone = true;
  out(`TLS ${socket.getProtocol()} ALPN ${socket.alpnProtocol || 'none'} CIPHER ${socket.getCipher().standardName}`);
  startStreams();
});

function requestHeaders() {
  const h = {':method': 'CONNECT', ':authority': a.authority};
  if (a.stdHeaders) {
    h['baggage'] = 'k8s.cluster.name=Kubernetes,k8s.namespace.name=interop,k8s.deployment.name=nodeclient,' +
      'service.name=nodeclient,service.version=v1';
    h['forwarded'] = 'for="127.0.0.1:40001"';
    h['traceparent'] = `00-${crypto.randomBytes(16).toString('hex')}-${crypto.randomBytes(8).toString('hex')}-00`;
  }
  return h;
}

function startStreams() {
  const results = [];
  let pending = a.streams;
  const done = (i, r) => {
    results[i] = r;
    if (--pending > 0) return;
    if (a.streams === 1) {
      const r0 = results[0];
      if (r0.status === undefined) {
        // In TLS 1.3 a rejected client certificate surfaces after the handshake, on the
        // first stream, as an alert.
        if (r0.error && /ERR_SSL|ALERT/i.test(r0.error)) {
          return finish(2, 'TLS_ERROR ' + r0.error.replace(/^STREAM_ERROR (ERR_SSL_)?/, ''));
        }
        return finish(5, r0.error || 'NO_RESPONSE');
      }
      out('STATUS ' + r0.status);
      for (const [k, v] of Object.entries(r0.headers || {})) if (!k.startsWith(':')) out(`HEADER ${k}: ${v}`);
      if (r0.status !== 200) return finish(1, 'BODY_BYTES ' + r0.got.length);
      if (r0.ok) return finish(0, 'ECHO_OK bytes=' + r0.sent.length);
      return finish(6, `ECHO_MISMATCH sent=${r0.sent.length} got=${r0.got.length}`);
    }
    const ok = results.filter(r => r.ok).length;
    out(`STREAMS ok=${ok}/${a.streams}`);
    finish(ok === a.streams ? 0 : 6);
  };
  for (let i = 0; i < a.streams; i++) {
    const data = a.size ? crypto.randomBytes(a.size) : Buffer.from(a.payload + (i ? '-' + i : ''));
    const r = {sent: data, got: Buffer.alloc(0), chunks: []};
    let req;
    try {
      req = session.request(requestHeaders(), {endStream: false});
    } catch (e) {
      done(i, Object.assign(r, {error: 'REQUEST_ERROR ' + e.code}));
      continue;
    }
    let closed = false;
    const complete = () => {
      if (closed) return;
      closed = true;
      r.got = Buffer.concat(r.chunks);
      r.ok = r.status === 200 && r.got.length >= data.length && r.got.subarray(0, data.length).equals(data);
      done(i, r);
    };
    req.on('response', (headers) => {
      r.status = headers[':status'];
      r.headers = headers;
      if (r.status === 200) req.write(data);
    });
    let received = 0;
    req.on('data', (chunk) => {
      r.chunks.push(chunk);
      received += chunk.length;
      if (received >= data.length) { req.end(); complete(); }
    });
    req.on('end', complete);
    req.on('error', (e) => { r.error = 'STREAM_ERROR ' + (e.code || e.message); complete(); });
    req.on('close', () => {
      if (req.rstCode && req.rstCode !== 0 && r.status === undefined) out(`RST_STREAM code=${req.rstCode}`);
      complete();
    });
  }
}
