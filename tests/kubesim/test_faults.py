# The private-range IP literals here are values to store and compare: addresses are data only (nothing connects to them).
"""kubesim's fault controls (admin API), checked with a raw HTTP client."""

import json
import os
import socket
import ssl
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import captures  # noqa: E402
from kubesim_client import KubeSim, RawStream, path_for  # noqa: E402
from test_api import ES, USERS, ApiTestBase, capture_slice  # noqa: E402


class RequestFaults(ApiTestBase):
    def test_429_with_retry_after_then_normal_service(self):
        self.sim.fault(code=429, retry_after=3, count=1, match={"resource": ES, "verb": "list"})
        st, hdrs, body = self.sim.request("GET", path_for(ES, "default"))
        self.assertEqual(st, 429)
        self.assertEqual(hdrs["retry-after"], "3")
        body = json.loads(body)
        self.assertEqual((body["kind"], body["reason"], body["code"]), ("Status", "TooManyRequests", 429))
        self.assertEqual(body["details"]["retryAfterSeconds"], 3)
        st, _, _ = self.sim.request("GET", path_for(ES, "default"))
        self.assertEqual(st, 200)

    def test_500_for_a_number_of_requests(self):
        self.sim.fault(code=500, count=2, match={"resource": ES})
        codes = [self.sim.request("GET", path_for(ES, "default"))[0] for _ in range(3)]
        self.assertEqual(codes, [500, 500, 200])

    def test_faults_match_only_what_they_name(self):
        self.sim.fault(code=500, count=1, match={"resource": "services"})
        self.assertEqual(self.sim.request("GET", path_for(ES, "default"))[0], 200)
        self.assertEqual(self.sim.request("GET", path_for("services", "default"))[0], 500)

    def test_watch_requests_can_fail_before_streaming(self):
        self.sim.fault(code=500, count=1, match={"verb": "watch"})
        s = RawStream(self.sim, path_for(ES, "default", query={"watch": "1", "timeoutSeconds": "1"}))
        self.addCleanup(s.close)
        self.assertEqual(s.status, 500)
        self.assertEqual(json.loads(s.read_body())["reason"], "InternalError")

    def test_close_fault_drops_the_connection_without_an_answer(self):
        self.sim.fault(type="close", count=1, match={"resource": ES})
        with self.assertRaises(Exception):
            self.sim.request("GET", path_for(ES, "default"))
        self.assertEqual(self.sim.request("GET", path_for(ES, "default"))[0], 200)


class Compaction(ApiTestBase):
    def test_list_exact_after_compaction_is_410_like_the_capture(self):
        ns = self.new_ns("c1")
        self.sim.apply(capture_slice(ns, "a"))
        _, lst = self.list(ns)
        self.sim.apply(capture_slice(ns, "b"))
        self.sim.compact()
        cap = captures.read_http("list-expired-exact-rv-after-compaction.http")
        st, hdrs, body = self.sim.request("GET", path_for(ES, ns, query={
            "resourceVersion": lst["metadata"]["resourceVersion"], "resourceVersionMatch": "Exact"}))
        self.assertEqual(st, 410)
        self.assertEqual(body, cap["body"])

    def test_watch_from_a_compacted_version_is_200_then_one_410_error_event(self):
        ns = self.new_ns("c2")
        _, lst = self.list(ns)
        old = lst["metadata"]["resourceVersion"]
        self.sim.apply(capture_slice(ns, "a"))
        self.sim.compact()
        cap = captures.read_http("watch-expired-rv1.http1-raw.http")
        s = self.watch(ns, resourceVersion=old)
        self.assertEqual(s.status, 200)
        self.assertEqual(s.headers["transfer-encoding"], "chunked")
        chunk = s.read_chunk()
        self.assertIsNone(s.read_chunk(), "the stream ends after the error")
        got, want = json.loads(chunk), json.loads(cap["chunks"][0])
        self.assertEqual(captures.shape(got), captures.shape(want))
        self.assertEqual(got["object"]["code"], 410)
        self.assertEqual(got["object"]["reason"], "Expired")
        self.assertRegex(got["object"]["message"], rf"^too old resource version: {old} \(\d+\)$")

    def test_etcd_only_compaction_still_lets_watches_replay_like_the_capture(self):
        ns = self.new_ns("c4")
        _, lst = self.list(ns)
        old = lst["metadata"]["resourceVersion"]
        self.sim.apply(capture_slice(ns, "web-3", "10.1.0.3"))
        self.sim.apply(capture_slice(ns, "web-3", "10.1.0.33"))
        self.sim.compact(scope="list")
        st, _, _ = self.sim.request("GET", path_for(ES, ns, query={"resourceVersion": old,
                                                                    "resourceVersionMatch": "Exact"}))
        self.assertEqual(st, 410)
        cap = captures.read_http("watch-old-rv-within-cache-after-compaction.http1-raw.http")
        s = self.watch(ns, resourceVersion=old, timeoutSeconds="1")
        chunk = s.read_chunk()
        self.assertIsNone(s.read_chunk())
        # both replayed events share one chunk, as in the capture
        self.assertEqual(len(cap["chunks"]), 1)
        got = [json.loads(l) for l in chunk.split(b"\n") if l]
        want = [json.loads(l) for l in cap["chunks"][0].split(b"\n") if l]
        self.assertEqual([e["type"] for e in got], [e["type"] for e in want])
        self.assertEqual([captures.shape(e)["object"].keys() for e in got],
                         [captures.shape(e)["object"].keys() for e in want])

    def test_expired_continue_is_410_with_a_fresh_continue_token(self):
        ns = self.new_ns("c3")
        for n in ("web-1", "web-2", "web-3"):
            self.sim.apply(capture_slice(ns, n))
        _, p1 = self.list(ns, limit="1")
        self.sim.apply(capture_slice(ns, "web-4"))
        self.sim.compact()
        cap = captures.read_http("list-expired-continue-after-compaction.http")
        st, _, body = self.sim.request("GET", path_for(ES, ns, query={"limit": "1",
                                                                       "continue": p1["metadata"]["continue"]}))
        self.assertEqual(st, 410)
        got, want = json.loads(body), json.loads(cap["body"])
        self.assertEqual(captures.shape(got), captures.shape(want))
        self.assertEqual(got["message"], want["message"])
        # the real token format: rv -1 and the same start key
        from kubesim import b64url_decode
        tok = json.loads(b64url_decode(got["metadata"]["continue"]))
        self.assertEqual(tok, {"v": "meta.k8s.io/v1", "rv": -1, "start": "web-1\x00"})
        real_tok = json.loads(b64url_decode(want["metadata"]["continue"]))
        self.assertEqual(set(tok), set(real_tok))
        # the fresh token continues (inconsistently) from the current state
        _, p2 = self.list(ns, limit="5", **{"continue": got["metadata"]["continue"]})
        self.assertEqual([i["metadata"]["name"] for i in p2["items"]], ["web-2", "web-3", "web-4"])


class WatchFaults(ApiTestBase):
    def open_watch(self, ns, **q):
        _, lst = self.list(ns)
        before = [w["id"] for w in self.sim.watches()]
        s = self.watch(ns, resourceVersion=lst["metadata"]["resourceVersion"], **q)
        w = self.sim.wait_watches(1, ES, after_id=max(before, default=0))
        return s, w[0]["id"]

    def test_drop_watches_cuts_the_stream_without_the_last_chunk(self):
        ns = self.new_ns("f1")
        s, wid = self.open_watch(ns)
        self.sim.watch_control("drop", ids=[wid])
        with self.assertRaises((EOFError, ConnectionError, ssl.SSLError, OSError)):
            s.read_chunk()

    def test_a_watch_whose_client_left_is_forgotten(self):
        ns = self.new_ns("f0")
        s, wid = self.open_watch(ns, timeoutSeconds="30")
        s.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and wid in [w["id"] for w in self.sim.watches()]:
            time.sleep(0.05)
        self.assertNotIn(wid, [w["id"] for w in self.sim.watches()])

    def test_a_watch_whose_client_reset_before_the_answer_is_forgotten(self):
        # The client sends its watch request and resets the connection while kubesim holds the
        # answer (a delay fault); the 200 head then fails to go out. Once the request is over (it
        # is in the request log), no watch of it may stay listed as open.
        ns = self.new_ns("f0r")
        _, lst = self.list(ns)
        self.sim.fault(type="delay", seconds=0.5, count=-1, match={"verb": "watch", "namespace": ns})
        path = path_for(ES, ns, query={"watch": "1", "timeoutSeconds": "30",
                                        "resourceVersion": lst["metadata"]["resourceVersion"]})
        sock = self.sim.ssl_context().wrap_socket(socket.create_connection((self.sim.host, self.sim.port), timeout=10),
                                                  server_hostname=self.sim.host)
        try:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: kubesim\r\nAuthorization: Bearer {self.sim.token()}\r\n\r\n"
                         .encode())
            def held():
                return any(f.get("hits") for f in self.sim.state()["faults"] if f["match"].get("namespace") == ns)
            deadline = time.monotonic() + 10
            while not held() and time.monotonic() < deadline:
                time.sleep(0.01)
            self.assertTrue(held(), "kubesim never held the request")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = reset
        finally:
            socket.socket.close(sock)
        done = []
        while not done and time.monotonic() < deadline:
            done = [r for r in self.sim.requests() if r["path"].endswith(f"/{ns}/endpointslices") and
                    r["query"].get("watch") == "1"]
            time.sleep(0.05)
        self.assertTrue(done, "the held watch request never finished")
        self.assertEqual([w for w in self.sim.watches(ES) if w.get("namespace") == ns], [])

    def test_drop_watches_cleanly_ends_the_stream(self):
        ns = self.new_ns("f1b")
        s, wid = self.open_watch(ns)
        self.sim.watch_control("drop", ids=[wid], mode="end")
        self.assertIsNone(s.read_chunk())

    def test_stalled_watch_sends_nothing_until_released(self):
        ns = self.new_ns("f2")
        s, wid = self.open_watch(ns, timeoutSeconds="10")
        self.sim.watch_control("stall", ids=[wid])
        self.sim.apply(capture_slice(ns, "a"))
        s.sock.settimeout(0.5)
        with self.assertRaises((TimeoutError, OSError)):
            s.read_chunk()
        s.sock.settimeout(5)
        self.sim.watch_control("unstall", ids=[wid])
        self.assertEqual(json.loads(s.read_chunk())["type"], "ADDED")

    def test_stall_for_a_time(self):
        ns = self.new_ns("f2b")
        s, wid = self.open_watch(ns, timeoutSeconds="10")
        self.sim.watch_control("stall", ids=[wid], seconds=0.6)
        t0 = time.monotonic()
        self.sim.apply(capture_slice(ns, "a"))
        self.assertEqual(json.loads(s.read_chunk())["type"], "ADDED")
        self.assertGreater(time.monotonic() - t0, 0.4)

    def test_malformed_json_is_injected_into_open_watches(self):
        ns = self.new_ns("f3")
        s, wid = self.open_watch(ns, timeoutSeconds="10")
        self.sim.watch_control("inject", kind="malformed", ids=[wid])
        chunk = s.read_chunk()
        self.assertTrue(chunk.endswith(b"\n"))
        with self.assertRaises(ValueError):
            json.loads(chunk)
        # the stream goes on afterwards
        self.sim.apply(capture_slice(ns, "a"))
        self.assertEqual(json.loads(s.read_chunk())["type"], "ADDED")

    def test_truncated_chunk_is_injected_into_the_next_watch(self):
        ns = self.new_ns("f4")
        self.sim.watch_control("inject", kind="truncated", target="next", resource=ES)
        s = self.watch(ns, timeoutSeconds="10")
        self.assertEqual(s.status, 200)
        with self.assertRaises((EOFError, ConnectionError, ssl.SSLError, OSError)):
            s.read_chunk()
        # only the next watch was affected
        s2, _ = self.open_watch(ns, timeoutSeconds="1")
        self.assertIsNone(s2.read_chunk())

    def test_error_event_can_be_injected(self):
        ns = self.new_ns("f5")
        s, wid = self.open_watch(ns, timeoutSeconds="10")
        self.sim.watch_control("error", ids=[wid], code=410)
        ev = json.loads(s.read_chunk())
        self.assertEqual((ev["type"], ev["object"]["code"], ev["object"]["reason"]), ("ERROR", 410, "Expired"))
        self.assertIsNone(s.read_chunk())


class WatchList(ApiTestBase):
    def test_watch_list_is_refused_with_422_like_the_capture(self):
        self.sim.config(watch_list="refuse")
        cap = captures.read_http("watch-list-refused-422.http")
        s = self.watch("default", sendInitialEvents="true", resourceVersionMatch="NotOlderThan",
                       allowWatchBookmarks="true")
        self.assertEqual(s.status, 422)
        self.assertEqual(s.read_body(), cap["body"])

    def test_watch_list_immediate_streams_initial_events_then_an_annotated_bookmark(self):
        self.sim.config(watch_list="support-immediate")
        self.addCleanup(self.sim.config, watch_list="refuse")
        ns = self.new_ns("wl")
        self.sim.apply(capture_slice(ns, "a"))
        self.sim.apply(capture_slice(ns, "b"))
        s = self.watch(ns, sendInitialEvents="true", resourceVersionMatch="NotOlderThan",
                       allowWatchBookmarks="true", timeoutSeconds="5")
        self.assertEqual(s.status, 200)
        evs = s.events(3, timeout=5)
        self.assertEqual([e["type"] for e in evs], ["ADDED", "ADDED", "BOOKMARK"])
        self.assertEqual(evs[2]["object"]["metadata"]["annotations"], {"k8s.io/initial-events-end": "true"})
        self.sim.apply(capture_slice(ns, "c"))
        self.assertEqual(s.events(1, timeout=5)[0]["type"], "ADDED")
        # without bookmarks the request is invalid
        s2 = self.watch(ns, sendInitialEvents="true", resourceVersionMatch="NotOlderThan")
        self.assertEqual(s2.status, 422)

    def test_watch_list_holds_the_initial_events_end_bookmark_until_the_type_changes(self):
        # The captured v1.28 timeline (watch-list-v1.28-bookmark-only-after-activity.txt): the
        # ADDED events at once; nothing after a write to another type (a Node here) or while
        # quiet; a write to the same type in ANOTHER namespace releases the bookmark within the
        # 1 s bookmark tick, at that write's resourceVersion.
        self.sim.config(watch_list="support")
        self.addCleanup(self.sim.config, watch_list="refuse")
        ns, other = self.new_ns("wlh"), self.new_ns("wlo")
        self.sim.apply(capture_slice(ns, "a"))
        s = self.watch(ns, sendInitialEvents="true", resourceVersionMatch="NotOlderThan",
                       allowWatchBookmarks="true", timeoutSeconds="20")
        self.assertEqual(s.status, 200)
        self.assertEqual([e["type"] for e in s.events(1, timeout=5)], ["ADDED"])
        self.sim.apply({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "wlh-node"}})
        self.sim.watch_control("bookmark", resource="endpointslices")  # an ordinary bookmark tick: not eligible
        s.sock.settimeout(1.5)
        with self.assertRaises(OSError):  # socket.timeout: nothing arrives
            s.read_chunk()
        [w] = [w for w in self.sim.watches("endpointslices") if w["namespace"] == ns]
        self.assertEqual(w["initialEventsEnd"], "pending")
        t0 = time.monotonic()
        written = self.sim.apply(capture_slice(other, "elsewhere"))
        ev = s.events(1, timeout=5)[0]
        self.assertLess(time.monotonic() - t0, 3.0)  # the 1 s tick, on a loaded machine
        self.assertEqual(ev["type"], "BOOKMARK")
        self.assertEqual(ev["object"]["metadata"]["annotations"], {"k8s.io/initial-events-end": "true"})
        self.assertEqual(ev["object"]["metadata"]["resourceVersion"], written["metadata"]["resourceVersion"])
        # A change in the watched namespace comes before its bookmark, as in the capture's first run.
        s2 = self.watch(ns, sendInitialEvents="true", resourceVersionMatch="NotOlderThan",
                        allowWatchBookmarks="true", timeoutSeconds="20")
        self.assertEqual([e["type"] for e in s2.events(1, timeout=5)], ["ADDED"])
        b = self.sim.apply(capture_slice(ns, "b"))
        evs = s2.events(2, timeout=5)
        self.assertEqual([e["type"] for e in evs], ["ADDED", "BOOKMARK"])
        self.assertEqual(evs[1]["object"]["metadata"]["resourceVersion"], b["metadata"]["resourceVersion"])
        # Then ordinary events follow.
        self.sim.apply(capture_slice(ns, "c"))
        self.assertEqual(s2.events(1, timeout=5)[0]["type"], "ADDED")


class Restarts(ApiTestBase):
    sim_args = ("--too-large-wait", "0.3")

    def test_restart_with_the_same_history_drops_connections_but_keeps_versions(self):
        ns = self.new_ns("r1")
        self.sim.apply(capture_slice(ns, "a"))
        _, lst = self.list(ns)
        rv = lst["metadata"]["resourceVersion"]
        s = self.watch(ns, resourceVersion=rv)
        self.sim.wait_watches(1, ES)
        self.sim.restart("same")
        with self.assertRaises((EOFError, ConnectionError, ssl.SSLError, OSError)):
            s.read_chunk()
        self.sim.apply(capture_slice(ns, "b"))
        s2 = self.watch(ns, resourceVersion=rv, timeoutSeconds="1")
        evs = s2.events()
        self.assertEqual([(e["type"], e["object"]["metadata"]["name"]) for e in evs], [("ADDED", "b")])

    def test_restart_with_a_new_history_expires_old_versions(self):
        ns = self.new_ns("r2")
        self.sim.apply(capture_slice(ns, "a"))
        _, lst = self.list(ns)
        rv = int(lst["metadata"]["resourceVersion"])
        self.sim.restart("new")
        s = self.watch(ns, resourceVersion=str(rv))
        ev = s.events(1)[0]
        self.assertEqual((ev["type"], ev["object"]["code"]), ("ERROR", 410))
        _, lst2 = self.list(ns)
        self.assertGreater(int(lst2["metadata"]["resourceVersion"]), rv)
        self.assertEqual([i["metadata"]["name"] for i in lst2["items"]], ["a"])
        self.assertGreater(int(lst2["items"][0]["metadata"]["resourceVersion"]), rv,
                           "objects carry versions of the new history")

    def test_restart_with_a_lower_history_makes_old_versions_too_large(self):
        ns = self.new_ns("r3")
        self.sim.apply(capture_slice(ns, "a"))
        _, lst = self.list(ns)
        rv = int(lst["metadata"]["resourceVersion"])
        self.sim.restart("new", resourceVersion=1)
        st, hdrs, body = self.sim.request("GET", path_for(ES, ns, query={"resourceVersion": str(rv)}))
        self.assertEqual(st, 504)
        body = json.loads(body)
        self.assertEqual(body["details"]["causes"][0]["reason"], "ResourceVersionTooLarge")
        self.assertIn("retry-after", hdrs)

    def test_restart_can_keep_the_server_down_for_a_while(self):
        self.sim.restart("same", down_seconds=0.5)
        with self.assertRaises(Exception):
            self.sim.request("GET", path_for(ES, "default"), timeout=2)
        time.sleep(0.6)
        self.assertEqual(self.sim.request("GET", path_for(ES, "default"))[0], 200)

    def test_restart_can_clear_objects(self):
        ns = self.new_ns("r4")
        self.sim.apply(capture_slice(ns, "a"))
        self.sim.restart("new", objects="clear")
        _, lst = self.list(ns)
        self.assertEqual(lst["items"], [])
        _, nss = self.list(res="namespaces")
        self.assertIn(ns, [i["metadata"]["name"] for i in nss["items"]], "namespaces stay")


class TwoClusters(unittest.TestCase):
    def test_each_cluster_has_its_own_port_ca_and_objects(self):
        a = KubeSim(users=USERS, cluster="tke-a").start()
        self.addCleanup(a.cleanup)
        b = KubeSim(users=USERS, cluster="tke-b").start()
        self.addCleanup(b.cleanup)
        self.assertNotEqual(a.port, b.port)
        with open(a.ca_file) as fa, open(b.ca_file) as fb:
            self.assertNotEqual(fa.read(), fb.read())
        a.apply(capture_slice("default", "only-in-a"))
        _, la = a.get_json(path_for(ES, "default"))
        _, lb = b.get_json(path_for(ES, "default"))
        self.assertEqual([i["metadata"]["name"] for i in la["items"]], ["only-in-a"])
        self.assertEqual(lb["items"], [])
        # a's CA does not vouch for b
        ctx = ssl.create_default_context(cafile=a.ca_file)
        import http.client
        conn = http.client.HTTPSConnection("127.0.0.1", b.port, context=ctx, timeout=5)
        with self.assertRaises(ssl.SSLError):
            conn.request("GET", "/version")
        conn.close()
        with open(a.kubeconfig()) as f:
            self.assertIn(f"server: https://127.0.0.1:{a.port}", f.read())



class Transport(unittest.TestCase):
    def test_client_certificates_authenticate_users(self):
        users = dict(USERS)
        users["limited"] = dict(USERS["limited"], client_cert=True, groups=["team-a"])
        sim = KubeSim(users=users, cluster="certs").start()
        self.addCleanup(sim.cleanup)
        u = sim.info["users"]["limited"]
        self.assertTrue(os.path.exists(u["kubeconfig_cert"]))
        import http.client
        ctx = ssl.create_default_context(cafile=sim.ca_file)
        ctx.load_cert_chain(u["client_cert"], u["client_key"])
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        conn = http.client.HTTPSConnection("127.0.0.1", sim.port, context=ctx, timeout=5)
        conn.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", body=json.dumps(body),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        info = json.loads(resp.read())["status"]["userInfo"]
        self.assertEqual((resp.status, info["username"]), (201, "limited"))
        self.assertEqual(info["groups"], ["team-a", "system:authenticated"])
        conn.request("GET", path_for(ES, "demo"))
        resp = conn.getresponse()
        resp.read()
        self.assertEqual(resp.status, 200)
        conn.request("GET", path_for(ES))
        resp = conn.getresponse()
        self.assertEqual((resp.status, json.loads(resp.read())["reason"]), (403, "Forbidden"))
        conn.close()
        # a certificate from another CA is refused during the handshake
        other = KubeSim(users={"limited": dict(USERS["limited"], client_cert=True)}, cluster="other").start()
        self.addCleanup(other.cleanup)
        ctx2 = ssl.create_default_context(cafile=sim.ca_file)
        ctx2.load_cert_chain(other.info["users"]["limited"]["client_cert"],
                             other.info["users"]["limited"]["client_key"])
        conn = http.client.HTTPSConnection("127.0.0.1", sim.port, context=ctx2, timeout=5)
        with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
            conn.request("GET", "/version")
            conn.getresponse().read()
        conn.close()

    def test_kubesimctl_drives_the_admin_api_from_the_command_line(self):
        import subprocess
        sim = KubeSim(users=USERS, cluster="ctl").start()
        self.addCleanup(sim.cleanup)
        ctl = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "kubesimctl.py"),
               "--state-dir", sim.state_dir]
        obj = capture_slice("demo", "web-1", "127.0.1.5")
        r = subprocess.run(ctl + ["POST", "/objects", json.dumps({"object": obj})], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["metadata"]["name"], "web-1")
        r = subprocess.run(ctl + ["api", "GET", path_for(ES, "demo")], capture_output=True, text=True)
        self.assertEqual([i["metadata"]["name"] for i in json.loads(r.stdout)["items"]], ["web-1"])
        r = subprocess.run(ctl + ["--user", "limited", "api", "GET", path_for(ES)], capture_output=True, text=True)
        self.assertEqual((r.returncode, json.loads(r.stdout)["code"]), (1, 403))

    def test_ipv6_loopback_listener(self):
        sim = KubeSim(users=USERS, args=["--host", "::1"], cluster="v6").start()
        self.addCleanup(sim.cleanup)
        self.assertEqual(sim.server, f"https://[::1]:{sim.port}")
        import http.client
        conn = http.client.HTTPSConnection("::1", sim.port, context=ssl.create_default_context(cafile=sim.ca_file),
                                           timeout=5)
        conn.request("GET", "/version")
        self.assertEqual(conn.getresponse().status, 200)
        conn.close()


if __name__ == "__main__":
    unittest.main()
