"""Request smuggling through kup-gateway: ambiguous or malformed request framing is refused with
400 and a closed connection, and nothing of it reaches the Pod.

The Pod is a recording TCP server (every byte it receives is kept), discovered through kubesim
like any other. Each case sends raw bytes on a fresh client connection and reads until the
gateway closes it. See docs/security.md ("Request smuggling")."""

import os
import re
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import Env, gateway_binary, gateway_config  # noqa: E402

PORT = 8080


class RecordingPod:
    """Answers each complete request (head and Content-Length or chunked body) with 200 "ok";
    keeps every byte it receives and the request line of every complete request."""

    def __init__(self, address):
        self.lock = threading.Lock()
        self.received = b""
        self.requests = []  # request lines seen
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, PORT))
        self.sock.listen(64)
        self.stopping = False
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf = b""
        try:
            while True:
                data = c.recv(65536)
                if not data:
                    return
                with self.lock:
                    self.received += data
                buf += data
                while b"\r\n\r\n" in buf:
                    head, rest = buf.split(b"\r\n\r\n", 1)
                    length, chunked = 0, False
                    for line in head.split(b"\r\n")[1:]:
                        k, _, v = line.partition(b":")
                        if k.strip().lower() == b"content-length":
                            length = int(v.strip())
                        if k.strip().lower() == b"transfer-encoding":
                            chunked = b"chunked" in v.lower()
                    if chunked:  # complete once the last chunk arrived (enough for these tests)
                        end = rest.find(b"0\r\n\r\n")
                        if end < 0:
                            break
                        length = end + 5
                    if len(rest) < length:
                        break
                    buf = rest[length:]
                    with self.lock:
                        self.requests.append(head.split(b"\r\n")[0].decode(errors="replace"))
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except OSError:
            return
        finally:
            c.close()

    def snapshot(self):
        with self.lock:
            return self.received, list(self.requests)

    def reset(self):
        with self.lock:
            self.received, self.requests = b"", []

    def close(self):
        self.stopping = True
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def exchange(port, data, timeout=5.0):
    """Sends data on a new connection; returns (everything received, closed_by_gateway)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        got = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                return got, True
            except socket.timeout:
                return got, False
            if not chunk:
                return got, True
            got += chunk
        return got, False
    finally:
        s.close()


def statuses(raw):
    """The status codes of the responses in raw (bodies here never contain a status line)."""
    return [int(m) for m in re.findall(rb"HTTP/1\.[01] (\d{3}) ", raw)]


H = b"Host: pod.test\r\n"

# name → bytes. None of these may reach the Pod.
REFUSED = {
    "Content-Length and Transfer-Encoding": b"POST / HTTP/1.1\r\n" + H +
        b"Content-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n" + H + b"\r\n",
    "Transfer-Encoding then Content-Length": b"POST / HTTP/1.1\r\n" + H +
        b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n" + H + b"\r\n",
    "duplicate equal Content-Length": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    "duplicate differing Content-Length": b"POST / HTTP/1.1\r\n" + H +
        b"Content-Length: 5\r\nContent-Length: 44\r\n\r\nhelloGET /smuggled HTTP/1.1\r\n" + H + b"\r\n",
    "Content-Length list": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5, 5\r\n\r\nhello",
    "signed Content-Length": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +5\r\n\r\nhello",
    "obs-fold": b"GET / HTTP/1.1\r\n" + H + b"X-A: b\r\n c\r\n\r\n",
    "obs-fold with a tab, empty first line": b"GET / HTTP/1.1\r\n" + H + b"X-A:\r\n\tc\r\n\r\n",
    "obs-fold hiding Transfer-Encoding": b"POST / HTTP/1.1\r\n" + H +
        b"Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n" + H + b"\r\n",
    "bare LF line endings": b"GET / HTTP/1.1\nHost: pod.test\n\n",
    "bare LF after the request line": b"GET / HTTP/1.1\nHost: pod.test\r\n\r\n",
    "bare LF inside the headers": b"GET / HTTP/1.1\r\n" + H + b"X: y\nContent-Length: 0\r\n\r\n",
    "bare CR": b"GET / HTTP/1.1\r\n" + H + b"X: y\rZ: w\r\n\r\n",
    "space before the colon": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    "chunk size not hex": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    "chunk size overflow": b"POST / HTTP/1.1\r\n" + H +
        b"Transfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n",
    "negative chunk size": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
    "0x chunk size": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
    "space after the chunk size": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n",
    "bare LF after the chunk size": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n",
    "chunk data without CRLF": b"POST / HTTP/1.1\r\n" + H +
        b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\nGET /smuggled HTTP/1.1\r\n" + H + b"\r\n",
    "unknown transfer coding": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\nabc",
    "chunked not last": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
    "Transfer-Encoding twice": b"POST / HTTP/1.1\r\n" + H +
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "Transfer-Encoding in HTTP/1.0": b"POST / HTTP/1.0\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "NUL in a header value": b"GET / HTTP/1.1\r\n" + H + b"X: a\x00b\r\n\r\n",
    "invalid request then a pipelined valid one": b"GET / HTTP/1.1\nHost: pod.test\n\nGET /second HTTP/1.1\r\n" + H + b"\r\n",
    "empty lines before a folded request": b"\r\n\r\nGET / HTTP/1.1\r\n" + H + b"X-A: b\r\n c\r\n\r\n",
}


class Smuggling(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(gateway_binary()):
            raise unittest.SkipTest(f"{gateway_binary()} is not built")
        cls.env = Env()
        try:
            cluster = cls.env.cluster("tke-a")
            address = cls.env.address(7)
            cls.pod = RecordingPod(address)
            cls.env.defer(cls.pod.close)
            cluster.set_pod("recorder", address)
            ups = [{"name": "web", "services": [{"cluster": "tke-a", "namespace": "default", "service": "httpbin",
                                                 "port": "http"}],
                    "retries": {"max": 0}}]
            cfg = gateway_config([cluster], ups)
            cfg["server"]["max_body_bytes"] = 1000
            cls.gw = cls.env.gateway(cfg, log_level="debug")
            cls.gw.wait_ready()
        except BaseException:
            cls.env.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def setUp(self):
        self.pod.reset()

    def assertRefused(self, name, data, expect=400):
        got, closed = exchange(self.gw.port, data)
        self.assertEqual(statuses(got), [expect], f"{name}: {got!r}")
        self.assertTrue(closed, f"{name}: connection left open")

    def test_a_valid_request_reaches_the_recording_pod(self):
        got, _ = exchange(self.gw.port, b"GET /valid HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
        self.assertEqual(statuses(got), [200], got)
        _, requests = self.pod.snapshot()
        self.assertEqual(requests, ["GET /valid HTTP/1.1"])

    def test_ambiguous_or_malformed_framing_is_refused_and_nothing_reaches_the_pod(self):
        for name, data in REFUSED.items():
            with self.subTest(name):
                self.assertRefused(name, data)
                time.sleep(0.05)
                received, _ = self.pod.snapshot()
                self.assertEqual(received, b"", f"{name}: the Pod received {received!r}")
        time.sleep(0.2)  # anything forwarded would have arrived by now
        received, requests = self.pod.snapshot()
        self.assertEqual(received, b"", f"the Pod saw {requests}")
        self.assertIn("bare LF in the request head", self.gw.log())
        self.assertIn("obsolete line folding", self.gw.log())
        self.assertIn("chunk data not followed by CRLF", self.gw.log())

    def test_a_valid_request_then_an_invalid_one_pipelined_only_the_first_reaches_the_pod(self):
        data = (b"GET /first HTTP/1.1\r\n" + H + b"\r\n" +
                b"POST /x HTTP/1.1\r\n" + H + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab" +
                b"GET /third HTTP/1.1\r\n" + H + b"\r\n")
        got, closed = exchange(self.gw.port, data)
        self.assertEqual(statuses(got), [200, 400], got)
        self.assertTrue(closed)
        _, requests = self.pod.snapshot()
        self.assertEqual(requests, ["GET /first HTTP/1.1"])

    def test_a_bad_chunk_after_a_good_one_is_refused_and_the_smuggled_request_never_reaches_the_pod(self):
        # The first chunk is streamed to the Pod as it arrives (bodies are not buffered whole);
        # the bad second chunk cancels that request: the Pod sees a cut body and a closed
        # connection, never a complete request and never the request hidden behind it.
        data = (b"POST /upload HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\nzz\r\nGET /smuggled HTTP/1.1\r\n" + H + b"\r\n")
        self.assertRefused("bad second chunk", data)
        time.sleep(0.2)
        received, requests = self.pod.snapshot()
        self.assertEqual(requests, [])
        self.assertNotIn(b"/smuggled", received)

    def test_a_transfer_coding_other_than_chunked_is_refused_with_501(self):
        self.assertRefused("gzip, chunked", b"POST / HTTP/1.1\r\n" + H +
                           b"Transfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", expect=501)
        received, _ = self.pod.snapshot()
        self.assertEqual(received, b"")

    def test_a_body_over_max_body_bytes_is_refused_with_413_before_it_reaches_the_pod(self):
        self.assertRefused("Content-Length over the limit",
                           b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1001\r\n\r\n" + b"x" * 1001, expect=413)
        self.assertRefused("chunked body over the limit",
                           b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3e9\r\n" + b"x" * 1001 +
                           b"\r\n0\r\n\r\n", expect=413)
        received, _ = self.pod.snapshot()
        self.assertEqual(received, b"")
        self.assertIn("over max_body_bytes (1000)", self.gw.log())
        got, _ = exchange(self.gw.port, b"POST /small HTTP/1.1\r\n" + H + b"Connection: close\r\n"
                          b"Content-Length: 1000\r\n\r\n" + b"y" * 1000)
        self.assertEqual(statuses(got), [200], got)


if __name__ == "__main__":
    unittest.main()
