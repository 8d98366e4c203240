'use strict';
// kupstream for Node.js: the JS face of the addon (src/). See README.md and index.d.ts.
const { EventEmitter } = require('node:events');
const { Readable } = require('node:stream');
const path = require('node:path');

const native = require(path.join(__dirname, 'build', 'Release', 'kupstream.node'));

// The native classes are EventEmitters: 'change', 'state' and 'log' are emitted from C++ on
// Node's own loop.
Object.setPrototypeOf(native.Cluster.prototype, EventEmitter.prototype);
Object.setPrototypeOf(native.Upstream.prototype, EventEmitter.prototype);

/** One Kubernetes API server. */
class Cluster extends native.Cluster {
  constructor(options) {
    super(options);
    EventEmitter.call(this);
  }
}

function configText(config) {
  if (typeof config === 'string') return [config, true];
  if (config === null || typeof config !== 'object') {
    const err = new TypeError('new Upstream(config): config must be an object or a YAML/JSON string');
    err.code = 'KUP_INVALID_ARGUMENT';
    throw err;
  }
  return [JSON.stringify(config), false];
}

// {clusters: [Cluster...]} (keyed by cluster.name), {clusters: {name: Cluster}} or a Map.
function clusterList(clusters) {
  const names = [];
  const list = [];
  if (clusters instanceof Cluster) clusters = [clusters];
  if (Array.isArray(clusters)) {
    for (const c of clusters) {
      names.push(c && c.name);
      list.push(c);
    }
  } else if (clusters instanceof Map) {
    for (const [name, c] of clusters) {
      names.push(name);
      list.push(c);
    }
  } else if (clusters && typeof clusters === 'object') {
    for (const name of Object.keys(clusters)) {
      names.push(name);
      list.push(clusters[name]);
    }
  }
  return [names, list];
}

// Headers as given (object, Map, array of pairs, or a flat rawHeaders list) → [name, value, ...].
function flattenHeaders(headers) {
  if (!headers) return [];
  const flat = [];
  const add = (name, value) => {
    if (value === undefined) return;
    if (Array.isArray(value)) for (const v of value) flat.push(String(name), String(v));
    else flat.push(String(name), String(value));
  };
  if (Array.isArray(headers)) {
    if (headers.length > 0 && Array.isArray(headers[0])) for (const [n, v] of headers) add(n, v);
    else for (let i = 0; i + 1 < headers.length; i += 2) add(headers[i], headers[i + 1]);
  } else if (headers instanceof Map || typeof headers[Symbol.iterator] === 'function') {
    for (const [n, v] of headers) add(n, v);
  } else {
    for (const n of Object.keys(headers)) add(n, headers[n]);
  }
  return flat;
}

// rawHeaders → the object node:http gives (lower-case names, repeated values joined with ", ",
// set-cookie as an array).
function headersObject(raw) {
  const out = Object.create(null);
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    const value = raw[i + 1];
    if (name === 'set-cookie') (out[name] ||= []).push(value);
    else out[name] = name in out ? `${out[name]}, ${value}` : value;
  }
  return out;
}

/** The response of Upstream#request(); `headers` is built from rawHeaders on first use. */
class UpstreamResponse {
  constructor(status, rawHeaders, body, pod, attempts) {
    this.status = status;
    this.rawHeaders = rawHeaders;
    this.body = body;
    this.pod = pod;
    this.attempts = attempts;
    this._headers = null;
  }
  get headers() {
    return (this._headers ||= headersObject(this.rawHeaders));
  }
  text() {
    return this.body.toString('utf8');
  }
  json() {
    return JSON.parse(this.text());
  }
}

function requestArgs(req) {
  const r = req || {};
  let body = r.body;
  if (body !== undefined && body !== null && typeof body !== 'string' && !Buffer.isBuffer(body)) {
    if (ArrayBuffer.isView(body)) body = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    else {
      const err = new TypeError('request(): body must be a string, Buffer or Uint8Array');
      err.code = 'KUP_INVALID_ARGUMENT';
      throw err;
    }
  }
  return [r.method || 'GET', r.path || '/', flattenHeaders(r.headers), body, r.clientAddress, r.clientHost,
    r.clientScheme, r.hashKey];
}

/** A named set of Kubernetes Service ports; requests go straight to their Pods. */
class Upstream extends native.Upstream {
  constructor(config, options = {}) {
    const [text, lineNumbers] = configText(config);
    const [names, clusters] = clusterList(options && options.clusters);
    // Problems are reported as `upstream "NAME": path: problem` (or `upstream config:LINE: ...` for text).
    const source = !lineNumbers && typeof config.name === 'string' && config.name ? `upstream "${config.name}"`
      : 'upstream config';
    super(text, lineNumbers, names, clusters, source);
    EventEmitter.call(this);
  }

  /** Sends a request through kupstream's pools and retries; resolves with the whole response. */
  request(req) {
    return new Promise((resolve, reject) => {
      this._request(...requestArgs(req), false, (err, status, rawHeaders, body, pod, attempts) => {
        if (err) reject(err);
        else resolve(new UpstreamResponse(status, rawHeaders, body, pod, attempts));
      });
    });
  }

  /** Like request(), but resolves at the response head with `body` as a Readable stream. */
  stream(req) {
    return new Promise((resolve, reject) => {
      let body = null;
      let done = false;
      let id = 0;
      id = this._request(...requestArgs(req), true, (kind, a, b, c, d) => {
        if (kind === 0) {
          body = new Readable({
            read: () => {
              if (!done) this._control(id, 1);
            },
            destroy: (err, cb) => {
              if (!done) {
                done = true;
                this._control(id, 2);
              }
              cb(err);
            },
          });
          const res = new UpstreamResponse(a, b, body, c, d);
          resolve(res);
          return;
        }
        // Pause here, inside the call: Node runs nextTicks and microtasks (a reader's read())
        // before control returns to the addon.
        if (kind === 1) {
          if (!body.push(a) && !done) this._control(id, 0);
          return;
        }
        done = true;
        if (a) {
          if (body) body.destroy(a);
          else reject(a);
        } else if (body) {
          body.push(null);
        }
      });
    });
  }
}

module.exports = { Cluster, Upstream, UpstreamResponse, errorCodes: native.errorCodes(), _native: native };
