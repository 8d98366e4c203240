'use strict';
// Reference for the Node.js benchmark: a plain node:http reverse proxy over a static list of Pods
// (round robin, keep-alive Agent), no kupstream. Usage: node plain_proxy.js PORT ADDR:PORT,...
const http = require('node:http');

const [port, list] = process.argv.slice(2);
const pods = list.split(',').map((p) => {
  const i = p.lastIndexOf(':');
  return { host: p.slice(0, i), port: Number(p.slice(i + 1)) };
});
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
let next = 0;

http.createServer((req, res) => {
  const body = [];
  req.on('data', (c) => body.push(c)).on('end', () => {
    const pod = pods[next++ % pods.length];
    http.request({ host: pod.host, port: pod.port, method: req.method, path: req.url, headers: req.headers, agent },
      (r) => {
        res.writeHead(r.statusCode, r.rawHeaders);
        r.pipe(res);
      }).on('error', (e) => res.writeHead(502).end(`${e.message}\n`)).end(Buffer.concat(body));
  });
}).listen(Number(port), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
