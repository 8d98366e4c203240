"""End-to-end test of examples/c-gateway (kup-c-gateway, a gateway in C on the C ABI): a kubesim
cluster, two pods.py Pods, the gateway process, and real HTTP clients. Stops everything it
started (Env.close, by PID), also when a test fails."""

import http.client
import json
import os
import signal
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("KUPSTREAM_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SOURCE, "tests", "gateway"))

from harness import Env  # noqa: E402

PORT = 8080
UPSTREAM = """name: c-web
services:
  - cluster: tke-a
    namespace: default
    service: httpbin
    port: http
timeouts: {connect_ms: 5000, response_header_ms: 60000}
"""


class CGateway(unittest.TestCase):
    def setUp(self):
        binary = os.environ.get("KUP_C_GATEWAY", "")
        if not os.path.exists(binary):
            self.skipTest(f"kup-c-gateway is not built ({binary!r})")
        self.env = Env()
        self.addCleanup(self.env.close)
        self.cluster = self.env.cluster("tke-a")
        self.pods = self.env.pods()
        self.names = []
        for i in (1, 2):
            name = f"tke-a-v1-{i}"
            self.pods.add(name, self.env.address(i), PORT, "v1", "tke-a")
            self.cluster.set_pod(name, self.env.address(i), publish=False)
            self.names.append(name)
        self.cluster.publish()
        d = self.env.tmpdir()
        with open(os.path.join(d, "upstream.yaml"), "w") as f:
            f.write(UPSTREAM)
        ready = os.path.join(d, "ready.json")
        self.log_path = os.path.join(d, "gateway.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([binary, "--upstream", os.path.join(d, "upstream.yaml"),
                                      "--kubeconfig", self.cluster.kubeconfig, "--cluster", "tke-a",
                                      "--listen", "127.0.0.1:0", "--ready-file", ready],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.addCleanup(self.stop)
        deadline = time.monotonic() + 15
        while not os.path.exists(ready) or os.path.getsize(ready) == 0:
            self.assertIsNone(self.proc.poll(), self.read_log())
            self.assertLess(time.monotonic(), deadline, self.read_log())
            time.sleep(0.02)
        with open(ready) as f:
            self.port = json.load(f)["port"]
        # Ready once both Pods answer.
        seen = set()
        while len(seen) < 2:
            self.assertLess(time.monotonic(), deadline + 10, self.read_log())
            status, headers, _ = self.request("GET", "/")
            if status == 200:
                seen.add(headers.get("x-pod"))
            else:
                time.sleep(0.05)

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.log.closed:
            return self.proc.returncode
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()
        if self.proc.returncode != 0 or os.environ.get("KUP_TEST_VERBOSE"):
            sys.stderr.write(f"kup-c-gateway exited {self.proc.returncode}; its log:\n{self.read_log()[-4000:]}\n")
        return self.proc.returncode

    def request(self, method, path, body=None, headers=None, conn=None):
        c = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            if conn is None:
                c.close()

    def test_get_post_stream_metrics_no_endpoint_and_clean_exit(self):
        # Keep-alive GETs on one connection spread over both Pods.
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        counts = {}
        for _ in range(20):
            status, headers, body = self.request("GET", "/hello?x=1", headers={"Host": "web.test"}, conn=conn)
            self.assertEqual(status, 200)
            doc = json.loads(body)
            self.assertEqual(doc["path"], "/hello?x=1")
            self.assertEqual(doc["x_forwarded_host"], "web.test")
            self.assertEqual(doc["x_forwarded_for"], "127.0.0.1")
            counts[headers["x-pod"]] = counts.get(headers["x-pod"], 0) + 1
        conn.close()
        self.assertEqual(counts, {self.names[0]: 10, self.names[1]: 10})

        # A POST with Content-Length, and a chunked 1 MiB POST (streamed, with backpressure).
        status, _, body = self.request("POST", "/echo", body=b"hello pods")
        self.assertEqual((status, body), (200, b"hello pods"))
        big = bytes(range(256)) * 4096  # 1 MiB: four times the library's write high-water mark
        # (an iterable body without Content-Length: http.client sends it chunked)
        status, _, body = self.request("POST", "/echo", body=iter([big[i:i + 65536] for i in range(0, len(big), 65536)]))
        self.assertEqual(status, 200)
        self.assertEqual(len(body), len(big))
        self.assertEqual(body, big)

        # A chunked response from the Pod is relayed chunked.
        status, headers, body = self.request("GET", "/stream/5")
        self.assertEqual(status, 200)
        self.assertEqual(len(body), 5 * 1024)

        # Metrics through the C ABI.
        status, _, body = self.request("GET", "/__kup/metrics")
        self.assertEqual(status, 200)
        self.assertIn(b'upstream="c-web"', body)
        self.assertIn(b"kupstream_", body)

        # No Pod left: 503 naming the code; the gateway keeps running.
        for name in self.names:
            self.cluster.drop_pod(name, publish=False)
        self.cluster.publish()
        deadline = time.monotonic() + 15
        while True:
            status, _, body = self.request("GET", "/")
            if status == 503:
                break
            self.assertLess(time.monotonic(), deadline, self.read_log())
            time.sleep(0.05)
        self.assertIn(b"KUP_NO_ENDPOINT", body)

        # SIGTERM: everything is destroyed and uv_loop_close succeeds (exit status 0).
        self.assertEqual(self.stop(), 0, self.read_log())


if __name__ == "__main__":
    unittest.main()
