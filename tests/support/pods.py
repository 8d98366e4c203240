#!/usr/bin/env python3
"""pods.py: many simulated Pods in one process (Python 3 standard library only).

Each Pod is a real HTTP/1.1 server (keep-alive; HTTPS when given a certificate and key) on its
own loopback address and port, e.g. 127.0.1.5:8080. It answers any method on any path with a
small JSON body naming its pod, version and cluster (also as the headers X-Pod, X-Version,
X-Cluster) and echoing the Host and X-Forwarded-* headers it received. Special paths:
  /healthz          "ok" (or the failure mode)
  /echo             the request body back
  /bytes/N          N bytes of 'x' (Content-Length)
  /stream/N         N chunks of 1 KiB, chunked, 10 ms apart
  /status/NNN       answers NNN

Control API (HTTP on 127.0.0.1, JSON bodies):
  GET    /pods                       list with per-Pod request counts
  POST   /pods                       add {name, address, port, version, cluster, cert?, key?}
  DELETE /pods/NAME                  stop listening, close idle connections, finish in-flight ones
  POST   /pods/NAME/mode             {fail: null|MODE, n: N, delay_ms: N, health_fail: bool}
  POST   /pods/NAME/cert             {cert, key}: new connections get this certificate; idle ones
                                     close now, busy ones after their current response
  POST   /reset-counts               zero every Pod's counters

Failure modes (each request that meets one counts in the Pod's "faulted"):
  "503"         answers 503
  "close"       reads the request, closes (FIN) without an answer
  "hang"        reads the request, never answers (until the mode changes; at most 120 s)
  "reset"       reads the request, resets the connection (TCP RST) without an answer
  "reset_body"  sends the head (Content-Length 4096) and 512 bytes, waits 150 ms, resets
  "garbage"     answers bytes that are not HTTP, then closes
  "dribble"     sends the response head one byte every n ms (slow loris), then the body
  "close_each"  answers normally (no "Connection: close"), then closes: not counted as faulted
  "close_after" the same after n responses on a connection

Run: pods.py [--control-port 0] [--ready-file FILE]; the ready file receives
{"pid": .., "control_port": ..}. From Python: PodsProcess (below) starts it, drives it and
stops it by its PID.
"""

import argparse
import http.client
import json
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Pod:
    def __init__(self, name, address, port, version="v1", cluster="", cert=None, key=None):
        self.name, self.address, self.port = name, address, port
        self.version, self.cluster = version, cluster
        self.tls = bool(cert and key)
        self.fail = None          # None or a failure mode (see the module docstring)
        self.n = 0                # parameter of "dribble" (ms per byte) and "close_after" (responses)
        self.faulted = 0
        self.cert_generation = 0
        self.delay_ms = 0
        self.health_fail = False
        self.stopping = False
        self.requests = 0
        self.lock = threading.Lock()
        self.conns = set()        # live handler objects
        self.ctx = None
        if self.tls:
            self.set_cert(cert, key)
        self.server = PodServer((address, port), PodHandler, self)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def set_cert(self, cert, key):
        """New connections present this certificate. As a server reloading its certificate does,
        idle keep-alive connections close now and busy ones after their current response, so the
        next request meets the new certificate (not a connection kept from before)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        with self.lock:
            self.ctx = ctx
            self.cert_generation += 1
            conns = list(self.conns)
        for h in conns:
            if not h.busy:
                h.kill()

    def info(self):
        return {"name": self.name, "address": self.address, "port": self.port, "version": self.version,
                "cluster": self.cluster, "tls": self.tls, "fail": self.fail, "delay_ms": self.delay_ms,
                "requests": self.requests, "faulted": self.faulted, "n": self.n, "connections": len(self.conns), "stopping": self.stopping}

    def stop(self):
        """Stop listening; idle keep-alive connections close now, busy ones after their response."""
        self.stopping = True
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            conns = list(self.conns)
        for h in conns:
            if not h.busy:
                h.kill()


class PodServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512

    def __init__(self, addr, handler, pod):
        self.pod = pod
        super().__init__(addr, handler)

    def handle_error(self, request, client_address):
        pass  # clients that go away are normal here

    def get_request(self):
        sock, addr = self.socket.accept()
        ctx = self.pod.ctx
        if ctx is not None:  # the handshake runs on the handler's thread, at its first read
            sock = ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr


class PodHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pods.py"
    sys_version = ""
    disable_nagle_algorithm = True
    wbufsize = 65536  # head and body leave in one write; handle_one_request flushes

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        self.busy = False
        self.answered = 0  # responses on this connection
        self.cert_generation = self.server.pod.cert_generation  # closes after a response once it changes
        self.pod = self.server.pod
        with self.pod.lock:
            self.pod.conns.add(self)

    def finish(self):
        with self.pod.lock:
            self.pod.conns.discard(self)
        try:
            super().finish()
        except OSError:
            pass

    def kill(self):
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def reset(self):
        """Closes with SO_LINGER 0: the peer sees a TCP RST, not a FIN."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.wfile.close()
            self.rfile.close()
            self.connection.close()  # the last reference: the descriptor closes now
        except OSError:
            pass

    def handle_one_request(self):
        # busy from the first byte of a request to the end of its response
        try:
            self.raw_requestline = self.rfile.readline(65537)
        except (OSError, ssl.SSLError):
            self.close_connection = True
            return
        if not self.raw_requestline:
            self.close_connection = True
            return
        self.busy = True
        try:
            if not self.parse_request():
                return
            self.serve()
            try:
                self.wfile.flush()
            except OSError:
                self.close_connection = True
        finally:
            self.busy = False
            pod = self.pod
            if pod.stopping:
                self.close_connection = True
            if pod.fail == "close_each" or (pod.fail == "close_after" and self.answered >= pod.n):
                self.close_connection = True  # without saying so in the response
            if self.cert_generation != pod.cert_generation:
                self.close_connection = True

    def read_body(self):
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            out = b""
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline(16)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def send(self, status, body, ctype="application/json", extra=()):
        pod = self.pod
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Pod", pod.name)
        self.send_header("X-Version", pod.version)
        self.send_header("X-Cluster", pod.cluster)
        for k, v in extra:
            self.send_header(k, v)
        if pod.stopping:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.answered += 1

    def serve(self):
        pod = self.pod
        body = self.read_body()
        with pod.lock:
            pod.requests += 1
        if pod.delay_ms:
            time.sleep(pod.delay_ms / 1000.0)
        path = self.path.split("?", 1)[0]
        if pod.fail in ("hang", "close", "reset", "reset_body", "garbage", "dribble", "503"):
            with pod.lock:
                pod.faulted += 1
        if pod.fail == "reset":
            self.reset()
            return
        if pod.fail == "reset_body":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4096\r\nX-Pod: " + pod.name.encode() +
                             b"\r\n\r\n" + b"x" * 512)
            self.wfile.flush()
            time.sleep(0.15)  # the client has the head and the first bytes: the reset cuts the body
            self.reset()
            return
        if pod.fail == "garbage":
            self.wfile.write(b"SSH-2.0-OpenSSH_9.2\r\n\x01\x02 not http at all\r\n\r\n")
            self.wfile.flush()
            self.close_connection = True
            return
        if pod.fail == "dribble":
            body = (pod.name + "\n").encode()
            head = (f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nX-Pod: {pod.name}\r\n\r\n").encode()
            try:
                for i in range(len(head)):
                    self.wfile.write(head[i:i + 1])
                    self.wfile.flush()
                    time.sleep(max(pod.n, 1) / 1000.0)
                self.wfile.write(body)
            except OSError:
                self.close_connection = True
            return
        if pod.fail == "hang":
            deadline = time.monotonic() + 120
            while pod.fail == "hang" and not pod.stopping and time.monotonic() < deadline:
                time.sleep(0.02)
            self.close_connection = True
            self.kill()
            return
        if pod.fail == "close":
            self.close_connection = True
            self.kill()
            return
        if pod.fail == "503" or (path == "/healthz" and pod.health_fail):
            self.send(503, f"{pod.name} failing\n".encode(), "text/plain")
            return
        if path == "/healthz":
            self.send(200, b"ok\n", "text/plain")
            return
        if path == "/echo":
            self.send(200, body, "application/octet-stream")
            return
        if path.startswith("/bytes/"):
            self.send(200, b"x" * int(path[7:]), "application/octet-stream")
            return
        if path.startswith("/status/"):
            self.send(int(path[8:]), f"status {path[8:]} from {pod.name}\n".encode(), "text/plain")
            return
        if path.startswith("/stream/"):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("X-Pod", pod.name)
            self.end_headers()
            for _ in range(int(path[8:])):
                self.wfile.write(b"400\r\n" + b"s" * 1024 + b"\r\n")
                self.wfile.flush()
                time.sleep(0.01)
            self.wfile.write(b"0\r\n\r\n")
            return
        doc = {"pod": pod.name, "version": pod.version, "cluster": pod.cluster, "method": self.command,
               "path": self.path, "host": self.headers.get("Host", ""),
               "x_forwarded_for": self.headers.get("X-Forwarded-For", ""),
               "x_forwarded_proto": self.headers.get("X-Forwarded-Proto", ""),
               "x_forwarded_host": self.headers.get("X-Forwarded-Host", ""),
               "body_bytes": len(body), "tls": pod.tls}
        self.send(200, (json.dumps(doc) + "\n").encode())

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = lambda self: None  # noqa: E731


class Registry:
    def __init__(self):
        self.pods = {}
        self.lock = threading.Lock()

    def add(self, spec):
        with self.lock:
            if spec["name"] in self.pods:
                raise ValueError(f"pod {spec['name']} exists")
        pod = Pod(spec["name"], spec.get("address", "127.0.0.1"), int(spec.get("port", 0)),
                  spec.get("version", "v1"), spec.get("cluster", ""), spec.get("cert"), spec.get("key"))
        with self.lock:
            self.pods[pod.name] = pod
        return pod.info()

    def remove(self, name):
        with self.lock:
            pod = self.pods.pop(name)
        pod.stop()
        return pod.info()


class ControlHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, obj):
        data = (json.dumps(obj) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n)) if n else {}

    def dispatch(self):
        reg = self.server.registry
        parts = [p for p in self.path.split("?")[0].split("/") if p]
        try:
            if parts == ["pods"] and self.command == "GET":
                with reg.lock:
                    return self.reply(200, {"pods": [p.info() for p in reg.pods.values()]})
            if parts == ["pods"] and self.command == "POST":
                return self.reply(201, reg.add(self.body()))
            if len(parts) == 2 and parts[0] == "pods" and self.command == "DELETE":
                return self.reply(200, reg.remove(parts[1]))
            if len(parts) == 3 and parts[0] == "pods" and parts[2] == "mode" and self.command == "POST":
                b = self.body()
                with reg.lock:
                    pod = reg.pods[parts[1]]
                if "n" in b:
                    pod.n = int(b["n"])
                if "fail" in b:
                    pod.fail = b["fail"]
                if "delay_ms" in b:
                    pod.delay_ms = int(b["delay_ms"])
                if "health_fail" in b:
                    pod.health_fail = bool(b["health_fail"])
                return self.reply(200, pod.info())
            if len(parts) == 3 and parts[0] == "pods" and parts[2] == "cert" and self.command == "POST":
                b = self.body()
                with reg.lock:
                    pod = reg.pods[parts[1]]
                pod.set_cert(b["cert"], b["key"])
                return self.reply(200, pod.info())
            if parts == ["reset-counts"] and self.command == "POST":
                with reg.lock:
                    for p in reg.pods.values():
                        p.requests = 0
                        p.faulted = 0
                return self.reply(200, {})
            return self.reply(404, {"error": f"no such control path {self.path}"})
        except KeyError as e:
            return self.reply(404, {"error": f"no pod {e}"})
        except (ValueError, OSError) as e:
            return self.reply(400, {"error": str(e)})

    do_GET = do_POST = do_DELETE = dispatch


def main(argv=None):
    ap = argparse.ArgumentParser(description="simulated Pods (see the module docstring)")
    ap.add_argument("--control-port", type=int, default=0)
    ap.add_argument("--ready-file")
    args = ap.parse_args(argv)
    ctl = ThreadingHTTPServer(("127.0.0.1", args.control_port), ControlHandler)
    ctl.daemon_threads = True
    ctl.registry = Registry()
    stop = threading.Event()

    def on_signal(*_):
        stop.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threading.Thread(target=ctl.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    info = {"pid": os.getpid(), "control_port": ctl.server_address[1]}
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(info, f)
        os.replace(tmp, args.ready_file)
    else:
        print(json.dumps(info), flush=True)
    while not stop.wait(0.2):
        pass
    ctl.shutdown()
    for name in list(ctl.registry.pods):
        try:
            ctl.registry.remove(name)
        except KeyError:
            pass
    return 0


# ---- client side: run pods.py as a subprocess and drive it

class PodsProcess:
    """Starts pods.py, talks to its control API, stops it by PID (also at interpreter exit)."""

    def __init__(self):
        self.proc = None
        self.dir = tempfile.mkdtemp(prefix="pods-")
        self.control_port = None

    def start(self, timeout=10):
        ready = os.path.join(self.dir, "ready.json")
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--ready-file", ready],
                                     stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("pods.py exited early")
            if os.path.exists(ready):
                with open(ready) as f:
                    self.control_port = json.load(f)["control_port"]
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("pods.py did not start")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def call(self, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.control_port, timeout=30)
        try:
            data = json.dumps(body).encode() if body is not None else None
            c.request(method, path, body=data, headers={"Content-Type": "application/json"})
            r = c.getresponse()
            out = json.loads(r.read() or b"null")
            if r.status >= 400:
                raise RuntimeError(f"pods {method} {path}: {r.status} {out}")
            return out
        finally:
            c.close()

    def add(self, name, address, port=8080, version="v1", cluster="", cert=None, key=None):
        return self.call("POST", "/pods", {"name": name, "address": address, "port": port, "version": version,
                                           "cluster": cluster, "cert": cert, "key": key})

    def remove(self, name):
        return self.call("DELETE", f"/pods/{name}")

    def mode(self, name, **kw):
        return self.call("POST", f"/pods/{name}/mode", kw)

    def cert(self, name, cert, key):
        return self.call("POST", f"/pods/{name}/cert", {"cert": cert, "key": key})

    def list(self):
        return {p["name"]: p for p in self.call("GET", "/pods")["pods"]}

    def reset_counts(self):
        return self.call("POST", "/reset-counts", {})


if __name__ == "__main__":
    sys.exit(main())
