"""Harness for the EndpointWatcher integration tests: kubesim plus kup-watch --json.

Each test gets its own kubesim (stopped by PID in a cleanup, even when the test fails) and
starts kup-watch processes through `self.watch(...)` (stopped by PID with SIGTERM in a cleanup;
the harness asserts that they exit 0, which means uv_loop_close succeeded).

Standard library only. The kup-watch binary comes from $KUP_WATCH_BIN.
"""

import ipaddress
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "kubesim"))

from kubesim_client import KubeSim, service, node  # noqa: E402

KUP_WATCH = os.environ.get("KUP_WATCH_BIN", "")
NS = "demo"
TIMEOUT = float(os.environ.get("KUP_WATCH_TEST_TIMEOUT", "10"))


# ---- object builders (our own: with targetRef, zone and annotations)

def ep(address, pod=None, ready=True, serving=None, terminating=None, node_name=None, zone=None):
    """One EndpointSlice endpoint. ready=None leaves the condition out (nil means true)."""
    out = {"addresses": [address], "conditions": {}}
    if ready is not None:
        out["conditions"]["ready"] = ready
    if serving is not None:
        out["conditions"]["serving"] = serving
    if terminating is not None:
        out["conditions"]["terminating"] = terminating
    if pod:
        out["targetRef"] = {"kind": "Pod", "namespace": NS, "name": pod}
    if node_name:
        out["nodeName"] = node_name
    if zone:
        out["zone"] = zone
    return out


def eps(svc, name, endpoints, port=8080, port_name="http", trigger=None, address_type="IPv4", ports=None):
    md = {"name": name, "namespace": NS, "labels": {"kubernetes.io/service-name": svc}}
    if trigger:
        md["annotations"] = {"endpoints.kubernetes.io/last-change-trigger-time": trigger}
    if ports is None:
        ports = [{"name": port_name, "port": port, "protocol": "TCP"}]
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": md,
            "addressType": address_type, "endpoints": endpoints, "ports": ports}


def svc(name, ports=(("http", 80, 8080),)):
    return service(NS, name, list(ports))


def E(address, port=8080, pod="", node_name="", zone=""):
    """An endpoint as kup-watch prints it."""
    return {"address": address, "port": port, "pod": pod, "node": node_name, "zone": zone}


def pods(prefix, first, last, base="127.0.1.", **kw):
    """Endpoints and expected entries for pods prefix-first..prefix-last at base+i."""
    return [ep(f"{base}{i}", pod=f"{prefix}-{i}", **kw) for i in range(first, last + 1)]


def expect(prefix, first, last, base="127.0.1.", port=8080, **kw):
    return [E(f"{base}{i}", port, pod=f"{prefix}-{i}", **kw) for i in range(first, last + 1)]


def key(e):
    return (e["address"], e["port"])


class KupWatch:
    """One kup-watch --json process; its stdout lines are read by a thread into a queue."""

    def __init__(self, test, kubeconfig, target, args=()):
        self.test = test
        self.cmd = [KUP_WATCH, "--kubeconfig", kubeconfig, target, "--json", "--backoff", "100"] + list(args)
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=self.err, text=True)
        self.q = queue.Queue()
        self.lines = []       # every JSON line, in order
        self.cursor = 0       # lines consumed by expect_* helpers
        self.generation = 0   # of the last update consumed
        self.last_update = None
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.stopped = False

    def _read(self):
        for line in self.proc.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                self.q.put(json.loads(line))
            except ValueError:
                self.q.put({"type": "garbage", "text": line})
        self.q.put(None)

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode(errors="replace")

    def _fill(self, deadline):
        """Moves available lines into self.lines; waits until the deadline for at least one."""
        try:
            item = self.q.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return False
        if item is None:
            self.q.put(None)
            raise AssertionError(f"kup-watch exited early (rc={self.proc.poll()}); stderr:\n{self.stderr()}\n"
                                 f"lines: {self.lines}")
        self.lines.append(item)
        return True

    def next_line(self, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while self.cursor >= len(self.lines):
            if not self._fill(deadline):
                return None
        line = self.lines[self.cursor]
        self.cursor += 1
        if line.get("type") == "garbage":
            raise AssertionError(f"kup-watch printed a non-JSON line: {line['text']}")
        return line

    def expect_update(self, ready, draining=(), timeout=TIMEOUT, resource_version=None):
        """The next update (state lines before it are skipped) is exactly this set, and its
        generation is the previous one plus one."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.next_line(max(0.0, deadline - time.monotonic()))
            if line is None:
                self.test.fail(f"no update within {timeout}s; expected ready={ready} draining={list(draining)}; "
                               f"lines: {self.lines}\nstderr:\n{self.stderr()}")
            if line["type"] == "update":
                break
        self.test.assertEqual(line["generation"], self.generation + 1,
                              f"generation must grow by one per change: {line}")
        self.test.assertEqual(sorted(line["ready"], key=key), sorted(ready, key=key), f"ready of {line}")
        self.test.assertEqual(sorted(line["draining"], key=key), sorted(draining, key=key), f"draining of {line}")
        # Each list is in backend order: numeric address (IPv4 before IPv6), then port.
        def backend_order(e):
            address = ipaddress.ip_address(e["address"])
            return (address.version, address, e["port"])
        for lst in ("ready", "draining"):
            self.test.assertEqual(line[lst], sorted(line[lst], key=backend_order), f"{lst} out of backend order")
        if resource_version is not None:
            self.test.assertEqual(line["resourceVersion"], resource_version)
        self.generation = line["generation"]
        self.last_update = line
        return line

    def expect_state(self, phase, contains=(), timeout=TIMEOUT, allow_updates=False):
        """Reads lines until a state with this phase; an update on the way fails the test unless
        allow_updates. `contains`: substrings the reason must hold."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.next_line(max(0.0, deadline - time.monotonic()))
            if line is None:
                self.test.fail(f"no state {phase} with {contains} within {timeout}s; lines: {self.lines}\n"
                               f"stderr:\n{self.stderr()}")
            if line["type"] == "update" and not allow_updates:
                self.test.fail(f"unexpected update while waiting for state {phase}: {line}")
            if line["type"] == "update":
                self.generation = line["generation"]
                self.last_update = line
            if line["type"] == "state" and line["phase"] == phase:
                wanted = [contains] if isinstance(contains, str) else list(contains)
                if all(c in line["reason"] for c in wanted):
                    return line

    def mark(self):
        """Position in the output, for assert_no_update_since."""
        self.drain()
        return len(self.lines)

    def drain(self, wait=0.0):
        deadline = time.monotonic() + wait
        while self._fill(deadline):
            pass

    def updates_since(self, mark):
        self.drain()
        return [line for line in self.lines[mark:] if line["type"] == "update"]

    def assert_no_update_since(self, mark, wait=0.0):
        self.drain(wait)
        ups = self.updates_since(mark)
        self.test.assertEqual(ups, [], "no update may be published here (last good set must stay)")

    def assert_no_empty_update(self):
        self.drain()
        for line in self.lines:
            if line["type"] == "update":
                self.test.assertTrue(line["ready"] or line["draining"], f"empty update published: {line}")

    def stop(self):
        if self.stopped:
            return
        self.stopped = True
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            rc = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
            raise AssertionError(f"kup-watch did not stop on SIGTERM; stderr:\n{self.stderr()}")
        finally:
            self.reader.join(5)
            self.proc.stdout.close()
        self.test.assertEqual(rc, 0, f"kup-watch exit code (3 = loop did not drain); stderr:\n{self.stderr()}")
        self.err.close()


class WatchTestCase(unittest.TestCase):
    """Starts one kubesim per test. Override USERS for limited users; ARGS for kubesim flags;
    WATCH_ARGS for flags every kup-watch of the class gets (e.g. --slice-watch per_service)."""

    USERS = None
    ARGS = ["--bookmark-interval", "0.3"]
    WATCH_ARGS = ()

    @classmethod
    def setUpClass(cls):
        if not KUP_WATCH or not os.path.exists(KUP_WATCH):
            raise unittest.SkipTest("KUP_WATCH_BIN is not set to the kup-watch binary")

    def setUp(self):
        self.sim = KubeSim(users=self.USERS, args=self.ARGS)
        self.sim.start()
        self.addCleanup(self.sim.cleanup)

    def watch(self, target, *args, user="admin", kubeconfig=None):
        w = KupWatch(self, kubeconfig or self.sim.kubeconfig(user), target, tuple(args) + tuple(self.WATCH_ARGS))
        # Cleanups run in reverse order: the watcher stops before the simulator.
        self.addCleanup(w.stop)
        return w

    def apply(self, *objs):
        for o in objs:
            self.sim.apply(o)

    def delete(self, resource, name, ns=NS):
        self.sim.delete(resource, ns, name)

    def rv(self):
        return self.sim.state()["resourceVersion"]

    def requests(self, since=0):
        return self.sim.requests(since)

    def last_request_seq(self):
        reqs = self.sim.requests()
        return reqs[-1]["seq"] if reqs else 0

    def wait_for(self, predicate, timeout=TIMEOUT, what="condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = predicate()
            if v:
                return v
            time.sleep(0.05)
        self.fail(f"timed out waiting for {what}")

    def wait_watches(self, resource, count=1, after_id=0):
        return self.sim.wait_watches(count=count, resource=resource, timeout=TIMEOUT, after_id=after_id)

    def max_watch_id(self):
        ws = self.sim.watches()
        return max([w["id"] for w in ws], default=0)

    def started(self, name="web", ports=(("http", 80, 8080),), endpoints=None, target=None, args=()):
        """Service + one slice with pods web-1..3, a watcher, and its first synced update."""
        self.apply(svc(name, ports))
        eps_list = endpoints if endpoints is not None else pods("web", 1, 3)
        self.apply(eps(name, f"{name}-a", eps_list))
        w = self.watch(target or f"{NS}/{name}:http", *args)
        return w


def node_obj(name, labels):
    return node(name, labels=labels)
