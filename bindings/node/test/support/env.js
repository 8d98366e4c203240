'use strict';
// Test environment: kubesim clusters (tests/kubesim/kubesim.py) and real HTTP Pods
// (tests/support/pods.py) from this repository, started as child processes and stopped by PID.
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const http = require('node:http');
const https = require('node:https');

const ROOT = path.resolve(__dirname, '..', '..', '..', '..');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFile(file, proc, what) {
  const deadline = Date.now() + 30000;
  for (;;) {
    if (fs.existsSync(file)) {
      try {
        return JSON.parse(fs.readFileSync(file, 'utf8'));
      } catch {
        // written atomically, but be patient with a partial read
      }
    }
    if (proc.exitCode !== null) throw new Error(`${what} exited with ${proc.exitCode}`);
    if (Date.now() > deadline) throw new Error(`${what} did not start in 30 s`);
    await sleep(25);
  }
}

function call(mod, options, body) {
  return new Promise((resolve, reject) => {
    const req = mod.request({ ...options, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        if (res.statusCode >= 300) reject(new Error(`${options.method} ${options.path}: ${res.statusCode} ${text}`));
        else resolve(text ? JSON.parse(text) : null);
      });
    });
    req.on('error', reject);
    if (body !== undefined) req.end(JSON.stringify(body));
    else req.end();
  });
}

function endpointSlice(ns, name, svc, endpoints, port) {
  return {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { name, namespace: ns, labels: { 'kubernetes.io/service-name': svc } },
    addressType: 'IPv4',
    endpoints: endpoints.map((e) => {
      const conditions = { ready: e.ready ?? true };
      if ('serving' in e) conditions.serving = e.serving;
      if ('terminating' in e) conditions.terminating = e.terminating;
      const entry = { addresses: [e.address], conditions, targetRef: { kind: 'Pod', namespace: ns, name: e.pod } };
      if (e.zone) entry.zone = e.zone;
      return entry;
    }),
    ports: [{ name: 'http', port, protocol: 'TCP' }],
  };
}

/** One kubesim process: the cluster `name`, with Services whose Pods listen on `targetPort`. */
class SimCluster {
  constructor(name, info, proc) {
    this.name = name;
    this.info = info;
    this.proc = proc;
    this.services = new Map(); // service → Map(pod → endpoint)
  }
  get kubeconfig() {
    return this.info.users.admin.kubeconfig;
  }
  admin(method, p, body) {
    const u = new URL(this.info.admin_url + p);
    return call(https, {
      method, host: u.hostname, port: u.port, path: u.pathname,
      ca: fs.readFileSync(this.info.ca_file),
      headers: { Authorization: `Bearer ${this.info.admin_token}`, 'Content-Type': 'application/json' },
    }, body);
  }
  async addService(svc, ns = 'default', port = 8000, targetPort = 8080) {
    this.services.set(svc, { ns, targetPort, pods: new Map() });
    await this.admin('POST', '/objects', {
      op: 'apply',
      object: {
        apiVersion: 'v1', kind: 'Service', metadata: { name: svc, namespace: ns },
        spec: { type: 'ClusterIP', selector: { app: svc },
          ports: [{ name: 'http', port, targetPort, protocol: 'TCP' }] },
      },
    });
    await this.publish(svc);
  }
  async publish(svc) {
    const s = this.services.get(svc);
    await this.admin('POST', '/objects', {
      op: 'apply', object: endpointSlice(s.ns, `${svc}-abc`, svc, [...s.pods.values()], s.targetPort),
    });
  }
  /** Adds or changes a Pod's endpoint: {ready, serving, terminating, zone}. */
  async setPod(svc, pod, address, cond = {}) {
    this.services.get(svc).pods.set(pod, { pod, address, ...cond });
    await this.publish(svc);
  }
  async dropPod(svc, pod) {
    this.services.get(svc).pods.delete(pod);
    await this.publish(svc);
  }
}

/** pods.py: real HTTP/1.1 servers on loopback addresses. */
class Pods {
  constructor(info, proc) {
    this.info = info;
    this.proc = proc;
  }
  control(method, p, body) {
    return call(http, { method, host: '127.0.0.1', port: this.info.control_port, path: p,
      headers: { 'Content-Type': 'application/json' } }, body);
  }
  add(name, address, port, version = 'v1', cluster = '', tls = null) {
    return this.control('POST', '/pods', { name, address, port, version, cluster, ...(tls || {}) });
  }
  remove(name) {
    return this.control('DELETE', `/pods/${name}`);
  }
  list() {
    return this.control('GET', '/pods');
  }
}

class Env {
  constructor() {
    this.procs = [];
    this.dirs = [];
    // A random loopback /24 per run, so that parallel runs do not share Pod addresses.
    const r = (a, b) => a + Math.floor(Math.random() * (b - a));
    this.net = `127.${r(20, 250)}.${r(1, 250)}`;
  }
  address(i) {
    return `${this.net}.${i}`;
  }
  tmpdir() {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'kup-node-'));
    this.dirs.push(d);
    return d;
  }
  start(args, what) {
    const proc = spawn('python3', args, { stdio: ['ignore', 'ignore', 'inherit'] });
    this.procs.push(proc);
    return proc;
  }
  async cluster(name) {
    const dir = this.tmpdir();
    const proc = this.start([path.join(ROOT, 'tests/kubesim/kubesim.py'), '--port', '0', '--state-dir', dir,
      '--cluster-name', name, '--exit-with-parent'], 'kubesim');
    const info = await waitFile(path.join(dir, 'kubesim.json'), proc, `kubesim ${name}`);
    if (info.pid !== proc.pid) throw new Error('kubesim ready file belongs to another process');
    return new SimCluster(name, info, proc);
  }
  async pods() {
    const ready = path.join(this.tmpdir(), 'pods.json');
    const proc = this.start([path.join(ROOT, 'tests/support/pods.py'), '--control-port', '0', '--ready-file', ready],
      'pods.py');
    return new Pods(await waitFile(ready, proc, 'pods.py'), proc);
  }
  /** Stops every process it started, by PID (SIGTERM, then SIGKILL after 5 s). */
  async close() {
    await Promise.all(this.procs.map(async (p) => {
      if (p.exitCode !== null || p.signalCode !== null) return;
      const exited = new Promise((r) => p.once('exit', r));
      process.kill(p.pid, 'SIGTERM');
      const t = setTimeout(() => p.exitCode === null && process.kill(p.pid, 'SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }));
    for (const d of this.dirs) fs.rmSync(d, { recursive: true, force: true });
  }
}

/** Resolves with the first event `name` on `emitter` for which `pred` holds. */
function waitEvent(emitter, name, pred = () => true, ms = 20000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      emitter.off(name, on);
      reject(new Error(`no '${name}' event in ${ms} ms`));
    }, ms);
    function on(v) {
      if (!pred(v)) return;
      clearTimeout(t);
      emitter.off(name, on);
      resolve(v);
    }
    emitter.on(name, on);
  });
}

module.exports = { Env, ROOT, sleep, waitEvent };
