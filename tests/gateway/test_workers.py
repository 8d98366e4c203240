"""kup-gateway --workers N end to end: traffic spread over the worker loops, endpoint churn, a
health ejection and a reload under steady traffic, each with zero failed requests, and a clean
exit (every worker loop drained). Real Pods (tests/support/pods.py) discovered through kubesim.

The same file runs against the ThreadSanitizer build (ctest gateway_workers_tsan, the tsan
preset): there a data race ends the gateway (halt_on_error=1), which fails the test."""

import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import Env, Load, gateway_binary, gateway_config  # noqa: E402

PORT = 8080


def svc(cluster="tke-a", **kw):
    return dict({"cluster": cluster, "namespace": "default", "service": "httpbin", "port": "http"}, **kw)


def wait_for(what, fn, timeout=15):
    deadline = time.monotonic() + timeout
    while not fn():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class WorkersCases:
    WORKERS = 2

    def setUp(self):
        if not os.path.exists(gateway_binary()):
            self.skipTest(f"{gateway_binary()} is not built")
        self.env = Env()
        self.addCleanup(self.env.close)
        self.pods = self.env.pods()
        self.cluster = self.env.cluster("tke-a")

    def start_pods(self, count, version="v1", first=1):
        names = []
        for i in range(first, first + count):
            name = f"tke-a-{version}-{i}"
            self.pods.add(name, self.env.address(i), PORT, version, "tke-a")
            self.cluster.set_pod(name, self.env.address(i), publish=False)
            names.append(name)
        self.cluster.publish()
        return names

    def gateway(self, upstreams, routes=None):
        gw = self.env.gateway(gateway_config([self.cluster], upstreams, routes), workers=self.WORKERS)
        gw.wait_ready()
        self.assertEqual(gw.metric("kup_gateway_workers "), self.WORKERS)
        return gw

    def served_by(self, gw):
        """{worker label: requests} of the workers that served at least one request."""
        per = gw.metrics("kup_gateway_worker_requests_total{")
        self.assertEqual(len(per), self.WORKERS, per)
        return {k: v for k, v in per.items() if v > 0}

    def stop_cleanly(self, gw):
        self.assertEqual(gw.stop(), 0, f"kup-gateway exit status\n{gw.log()[-4000:]}")
        self.assertNotIn("ThreadSanitizer", gw.log())
        self.assertNotIn("did not drain", gw.log())

    def test_traffic_spreads_over_workers_and_survives_churn_and_a_reload(self):
        v1 = self.start_pods(3)
        gw = self.gateway([{"name": "web", "services": [svc()]}])

        # New connections are spread by the kernel (SO_REUSEPORT) over the workers' listeners.
        for _ in range(60):
            status, _, _ = gw.get("/")
            self.assertEqual(status, 200)
        self.assertGreater(len(self.served_by(gw)), 1, "one worker served every connection")

        load = Load(gw.port, concurrency=8).start()
        try:
            time.sleep(0.3)
            # Endpoint churn: every Pod replaced by a v2 Pod (not ready → ready → old one
            # terminating → gone), as a rolling update does.
            for i, old in enumerate(v1):
                new, addr = f"tke-a-v2-{i + 1}", self.env.address(50 + i)
                self.pods.add(new, addr, PORT, "v2", "tke-a")
                self.cluster.set_pod(new, addr, ready=False)
                time.sleep(0.15)
                self.cluster.set_pod(new, addr, ready=True)
                time.sleep(0.15)
                self.cluster.set_pod(old, self.cluster.endpoints[old]["address"], ready=False, serving=True,
                                     terminating=True)
                time.sleep(0.2)
                self.cluster.drop_pod(old)
                time.sleep(0.2)
                self.pods.remove(old)
            # A reload under traffic: a new upstream takes the route, the old one leaves the config.
            cfg = gateway_config([self.cluster], [{"name": "web2", "host": "moved.example", "services": [svc()]}])
            gw.write_config(cfg)
            gw.reload()
            wait_for("the reload", lambda: gw.metric('kup_gateway_config_reloads_total{result="ok"}') >= 1)
            time.sleep(0.5)
        finally:
            t = load.stop()
        self.assertGreater(t.total, 200)
        self.assertEqual(t.errors, [], f"{len(t.errors)} of {t.total} failed")
        # Every worker let go of the old generation (its UpstreamWorkers dropped on their loops),
        # then the control loop dropped it and the removed Upstream.
        wait_for("the old generation to be released",
                 lambda: gw.metric("kup_gateway_retired_generations") == 0)
        tail = Load(gw.port, concurrency=8).run(200)
        self.assertEqual(tail.errors, [])
        self.assertEqual(set(tail.version), {"v2"})
        _, _, body = gw.get("/")
        self.assertEqual(json.loads(body)["host"], "moved.example")
        self.assertGreater(len(self.served_by(gw)), 1)
        self.stop_cleanly(gw)

    def test_a_failing_pod_is_ejected_for_every_worker_with_zero_failed_requests(self):
        names = self.start_pods(3)
        gw = self.gateway([{"name": "web",
                            "retries": {"max": 2, "on_status": [503], "min_concurrent": 16},
                            "outlier": {"consecutive_failures": 3, "base_ejection_ms": 60000,
                                        "max_ejected_percent": 50},
                            "services": [svc()]}])
        # 16 keep-alive connections: all on one worker (SO_REUSEPORT hashes each) is a 2^-15 chance
        # with 2 workers, so the ejection is seen to hold for several workers.
        load = Load(gw.port, concurrency=16).start()
        try:
            time.sleep(0.3)
            self.pods.mode(names[0], fail="503")
            wait_for("the ejection", lambda: gw.metric("kupstream_pod_ejections_total") >= 1)
            time.sleep(0.5)  # the Picker without the Pod reaches every worker
            before = self.pods.list()[names[0]]["requests"]
            served_before = gw.metric("kup_gateway_requests_total")
            time.sleep(1.0)
            after = self.pods.list()[names[0]]["requests"]
            served = gw.metric("kup_gateway_requests_total") - served_before
        finally:
            t = load.stop()
        self.assertEqual(t.errors, [], f"{len(t.errors)} of {t.total} failed")
        self.assertGreater(served, 50)
        self.assertEqual(after - before, 0, f"the ejected Pod got {after - before} of {served} requests")
        self.assertGreater(len(self.served_by(gw)), 1)
        self.stop_cleanly(gw)


class TwoWorkers(WorkersCases, unittest.TestCase):
    WORKERS = 2


class FourWorkers(WorkersCases, unittest.TestCase):
    WORKERS = 4


if __name__ == "__main__":
    unittest.main()
