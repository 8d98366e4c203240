"""End-to-end tests: kup-gateway between a load generator and pods.py Pods, discovering them
through kubesim clusters. Each test stops everything it started (Env.close, by PID)."""

import os
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import Env, Load, gateway_binary, gateway_config, make_test_ca  # noqa: E402

PORT = 8080


def svc(cluster, weight=1, port="http", **kw):
    return dict({"cluster": cluster, "namespace": "default", "service": "httpbin", "port": port, "weight": weight},
                **kw)


class GatewayTest(unittest.TestCase):
    def setUp(self):
        if not os.path.exists(gateway_binary()):
            self.skipTest(f"{gateway_binary()} is not built")
        self.env = Env()
        self.addCleanup(self.env.close)
        self.pods = self.env.pods()

    def start_pods(self, cluster, count, version="v1", first=1, **cond):
        """Starts `count` Pods and publishes them in `cluster`'s slice."""
        names = []
        for i in range(first, first + count):
            name = f"{cluster.name}-{version}-{i}"
            addr = self.env.address(i + (0 if cluster.name.endswith("a") else 100))
            self.pods.add(name, addr, PORT, version, cluster.name)
            cluster.set_pod(name, addr, publish=False, **cond)
            names.append(name)
        cluster.publish()
        return names

    def assertStopsCleanly(self, gw):
        self.assertEqual(gw.stop(), 0, f"kup-gateway exit status\n{gw.log()[-3000:]}")


class Weights(GatewayTest):
    def test_weights_hold_within_one_percent_over_10000_requests_in_both_modes(self):
        a, b = self.env.cluster("tke-a"), self.env.cluster("tke-b")
        a_pods = self.start_pods(a, 3)
        b_pods = self.start_pods(b, 2)
        ups = [{"name": "perpod", "weight_mode": "per_pod", "services": [svc("tke-a", 3), svc("tke-b", 1, port=8000)]},
               {"name": "persvc", "weight_mode": "per_service", "services": [svc("tke-a", 3), svc("tke-b", 1)]}]
        gw = self.env.gateway(gateway_config([a, b], ups, [
            {"host": "pod.test", "path_prefix": "/", "upstream": "perpod"},
            {"host": "svc.test", "path_prefix": "/", "upstream": "persvc"}]))
        gw.wait_ready()
        n = 10000
        for host, expect in (("pod.test", {**{p: 3 / 11 for p in a_pods}, **{p: 1 / 11 for p in b_pods}}),
                             ("svc.test", {**{p: 0.75 / 3 for p in a_pods}, **{p: 0.25 / 2 for p in b_pods}})):
            t = Load(gw.port, concurrency=4, host=host).run(n)
            self.assertEqual(t.errors, [], host)
            for pod, share in expect.items():
                self.assertAlmostEqual(t.pod[pod] / n, share, delta=0.01, msg=f"{host} {pod}: {dict(t.pod)}")
            self.assertAlmostEqual(t.cluster["tke-a"] / n, 0.75 if host == "svc.test" else 9 / 11, delta=0.01)
        self.assertStopsCleanly(gw)


class ConsistentHash(GatewayTest):
    def test_the_hash_header_keeps_each_user_on_one_pod_and_spreads_users_over_the_pods(self):
        a = self.env.cluster("tke-a")
        pods = self.start_pods(a, 4)
        ups = [{"name": "sticky", "policy": "consistent_hash", "hash_header": "X-User", "services": [svc("tke-a")]}]
        gw = self.env.gateway(gateway_config([a], ups, [{"host": "*", "path_prefix": "/", "upstream": "sticky"}]))
        gw.wait_ready()
        owner = {}
        for user in range(40):
            seen = set()
            for _ in range(5):
                status, headers, _ = gw.get("/", headers={"X-User": f"user-{user}"})
                self.assertEqual(status, 200)
                seen.add(headers.get("x-pod"))
            self.assertEqual(len(seen), 1, f"user-{user} reached {seen}")
            owner[user] = seen.pop()
        # 40 users over 4 Pods (Maglev): every Pod owns some, none owns most.
        per_pod = {p: sum(1 for o in owner.values() if o == p) for p in pods}
        self.assertTrue(all(3 <= n <= 20 for n in per_pod.values()), per_pod)
        self.assertStopsCleanly(gw)


class NodeLabels(GatewayTest):
    def test_node_label_filter_sends_traffic_only_to_pods_on_matching_nodes(self):
        a = self.env.cluster("tke-a")
        a.add_node("node-blue", {"pool": "blue"})
        a.add_node("node-green", {"pool": "green"})
        blue = self.start_pods(a, 2, version="v1", node="node-blue")
        green = self.start_pods(a, 2, version="v2", first=3, node="node-green")
        ups = [{"name": "blue", "services": [svc("tke-a", node_labels={"pool": "blue"})]},
               {"name": "all", "services": [svc("tke-a")]}]
        gw = self.env.gateway(gateway_config([a], ups, [
            {"host": "*", "path_prefix": "/", "upstream": "blue"},
            {"host": "*", "path_prefix": "/all", "upstream": "all"}]))
        gw.wait_ready()
        t = Load(gw.port).run(400)
        self.assertEqual(t.errors, [])
        self.assertEqual(set(t.pod), set(blue))
        t_all = Load(gw.port, path="/all").run(400)
        self.assertEqual(set(t_all.pod), set(blue + green))
        self.assertStopsCleanly(gw)


class Https(GatewayTest):
    def test_https_pods_verified_with_a_test_ca_and_rejected_without_it(self):
        d = self.env.tmpdir()
        ca, crt, key = make_test_ca(d, ["httpbin.default.svc", "pods.test"])
        other_ca, _, _ = make_test_ca(self.env.tmpdir(), ["other"])
        a = self.env.cluster("tke-a")
        for i in (1, 2):
            self.pods.call("POST", "/pods", {"name": f"tls-{i}", "address": self.env.address(i), "port": PORT,
                                             "version": "v1", "cluster": "tke-a", "cert": crt, "key": key})
            a.set_pod(f"tls-{i}", self.env.address(i), publish=False)
        a.publish()
        ups = [{"name": "tls", "backend": "HTTPS", "tls": {"ca_file": ca}, "services": [svc("tke-a")]},
               {"name": "named", "backend": "HTTPS", "tls": {"ca_file": ca, "server_name": "pods.test"},
                "services": [svc("tke-a")]},
               {"name": "wrongca", "backend": "HTTPS", "tls": {"ca_file": other_ca}, "retries": {"max": 0},
                "services": [svc("tke-a")]}]
        gw = self.env.gateway(gateway_config([a], ups, [
            {"host": "*", "path_prefix": "/", "upstream": "tls"},
            {"host": "*", "path_prefix": "/named", "upstream": "named"},
            {"host": "*", "path_prefix": "/wrong", "upstream": "wrongca"}]))
        gw.wait_ready()
        t = Load(gw.port).run(200)
        self.assertEqual(t.errors, [])
        self.assertEqual(set(t.pod), {"tls-1", "tls-2"})
        status, _, body = gw.get("/named")
        self.assertEqual(status, 200, body)
        self.assertIn(b'"tls": true', body)
        status, _, body = gw.get("/wrong")
        self.assertEqual(status, 502, body)
        self.assertStopsCleanly(gw)


class HostHeader(GatewayTest):
    def test_host_override_and_forwarded_headers_reach_the_pod(self):
        import json
        a = self.env.cluster("tke-a")
        self.start_pods(a, 1)
        ups = [{"name": "web", "host": "httpbin.example.com", "services": [svc("tke-a")]},
               {"name": "plain", "services": [svc("tke-a")]}]
        gw = self.env.gateway(gateway_config([a], ups, [
            {"host": "*", "path_prefix": "/", "upstream": "web"},
            {"host": "*", "path_prefix": "/plain", "upstream": "plain"}]))
        gw.wait_ready()
        status, headers, body = gw.get("/x?y=1", host="client.example.org")
        self.assertEqual(status, 200, body)
        doc = json.loads(body)
        self.assertEqual(doc["host"], "httpbin.example.com")
        self.assertEqual(doc["path"], "/x?y=1")
        self.assertEqual(doc["x_forwarded_host"], "client.example.org")
        self.assertEqual(doc["x_forwarded_proto"], "http")
        self.assertIn("127.0.0.1", doc["x_forwarded_for"])
        status, _, body = gw.get("/plain", host="client.example.org")
        self.assertEqual(json.loads(body)["host"], "client.example.org")
        self.assertStopsCleanly(gw)


class Retries(GatewayTest):
    def test_requests_are_retried_on_another_pod_when_a_pod_dies(self):
        a = self.env.cluster("tke-a")
        names = self.start_pods(a, 3)
        ups = [{"name": "web", "retries": {"max": 2}, "services": [svc("tke-a")]}]
        gw = self.env.gateway(gateway_config([a], ups))
        gw.wait_ready()
        self.assertEqual(Load(gw.port).run(300).errors, [])
        self.pods.remove(names[0])  # dies, but stays in the EndpointSlice
        t = Load(gw.port).run(600)
        self.assertEqual(t.errors, [])
        self.assertEqual(t.pod[names[0]], 0)
        self.assertGreater(gw.metric("kupstream_"), 0)
        self.assertStopsCleanly(gw)

    def test_a_pod_answering_503_is_retried_for_idempotent_requests(self):
        a = self.env.cluster("tke-a")
        names = self.start_pods(a, 2)
        self.pods.mode(names[0], fail="503")
        # Every request may need a retry here (each retry's pick moves the round robin on, so new
        # requests keep landing on the failing Pod first): the retry budget must allow all 4 of the
        # load's concurrent requests to be retries at once, or the budget (correctly) refuses one.
        ups = [{"name": "web", "retries": {"max": 2, "on_status": [503], "min_concurrent": 8},
                "outlier": {"consecutive_failures": 0}, "services": [svc("tke-a")]}]
        gw = self.env.gateway(gateway_config([a], ups))
        gw.wait_ready()
        t = Load(gw.port, concurrency=4).run(200)
        self.assertEqual(t.errors, [])
        self.assertEqual(set(t.pod), {names[1]})
        self.assertStopsCleanly(gw)


class RollingUpdate(GatewayTest):
    def test_no_request_fails_during_a_rolling_update_with_readiness_transitions(self):
        a, b = self.env.cluster("tke-a"), self.env.cluster("tke-b")
        old_a = self.start_pods(a, 3, version="v1")
        old_b = self.start_pods(b, 2, version="v1")
        ups = [{"name": "web", "services": [svc("tke-a", 3), svc("tke-b", 1)]}]
        gw = self.env.gateway(gateway_config([a, b], ups))
        gw.wait_ready()
        load = Load(gw.port, concurrency=4).start()
        try:
            time.sleep(0.5)
            for cluster, old in ((a, old_a), (b, old_b)):
                for i, name in enumerate(old):
                    new = f"{cluster.name}-v2-{i + 1}"
                    addr = self.env.address(50 + i + (0 if cluster is a else 100))
                    self.pods.add(new, addr, PORT, "v2", cluster.name)
                    cluster.set_pod(new, addr, ready=False)          # starting
                    time.sleep(0.2)
                    cluster.set_pod(new, addr, ready=True)           # ready
                    time.sleep(0.2)
                    cluster.set_pod(name, cluster.endpoints[name]["address"], ready=False, serving=True,
                                    terminating=True)               # terminating, still serving
                    time.sleep(0.3)
                    cluster.drop_pod(name)                           # gone from the slice
                    time.sleep(0.3)
                    self.pods.remove(name)                           # the process ends
            # and a scale-down: one v2 Pod of tke-a leaves
            gone = f"{a.name}-v2-3"
            a.set_pod(gone, a.endpoints[gone]["address"], ready=False, serving=True, terminating=True)
            time.sleep(0.3)
            a.drop_pod(gone)
            time.sleep(0.3)
            self.pods.remove(gone)
            time.sleep(0.5)
        finally:
            t = load.stop()
        self.assertGreater(t.total, 500)
        self.assertEqual(t.errors, [], f"{len(t.errors)} of {t.total} failed")
        tail = Load(gw.port).run(300)
        self.assertEqual(set(tail.version), {"v2"})
        self.assertEqual(tail.pod[gone], 0)
        self.assertStopsCleanly(gw)


class Health(GatewayTest):
    def test_a_failing_pod_is_ejected_and_comes_back_after_it_recovers(self):
        a = self.env.cluster("tke-a")
        names = self.start_pods(a, 3)
        ups = [{"name": "web", "retries": {"max": 2, "on_status": [503]},
                "outlier": {"consecutive_failures": 3, "base_ejection_ms": 2000, "max_ejected_percent": 50},
                "services": [svc("tke-a")]}]
        gw = self.env.gateway(gateway_config([a], ups))
        gw.wait_ready()
        self.pods.mode(names[0], fail="503")
        Load(gw.port).run(60)  # ejects it
        before = self.pods.list()[names[0]]["requests"]
        t = Load(gw.port).run(300)
        self.assertEqual(t.errors, [])
        self.assertLessEqual(self.pods.list()[names[0]]["requests"] - before, 3, "ejected Pod still gets traffic")
        self.assertGreaterEqual(gw.metric("kupstream_pod_ejections_total"), 1)
        self.pods.mode(names[0], fail=None)
        time.sleep(2.5)
        t = Load(gw.port).run(600)
        self.assertGreater(t.pod[names[0]], 100, dict(t.pod))
        self.assertStopsCleanly(gw)

    def test_panic_mode_uses_every_pod_when_too_few_are_healthy(self):
        a = self.env.cluster("tke-a")
        names = self.start_pods(a, 4)
        ups = [{"name": "web", "retries": {"max": 0}, "panic_threshold_percent": 50,
                "outlier": {"consecutive_failures": 2, "base_ejection_ms": 30000, "max_ejected_percent": 100},
                "services": [svc("tke-a")]}]
        gw = self.env.gateway(gateway_config([a], ups))
        gw.wait_ready()
        for n in names[:3]:
            self.pods.mode(n, fail="503")
        Load(gw.port).run(100)  # ejects the three failing Pods → 25% healthy < 50%: panic
        self.pods.reset_counts()
        Load(gw.port).run(400)
        counts = self.pods.list()
        for n in names[:3]:
            self.assertGreater(counts[n]["requests"], 40, f"panic mode should use {n}: {counts}")
        self.assertEqual(gw.metric('kupstream_panic{upstream="web"}'), 1)
        self.assertStopsCleanly(gw)

    def test_slow_start_ramps_a_new_pod_up(self):
        a = self.env.cluster("tke-a")
        self.start_pods(a, 2)
        ups = [{"name": "web", "slow_start_ms": 4000, "services": [svc("tke-a")]}]
        gw = self.env.gateway(gateway_config([a], ups))
        gw.wait_ready()
        time.sleep(4.2)  # the first Pods are past their own ramp
        new = self.start_pods(a, 1, first=3)[0]
        time.sleep(0.3)
        early = Load(gw.port).run(600)
        self.assertLess(early.pod[new] / 600, 0.25, dict(early.pod))  # fair share would be 1/3
        time.sleep(4.0)
        late = Load(gw.port).run(900)
        self.assertAlmostEqual(late.pod[new] / 900, 1 / 3, delta=0.05, msg=dict(late.pod))
        self.assertStopsCleanly(gw)


class ApiServerGone(GatewayTest):
    def test_traffic_keeps_flowing_to_the_last_known_pods_when_the_api_server_goes_away(self):
        a = self.env.cluster("tke-a")
        names = self.start_pods(a, 3)
        gw = self.env.gateway(gateway_config([a], [{"name": "web", "services": [svc("tke-a")]}]))
        gw.wait_ready()
        load = Load(gw.port).start()
        time.sleep(0.5)
        a.sim.stop()
        time.sleep(2.5)
        t = load.stop()
        self.assertEqual(t.errors, [])
        self.assertEqual(set(t.pod), set(names))
        status, _, _ = gw.get("/")
        self.assertEqual(status, 200)
        self.assertStopsCleanly(gw)


class Reload(GatewayTest):
    def test_sighup_with_a_bad_config_keeps_serving_and_a_good_one_switches_without_errors(self):
        a = self.env.cluster("tke-a")
        v1 = self.start_pods(a, 2, version="v1")
        cfg = gateway_config([a], [{"name": "web", "services": [svc("tke-a")]}])
        gw = self.env.gateway(cfg)
        gw.wait_ready()
        watches_before = {w["id"] for w in a.sim.watches()}
        self.assertTrue(watches_before)
        load = Load(gw.port).start()
        try:
            bad = dict(cfg)
            bad["upstreams"] = [{"name": "web", "services": [svc("tke-a"), dict(svc("tke-a"), namespace="Default")]}]
            gw.write_config(bad)
            gw.reload()
            time.sleep(0.5)
            self.assertIn('upstreams[0].services[1].namespace: "Default" is not a DNS-1123 label'
                          , gw.log())
            self.assertEqual(gw.metric('kup_gateway_config_reloads_total{result="error"}'), 1)
            # a good one: a second upstream, and the route moves to it
            good = dict(cfg)
            good["upstreams"] = cfg["upstreams"] + [{"name": "web2", "host": "moved.example",
                                                     "services": [svc("tke-a")]}]
            good["routes"] = [{"host": "*", "path_prefix": "/", "upstream": "web2"}]
            gw.write_config(good)
            gw.reload()
            deadline = time.monotonic() + 10
            while gw.metric('kup_gateway_config_reloads_total{result="ok"}') < 1:
                self.assertLess(time.monotonic(), deadline, gw.log())
                time.sleep(0.05)
            time.sleep(0.3)
        finally:
            t = load.stop()
        self.assertEqual(t.errors, [], f"{len(t.errors)} of {t.total} failed")
        import json
        _, _, body = gw.get("/")
        self.assertEqual(json.loads(body)["host"], "moved.example")
        self.assertTrue(set(t.pod) <= set(v1))
        # the unchanged cluster's ClusterClient was reused: its watches were never reopened
        self.assertTrue(watches_before <= {w["id"] for w in a.sim.watches()})
        self.assertStopsCleanly(gw)


class InFlight(GatewayTest):
    def _slow_setup(self):
        a, b = self.env.cluster("tke-a"), self.env.cluster("tke-b")
        self.start_pods(a, 1)
        slow = self.start_pods(b, 1)[0]
        self.pods.mode(slow, delay_ms=1500)
        cfg = gateway_config([a, b], [{"name": "web", "services": [svc("tke-a")]},
                                      {"name": "slow", "services": [svc("tke-b")]}],
                             [{"host": "*", "path_prefix": "/", "upstream": "web"},
                              {"host": "*", "path_prefix": "/slow", "upstream": "slow"}])
        gw = self.env.gateway(cfg)
        gw.wait_ready()
        return a, cfg, gw, slow

    def _in_background(self, fn):
        import threading
        out = {}
        t = threading.Thread(target=lambda: out.setdefault("r", fn()))
        t.start()
        return t, out

    def test_a_request_in_flight_finishes_on_an_upstream_that_a_reload_removed(self):
        a, cfg, gw, slow = self._slow_setup()
        t, out = self._in_background(lambda: gw.get("/slow"))
        time.sleep(0.5)
        gone = gateway_config([a], [{"name": "web", "services": [svc("tke-a")]}])  # no tke-b, no "slow"
        gw.write_config(gone)
        gw.reload()
        deadline = time.monotonic() + 5
        while gw.metric('kup_gateway_config_reloads_total{result="ok"}') < 1:
            self.assertLess(time.monotonic(), deadline, gw.log())
            time.sleep(0.02)
        self.assertEqual(gw.metric("kup_gateway_retired_generations"), 1)  # still finishing /slow
        t.join(10)
        status, headers, _ = out["r"]
        self.assertEqual(status, 200)
        self.assertEqual(headers["x-pod"], slow)
        self.assertEqual(gw.metric("kup_gateway_retired_generations"), 0)
        self.assertEqual(gw.get("/slow")[0], 200)  # now routed by "/" to web
        self.assertEqual(gw.get("/slow")[1]["x-cluster"], "tke-a")
        self.assertStopsCleanly(gw)

    def test_sigterm_lets_a_request_in_flight_finish_then_exits_cleanly(self):
        a, cfg, gw, slow = self._slow_setup()
        t, out = self._in_background(lambda: gw.get("/slow"))
        time.sleep(0.5)
        import signal as _signal
        os.kill(gw.proc.pid, _signal.SIGTERM)
        t.join(10)
        status, headers, _ = out["r"]
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("connection"), "close")
        self.assertStopsCleanly(gw)


class ConfigErrors(unittest.TestCase):
    def test_config_errors_are_reported_with_file_line_path_and_value(self):
        if not os.path.exists(gateway_binary()):
            self.skipTest("kup-gateway is not built")
        env = Env()
        self.addCleanup(env.close)
        d = env.tmpdir()
        path = os.path.join(d, "gateway.yaml")
        with open(path, "w") as f:
            f.write("listeners: [{port: 0}]\n"
                    "clusters: [{name: tke-a, kubeconfig: /nonexistent}]\n"
                    "upstreams:\n"
                    "  - name: web\n"
                    "    servcies: []\n"
                    "    services:\n"
                    "      - {cluster: tke-a, namespace: Default, service: web, port: http}\n"
                    "routes: [{upstream: web}]\n")
        for args in (["--check"], []):
            r = subprocess.run([gateway_binary(), "--config", path] + args, capture_output=True, text=True,
                               timeout=20)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn(f'{path}:5: upstreams[0].servcies: unknown key "servcies"', r.stderr)
            self.assertIn(f'{path}:7: upstreams[0].services[0].namespace: "Default" is not a DNS-1123 label',
                          r.stderr)


class Admin(GatewayTest):
    def test_readyz_names_what_is_missing_and_metrics_carry_gateway_and_upstream_families(self):
        a = self.env.cluster("tke-a")
        self.start_pods(a, 1)
        ups = [{"name": "web", "services": [svc("tke-a")]},
               {"name": "ghost", "services": [{"cluster": "tke-a", "service": "nothing", "port": "http"}]}]
        gw = self.env.gateway(gateway_config([a], ups))
        time.sleep(1.0)
        status, body = gw.admin("/readyz")
        self.assertEqual(status, 503)
        self.assertIn("upstream ghost", body)
        self.assertIn("tke-a/default/nothing", body)
        self.assertEqual(gw.get("/")[0], 200)
        _, text = gw.admin("/metrics")
        self.assertIn('kup_gateway_responses_total{upstream="web",code="200"} 1', text)
        self.assertIn("kupstream_", text)
        self.assertRegex(text, r"\nkup_gateway_heap_trims_total \d+\n")  # server.heap_trim_mib defaults to 8
        rss = re.search(r"\nprocess_resident_memory_bytes (\d+)\n", text)
        self.assertIsNotNone(rss)
        self.assertGreater(int(rss.group(1)), 1 << 20)
        types = [line for line in text.splitlines() if line.startswith("# TYPE ")]
        self.assertEqual(len(types), len(set(types)), "a metric family is declared twice")
        self.assertStopsCleanly(gw)


class Streaming(GatewayTest):
    def test_large_bodies_stream_both_ways(self):
        import http.client
        a = self.env.cluster("tke-a")
        self.start_pods(a, 1)
        gw = self.env.gateway(gateway_config([a], [{"name": "web", "services": [svc("tke-a")]}]))
        gw.wait_ready()
        body = os.urandom(3 * 1024 * 1024)
        c = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)

        def chunks():
            for i in range(0, len(body), 100_000):
                yield body[i:i + 100_000]
        c.request("POST", "/echo", body=chunks(), encode_chunked=True)
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.read(), body)
        c.request("GET", "/stream/40")
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        self.assertEqual(len(r.read()), 40 * 1024)
        c.request("GET", "/bytes/5000000")
        r = c.getresponse()
        self.assertEqual(len(r.read()), 5000000)
        c.close()
        self.assertStopsCleanly(gw)


if __name__ == "__main__":
    unittest.main()
