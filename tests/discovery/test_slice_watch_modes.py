"""Watch fan-in through kup-watch: several Services of one namespace share one EndpointSlice
watch (counted in kubesim's open watches), churn on one reaches only it, and forbidden or
failing shared watches report on every Service with the last good snapshots kept. Then the
per-Service mode (no longer the default) on the faults that matter most: a 410 with changes,
a restart with a new history, a 403 naming the rule, a token rotation after a 401.

Standard library only; kup-watch from $KUP_WATCH_BIN; every process stopped by PID.
"""

import time
import unittest

import test_watch_faults as faults
from watch_harness import NS, WatchTestCase, E, eps, expect, pods, svc


def labelled(line):
    return line.get("service", "")


class MultiWatch:
    """The lines of one kup-watch with several targets, split by their "service" key."""

    def __init__(self, w):
        self.w = w

    def updates(self, target):
        self.w.drain()
        return [l for l in self.w.lines if l["type"] == "update" and labelled(l) == target]

    def states(self, target):
        self.w.drain()
        return [l for l in self.w.lines if l["type"] == "state" and labelled(l) == target]

    def wait(self, test, predicate, what):
        test.wait_for(lambda: (self.w.drain(), predicate())[1], what=what)


class FanInTest(WatchTestCase):
    TARGETS = [f"{NS}/a:http", f"{NS}/b:http", f"{NS}/c:http"]

    def start_three(self, user="admin"):
        for i, name in enumerate(("a", "b", "c")):
            self.apply(svc(name), eps(name, f"{name}-1", pods(name, 10 * (i + 1), 10 * (i + 1) + 1)))
        w = self.watch(self.TARGETS[0], *self.TARGETS[1:], user=user)
        m = MultiWatch(w)
        return w, m

    def test_three_services_share_one_watch_and_churn_reaches_only_its_service(self):
        w, m = self.start_three()
        m.wait(self, lambda: all(m.updates(t) for t in self.TARGETS), "a first snapshot of every service")
        self.assertEqual(m.updates(f"{NS}/b:http")[0]["ready"], expect("b", 20, 21))
        # Eventually exactly one open slice watch in the namespace, selecting all three (a watch
        # that started before every target joined may still be closing for a moment).
        def ns_watches():
            return [x for x in self.sim.watches("endpointslices") if x["namespace"] == NS]
        self.wait_for(lambda: [x["labelSelector"] for x in ns_watches()] == ["kubernetes.io/service-name in (a,b,c)"],
                      what="one shared watch selecting a, b and c")
        for n in range(22, 26):
            self.apply(eps("b", "b-1", pods("b", 20, n)))
        m.wait(self, lambda: m.updates(f"{NS}/b:http")[-1]["ready"] == expect("b", 20, 25), "b's churn")
        w.drain(0.3)
        self.assertEqual(len(m.updates(f"{NS}/a:http")), 1)
        self.assertEqual(len(m.updates(f"{NS}/c:http")), 1)
        gens = [u["generation"] for u in m.updates(f"{NS}/b:http")]
        self.assertEqual(gens, list(range(1, len(gens) + 1)))
        self.wait_for(lambda: len(ns_watches()) == 1, what="still one shared watch after the churn")

    def test_lists_and_access_reviews_reuse_kept_connections(self):
        seq = self.last_request_seq()
        w, m = self.start_three()
        m.wait(self, lambda: all(m.updates(t) for t in self.TARGETS), "a first snapshot of every service")
        # LISTs and SelfSubjectAccessReviews go through the client's keep-alive pool; watches
        # hold connections of their own.
        calls = [r for r in self.requests(seq) if not r["query"].get("watch")]
        reviews = [r for r in calls if r["path"].endswith("/selfsubjectaccessreviews")]
        lists = [r for r in calls if r not in reviews]
        self.assertEqual(len(reviews), 5, "one shared preflight for the namespace")
        self.assertGreaterEqual(len(lists), 4, "the namespace's slices and the three Services")
        self.assertLess(len({r["conn"] for r in calls}), len(calls), f"no connection was reused: {calls}")
        # The LISTs run after the preflight: they reuse its connections.
        self.assertTrue({r["conn"] for r in lists} & {r["conn"] for r in reviews})
        watch_conns = {r["conn"] for r in self.requests(seq) if r["query"].get("watch")}
        self.assertFalse(watch_conns & {r["conn"] for r in calls}, "a watch shares no connection")
        # Kept connections close once no pooled call runs: the client now holds only its watches.
        # A restart with a new history (every connection closed, then 410s): the relists open
        # fresh pooled connections and succeed.
        mark = self.last_request_seq()
        self.sim.restart(history="new", down_seconds=0.3)
        time.sleep(0.4)  # the admin API is down too while the server is "down"
        self.wait_for(lambda: any(not r["query"].get("watch") and r["code"] == 200 for r in self.requests(mark)),
                      what="a relist after the restart")
        self.apply(eps("b", "b-1", pods("b", 20, 23)))
        m.wait(self, lambda: m.updates(f"{NS}/b:http")[-1]["ready"] == expect("b", 20, 23), "b's change after the restart")

    def test_a_failing_shared_watch_makes_every_service_stale_with_its_snapshot(self):
        w, m = self.start_three()
        m.wait(self, lambda: all(m.updates(t) for t in self.TARGETS), "a first snapshot of every service")
        self.wait_watches("endpointslices")
        self.sim.fault(code=500, count=-1, match={"resource": "endpointslices"})
        self.sim.watch_control("drop", resource="endpointslices", mode="rst")
        m.wait(self, lambda: all(any(s["phase"] == "stale" for s in m.states(t)) for t in self.TARGETS),
               "every service stale")
        for t in self.TARGETS:
            stale = [s for s in m.states(t) if s["phase"] == "stale"][0]
            self.assertIn('cluster "kubesim"', stale["reason"])
            self.assertEqual(len(m.updates(t)), 1, "the last good snapshot stays")
        self.sim.clear_faults()
        m.wait(self, lambda: all(m.states(t)[-1]["phase"] == "synced" for t in self.TARGETS), "every service synced")
        w.assert_no_empty_update()


class FanInForbiddenTest(WatchTestCase):
    USERS = faults.ForbiddenTest.USERS

    def test_forbidden_slices_name_the_rule_for_every_service(self):
        for name in ("a", "b"):
            self.apply(svc(name), eps(name, f"{name}-1", pods(name, 1, 2)))
        w = self.watch(f"{NS}/a:http", f"{NS}/b:http", user="noslices")
        m = MultiWatch(w)
        # The LIST's own 403 may be reported first; the preflight's reason, which names the rule,
        # follows it (as in the per-service ForbiddenTest, wait for that one).
        def preflight_denials(t):
            return [s for s in m.states(t) if s["phase"] == "forbidden" and "RBAC preflight" in s["reason"]]
        for t in (f"{NS}/a:http", f"{NS}/b:http"):
            m.wait(self, lambda t=t: preflight_denials(t), f"{t} forbidden by the preflight")
            reason = preflight_denials(t)[-1]["reason"]
            self.assertIn("may not list and watch endpointslices", reason)
            self.assertIn(f'in namespace "{NS}"', reason)
        self.assertEqual(m.updates(f"{NS}/a:http"), [])


def _only(cls, names):
    """A subclass of a fault-test class that runs only `names`, with kup-watch in per_service mode."""
    attrs = {"WATCH_ARGS": ("--slice-watch", "per_service")}
    for attr in dir(cls):
        if attr.startswith("test") and attr not in names:
            attrs[attr] = None  # not callable: the loader skips it
    return type(f"PerService{cls.__name__}", (cls,), attrs)


PerServiceFaultsTest = _only(faults.FaultsTest, {"test_compacted_history_relist_shows_changes_made_meanwhile",
                                                 "test_restart_with_new_history"})
PerServiceForbiddenTest = _only(faults.ForbiddenTest, {"test_forbidden_endpointslices_names_verb_resource_namespace_and_rule"})
PerServiceTokenRotationTest = _only(faults.TokenRotationTest, {"test_token_file_rotation_after_401"})


if __name__ == "__main__":
    unittest.main()
