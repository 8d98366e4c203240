'use strict';
// The addon runs on Node's own loop and brings no libuv or OpenSSL of its own.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { Worker } = require('node:worker_threads');
const { _native } = require('..');

const addon = path.join(__dirname, '..', 'build', 'Release', 'kupstream.node');
const node = fs.realpathSync(process.execPath);

test('the loop is the one Node runs (napi_get_uv_event_loop), on the main thread and in a worker', async () => {
  const rt = _native._runtime();
  assert.equal(rt.loop, rt.stateLoop);
  assert.equal(rt.loop, rt.defaultLoop, 'the main thread runs uv_default_loop() of node');
  const worker = new Worker(`
    const { parentPort } = require('node:worker_threads');
    parentPort.postMessage(require(${JSON.stringify(path.join(__dirname, '..'))})._native._runtime());`,
  { eval: true });
  const w = await new Promise((resolve, reject) => worker.once('message', resolve).once('error', reject));
  assert.equal(w.loop, w.stateLoop);
  assert.notEqual(w.loop, rt.loop, "a worker's environment has its own loop");
});

// The object that gives node its `symbol`: node itself when it exports it (NodeSource's build), else
// the shared library node links (Debian's node links libuv1 and libssl3).
function nodeProvider(rt, symbol, lib) {
  if (new RegExp(` T ${symbol}\\b`).test(execFileSync('nm', ['-D', '--defined-only', node], { encoding: 'utf8', maxBuffer: 256 << 20 }))) {
    return rt.napiProvider; // dladdr's name for the main program
  }
  const line = execFileSync('ldd', [node], { encoding: 'utf8' }).split('\n').find((l) => l.includes(lib));
  return fs.realpathSync(line.split('=>')[1].trim().split(' ')[0]);
}

test('uv_* and SSL_* resolve from what node itself uses, same versions as process.versions', () => {
  const rt = _native._runtime();
  assert.equal(rt.uvProvider, nodeProvider(rt, 'uv_run', 'libuv'));
  assert.equal(rt.sslProvider, nodeProvider(rt, 'SSL_CTX_new', 'libssl'));
  assert.equal(rt.uvVersion, process.versions.uv);
  assert.ok(rt.sslVersion.includes(process.versions.openssl.split('+')[0]), `${rt.sslVersion} vs ${process.versions.openssl}`);
});

test('the addon defines no uv_*, SSL_*, EVP_* or llhttp_* symbol and links no libuv/libssl/libcrypto', () => {
  const defined = execFileSync('nm', ['-D', '--defined-only', addon], { encoding: 'utf8' });
  const bad = defined.split('\n').filter((l) => / (uv_|SSL_|EVP_|CRYPTO_|OPENSSL_|llhttp_)/.test(l));
  assert.deepEqual(bad, []);
  const undef = execFileSync('nm', ['-D', '--undefined-only', addon], { encoding: 'utf8' });
  for (const sym of ['uv_run', 'uv_tcp_init', 'SSL_CTX_new', 'SSL_read']) {
    assert.match(undef, new RegExp(`\\b${sym}\\b`), `${sym} comes from the host process`);
  }
  assert.doesNotMatch(undef, /\bllhttp_/, "the addon's llhttp is its own (hidden), never node's");
  const ldd = execFileSync('ldd', [addon], { encoding: 'utf8' });
  assert.doesNotMatch(ldd, /libuv|libssl|libcrypto|android/);
});

test('a worker that exits with a Cluster, an Upstream and a request still open tears down cleanly', async () => {
  const os = require('node:os');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kup-node-worker-'));
  try {
    const kc = path.join(dir, 'kubeconfig.yaml');
    fs.writeFileSync(kc, 'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:1", ' +
      'insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: t}}]\n' +
      'contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n');
    const worker = new Worker(`
      const { Cluster, Upstream } = require(${JSON.stringify(path.join(__dirname, '..'))});
      const c = new Cluster({ name: 'c', kubeconfig: ${JSON.stringify(kc)} });
      const u = new Upstream({ name: 'web', services: [{ cluster: 'c', namespace: 'default', service: 'web', port: 80 }] },
                             { clusters: [c] });
      u.request({ path: '/' }).catch(() => {});
      setTimeout(() => process.exit(7), 300);`, { eval: true });
    const code = await new Promise((resolve, reject) => worker.once('exit', resolve).once('error', reject));
    assert.equal(code, 7);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
