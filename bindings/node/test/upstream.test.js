'use strict';
// Cluster and Upstream against kubesim and real HTTP Pods (pods.py).
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Cluster, Upstream } = require('..');
const { Env, sleep, waitEvent } = require('./support/env');

const PORT = 8080;
let env, sim, pods, cluster;

before(async () => {
  env = new Env();
  [sim, pods] = await Promise.all([env.cluster('tke-a'), env.pods()]);
  await sim.addService('httpbin');
  await sim.addService('other');
  for (let i = 1; i <= 3; i++) {
    await pods.add(`httpbin-v1-${i}`, env.address(i), PORT, 'v1', 'tke-a');
    await sim.setPod('httpbin', `httpbin-v1-${i}`, env.address(i));
  }
  for (let i = 4; i <= 5; i++) {
    await pods.add(`other-${i}`, env.address(i), PORT, 'v1', 'tke-a');
    await sim.setPod('other', `other-${i}`, env.address(i));
  }
  cluster = new Cluster({ name: 'tke-a', kubeconfig: sim.kubeconfig });
});

after(async () => {
  if (cluster) cluster.close();
  if (env) await env.close();
});

function httpbin(extra = {}) {
  return { name: 'httpbin', services: [{ cluster: 'tke-a', namespace: 'default', service: 'httpbin', port: 'http' }],
    ...extra };
}

test('first sync: a change event lists the ready Pods and the state is synced', async () => {
  const up = new Upstream(httpbin(), { clusters: [cluster] });
  try {
    const states = [];
    up.on('state', (s) => states.push(s));
    const snap = await waitEvent(up, 'change', (s) => s.endpoints.length === 3);
    assert.equal(snap.upstream, 'httpbin');
    assert.equal(snap.ready, true);
    assert.deepEqual(snap.endpoints.map((e) => e.pod).sort(), ['httpbin-v1-1', 'httpbin-v1-2', 'httpbin-v1-3']);
    for (const e of snap.endpoints) {
      assert.equal(e.port, PORT);
      assert.equal(e.service, 'tke-a/default/httpbin:http');
    }
    assert.equal(snap.services[0].phase, 'synced');
    assert.ok(states.some((s) => s.phase === 'synced' && s.service === 'tke-a/default/httpbin:http'));
    assert.equal(up.ready, true);
  } finally {
    up.close();
  }
});

test('pick() spreads by weight and names the Pod and service', async () => {
  const up = new Upstream({
    name: 'mixed',
    services: [
      { cluster: 'tke-a', namespace: 'default', service: 'httpbin', port: 'http', weight: 3 },
      { cluster: 'tke-a', namespace: 'default', service: 'other', port: 8000, weight: 1 },
    ],
  }, { clusters: { 'tke-a': cluster } });
  try {
    await waitEvent(up, 'change', (s) => s.endpoints.length === 5);
    const counts = {};
    const services = {};
    // Per-Pod weights 3,3,3,1,1: one whole cycle is 11 picks.
    const n = 11 * 1000;
    for (let i = 0; i < n; i++) {
      const p = up.pick();
      counts[p.pod] = (counts[p.pod] || 0) + 1;
      services[p.pod] = p.service;
      assert.equal(p.port, PORT);
    }
    for (let i = 1; i <= 3; i++) assert.equal(counts[`httpbin-v1-${i}`], 3000);
    for (let i = 4; i <= 5; i++) assert.equal(counts[`other-${i}`], 1000);
    assert.equal(services['httpbin-v1-1'], 'tke-a/default/httpbin:http');
    assert.equal(services['other-4'], 'tke-a/default/other:8000');
  } finally {
    up.close();
  }
});

test('request() GET and POST go through kupstream to a Pod; stream() streams the body', async () => {
  const up = new Upstream(httpbin({ host: 'httpbin.example.com' }), { clusters: [cluster] });
  try {
    await waitEvent(up, 'change', (s) => s.endpoints.length === 3);
    const res = await up.request({ method: 'GET', path: '/get?x=1', headers: { 'X-Test': 'yes' } });
    assert.equal(res.status, 200);
    const body = res.json();
    assert.match(body.pod, /^httpbin-v1-[123]$/);
    assert.equal(res.headers['x-pod'], body.pod);
    assert.equal(body.host, 'httpbin.example.com');
    assert.match(res.pod, new RegExp(`^${env.net.replace(/\./g, '\\.')}\\.[123]:${PORT}$`));

    const payload = Buffer.from('x'.repeat(100000) + 'end');
    const echo = await up.request({ method: 'POST', path: '/echo', body: payload,
      headers: [['Content-Type', 'application/octet-stream']] });
    assert.equal(echo.status, 200);
    assert.ok(echo.body.equals(payload));

    const streamed = await up.stream({ path: '/bytes/300000' });
    assert.equal(streamed.status, 200);
    let total = 0;
    for await (const chunk of streamed.body) total += chunk.length;
    assert.equal(total, 300000);

    const st = up.stats();
    assert.ok(st.requests >= 3);
    assert.equal(st.failures, 0);
    assert.equal(st.pods.length, 3);
    assert.match(up.metrics(), /kupstream_requests_total\{upstream="httpbin"[^}]*\} \d+/);
  } finally {
    up.close();
  }
});

test('stats().locality: zone-aware routing keeps requests in the host\'s zone', async () => {
  // Pods 1 and 2 (zone-a) and 3 (zone-b) of Service "zoned" are the httpbin Pods' servers.
  await sim.addService('zoned');
  for (let i = 1; i <= 3; i++)
    await sim.setPod('zoned', `zoned-${i}`, env.address(i), { zone: i <= 2 ? 'zone-a' : 'zone-b' });
  const up = new Upstream({ name: 'zoned',
    services: [{ cluster: 'tke-a', namespace: 'default', service: 'zoned', port: 'http' }],
    locality: { zone: 'zone-a', min_endpoints: 1 } }, { clusters: [cluster] });
  try {
    // The change lists the Pods that get traffic: zone-b's Pod is in stats() with weight 0.
    const snap = await waitEvent(up, 'change', () => up.stats().pods.length === 3);
    assert.equal(snap.endpoints.length, 2);
    for (let i = 0; i < 6; i++) {
      const res = await up.request({ path: '/get' });
      assert.equal(res.status, 200);
      assert.match(res.headers['x-pod'], /^httpbin-v1-[12]$/); // the zone-a servers only
    }
    const { locality, pods: podStats } = up.stats();
    assert.equal(locality.enabled, true);
    assert.equal(locality.zone, 'zone-a');
    assert.equal(locality.mode, 'local');
    assert.equal(locality.localShare, 1);
    assert.equal(locality.localRequests, 6);
    assert.equal(locality.crossZoneRequests, 0);
    assert.deepEqual(locality.zones.map((z) => [z.zone, z.endpoints, z.healthy]), [['zone-a', 2, 2], ['zone-b', 1, 1]]);
    assert.equal(locality.zones[0].routed, 1);
    assert.deepEqual(podStats.map((p) => p.zone).sort(), ['zone-a', 'zone-a', 'zone-b']);

    const plain = new Upstream(httpbin(), { clusters: [cluster] });
    try {
      assert.equal(plain.stats().locality.enabled, false);
      assert.equal(plain.stats().locality.mode, 'off');
    } finally {
      plain.close();
    }
  } finally {
    up.close();
  }
});

test('HTTPS Pods: the handshake and certificate check run on node\'s own OpenSSL', async () => {
  // kubesim's server certificate (SAN DNS:localhost) serves as the Pod's; its CA is trusted.
  const tls = { cert: sim.info.cert_file, key: sim.info.key_file };
  await sim.addService('secure', 'default', 8000, 8443);
  await pods.add('secure-1', env.address(30), 8443, 'v1', 'tke-a', tls);
  await sim.setPod('secure', 'secure-1', env.address(30));
  const base = { services: [{ cluster: 'tke-a', namespace: 'default', service: 'secure', port: 'http' }],
    backend: 'HTTPS' };
  const good = new Upstream({ name: 'secure', ...base, tls: { ca_file: sim.info.ca_file, server_name: 'localhost' } },
    { clusters: [cluster] });
  const bad = new Upstream({ name: 'untrusted', ...base, retries: { max: 0 } }, { clusters: [cluster] });
  const badSynced = waitEvent(bad, 'change', (s) => s.endpoints.length === 1);
  try {
    await waitEvent(good, 'change', (s) => s.endpoints.length === 1);
    const res = await good.request({ path: '/tls' });
    assert.equal(res.status, 200);
    assert.equal(res.json().pod, 'secure-1');
    await badSynced;
    await assert.rejects(bad.request({ path: '/' }), (e) => e.code === 'KUP_TLS_VERIFY_FAILED' &&
      e.message.includes('untrusted'));
  } finally {
    good.close();
    bad.close();
  }
});

test('request() errors carry a code and name the upstream', async () => {
  const up = new Upstream({ name: 'empty', services: [{ cluster: 'tke-a', namespace: 'default',
    service: 'missing', port: 80 }] }, { clusters: [cluster] });
  try {
    await waitEvent(up, 'state', (s) => s.phase === 'not_found');
    await assert.rejects(up.request({ path: '/' }), (e) => e instanceof Error && e.code === 'KUP_NO_ENDPOINT' &&
      e.message.includes('empty'));
    assert.throws(() => up.pick(), (e) => e.code === 'KUP_NO_ENDPOINT' && e.message.includes('upstream "empty"'));
    await assert.rejects(up.request({ path: '/bad\r\npath' }), (e) => e.code === 'KUP_INVALID_ARGUMENT');
  } finally {
    up.close();
  }
});

test('close() inside an event handler: no more events, pending requests are canceled', async () => {
  await pods.control('POST', '/pods/httpbin-v1-1/mode', { fail: 'hang' });
  await pods.control('POST', '/pods/httpbin-v1-2/mode', { fail: 'hang' });
  await pods.control('POST', '/pods/httpbin-v1-3/mode', { fail: 'hang' });
  try {
    const up = new Upstream(httpbin(), { clusters: [cluster] });
    let events = 0;
    let pending = null;
    const closed = new Promise((resolve) => {
      up.on('change', () => {
        events++;
        pending = up.request({ path: '/hang' });
        up.close();
        assert.equal(up.closed, true);
        resolve();
      });
    });
    up.on('state', () => {
      if (up.closed) events++;
    });
    await closed;
    await assert.rejects(pending, (e) => e.code === 'KUP_OPERATION_CANCELED' && e.message.includes('httpbin'));
    await sim.setPod('httpbin', 'httpbin-v1-1', env.address(1), { ready: false });
    await sleep(500);
    assert.equal(events, 1);
    assert.throws(() => up.pick(), (e) => e.code === 'KUP_OPERATION_CANCELED');
    up.close(); // idempotent
  } finally {
    for (let i = 1; i <= 3; i++) await pods.control('POST', `/pods/httpbin-v1-${i}/mode`, { fail: null });
    await sim.setPod('httpbin', 'httpbin-v1-1', env.address(1));
  }
});

test('rolling update: change events follow it and no request fails', async () => {
  const up = new Upstream(httpbin(), { clusters: [cluster] });
  const seen = [];
  up.on('change', (s) => seen.push(s.endpoints.map((e) => e.pod).sort().join(',')));
  try {
    await waitEvent(up, 'change', (s) => s.endpoints.length === 3);
    let stop = false;
    let ok = 0;
    const failures = [];
    const versions = {};
    const worker = async () => {
      while (!stop) {
        try {
          const r = await up.request({ path: '/' });
          if (r.status !== 200) failures.push(`status ${r.status}`);
          else {
            ok++;
            const v = r.headers['x-version'];
            versions[v] = (versions[v] || 0) + 1;
          }
        } catch (e) {
          failures.push(`${e.code}: ${e.message}`);
        }
      }
    };
    const workers = [worker(), worker(), worker(), worker()];
    for (let i = 1; i <= 3; i++) {
      const old = `httpbin-v1-${i}`;
      const neu = `httpbin-v2-${i}`;
      const addr = env.address(10 + i);
      await pods.add(neu, addr, PORT, 'v2', 'tke-a');
      await sim.setPod('httpbin', neu, addr, { ready: false });
      await sleep(200);
      await sim.setPod('httpbin', neu, addr, { ready: true });
      await sleep(200);
      await sim.setPod('httpbin', old, env.address(i), { ready: false, serving: true, terminating: true });
      await sleep(300);
      await sim.dropPod('httpbin', old);
      await sleep(200);
      await pods.remove(old);
    }
    await sleep(500);
    stop = true;
    await Promise.all(workers);
    assert.deepEqual(failures, []);
    assert.ok(ok > 50, `only ${ok} requests`);
    assert.ok(versions.v1 > 0 && versions.v2 > 0);
    assert.equal(seen.at(-1), 'httpbin-v2-1,httpbin-v2-2,httpbin-v2-3');
    assert.ok(seen.length >= 6, `${seen.length} change events`);
    const last = await up.request({ path: '/' });
    assert.equal(last.headers['x-version'], 'v2');
  } finally {
    up.close();
  }
});
