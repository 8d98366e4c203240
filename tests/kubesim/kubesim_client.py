"""Helpers to run kubesim (tests/kubesim/kubesim.py) from Python test harnesses.

    with KubeSim(users={...}) as sim:
        sim.apply(endpointslice("demo", "web-1", "web", ["127.0.1.5"], 8080))
        status, body = sim.get("/apis/discovery.k8s.io/v1/namespaces/demo/endpointslices")

The server runs as a subprocess; stop() ends it by its PID (also on garbage collection and at
interpreter exit). Standard library only.
"""

import atexit
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
KUBESIM = os.path.join(HERE, "kubesim.py")
_LIVE = set()


def _stop_all():
    for sim in list(_LIVE):
        sim.stop()


atexit.register(_stop_all)


class KubeSimError(Exception):
    pass


class KubeSim:
    def __init__(self, users=None, args=(), cluster="kubesim", state_dir=None, start_timeout=20.0):
        self.users_cfg = users
        self.args = list(args)
        self.cluster = cluster
        self._own_dir = state_dir is None
        self.state_dir = state_dir or tempfile.mkdtemp(prefix=f"kubesim-{cluster}-")
        self.start_timeout = start_timeout
        self.proc = None
        self.info = None

    # ---- lifecycle
    def start(self):
        os.makedirs(self.state_dir, exist_ok=True)
        ready = os.path.join(self.state_dir, "kubesim.json")
        if os.path.exists(ready):
            os.unlink(ready)
        cmd = [sys.executable, KUBESIM, "--port", "0", "--state-dir", self.state_dir,
               "--cluster-name", self.cluster, "--exit-with-parent"] + self.args
        if self.users_cfg is not None:
            path = os.path.join(self.state_dir, "users.json")
            with open(path, "w") as f:
                json.dump({"users": self.users_cfg}, f)
            cmd += ["--tokens-file", path]
        self.log_path = os.path.join(self.state_dir, "kubesim.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self._log)
        _LIVE.add(self)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise KubeSimError(f"kubesim exited early: {self.read_log()}")
            if os.path.exists(ready):
                with open(ready) as f:
                    info = json.load(f)
                if info.get("pid") == self.proc.pid:
                    self.info = info
                    return self
            time.sleep(0.05)
        self.stop()
        raise KubeSimError("kubesim did not become ready in time")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.proc is not None:
            self._log.close()
        _LIVE.discard(self)
        self.proc = None

    def cleanup(self):
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    # ---- facts
    @property
    def port(self):
        return self.info["port"]

    @property
    def host(self):
        return self.info["host"]

    @property
    def server(self):
        return self.info["server"]

    @property
    def ca_file(self):
        return self.info["ca_file"]

    def token(self, user="admin"):
        return self.info["users"][user]["token"]

    def kubeconfig(self, user="admin"):
        return self.info["users"][user]["kubeconfig"]

    # ---- HTTP
    def ssl_context(self):
        ctx = ssl.create_default_context(cafile=self.ca_file)
        return ctx

    def connection(self, timeout=10):
        return http.client.HTTPSConnection(self.host, self.port, context=self.ssl_context(), timeout=timeout)

    def request(self, method, path, body=None, token=None, user="admin", headers=None, timeout=10):
        """One request on a fresh connection. Returns (status, headers dict, body bytes)."""
        conn = self.connection(timeout)
        try:
            hdrs = {"User-Agent": "kubesim-client/1.0", "Accept": "application/json"}
            tok = token if token is not None else (self.token(user) if user else None)
            if tok:
                hdrs["Authorization"] = f"Bearer {tok}"
            data = None
            if body is not None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                hdrs["Content-Type"] = "application/json"
            hdrs.update(headers or {})
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def get_json(self, path, **kw):
        status, hdrs, body = self.request("GET", path, **kw)
        return status, json.loads(body) if body else None

    def admin(self, method, path, body=None):
        conn = self.connection(30)
        try:
            hdrs = {"Authorization": f"Bearer {self.info['admin_token']}", "Content-Type": "application/json"}
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, "/kubesim/admin" + path, body=data, headers=hdrs)
            resp = conn.getresponse()
            out = resp.read()
            parsed = json.loads(out) if out else None
            if resp.status >= 400 and resp.status != 408:
                raise KubeSimError(f"admin {method} {path}: {resp.status} {out[:500]!r}")
            return parsed
        finally:
            conn.close()

    # ---- admin conveniences
    def apply(self, obj, validate=True):
        return self.admin("POST", "/objects", {"op": "apply", "object": obj, "validate": validate})

    def delete(self, resource, namespace, name):
        return self.admin("POST", "/objects", {"op": "delete", "resource": resource, "namespace": namespace,
                                               "name": name})

    def state(self):
        return self.admin("GET", "/state")

    def compact(self, rv=None, scope="all"):
        """scope "all": LIST Exact/continue and WATCH from older versions get 410; "list": only LIST."""
        body = {"scope": scope}
        if rv is not None:
            body["resourceVersion"] = rv
        return self.admin("POST", "/compact", body)

    def fault(self, **fault):
        return self.admin("POST", "/faults", fault)

    def clear_faults(self):
        return self.admin("DELETE", "/faults")

    def watches(self, resource=None):
        return self.admin("GET", "/watches" + (f"?resource={resource}" if resource else ""))["watches"]

    def wait_watches(self, count=1, resource=None, timeout=10, after_id=0):
        out = self.admin("POST", "/wait-watches", {"count": count, "resource": resource, "timeout": timeout,
                                                   "after_id": after_id})
        if not out["ok"]:
            raise KubeSimError(f"expected {count} watches of {resource}, have {len(out['watches'])}")
        return out["watches"]

    def watch_control(self, what, **body):
        return self.admin("POST", f"/watches/{what}", body)

    def restart(self, history="same", **kw):
        return self.admin("POST", "/restart", dict(kw, history=history))

    def config(self, **kw):
        return self.admin("POST", "/config", kw)

    def requests(self, since=0):
        return self.admin("GET", f"/requests?since={since}")["requests"]


# ---- object builders

def namespace(name, labels=None):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}


def service(ns, name, ports, selector=None, cluster_ip=None, svc_type="ClusterIP"):
    """ports: list of (name, port, targetPort) or dicts."""
    plist = []
    for p in ports:
        if isinstance(p, dict):
            plist.append(p)
        else:
            pname, port, target = p
            d = {"port": port, "targetPort": target, "protocol": "TCP"}
            if pname:
                d["name"] = pname
            plist.append(d)
    spec = {"ports": plist, "selector": selector or {"app": name}, "type": svc_type}
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": spec}


def endpointslice(ns, name, service_name, addresses, port, port_name="http", ready=True, node=None,
                  address_type="IPv4", labels=None, extra_ports=()):
    """addresses: list of strings, or of dicts {address, ready, serving, terminating, node}."""
    eps = []
    for a in addresses:
        if isinstance(a, str):
            a = {"address": a}
        ep = {"addresses": [a["address"]],
              "conditions": {"ready": a.get("ready", ready)}}
        for c in ("serving", "terminating"):
            if c in a:
                ep["conditions"][c] = a[c]
        if a.get("node", node):
            ep["nodeName"] = a.get("node", node)
        eps.append(ep)
    ports = [{"name": port_name, "port": port, "protocol": "TCP"}] + list(extra_ports)
    lab = {"kubernetes.io/service-name": service_name}
    lab.update(labels or {})
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": ns, "labels": lab},
            "addressType": address_type, "endpoints": eps, "ports": ports}


def node(name, ready=True, labels=None, internal_ip=None):
    st = {"conditions": [{"type": "Ready", "status": "True" if ready else "False", "reason": "KubeletReady"}],
          "nodeInfo": {"kubeletVersion": "v1.32.0"}}
    if internal_ip:
        st["addresses"] = [{"type": "InternalIP", "address": internal_ip}]
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels or {}},
            "spec": {}, "status": st}


# ---- raw HTTP/1.1 over TLS, keeping chunk framing visible (for watch tests)

class RawStream:
    """Sends one request and reads the response byte for byte: headers, then chunks as framed."""

    def __init__(self, sim, path, token=None, user="admin", method="GET", headers=None, timeout=10):
        self.sock = socket.create_connection((sim.host, sim.port), timeout=timeout)
        self.sock = sim.ssl_context().wrap_socket(self.sock, server_hostname=sim.host)
        self.buf = b""
        tok = token if token is not None else (sim.token(user) if user else None)
        hdrs = {"Host": sim.server[len("https://"):], "User-Agent": "kubesim-raw/1.0", "Accept": "application/json"}
        if tok:
            hdrs["Authorization"] = f"Bearer {tok}"
        hdrs.update(headers or {})
        lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in hdrs.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.status, self.headers = self._read_head()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def _read_head(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
        return status, hdrs

    def read_body(self):
        """Whole body (Content-Length or chunked)."""
        if "content-length" in self.headers:
            n = int(self.headers["content-length"])
            while len(self.buf) < n:
                self._fill()
            body, self.buf = self.buf[:n], self.buf[n:]
            return body
        out = b""
        while True:
            c = self.read_chunk()
            if c is None:
                return out
            out += c

    def read_chunk(self):
        """Next chunk's data; None for the final zero chunk. Raises EOFError/ValueError on bad framing."""
        while b"\r\n" not in self.buf:
            self._fill()
        line, rest = self.buf.split(b"\r\n", 1)
        size = int(line.split(b";")[0], 16)
        self.buf = rest
        while len(self.buf) < size + 2:
            self._fill()
        data, self.buf = self.buf[:size], self.buf[size:]
        if self.buf[:2] != b"\r\n":
            raise ValueError("chunk not followed by CRLF")
        self.buf = self.buf[2:]
        return None if size == 0 else data

    def events(self, n=None, timeout=None):
        """Reads chunks until n JSON events arrived (or the stream ended); returns the decoded events."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        out = []
        pending = b""
        while n is None or len(out) < n:
            c = self.read_chunk()
            if c is None:
                break
            pending += c
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                out.append(json.loads(line))
        return out


def kubectl_path():
    return shutil.which("kubectl")


def run_kubectl(sim, *args, user="admin", token=None, input_text=None, timeout=30, cache_dir=None):
    """Runs the real kubectl against the simulator; returns CompletedProcess (text)."""
    cache = cache_dir or os.path.join(sim.state_dir, "kubectl-cache")
    env = dict(os.environ)
    env["KUBECONFIG"] = os.path.join(sim.state_dir, "empty-kubeconfig")
    if not os.path.exists(env["KUBECONFIG"]):
        open(env["KUBECONFIG"], "w").close()
    cmd = [kubectl_path(), "--server", sim.server, "--certificate-authority", sim.ca_file, "--cache-dir", cache,
           "--token", token if token is not None else sim.token(user)] + list(args)
    return subprocess.run(cmd, input=input_text, capture_output=True, text=True, timeout=timeout, env=env)


def path_for(resource, ns=None, name=None, query=None):
    base = {"endpointslices": "/apis/discovery.k8s.io/v1", "services": "/api/v1", "nodes": "/api/v1",
            "namespaces": "/api/v1"}[resource]
    p = base + (f"/namespaces/{ns}" if ns else "") + f"/{resource}" + (f"/{name}" if name else "")
    if query:
        p += "?" + urllib.parse.urlencode(query)
    return p
