'use strict';
// Open objects keep the process alive; close() lets it exit; garbage collection of unclosed
// objects destroys them safely (later loop turn) and leaves no handle behind.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const path = require('node:path');
const { Env } = require('./support/env');

let env, sim;
before(async () => {
  env = new Env();
  sim = await env.cluster('tke-a');
  await sim.addService('web');
});
after(async () => env && env.close());

function child(mode) {
  return new Promise((resolve) => {
    const p = execFile(process.execPath, ['--expose-gc', path.join(__dirname, 'fixtures', 'lifetime.js'), mode,
      sim.kubeconfig], { timeout: 20000 }, (err, stdout, stderr) => resolve({ err, stdout, stderr, pid: p.pid }));
  });
}

test('open objects keep the process alive, and after close() it exits by itself', async () => {
  const r = await child('close');
  assert.equal(r.err, null, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.ok(out.closedAfter >= 690, 'the unref\'d timer fired: the objects kept the loop alive');
  assert.equal(out.runtime.liveUpstreams, 0);
  assert.equal(out.runtime.liveClusters, 0);
  assert.equal(out.runtime.holds, 0);
});

test('GC of unclosed (unref\'d) objects destroys them on a later turn and the process exits', async () => {
  const r = await child('gc');
  assert.equal(r.err, null, `exit: ${r.err && r.err.message} ${r.stderr}`);
  const out = JSON.parse(r.stdout);
  assert.equal(out.before.liveUpstreams, 1);
  assert.equal(out.after.liveUpstreams, 0);
  assert.equal(out.after.liveClusters, 0);
  assert.equal(out.after.liveRequests, 0);
  assert.ok(out.after.deferredDestroys >= 2, 'destruction was deferred, not done inside the collector');
});
