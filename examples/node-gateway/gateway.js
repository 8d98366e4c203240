'use strict';
// A minimal API gateway on node:http: every request goes to one kupstream Upstream, straight to
// a Pod. Usage: node gateway.js KUBECONFIG UPSTREAM.json|.yaml [PORT] [MODE]
//   MODE request (default): kupstream's pools and retries;
//   MODE pick: pick() a Pod and send with Node's http.request and a keep-alive Agent.
const http = require('node:http');
const fs = require('node:fs');
const { Cluster, Upstream } = require('../../bindings/node');

const [kubeconfig, configFile, port = '8080', mode = 'request'] = process.argv.slice(2);
const text = fs.readFileSync(configFile, 'utf8');
const cluster = new Cluster({ name: process.env.KUP_CLUSTER || 'default', kubeconfig });
const upstream = new Upstream(text, { clusters: [cluster] });
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

const server = http.createServer((req, res) => {
  const body = [];
  req.on('data', (c) => body.push(c)).on('end', () => {
    const fail = (e) => res.writeHead(e.code === 'KUP_NO_ENDPOINT' ? 503 : 502).end(`${e.code}: ${e.message}\n`);
    if (mode === 'pick') {
      let pod;
      try { pod = upstream.pick(); } catch (e) { return fail(e); }
      const out = http.request({ host: pod.address, port: pod.port, method: req.method, path: req.url,
        headers: req.headers, agent }, (r) => { res.writeHead(r.statusCode, r.rawHeaders); r.pipe(res); });
      return out.on('error', (e) => fail({ code: 'KUP_CONNECT_FAILED', message: e.message })).end(Buffer.concat(body));
    }
    upstream.request({ method: req.method, path: req.url, headers: req.rawHeaders, body: Buffer.concat(body),
      clientAddress: req.socket.remoteAddress, clientHost: req.headers.host })
      .then((r) => res.writeHead(r.status, r.rawHeaders).end(r.body), fail);
  });
});
upstream.once('change', () => server.listen(Number(port), '127.0.0.1', () => console.log(`listening on ${port}`)));
process.on('SIGTERM', () => { server.close(); upstream.close(); cluster.close(); agent.destroy(); });
