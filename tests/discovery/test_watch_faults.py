"""EndpointWatcher against kubesim's fault controls: the last good set always stays in service.

In every test: no update is published while the API fails (so no empty set either), the state
says why (stale with a reason) and returns to synced, and changes made during the fault appear
once the watch is back.
"""

import time
import unittest

from watch_harness import (NS, WatchTestCase, eps, expect, pods, svc)


class FaultsTest(WatchTestCase):

    def synced_watch(self, *args):
        w = self.started(args=args)
        w.expect_state("synced")
        w.expect_update(expect("web", 1, 3))
        self.wait_watches("endpointslices")
        self.wait_watches("services")
        return w

    def slice_requests(self, since):
        return [r for r in self.requests(since) if r["path"] == f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices"]

    def test_drop_all_watches_resumes_without_relisting(self):
        w = self.synced_watch()
        seq = self.last_request_seq()
        mark = w.mark()
        first = self.max_watch_id()
        self.sim.watch_control("drop")
        self.wait_watches("endpointslices", after_id=first)
        w.assert_no_update_since(mark)
        reqs = self.slice_requests(seq)
        self.assertTrue(reqs and all(r["query"].get("watch") for r in reqs), f"resumed by WATCH only: {reqs}")
        self.assertTrue(all(r["query"].get("resourceVersion") not in (None, "", "0") for r in reqs))
        self.apply(eps("web", "web-a", pods("web", 1, 4)))
        w.expect_update(expect("web", 1, 4))
        w.assert_no_empty_update()

    def test_drop_with_reset_and_change_meanwhile(self):
        w = self.synced_watch()
        first = self.max_watch_id()
        self.sim.watch_control("stall", resource="endpointslices")  # hold events back...
        self.apply(eps("web", "web-a", pods("web", 2, 3)))
        self.sim.watch_control("drop", mode="rst")                    # ...then kill the connection
        w.expect_update(expect("web", 2, 3))
        self.wait_watches("endpointslices", after_id=first)
        w.assert_no_empty_update()

    def test_stalled_watch_is_reconnected_after_the_idle_timeout(self):
        w = self.synced_watch("--idle-timeout", "600")
        first = self.max_watch_id()
        mark = w.mark()
        self.sim.watch_control("stall", resource="endpointslices")
        self.apply(eps("web", "web-a", pods("web", 1, 5)))
        w.expect_update(expect("web", 1, 5), timeout=8)
        # The stalled watch delivered nothing: the change came on a new watch.
        self.assertTrue(self.wait_watches("endpointslices", after_id=first))
        self.assertEqual(len(w.updates_since(mark)), 1)
        # Idle watches (the stalled one, and the quiet Service watch) are resumed at once:
        # the state never left synced.
        w.drain(1.0)
        self.assertEqual([x for x in w.lines[mark:] if x["type"] == "state"], [])
        w.assert_no_empty_update()

    def test_compacted_history_relists_without_change(self):
        w = self.synced_watch()
        seq = self.last_request_seq()
        mark = w.mark()
        first = self.max_watch_id()
        # Advance the history with an unrelated object, compact, reconnect: 410 → relist. The
        # watch is stalled first, so that no bookmark moves its resourceVersion past the horizon.
        self.sim.watch_control("stall", resource="endpointslices")
        self.apply(svc("other"), eps("other", "other-a", pods("other", 7, 7)))
        self.sim.compact()
        self.sim.watch_control("drop")
        self.wait_for(lambda: [r for r in self.slice_requests(seq) if not r["query"].get("watch")],
                      what="a relist of endpointslices")
        self.wait_watches("endpointslices", after_id=first)
        w.assert_no_update_since(mark, wait=0.3)
        self.apply(eps("web", "web-a", pods("web", 1, 4)))
        w.expect_update(expect("web", 1, 4))

    def test_compacted_history_relist_shows_changes_made_meanwhile(self):
        w = self.synced_watch()
        mark = w.mark()
        self.sim.watch_control("stall", resource="endpointslices")
        self.apply(eps("web", "web-a", pods("web", 1, 2)))
        self.apply(eps("web", "web-b", pods("web", 8, 9)))
        self.sim.compact()
        self.sim.watch_control("drop")
        # One atomic replace: exactly one update with the final state, no empty set in between.
        w.expect_update(expect("web", 1, 2) + expect("web", 8, 9))
        w.drain(0.3)
        self.assertEqual(len(w.updates_since(mark)), 1)

    def test_gone_error_event_relists(self):
        w = self.synced_watch()
        seq = self.last_request_seq()
        mark = w.mark()
        self.sim.watch_control("error", resource="endpointslices", code=410)
        self.wait_for(lambda: [r for r in self.slice_requests(seq) if not r["query"].get("watch")],
                      what="a relist after the ERROR 410 event")
        w.assert_no_update_since(mark, wait=0.3)
        self.apply(eps("web", "web-a", pods("web", 1, 4)))
        w.expect_update(expect("web", 1, 4))

    def test_too_many_requests_honours_retry_after(self):
        w = self.synced_watch()
        mark = w.mark()
        seq = self.last_request_seq()
        self.sim.fault(code=429, retry_after=1, match={"verb": "watch", "resource": "endpointslices"})
        self.sim.watch_control("drop", resource="endpointslices")
        w.expect_state("stale", contains=["429"])
        w.expect_state("synced")
        # Requests are logged when they end; the open watch is in the watch list.
        reqs = self.slice_requests(seq)
        refused = [r for r in reqs if r["code"] == 429]
        self.assertEqual(len(refused), 1, f"{reqs}")
        retry = min((w["opened"] for w in self.sim.watches("endpointslices") if w["opened"] > refused[0]["time"]),
                    default=None)
        self.assertIsNotNone(retry)
        gap = retry - refused[0]["time"]
        self.assertGreaterEqual(gap, 0.95, f"Retry-After: 1 honoured (backoff alone is 100 ms): {reqs}")
        self.assertLess(gap, 3.0)
        w.assert_no_update_since(mark)
        self.apply(eps("web", "web-a", pods("web", 1, 4)))
        w.expect_update(expect("web", 1, 4))

    def test_server_errors_back_off_and_recover(self):
        w = self.synced_watch()
        mark = w.mark()
        seq = self.last_request_seq()
        self.sim.fault(code=500, count=3, match={"verb": "watch", "resource": "endpointslices"})
        self.sim.watch_control("drop", resource="endpointslices")
        st = w.expect_state("stale", contains=["500", "endpointslices of service demo/web"])
        self.assertIn("kubesim", st["reason"], "the reason names the cluster")
        w.expect_state("synced")
        reqs = [r for r in self.slice_requests(seq) if r["code"] == 500]
        self.assertEqual(len(reqs), 3)
        times = [r["time"] for r in reqs] + [max(w["opened"] for w in self.sim.watches("endpointslices"))]
        gaps = [times[i + 1] - times[i] for i in range(3)]
        self.assertGreater(gaps[2], gaps[0], f"exponential backoff: {gaps}")
        w.assert_no_update_since(mark)
        self.apply(eps("web", "web-a", pods("web", 1, 4)))
        w.expect_update(expect("web", 1, 4))

    def test_a_new_reason_while_stale_keeps_the_stale_since_time(self):
        w = self.synced_watch()
        mark = w.mark()
        # Two failures in a row with different reasons, the second at least 2 s after the first
        # (Retry-After): "since" has second precision, so a restarted phase would show.
        self.sim.fault(code=429, retry_after=2, match={"resource": "endpointslices"})
        self.sim.fault(code=500, match={"resource": "endpointslices"})
        self.sim.watch_control("drop", resource="endpointslices")
        w.expect_state("stale", contains=["429"])
        w.expect_state("stale", contains=["500"])
        w.expect_state("synced")
        stale = [line for line in w.lines[mark:] if line["type"] == "state" and line["phase"] == "stale"]
        self.assertGreaterEqual(len({line["reason"] for line in stale}), 2, f"{stale}")
        self.assertEqual({line["since"] for line in stale}, {stale[0]["since"]},
                         f"staleness counts from the first failure, whatever the later reasons: {stale}")
        w.assert_no_update_since(mark)

    def test_server_errors_on_first_list_then_sync(self):
        self.sim.fault(code=500, count=2, match={"verb": "list", "resource": "endpointslices"})
        w = self.started()
        st = w.expect_state("stale", contains=["500"])
        w.expect_state("synced")
        w.expect_update(expect("web", 1, 3))
        self.assertTrue(st["reason"])

    def test_malformed_json_in_a_watch(self):
        w = self.synced_watch()
        mark = w.mark()
        self.sim.watch_control("inject", kind="malformed", resource="endpointslices")
        w.expect_state("stale", contains=["WATCH"])
        w.expect_state("synced")
        w.assert_no_update_since(mark)
        self.apply(eps("web", "web-a", pods("web", 1, 4)))
        w.expect_update(expect("web", 1, 4))

    def test_truncated_chunk_in_a_watch(self):
        w = self.synced_watch()
        mark = w.mark()
        self.sim.watch_control("inject", kind="truncated", resource="endpointslices")
        w.expect_state("stale")
        w.expect_state("synced")
        w.assert_no_update_since(mark)
        self.apply(eps("web", "web-a", pods("web", 1, 4)))
        w.expect_update(expect("web", 1, 4))

    def test_restart_with_same_history(self):
        w = self.synced_watch()
        mark = w.mark()
        self.sim.restart(history="same", down_seconds=0.5)
        w.expect_state("stale")
        w.expect_state("synced", timeout=10)
        w.assert_no_update_since(mark)
        self.apply(eps("web", "web-a", pods("web", 1, 4)))
        w.expect_update(expect("web", 1, 4))

    def test_restart_with_new_history(self):
        w = self.synced_watch()
        mark = w.mark()
        seq = self.last_request_seq()
        self.sim.restart(history="new", down_seconds=0.5)
        w.expect_state("stale")
        w.expect_state("synced", timeout=10)
        self.wait_for(lambda: [r for r in self.slice_requests(seq) if not r["query"].get("watch") and r["code"] == 200],
                      what="a relist in the new history")
        w.assert_no_update_since(mark, wait=0.3)
        self.apply(eps("web", "web-a", pods("web", 1, 4)))
        upd = w.expect_update(expect("web", 1, 4))
        self.assertGreater(int(upd["resourceVersion"]), 1000)

    def test_restart_with_new_history_and_changes(self):
        w = self.synced_watch()
        mark = w.mark()
        self.sim.restart(history="new", down_seconds=0.3)
        time.sleep(0.4)  # the admin API is down too while the server is "down"
        self.apply(eps("web", "web-a", pods("web", 3, 5)))
        w.expect_update(expect("web", 3, 5), timeout=10)
        w.drain(0.3)
        self.assertEqual(len(w.updates_since(mark)), 1)


class TokenRotationTest(WatchTestCase):
    USERS = {"admin": {"token": "token-one", "allow": "*"}}

    def test_token_file_rotation_after_401(self):
        import os
        token_file = os.path.join(self.sim.state_dir, "token")
        with open(token_file, "w") as f:
            f.write("token-one\n")
        kc = os.path.join(self.sim.state_dir, "kubeconfig-tokenfile.yaml")
        with open(kc, "w") as f:
            f.write(f"apiVersion: v1\nkind: Config\nclusters:\n- name: kubesim\n  cluster:\n"
                    f"    server: {self.sim.server}\n    certificate-authority: {self.sim.ca_file}\n"
                    f"users:\n- name: rotating\n  user:\n    tokenFile: {token_file}\n"
                    f"contexts:\n- name: kubesim\n  context:\n    cluster: kubesim\n    user: rotating\n"
                    f"current-context: kubesim\n")
        self.apply(svc("web"), eps("web", "web-a", pods("web", 1, 3)))
        w = self.watch(f"{NS}/web:http", kubeconfig=kc)
        w.expect_update(expect("web", 1, 3))
        self.wait_watches("endpointslices")
        mark = w.mark()
        seq = self.last_request_seq()
        # Rotate on the server first: reconnects get 401 (the file still holds the old token),
        # and the state says so; the set stays.
        self.sim.config(users={"admin": {"token": "token-two", "allow": "*"}})
        self.sim.watch_control("drop")
        w.expect_state("stale", contains=["401"])
        # Then the file: after the next 401 the file is re-read and the watch goes on.
        with open(token_file + ".tmp", "w") as f:
            f.write("token-two\n")
        os.replace(token_file + ".tmp", token_file)
        w.expect_state("synced", timeout=10)
        self.apply(eps("web", "web-a", pods("web", 1, 4)))
        w.expect_update(expect("web", 1, 4))
        reqs = [r for r in self.requests(seq) if r["path"].endswith("/endpointslices")]
        codes = [r["code"] for r in reqs]
        self.assertIn(401, codes, f"the old token was refused: {reqs}")
        # The watch that carried the change runs as the user of the new token.
        self.assertTrue(all(x["user"] == "admin" for x in self.sim.watches("endpointslices")))
        self.assertEqual(len(w.updates_since(mark)), 1)
        w.assert_no_empty_update()

    def test_exec_plugin_rerun_after_401(self):
        import os
        import stat
        import sys
        d = self.sim.state_dir
        token_src = os.path.join(d, "plugin-token")
        runs = os.path.join(d, "plugin-runs")
        with open(token_src, "w") as f:
            f.write("token-one")
        plugin = os.path.join(d, "kup-test-plugin.py")
        with open(plugin, "w") as f:
            f.write(f"""#!{sys.executable}
import json, os, sys
with open({runs!r}, "a") as r:
    r.write(os.environ.get("KUBERNETES_EXEC_INFO", "")[:0] + "run\\n")
with open({token_src!r}) as t:
    token = t.read().strip()
print(json.dumps({{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                  "status": {{"token": token}}}}))
""")
        os.chmod(plugin, os.stat(plugin).st_mode | stat.S_IXUSR)
        kc = os.path.join(d, "kubeconfig-exec.yaml")
        with open(kc, "w") as f:
            f.write(f"apiVersion: v1\nkind: Config\nclusters:\n- name: kubesim\n  cluster:\n"
                    f"    server: {self.sim.server}\n    certificate-authority: {self.sim.ca_file}\n"
                    f"users:\n- name: plugin\n  user:\n    exec:\n"
                    f"      apiVersion: client.authentication.k8s.io/v1\n      command: {plugin}\n"
                    f"      interactiveMode: Never\n"
                    f"contexts:\n- name: kubesim\n  context:\n    cluster: kubesim\n    user: plugin\n"
                    f"current-context: kubesim\n")
        self.apply(svc("web"), eps("web", "web-a", pods("web", 1, 3)))
        w = self.watch(f"{NS}/web:http", kubeconfig=kc)
        w.expect_update(expect("web", 1, 3))
        self.wait_watches("endpointslices")
        with open(runs) as f:
            self.assertEqual(f.read().count("run"), 1, "the credential is cached (no expiry given)")
        seq = self.last_request_seq()
        self.sim.config(users={"admin": {"token": "token-two", "allow": "*"}})
        with open(token_src, "w") as f:
            f.write("token-two")
        self.sim.watch_control("drop")
        self.apply(eps("web", "web-a", pods("web", 1, 4)))
        w.expect_update(expect("web", 1, 4))
        # Whichever watch reconnects first (the slices' or the Service's) meets the 401 and re-runs
        # the plugin; the others may already carry the new token.
        reqs = self.requests(seq)
        self.assertIn(401, [r["code"] for r in reqs], f"the old token was refused: {reqs}")
        # The slices' watch that carried the change runs with the plugin's new token.
        self.assertTrue(all(x["user"] == "admin" for x in self.sim.watches("endpointslices")))
        with open(runs) as f:
            # Re-run after the 401 (the slices' and the Service's watches may each invalidate it).
            self.assertIn(f.read().count("run"), (2, 3))
        w.assert_no_empty_update()

    def test_wrong_token_is_reported_unauthorized(self):
        import os
        kc = os.path.join(self.sim.state_dir, "kubeconfig-bad.yaml")
        with open(kc, "w") as f:
            f.write(f"apiVersion: v1\nkind: Config\nclusters:\n- name: kubesim\n  cluster:\n"
                    f"    server: {self.sim.server}\n    certificate-authority: {self.sim.ca_file}\n"
                    f"users:\n- name: bad\n  user:\n    token: nope\n"
                    f"contexts:\n- name: kubesim\n  context:\n    cluster: kubesim\n    user: bad\n"
                    f"current-context: kubesim\n")
        self.apply(svc("web"), eps("web", "web-a", pods("web", 1, 3)))
        w = self.watch(f"{NS}/web:http", kubeconfig=kc)
        w.expect_state("stale", contains=["401"])
        w.assert_no_update_since(0, wait=0.3)


class ForbiddenTest(WatchTestCase):
    USERS = {
        "admin": {"token": "t-admin", "allow": "*"},
        "noslices": {"token": "t-noslices", "allow": [
            {"verbs": ["get", "list", "watch"], "resources": ["services"], "namespaces": [NS]}]},
        "nonodes": {"token": "t-nonodes", "allow": [
            {"verbs": ["get", "list", "watch"], "resources": ["services"], "namespaces": [NS]},
            {"verbs": ["list", "watch"], "resources": ["endpointslices"], "apiGroups": ["discovery.k8s.io"],
             "namespaces": [NS]}]},
        "nowatch": {"token": "t-nowatch", "allow": [
            {"verbs": ["get", "list", "watch"], "resources": ["services"], "namespaces": [NS]},
            {"verbs": ["list"], "resources": ["endpointslices"], "apiGroups": ["discovery.k8s.io"],
             "namespaces": [NS]}]},
    }

    def test_forbidden_endpointslices_names_verb_resource_namespace_and_rule(self):
        self.apply(svc("web"), eps("web", "web-a", pods("web", 1, 3)))
        w = self.watch(f"{NS}/web:http", user="noslices")
        st = w.expect_state("forbidden", contains=["RBAC preflight"])
        self.assertIn('may not list and watch endpointslices (apiGroup discovery.k8s.io) in namespace "demo"',
                      st["reason"])
        self.assertIn('add the rule {apiGroups: ["discovery.k8s.io"], resources: ["endpointslices"], '
                      'verbs: ["list", "watch"]} to a Role in namespace "demo"', st["reason"])
        self.assertIn('cluster "kubesim"', st["reason"])
        self.assertNotIn("services", st["reason"], "services are allowed")
        reviews = [r for r in self.requests() if r["path"].endswith("/selfsubjectaccessreviews")]
        self.assertEqual(len(reviews), 5, "list/watch endpointslices, get/list/watch services")
        self.assertTrue(all(r["code"] == 201 and r["user"] == "noslices" for r in reviews))
        w.assert_no_update_since(0, wait=0.3)

    def test_forbidden_nodes_with_node_labels(self):
        self.apply(svc("web"), eps("web", "web-a", pods("web", 1, 3)))
        w = self.watch(f"{NS}/web:http", "--node-label", "pool=edge", user="nonodes")
        st = w.expect_state("forbidden", contains=["RBAC preflight", "nodes"])
        self.assertIn("may not list and watch nodes (core API group) at the cluster scope; add the rule "
                      '{apiGroups: [""], resources: ["nodes"], verbs: ["list", "watch"]} to a ClusterRole', st["reason"])
        w.assert_no_update_since(0, wait=0.3)

    def test_list_without_watch_is_forbidden_with_the_rule(self):
        self.apply(svc("web"), eps("web", "web-a", pods("web", 1, 3)))
        w = self.watch(f"{NS}/web:http", user="nowatch")
        # The LIST works, so its set is published once; the watch cannot follow it.
        st = w.expect_state("forbidden", contains=["RBAC preflight"], allow_updates=True)
        self.assertLessEqual(w.generation, 1)
        self.assertIn('may not watch endpointslices (apiGroup discovery.k8s.io) in namespace "demo"', st["reason"])
        self.assertIn('verbs: ["watch"]', st["reason"])
        w.drain(0.3)
        ups = w.updates_since(0)
        self.assertEqual(len(ups), 1, "the LIST's set, then nothing")
        self.assertEqual(ups[0]["ready"], expect("web", 1, 3))

    def test_granting_the_rights_later_recovers(self):
        self.apply(svc("web"), eps("web", "web-a", pods("web", 1, 3)))
        w = self.watch(f"{NS}/web:http", user="noslices")
        w.expect_state("forbidden", contains=["RBAC preflight"])
        users = dict(self.USERS)
        users["noslices"] = dict(users["nonodes"], token="t-noslices")
        self.sim.config(users=users)
        w.expect_state("synced", timeout=10)
        w.expect_update(expect("web", 1, 3))

    def test_the_limited_user_with_enough_rights_works(self):
        self.apply(svc("web"), eps("web", "web-a", pods("web", 1, 3)))
        w = self.watch(f"{NS}/web:http", user="nonodes")
        w.expect_update(expect("web", 1, 3))


if __name__ == "__main__":
    unittest.main()
