'use strict';
// Bad kubeconfigs and bad upstream configs throw clear Errors (no servers needed: creating a
// Cluster does not connect).
const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Cluster, Upstream } = require('..');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kup-node-err-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function kubeconfig(server) {
  const file = path.join(dir, `kc-${Math.random().toString(36).slice(2)}.yaml`);
  fs.writeFileSync(file, `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "${server}", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: ctx, context: {cluster: c, user: u}}]
current-context: ctx
`);
  return file;
}

const isKupError = (code, ...parts) => (e) => {
  assert.ok(e instanceof Error, 'an Error');
  assert.equal(e.code, code, e.message);
  for (const p of parts) assert.ok(e.message.includes(p), `message "${e.message}" names ${p}`);
  return true;
};

test('a missing kubeconfig file names the cluster and the file', () => {
  const missing = path.join(dir, 'nope.yaml');
  assert.throws(() => new Cluster({ name: 'tke-x', kubeconfig: missing }), isKupError('KUP_IO_ERROR', 'tke-x', missing));
});

test('a kubeconfig without the context, or a bad server URL, is refused with the reason', () => {
  const file = kubeconfig('https://127.0.0.1:6443');
  assert.throws(() => new Cluster({ name: 'tke-x', kubeconfig: file, context: 'other' }),
    isKupError('KUP_INVALID_CONFIG', 'tke-x', 'other'));
  assert.throws(() => new Cluster({ name: 'tke-y', kubeconfig: kubeconfig('ftp://x') }),
    isKupError('KUP_INVALID_CONFIG', 'tke-y', 'ftp://x'));
  assert.throws(() => new Cluster({ kubeconfig: file }), isKupError('KUP_INVALID_ARGUMENT', 'name'));
  assert.throws(() => new Cluster({ name: 'ic', inCluster: true, serviceAccountDir: dir }),
    (e) => e.code === 'KUP_INVALID_CONFIG' || e.code === 'KUP_IO_ERROR');
});

test('bad upstream configs name the field; unknown clusters name the upstream and cluster', () => {
  const cluster = new Cluster({ name: 'tke-a', kubeconfig: kubeconfig('https://127.0.0.1:1') });
  try {
    const base = { name: 'web', services: [{ cluster: 'tke-a', namespace: 'default', service: 'web', port: 80 }] };
    assert.throws(() => new Upstream({ ...base, services: [{ ...base.services[0], namespace: 'Default' }] },
      { clusters: [cluster] }), isKupError('KUP_INVALID_CONFIG', 'upstream "web": services[0].namespace', 'Default'));
    assert.throws(() => new Upstream({ ...base, retrys: 3 }, { clusters: [cluster] }),
      isKupError('KUP_INVALID_CONFIG', 'upstream "web": retrys'));
    assert.throws(() => new Upstream({ ...base, services: [{ ...base.services[0], cluster: 'tke-b' }] },
      { clusters: [cluster] }), isKupError('KUP_INVALID_CONFIG', 'web', 'tke-b'));
    assert.throws(() => new Upstream('name: web\nservices:\n  - {cluster: tke-a, namespace: default, service: web, port: 0}\n',
      { clusters: [cluster] }), isKupError('KUP_INVALID_CONFIG', 'upstream config:3', 'port'));
    assert.throws(() => new Upstream(42, { clusters: [cluster] }), isKupError('KUP_INVALID_ARGUMENT'));
    assert.throws(() => new Upstream(base, { clusters: { 'tke-a': {} } }), isKupError('KUP_INVALID_ARGUMENT', 'tke-a'));
    const ok = new Upstream(base, { clusters: [cluster] });
    assert.equal(ok.name, 'web');
    ok.close();
    cluster.close();
    assert.throws(() => new Upstream(base, { clusters: [cluster] }), isKupError('KUP_INVALID_ARGUMENT', 'closed'));
  } finally {
    cluster.close();
  }
});
