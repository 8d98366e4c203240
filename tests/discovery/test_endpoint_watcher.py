"""EndpointWatcher against kubesim: how changes to slices, Services and Nodes are published.

Each test asserts the exact snapshots kup-watch prints and that generations grow by one per
real change (a no-op or a bookmark publishes nothing: the next update is the next real change).
"""

import time
import unittest
from datetime import datetime, timedelta, timezone

from watch_harness import (NS, E, WatchTestCase, ep, eps, expect, node_obj, pods, svc)


class ChangesTest(WatchTestCase):

    def test_first_snapshot_after_sync(self):
        w = self.started()
        w.expect_state("synced")
        w.expect_update(expect("web", 1, 3))

    def test_scale_up_and_down(self):
        w = self.started()
        w.expect_update(expect("web", 1, 3))
        self.apply(eps("web", "web-a", pods("web", 1, 6)))
        w.expect_update(expect("web", 1, 6))
        self.apply(eps("web", "web-a", pods("web", 1, 2)))
        w.expect_update(expect("web", 1, 2))
        self.apply(eps("web", "web-a", []))
        w.expect_update([])
        self.apply(eps("web", "web-a", pods("web", 4, 4)))
        w.expect_update(expect("web", 4, 4))

    def test_no_op_updates_and_bookmarks_publish_nothing(self):
        w = self.started()
        w.expect_update(expect("web", 1, 3))
        # A rewrite with the same endpoints (label added: new resourceVersion, same set).
        same = eps("web", "web-a", pods("web", 1, 3))
        same["metadata"]["labels"]["extra"] = "1"
        self.apply(same)
        # A slice of another service, and forced bookmarks.
        self.apply(svc("other"), eps("other", "other-a", pods("other", 7, 8)))
        self.sim.watch_control("bookmark", resource="endpointslices", force=True)
        mark = w.mark()
        w.assert_no_update_since(mark, wait=0.8)
        self.apply(eps("web", "web-a", pods("web", 1, 4)))
        w.expect_update(expect("web", 1, 4))

    def test_rolling_update_with_readiness_transitions(self):
        w = self.started(endpoints=pods("old", 1, 2))
        w.expect_update(expect("old", 1, 2))
        # A new pod appears, not ready yet: nothing changes for traffic... but the set is
        # unchanged only if unready endpoints are not part of it (they are dropped).
        self.apply(eps("web", "web-a", pods("old", 1, 2) + [ep("127.0.1.10", pod="new-10", ready=False)]))
        mark = w.mark()
        # New pod becomes ready.
        self.apply(eps("web", "web-a", pods("old", 1, 2) + [ep("127.0.1.10", pod="new-10")]))
        upd = w.expect_update(expect("old", 1, 2) + [E("127.0.1.10", pod="new-10")])
        self.assertEqual(len(w.updates_since(mark)), 1, "the unready pod published nothing")
        # Old pod 1 terminates but still serves: it moves to draining.
        self.apply(eps("web", "web-a", [ep("127.0.1.1", pod="old-1", ready=False, serving=True, terminating=True),
                                        ep("127.0.1.2", pod="old-2"), ep("127.0.1.10", pod="new-10"),
                                        ep("127.0.1.11", pod="new-11", ready=False)]))
        w.expect_update([E("127.0.1.2", pod="old-2"), E("127.0.1.10", pod="new-10")],
                        draining=[E("127.0.1.1", pod="old-1")])
        # Second new pod ready, second old pod terminating; first old pod gone.
        self.apply(eps("web", "web-a", [ep("127.0.1.2", pod="old-2", ready=False, serving=True, terminating=True),
                                        ep("127.0.1.10", pod="new-10"), ep("127.0.1.11", pod="new-11")]))
        w.expect_update([E("127.0.1.10", pod="new-10"), E("127.0.1.11", pod="new-11")],
                        draining=[E("127.0.1.2", pod="old-2")])
        # Old pod stops serving while terminating: it leaves the draining list.
        self.apply(eps("web", "web-a", [ep("127.0.1.2", pod="old-2", ready=False, serving=False, terminating=True),
                                        ep("127.0.1.10", pod="new-10"), ep("127.0.1.11", pod="new-11")]))
        w.expect_update([E("127.0.1.10", pod="new-10"), E("127.0.1.11", pod="new-11")])
        self.apply(eps("web", "web-a", [ep("127.0.1.10", pod="new-10"), ep("127.0.1.11", pod="new-11")]))
        mark = w.mark()
        self.apply(eps("web", "web-a", [ep("127.0.1.10", pod="new-10"), ep("127.0.1.11", pod="new-11"),
                                        ep("127.0.1.12", pod="new-12")]))
        w.expect_update(expect("new", 10, 12))
        self.assertEqual(len(w.updates_since(mark)), 1)
        self.assertGreater(int(upd["resourceVersion"]), 0)

    def test_terminating_pods_drain_and_nil_conditions_default(self):
        endpoints = [
            ep("127.0.1.1", pod="a", ready=None),                                       # nil ready → ready
            ep("127.0.1.2", pod="b", ready=False, terminating=True),                    # nil serving → serving
            ep("127.0.1.3", pod="c", ready=False, serving=False, terminating=True),     # gone
            ep("127.0.1.4", pod="d", ready=True, serving=True, terminating=True),       # terminating: drains
            ep("127.0.1.5", pod="e", ready=False),                                      # not ready: left out
        ]
        w = self.started(endpoints=endpoints)
        w.expect_update([E("127.0.1.1", pod="a")], draining=[E("127.0.1.2", pod="b"), E("127.0.1.4", pod="d")])
        # Only draining endpoints left: still published (callers may fall back to them).
        self.apply(eps("web", "web-a", [ep("127.0.1.2", pod="b", ready=False, terminating=True)]))
        w.expect_update([], draining=[E("127.0.1.2", pod="b")])

    def test_slices_split_merged_and_duplicated(self):
        w = self.started(endpoints=pods("web", 1, 4))
        w.expect_update(expect("web", 1, 4))
        # Split: the controller adds slice b holding pods 3-4 before trimming slice a.
        self.apply(eps("web", "web-b", pods("web", 3, 4)))
        mark = w.mark()
        self.apply(eps("web", "web-a", pods("web", 1, 2)))
        # Duplicates across slices are counted once: neither step changed the set.
        self.apply(eps("web", "web-c", pods("web", 5, 5)))
        w.expect_update(expect("web", 1, 5))
        self.assertEqual(len(w.updates_since(mark)), 1)
        # Merge back: a takes everything, then b and c are deleted.
        self.apply(eps("web", "web-a", pods("web", 1, 5)))
        mark = w.mark()
        self.delete("endpointslices", "web-b")
        self.delete("endpointslices", "web-c")
        self.apply(eps("web", "web-a", pods("web", 1, 6)))
        w.expect_update(expect("web", 1, 6))
        self.assertEqual(len(w.updates_since(mark)), 1)
        # A duplicate that is ready in one slice and terminating in another counts as ready.
        self.apply(eps("web", "web-d", [ep("127.0.1.6", pod="web-6", ready=False, serving=True, terminating=True)]))
        self.apply(eps("web", "web-a", pods("web", 1, 7)))
        w.expect_update(expect("web", 1, 7))

    def test_slices_of_one_port_name_with_different_numbers(self):
        self.apply(svc("web"))
        self.apply(eps("web", "web-a", pods("web", 1, 2), port=8080))
        self.apply(eps("web", "web-b", pods("web", 3, 3), port=9090))
        w = self.watch(f"{NS}/web:80")
        w.expect_update(expect("web", 1, 2) + [E("127.0.1.3", 9090, pod="web-3")])

    def test_port_renamed(self):
        w = self.started()
        w.expect_update(expect("web", 1, 3))
        w80 = self.watch(f"{NS}/web:80")
        w80.expect_update(expect("web", 1, 3))
        # The Service renames its port http → web; the slices still say http.
        self.apply(svc("web", [("web", 80, 8080)]))
        # Watching the name "http": the Service has no such port any more.
        w.expect_state("not_found", contains=['has no port "http"', "service demo/web"])
        w.expect_update([])
        # Watching the number 80: it now maps to the name "web", which no slice carries yet.
        w80.expect_update([])
        # The slices follow (with a new number): the number watcher gets them on 8081.
        self.apply(eps("web", "web-a", pods("web", 1, 3), port=8081, port_name="web"))
        w80.expect_update(expect("web", 1, 3, port=8081))
        # And back to "http" on 8082: the name watcher is found again.
        self.apply(svc("web", [("http", 80, 8080)]))
        w.expect_state("synced")
        w80.expect_update([])
        mark = w.mark()
        self.apply(eps("web", "web-a", pods("web", 1, 3), port=8082, port_name="http"))
        w.expect_update(expect("web", 1, 3, port=8082))
        w80.expect_update(expect("web", 1, 3, port=8082))
        self.assertEqual(len(w.updates_since(mark)), 1)

    def test_port_renamed_with_service_and_slices_in_one_step_per_object(self):
        self.apply(svc("web", [("http", 80, 8080), ("metrics", 9100, 9100)]))
        self.apply(eps("web", "web-a", pods("web", 1, 2),
                       ports=[{"name": "http", "port": 8080}, {"name": "metrics", "port": 9100}]))
        w = self.watch(f"{NS}/web:metrics")
        w.expect_update(expect("web", 1, 2, port=9100))
        wn = self.watch(f"{NS}/web:9100")
        wn.expect_update(expect("web", 1, 2, port=9100))
        # Slices first carry both names (as during a rollout), then the Service renames. The
        # slice and the Service come on separate watches: the rename is made only once the
        # slice event was sent, else a transient empty set would be correct behaviour.
        sent = sum(x["eventsSent"] for x in self.sim.watches("endpointslices"))
        self.apply(eps("web", "web-a", pods("web", 1, 2),
                       ports=[{"name": "http", "port": 8080}, {"name": "metrics", "port": 9100},
                              {"name": "prom", "port": 9101}]))
        self.wait_for(lambda: sum(x["eventsSent"] for x in self.sim.watches("endpointslices")) >= sent + 2,
                      what="the slice event sent to both watchers")
        time.sleep(0.2)
        mark = wn.mark()
        self.apply(svc("web", [("http", 80, 8080), ("prom", 9100, 9101)]))
        wn.expect_update(expect("web", 1, 2, port=9101))
        self.assertEqual(len(wn.updates_since(mark)), 1, "no empty set in between")
        w.expect_state("not_found", contains=['has no port "metrics"'])
        w.expect_update([])

    def test_node_labels_changing(self):
        self.apply(node_obj("n1", {"pool": "edge"}), node_obj("n2", {"pool": "core"}), node_obj("n3", {}))
        self.apply(svc("web"))
        self.apply(eps("web", "web-a", [ep("127.0.1.1", pod="p1", node_name="n1"),
                                        ep("127.0.1.2", pod="p2", node_name="n2"),
                                        ep("127.0.1.3", pod="p3", node_name="n3"),
                                        ep("127.0.1.4", pod="p4")]))
        w = self.watch(f"{NS}/web:http", "--node-label", "pool=edge")
        w.expect_update([E("127.0.1.1", pod="p1", node_name="n1")])
        # n2 gains the label: its pod moves in.
        self.apply(node_obj("n2", {"pool": "edge"}))
        w.expect_update([E("127.0.1.1", pod="p1", node_name="n1"), E("127.0.1.2", pod="p2", node_name="n2")])
        # n1 loses it: its pod moves out.
        self.apply(node_obj("n1", {"pool": "core"}))
        w.expect_update([E("127.0.1.2", pod="p2", node_name="n2")])
        # An unrelated label change publishes nothing; deleting n2 empties the set.
        self.apply(node_obj("n2", {"pool": "edge", "x": "y"}))
        self.delete("nodes", "n2", ns=None)
        w.expect_update([])
        # A new node with the label brings pod 3 in; a second watcher without filter sees all.
        self.apply(node_obj("n3", {"pool": "edge"}))
        w.expect_update([E("127.0.1.3", pod="p3", node_name="n3")])
        w2 = self.watch(f"{NS}/web:http")
        w2.expect_update([E("127.0.1.1", pod="p1", node_name="n1"), E("127.0.1.2", pod="p2", node_name="n2"),
                          E("127.0.1.3", pod="p3", node_name="n3"), E("127.0.1.4", pod="p4")])
        # The node reflector watches nodes with the label selector.
        lists = [r for r in self.requests() if r["path"] == "/api/v1/nodes"]
        self.assertTrue(lists)
        self.assertEqual(lists[0]["query"].get("labelSelector"), "pool=edge")

    def test_zone_and_ipv6(self):
        self.apply(svc("web"))
        self.apply(eps("web", "web-v4", [ep("127.0.1.1", pod="p1", zone="z1", node_name="n1")]))
        self.apply(eps("web", "web-v6", [ep("::1", pod="p1", zone="z1", node_name="n1")], address_type="IPv6"))
        fq = eps("web", "web-fqdn", [ep("pod.example.test", pod="p9")], address_type="FQDN")
        self.apply(fq)
        w = self.watch(f"{NS}/web:http")
        st = w.expect_state("synced")
        w.expect_update([E("127.0.1.1", pod="p1", node_name="n1", zone="z1"),
                         E("::1", pod="p1", node_name="n1", zone="z1")])
        self.assertIn("1 FQDN slice ignored", st["notes"])

    def test_propagation_lag_from_trigger_time(self):
        self.apply(svc("web"))
        self.apply(eps("web", "web-a", pods("web", 1, 2)))
        w = self.watch(f"{NS}/web:http")
        w.expect_update(expect("web", 1, 2))
        trigger = (datetime.now(timezone.utc) - timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.apply(eps("web", "web-a", pods("web", 1, 3), trigger=trigger))
        w.expect_update(expect("web", 1, 3))
        lag = w.last_update.get("lagMicros")
        self.assertIsNotNone(lag, f"update carries the propagation lag: {w.last_update}")
        # Trigger time has second precision: the lag is between 1 and ~6 seconds here.
        self.assertGreater(lag, 1_000_000)
        self.assertLess(lag, 8_000_000)

    def test_two_watchers_in_one_process_share_nothing_across_processes(self):
        # Two processes each get their own watches; the simulator sees one slice watch each.
        w1 = self.started()
        w1.expect_update(expect("web", 1, 3))
        w2 = self.watch(f"{NS}/web:80")
        w2.expect_update(expect("web", 1, 3))
        ws = self.wait_watches("endpointslices", count=2)
        self.assertEqual(len(ws), 2)


class WatchListTest(WatchTestCase):

    def test_watch_list_streams_the_initial_state(self):
        # A server that sends the initial-events-end bookmark at once (test_watch_list.py covers
        # the v1.28 behaviour, where it is held back).
        self.sim.config(watch_list="support-immediate")
        w = self.started(args=["--watch-list"])
        w.expect_update(expect("web", 1, 3))
        self.apply(eps("web", "web-a", pods("web", 1, 4)))
        w.expect_update(expect("web", 1, 4))
        # A dropped watch-list resumes from its resourceVersion; changes made meanwhile appear.
        first = self.max_watch_id()
        self.sim.watch_control("stall", resource="endpointslices")
        self.apply(eps("web", "web-a", pods("web", 1, 5)))
        self.sim.watch_control("drop", resource="endpointslices")
        w.expect_update(expect("web", 1, 5))
        self.wait_watches("endpointslices", after_id=first)
        # Requests are logged when they end: the dropped watch-list is there by now.
        reqs = [r for r in self.requests() if r["path"].endswith("/endpointslices")]
        self.assertTrue(reqs and all(r["query"].get("watch") for r in reqs), f"no LIST of slices: {reqs}")
        self.assertEqual(reqs[0]["query"].get("sendInitialEvents"), "true")
        resumed = [w for w in self.sim.watches("endpointslices") if w["id"] > first]
        self.assertEqual(len(resumed), 1)
        self.assertNotEqual(resumed[0]["startResourceVersion"], "0", "resumed from the last resourceVersion")

    def test_watch_list_refused_falls_back_to_list(self):
        self.sim.config(watch_list="refuse")
        w = self.started(args=["--watch-list"])
        w.expect_state("synced")
        w.expect_update(expect("web", 1, 3))
        reqs = [r for r in self.requests() if r["path"].endswith("/endpointslices")]
        self.assertEqual(reqs[0]["code"], 422)
        self.assertEqual(reqs[0]["query"].get("sendInitialEvents"), "true")
        self.assertFalse(reqs[1]["query"].get("watch"), "then a LIST")
        self.apply(eps("web", "web-a", pods("web", 1, 4)))
        w.expect_update(expect("web", 1, 4))
        w.assert_no_empty_update()


if __name__ == "__main__":
    unittest.main()
