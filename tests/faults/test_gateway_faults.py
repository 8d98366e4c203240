"""The Pod-fault suite through kup-gateway: one kubesim cluster, three pods.py Pods behind the
upstream "web" (and three HTTPS Pods behind "tls"), four keep-alive clients sending requests the
whole time while one Pod misbehaves (tests/support/pods.py failure modes), then recovers. Each
case asserts the requests the clients saw fail (zero where a retry is allowed, otherwise exactly
the requests the Pod cut), the ejection and recovery times against the config, the metrics that
name what happened, and that kup-gateway exits 0 at the end (its loop closed cleanly).
docs/reliability.md lists every case. Everything started is stopped by its PID."""

import os
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("KUPSTREAM_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SOURCE, "tests", "gateway"))

from harness import Env, Load, gateway_binary, gateway_config, make_test_ca  # noqa: E402

PORT = 8080
CONCURRENCY = 4
BASE_EJECTION_S = 0.5
MAX_EJECTION_S = 1.0
HEADER_TIMEOUT_MS = 800
FAULT_S = 2.0


def issue_cert(directory, ca_crt, ca_key, name, dns, expired=False):
    """A server certificate for `dns` from the CA (ca_crt, ca_key); valid now, or expired in 2020."""
    key, csr, crt = (os.path.join(directory, f"{name}.{ext}") for ext in ("key", "csr", "crt"))
    ext = os.path.join(directory, f"{name}.ext")
    with open(ext, "w") as f:
        f.write(f"subjectAltName=DNS:{dns}\nextendedKeyUsage=serverAuth\n")
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)  # noqa: E731
    run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
        "-out", csr, "-subj", f"/CN={dns}")
    if not expired:
        run("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial", "-out", crt, "-days", "2",
            "-extfile", ext)
        return crt, key
    # `openssl ca` takes explicit start and end dates, also in the past.
    db = os.path.join(directory, f"{name}-ca")
    os.makedirs(db, exist_ok=True)
    open(os.path.join(db, "index.txt"), "w").close()
    with open(os.path.join(db, "serial"), "w") as f:
        f.write("1000\n")
    cnf = os.path.join(db, "ca.cnf")
    with open(cnf, "w") as f:
        f.write(f"[ca]\ndefault_ca=d\n[d]\ndatabase={db}/index.txt\nnew_certs_dir={db}\nserial={db}/serial\n"
                f"default_md=sha256\npolicy=p\nunique_subject=no\n[p]\ncommonName=supplied\n"
                f"[ext]\nsubjectAltName=DNS:{dns}\nextendedKeyUsage=serverAuth\n")
    run("ca", "-batch", "-config", cnf, "-cert", ca_crt, "-keyfile", ca_key, "-in", csr, "-out", crt,
        "-startdate", "20200101000000Z", "-enddate", "20200102000000Z", "-extensions", "ext", "-notext")
    return crt, key


class GatewayPodFaults(unittest.TestCase):
    """One gateway for every case (each case cleans up after itself and waits for the Pods)."""

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(gateway_binary()):
            raise unittest.SkipTest(f"{gateway_binary()} is not built")
        cls.env = Env()
        try:
            cls._start()
        except BaseException:
            cls.env.close()
            raise

    @classmethod
    def _start(cls):
        env = cls.env
        cls.pods = env.pods()
        cls.cluster = env.cluster("tke-a")
        cls.tls_cluster = env.cluster("tke-b", svc="secure")
        cls.names, cls.addrs = [], {}
        for i in range(1, 4):
            name = f"web-{i}"
            cls.addrs[name] = env.address(i)
            cls.pods.add(name, env.address(i), PORT, "v1", "tke-a")
            cls.cluster.set_pod(name, env.address(i), publish=False)
            cls.names.append(name)
        cls.cluster.publish()
        d = env.tmpdir()
        cls.ca, crt, key = make_test_ca(d, ["secure.default.svc"])
        cls.good = (crt, key)
        cls.rotated = issue_cert(d, cls.ca, os.path.join(d, "ca.key"), "rotated", "secure.default.svc")
        cls.expired = issue_cert(d, cls.ca, os.path.join(d, "ca.key"), "expired", "secure.default.svc", expired=True)
        _, other_crt, other_key = make_test_ca(env.tmpdir(), ["other.example"])
        cls.wrong = (other_crt, other_key)
        cls.tls_names = []
        for i in range(11, 14):
            name = f"tls-{i}"
            cls.addrs[name] = env.address(i)
            cls.pods.add(name, env.address(i), PORT, "v1", "tke-b", cert=crt, key=key)
            cls.tls_cluster.set_pod(name, env.address(i), publish=False)
            cls.tls_names.append(name)
        cls.tls_cluster.publish()
        common = {"retries": {"max": 2, "min_concurrent": 8},
                  "timeouts": {"connect_ms": 1000, "response_header_ms": HEADER_TIMEOUT_MS},
                  "outlier": {"consecutive_failures": 3, "base_ejection_ms": int(BASE_EJECTION_S * 1000),
                              "max_ejection_ms": int(MAX_EJECTION_S * 1000), "max_ejected_percent": 50}}
        ups = [dict(common, name="web", services=[{"cluster": "tke-a", "service": "httpbin", "port": "http"}]),
               dict(common, name="tls", backend="HTTPS", tls={"ca_file": cls.ca},
                    services=[{"cluster": "tke-b", "service": "secure", "port": "http"}])]
        cls.gw = env.gateway(gateway_config([cls.cluster, cls.tls_cluster], ups, [
            {"host": "*", "path_prefix": "/", "upstream": "web"},
            {"host": "*", "path_prefix": "/tls", "upstream": "tls"}]))
        cls.gw.wait_ready()

    @classmethod
    def tearDownClass(cls):
        try:
            code = cls.gw.stop()
            if code != 0:
                raise AssertionError(f"kup-gateway exit status {code}\n{cls.gw.log()[-3000:]}")
        finally:
            cls.env.close()

    # ---- helpers

    def _pod_sample(self, family, upstream, name):
        _, text = self.gw.admin("/metrics")
        pod = f'pod="{self.addrs[name]}:{PORT}"'
        for line in text.splitlines():
            if line.startswith(family + "{") and f'upstream="{upstream}"' in line and pod in line:
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def wait_all_back(self, upstream, names, timeout=10):
        """Every Pod of the upstream has weight again (no ejection left over from a case)."""
        deadline = time.monotonic() + timeout
        while any(self._pod_sample("kupstream_pod_weight", upstream, n) == 0 for n in names):
            self.assertLess(time.monotonic(), deadline, "a Pod stayed out")
            time.sleep(0.05)

    def run_fault(self, victim, apply, clear, upstream="web", path="/", names=None):
        """Traffic; apply() makes `victim` misbehave for FAULT_S; clear(); traffic until it answers again."""
        names = names or self.names
        self.wait_all_back(upstream, names)
        before = self.pods.list()[victim]
        ejections = self._pod_sample("kupstream_pod_ejections_total", upstream, victim)
        aborted = self.gw.metric("kup_gateway_streams_aborted_total")
        retries = self.gw.metric(f'kupstream_retries_total{{upstream="{upstream}"}}')
        load = Load(self.gw.port, concurrency=CONCURRENCY, path=path).start()
        out = {"eject_s": None, "recover_s": None}
        try:
            time.sleep(0.3)
            on = time.monotonic()
            apply()
            while time.monotonic() - on < FAULT_S:
                if out["eject_s"] is None and \
                        self._pod_sample("kupstream_pod_ejections_total", upstream, victim) > ejections:
                    out["eject_s"] = time.monotonic() - on
                time.sleep(0.03)
            off = time.monotonic()
            clear()
            at_off = self.pods.list()[victim]["requests"]
            while time.monotonic() - off < 5:
                if self.pods.list()[victim]["requests"] > at_off:
                    out["recover_s"] = time.monotonic() - off
                    break
                time.sleep(0.02)
            time.sleep(0.2)
        finally:
            out["tally"] = load.stop()
        after = self.pods.list()[victim]
        out["faulted"] = after["faulted"] - before["faulted"]  # (a removed and re-added Pod starts at 0)
        out["ejections"] = self._pod_sample("kupstream_pod_ejections_total", upstream, victim) - ejections
        out["aborted"] = self.gw.metric("kup_gateway_streams_aborted_total") - aborted
        out["retries"] = self.gw.metric(f'kupstream_retries_total{{upstream="{upstream}"}}') - retries
        t = out["tally"]
        print(f"\n{self.id().rsplit('.', 1)[-1]}: {t.total} requests, {len(t.errors)} failed, "
              f"faulted {out['faulted']}, ejections +{out['ejections']}, retries +{out['retries']}, "
              f"aborted +{out['aborted']}, ejected after {out['eject_s']} s, answered again after "
              f"{out['recover_s']} s", file=sys.stderr)
        return out

    def mode_fault(self, victim, mode, n=0, **kw):
        return self.run_fault(victim, lambda: self.pods.mode(victim, fail=mode, n=n),
                              lambda: self.pods.mode(victim, fail=None), **kw)

    def assertNoFailures(self, r):
        self.assertGreater(r["tally"].total, 50)
        self.assertEqual(r["tally"].errors, [], f"{len(r['tally'].errors)} of {r['tally'].total} failed")

    def assertEjectedAndBack(self, r):
        self.assertGreaterEqual(r["ejections"], 1)
        self.assertIsNotNone(r["eject_s"])
        self.assertLessEqual(r["eject_s"], HEADER_TIMEOUT_MS / 1000 + 1.0)
        self.assertIsNotNone(r["recover_s"])
        # A request that met the fault just before it ended may fail one header timeout later and
        # start a last ejection (at most max_ejection); plus 1 s of slack for the shared machine.
        self.assertLessEqual(r["recover_s"], HEADER_TIMEOUT_MS / 1000 + MAX_EJECTION_S + 1.0)

    # ---- the faults

    def test_refused_connections_are_retried_and_the_pod_ejected_then_back(self):
        victim = self.names[0]
        r = self.run_fault(victim, lambda: self.pods.remove(victim),
                           lambda: self.pods.add(victim, self.addrs[victim], PORT, "v1", "tke-a"))
        self.assertNoFailures(r)
        self.assertEjectedAndBack(r)
        self.assertGreater(r["retries"], 0)

    def test_reset_before_the_response_is_retried(self):
        r = self.mode_fault(self.names[1], "reset")
        self.assertNoFailures(r)
        self.assertEjectedAndBack(r)
        self.assertGreater(r["retries"], 0)

    def test_reset_mid_body_fails_exactly_the_requests_the_pod_cut(self):
        r = self.mode_fault(self.names[1], "reset_body")
        self.assertGreater(r["faulted"], 0)
        self.assertEqual(len(r["tally"].errors), r["faulted"], r["tally"].errors[:3])
        self.assertEqual(r["aborted"], r["faulted"])  # kup_gateway_streams_aborted_total names them
        self.assertEjectedAndBack(r)

    def test_a_pod_that_never_answers_times_out_and_is_retried(self):
        r = self.mode_fault(self.names[2], "hang")
        self.assertNoFailures(r)
        self.assertEjectedAndBack(r)

    def test_garbage_is_retried(self):
        r = self.mode_fault(self.names[0], "garbage")
        self.assertNoFailures(r)
        self.assertEjectedAndBack(r)

    def test_keep_alive_closed_after_each_response_is_not_a_failure(self):
        r = self.mode_fault(self.names[1], "close_each")
        self.assertNoFailures(r)
        self.assertEqual(r["ejections"], 0)

    def test_keep_alive_closed_after_three_responses_is_not_a_failure(self):
        r = self.mode_fault(self.names[2], "close_after", n=3)
        self.assertNoFailures(r)
        self.assertEqual(r["ejections"], 0)

    def test_slow_loris_head_times_out_and_is_retried(self):
        r = self.mode_fault(self.names[0], "dribble", n=50)  # ~3 s for the head; the timeout is 0.8 s
        self.assertNoFailures(r)
        self.assertEjectedAndBack(r)

    def test_503_is_retried_on_another_pod(self):
        r = self.mode_fault(self.names[1], "503")
        self.assertNoFailures(r)
        self.assertEjectedAndBack(r)
        self.assertGreaterEqual(r["retries"], 3)

    def _cert_fault(self, cert):
        victim = self.tls_names[0]
        return self.run_fault(victim, lambda: self.pods.cert(victim, *cert), lambda: self.pods.cert(victim, *self.good),
                              upstream="tls", path="/tls", names=self.tls_names)

    def test_https_pod_certificate_rotated_to_another_valid_one_is_not_a_failure(self):
        r = self._cert_fault(self.rotated)
        self.assertNoFailures(r)
        self.assertEqual(r["ejections"], 0)

    def test_https_pod_certificate_from_an_untrusted_ca_is_retried_and_ejected(self):
        r = self._cert_fault(self.wrong)
        self.assertNoFailures(r)
        self.assertEjectedAndBack(r)

    def test_https_pod_certificate_expired_is_retried_and_ejected(self):
        r = self._cert_fault(self.expired)
        self.assertNoFailures(r)
        self.assertEjectedAndBack(r)

    def test_a_pod_leaving_the_endpointslice_finishes_its_requests_in_flight(self):
        victim = self.names[2]
        self.wait_all_back("web", self.names)
        self.pods.mode(victim, delay_ms=400)
        load = Load(self.gw.port, concurrency=CONCURRENCY).start()
        try:
            deadline = time.monotonic() + 5
            while self.pods.list()[victim]["connections"] == 0:
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.02)
            time.sleep(0.1)
            in_flight = self._pod_sample("kupstream_pod_in_flight", "web", victim)
            self.cluster.drop_pod(victim)
            deadline = time.monotonic() + 10
            while self._pod_sample("kupstream_pod_weight", "web", victim) != 0 or \
                    self._pod_sample("kupstream_pod_in_flight", "web", victim) != 0:
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.02)
            at_removal = self.pods.list()[victim]["requests"]
            time.sleep(1.0)
        finally:
            t = load.stop()
            self.pods.mode(victim, delay_ms=0)
            self.cluster.set_pod(victim, self.addrs[victim])
        print(f"\nslice removal: {t.total} requests, {len(t.errors)} failed, {in_flight} in flight on the Pod",
              file=sys.stderr)
        self.assertGreater(t.total, 20)
        self.assertEqual(t.errors, [])
        self.assertEqual(self.pods.list()[victim]["requests"], at_removal, "a request reached the removed Pod")


if __name__ == "__main__":
    unittest.main()
