"""Harness for end-to-end runs of kup-gateway: kubesim clusters, pods.py Pods, the gateway
process, and a keep-alive load generator. Standard library only. Used by tests/gateway and by
the demo (examples/gateway/demo/demo.py). Everything started is stopped by its PID in close().
"""

import collections
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("KUPSTREAM_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SOURCE, "tests", "kubesim"))
sys.path.insert(0, os.path.join(SOURCE, "tests", "support"))

from kubesim_client import KubeSim, node, service  # noqa: E402
from pods import PodsProcess  # noqa: E402


def gateway_binary():
    env = os.environ.get("KUP_GATEWAY")
    if env:
        return env
    build = os.environ.get("KUPSTREAM_BINARY_DIR") or os.path.join(SOURCE, "build", "release")
    return os.path.join(build, "examples", "gateway", "kup-gateway")


def endpoint_slice(ns, name, svc, endpoints, port, port_name="http"):
    """endpoints: dicts {address, pod, node?, ready?, serving?, terminating?}."""
    eps = []
    for e in endpoints:
        cond = {"ready": e.get("ready", True)}
        for c in ("serving", "terminating"):
            if c in e:
                cond[c] = e[c]
        ep = {"addresses": [e["address"]], "conditions": cond,
              "targetRef": {"kind": "Pod", "namespace": ns, "name": e["pod"]}}
        if e.get("node"):
            ep["nodeName"] = e["node"]
        eps.append(ep)
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": ns, "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4", "endpoints": eps,
            "ports": [{"name": port_name, "port": port, "protocol": "TCP"}]}


class Cluster:
    """A kubesim cluster holding Service `svc` (port 8000 → targetPort 8080, name http)."""

    def __init__(self, name, env, svc="httpbin", ns="default", target_port=8080):
        self.name, self.svc, self.ns, self.target_port = name, svc, ns, target_port
        self.sim = KubeSim(cluster=name)
        self.sim.start()
        env.defer(self.sim.cleanup)
        self.sim.apply(service(ns, svc, [("http", 8000, target_port)], selector={"app": svc}))
        self.endpoints = {}  # pod name → endpoint dict

    @property
    def kubeconfig(self):
        return self.sim.kubeconfig("admin")

    def add_node(self, name, labels):
        self.sim.apply(node(name, labels=labels))

    def publish(self):
        self.sim.apply(endpoint_slice(self.ns, f"{self.svc}-abc", self.svc, list(self.endpoints.values()),
                                      self.target_port))

    def set_pod(self, pod, address, publish=True, **cond):
        self.endpoints[pod] = dict({"address": address, "pod": pod}, **cond)
        if publish:
            self.publish()

    def drop_pod(self, pod, publish=True):
        self.endpoints.pop(pod, None)
        if publish:
            self.publish()


class Gateway:
    """A kup-gateway process on port 0 (the ready file tells the ports)."""

    def __init__(self, env, config, log_level="info", workers=None):
        self.env = env
        self.dir = env.tmpdir()
        self.config_path = os.path.join(self.dir, "gateway.yaml")
        self.write_config(config)
        ready = os.path.join(self.dir, "ready.json")
        self.log_path = os.path.join(self.dir, "gateway.log")
        self._log = open(self.log_path, "wb")
        args = [gateway_binary(), "--config", self.config_path, "--ready-file", ready, "--log-level", log_level]
        if workers is None:
            workers = os.environ.get("KUP_GATEWAY_WORKERS")  # e.g. the whole e2e suite with 2 workers
        if workers is not None:
            args += ["--workers", str(workers)]
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT)
        env.defer(self.stop)
        deadline = time.monotonic() + float(os.environ.get("KUP_GATEWAY_START_S", "15"))
        while not os.path.exists(ready):
            if self.proc.poll() is not None:
                raise RuntimeError(f"kup-gateway exited {self.proc.returncode}: {self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"kup-gateway did not start: {self.log()}")
            time.sleep(0.02)
        with open(ready) as f:
            info = json.load(f)
        self.port = info["ports"][0]
        self.admin_port = info["admin_port"]
        self.returncode = None

    def write_config(self, config):
        text = config if isinstance(config, str) else json.dumps(config, indent=1)
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config_path)

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def admin(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=10)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read().decode()
        finally:
            c.close()

    def wait_ready(self, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            status, body = self.admin("/readyz")
            if status == 200:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"gateway not ready: {body}\n{self.log()[-3000:]}")
            time.sleep(0.05)

    def metric(self, prefix):
        """Sum of the samples whose line starts with `prefix` (name plus optional labels)."""
        return sum(self.metrics(prefix).values())

    def metrics(self, prefix):
        """{sample name with labels: value} of the samples whose line starts with `prefix`."""
        _, text = self.admin("/metrics")
        out = {}
        for line in text.splitlines():
            if line.startswith(prefix):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def reload(self):
        os.kill(self.proc.pid, signal.SIGHUP)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.proc is not None:
            self.returncode = self.proc.returncode
            self._log.close()
        self.proc = None
        return self.returncode

    def get(self, path="/", host=None, headers=None, method="GET", body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            h = dict(headers or {})
            if host:
                h["Host"] = host
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()


class Tally:
    def __init__(self):
        self.pod = collections.Counter()
        self.version = collections.Counter()
        self.cluster = collections.Counter()
        self.status = collections.Counter()
        self.errors = []
        self.ok = 0
        self.lock = threading.Lock()

    def add(self, status, headers):
        with self.lock:
            self.status[status] += 1
            if status == 200:
                self.ok += 1
                self.pod[headers.get("x-pod", "?")] += 1
                self.version[headers.get("x-version", "?")] += 1
                self.cluster[headers.get("x-cluster", "?")] += 1
            else:
                self.errors.append(f"status {status}")

    def error(self, what):
        with self.lock:
            self.errors.append(what)

    @property
    def total(self):
        return self.ok + len(self.errors)


class Load:
    """Keep-alive clients on threads; run(n) sends n requests, start()/stop() sends until stopped."""

    def __init__(self, port, concurrency=4, path="/", host=None, headers=None):
        self.port, self.concurrency, self.path = port, concurrency, path
        self.headers = dict(headers or {})
        if host:
            self.headers["Host"] = host
        self.tally = Tally()
        self._stop = threading.Event()
        self._threads = []
        self._remaining = 0
        self._lock = threading.Lock()

    def _take(self):
        with self._lock:
            if self._remaining is None:
                return not self._stop.is_set()
            if self._remaining <= 0:
                return False
            self._remaining -= 1
            return True

    def _worker(self):
        conn = None
        while self._take():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                conn.request("GET", self.path, headers=self.headers)
                r = conn.getresponse()
                r.read()
                self.tally.add(r.status, {k.lower(): v for k, v in r.getheaders()})
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                self.tally.error(f"{type(e).__name__}: {e}")
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def run(self, n):
        self._remaining = n
        threads = [threading.Thread(target=self._worker) for _ in range(self.concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return self.tally

    def start(self):
        self._remaining = None
        self._threads = [threading.Thread(target=self._worker) for _ in range(self.concurrency)]
        for t in self._threads:
            t.start()
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join()
        return self.tally


class Env:
    """Owns everything a test or the demo starts; close() stops it all (reverse order)."""

    def __init__(self):
        self._cleanups = []
        self._dirs = []
        # A random loopback /24 per run, so that parallel runs do not share Pod addresses.
        import random
        self._net = f"127.{random.randint(20, 250)}.{random.randint(1, 250)}"

    def address(self, i):
        """The i-th Pod address of this run (1..254)."""
        return f"{self._net}.{i}"

    def defer(self, fn):
        self._cleanups.append(fn)

    def tmpdir(self):
        d = tempfile.mkdtemp(prefix="kup-gw-")
        self._dirs.append(d)
        return d

    def cluster(self, name, **kw):
        return Cluster(name, self, **kw)

    def pods(self):
        p = PodsProcess().start()
        self.defer(p.stop)
        return p

    def gateway(self, config, **kw):
        return Gateway(self, config, **kw)

    def close(self):
        while self._cleanups:
            fn = self._cleanups.pop()
            try:
                fn()
            except Exception as e:  # keep stopping the rest
                print(f"cleanup: {e}", file=sys.stderr)
        for d in self._dirs:
            shutil.rmtree(d, ignore_errors=True)


def gateway_config(clusters, upstreams, routes=None):
    """clusters: [Cluster]; upstreams: list of dicts (YAML upstream entries)."""
    return {
        "listeners": [{"address": "127.0.0.1", "port": 0}],
        "admin": {"address": "127.0.0.1", "port": 0},
        "server": {"drain_timeout_ms": 5000},
        "clusters": [{"name": c.name, "kubeconfig": c.kubeconfig} for c in clusters],
        "upstreams": upstreams,
        "routes": routes or [{"host": "*", "path_prefix": "/", "upstream": upstreams[0]["name"]}],
    }


def make_test_ca(directory, names):
    """A CA and a server certificate for `names` (DNS SANs), made with the openssl CLI."""
    ca_key, ca_crt = os.path.join(directory, "ca.key"), os.path.join(directory, "ca.crt")
    key, csr, crt = (os.path.join(directory, f) for f in ("pod.key", "pod.csr", "pod.crt"))
    ext = os.path.join(directory, "pod.ext")
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)  # noqa: E731
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", ca_key, "-out", ca_crt, "-days", "2", "-subj", "/CN=kup-test-ca",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", *ec, "-keyout", key, "-out", csr, "-subj", f"/CN={names[0]}")
    with open(ext, "w") as f:
        f.write("subjectAltName=" + ",".join(f"DNS:{n}" for n in names) + "\n"
                "extendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial", "-out", crt,
        "-days", "2", "-extfile", ext)
    return ca_crt, crt, key
