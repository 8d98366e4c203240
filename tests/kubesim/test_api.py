# The private-range IP literals here are values to store and compare: addresses are data only (nothing connects to them).
"""kubesim's HTTP API read with a raw client and compared with the real wire samples."""

import json
import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import captures  # noqa: E402
from kubesim_client import KubeSim, RawStream, endpointslice, path_for, service  # noqa: E402

USERS = {
    "admin": {"token": "admin-token-2", "allow": "*"},
    "limited": {"token": "limited-token-2",
                "allow": [{"verbs": ["get", "list", "watch"], "resources": ["endpointslices"],
                           "namespace": "demo"}]},
}
ES = "endpointslices"


def capture_slice(ns, name, addr="10.1.0.1", labels=None):
    obj = endpointslice(ns, name, "web", [addr], 8080, node="node-a",
                        labels={"endpointslice.kubernetes.io/managed-by": "capture-script"})
    if labels:
        obj["metadata"]["labels"].update(labels)
    return obj


_SHARED = {}


def shared_sim():
    """One simulator for every test class without special arguments (each start costs ~1 s)."""
    sim = _SHARED.get("sim")
    if sim is None or sim.proc is None:
        sim = KubeSim(users=USERS, cluster="api").start()
        _SHARED["sim"] = sim

        def done():
            _SHARED.pop("sim", None)
            sim.cleanup()
        unittest.addModuleCleanup(done)
    return sim


class ApiTestBase(unittest.TestCase):
    sim_args = ()
    ns_seq = 0

    @classmethod
    def setUpClass(cls):
        if cls.sim_args:
            cls.sim = KubeSim(users=USERS, args=cls.sim_args, cluster="api")
            cls.sim.start()
            cls.addClassCleanup(cls.sim.cleanup)
        else:
            cls.sim = shared_sim()

    def setUp(self):
        self.addCleanup(self.sim.clear_faults)

    def new_ns(self, prefix="t"):
        ApiTestBase.ns_seq += 1
        ns = f"{prefix}{ApiTestBase.ns_seq}-{os.getpid() % 1000}"
        self.sim.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        return ns

    def create(self, obj, query="?fieldManager=kubectl-create", user="admin"):
        res = {"EndpointSlice": ES, "Service": "services", "Node": "nodes", "Namespace": "namespaces"}[obj["kind"]]
        ns = obj["metadata"].get("namespace") if res in (ES, "services") else None
        status, _, body = self.sim.request("POST", path_for(res, ns) + query, body=obj, user=user)
        return status, json.loads(body)

    def must_create(self, obj):
        status, body = self.create(obj)
        self.assertEqual(status, 201, body)
        return body

    def list(self, ns=None, res=ES, **query):
        status, body = self.sim.get_json(path_for(res, ns, query=query or None))
        return status, body

    def watch(self, ns=None, res=ES, user="admin", token=None, **query):
        query.setdefault("watch", "1")
        s = RawStream(self.sim, path_for(res, ns, query=query), user=user, token=token)
        self.addCleanup(s.close)
        return s


class DiscoveryAndFormat(ApiTestBase):
    def test_version_has_the_keys_of_the_real_server(self):
        cap = captures.read_http("version.http")
        status, body = self.sim.get_json("/version")
        self.assertEqual(status, 200)
        self.assertEqual(list(body.keys()), list(json.loads(cap["body"]).keys()))

    def test_discovery_lists_the_served_resources(self):
        _, api = self.sim.get_json("/api")
        self.assertEqual(api["versions"], ["v1"])
        _, v1 = self.sim.get_json("/api/v1")
        self.assertEqual(sorted(r["name"] for r in v1["resources"]), ["namespaces", "nodes", "services"])
        _, groups = self.sim.get_json("/apis")
        self.assertIn("discovery.k8s.io", [g["name"] for g in groups["groups"]])
        _, disc = self.sim.get_json("/apis/discovery.k8s.io/v1")
        es = [r for r in disc["resources"] if r["name"] == ES][0]
        self.assertTrue(es["namespaced"])
        self.assertEqual(es["kind"], "EndpointSlice")
        self.assertIn("watch", es["verbs"])

    def test_list_body_has_the_structure_and_framing_of_the_capture(self):
        ns = self.new_ns("list")
        self.must_create(capture_slice(ns, "web-1"))
        cap = captures.read_http("list-endpointslices.http")
        status, hdrs, body = self.sim.request("GET", path_for(ES, ns, query={
            "labelSelector": "kubernetes.io/service-name=web"}))
        self.assertEqual(status, 200)
        self.assertEqual(int(hdrs["content-length"]), len(body))
        self.assertNotIn("transfer-encoding", hdrs)
        self.assertEqual(hdrs["content-type"], "application/json")
        self.assertEqual(hdrs["cache-control"], cap["headers"]["cache-control"])
        self.assertIn("audit-id", hdrs)
        self.assertTrue(body.endswith(b"}\n") and b"\n" not in body[:-1], "compact JSON ending with a newline")
        mine, real = json.loads(body), json.loads(cap["body"])
        self.assertEqual(captures.shape(mine), captures.shape(real))
        self.assertEqual(json.dumps(captures.shape(mine)), json.dumps(captures.shape(real)), "key order")

    def test_curl_user_agent_gets_pretty_json_laid_out_like_the_capture(self):
        ns = self.new_ns("pretty")
        self.must_create(capture_slice(ns, "web-1"))
        cap = captures.read_http("list-endpointslices.curl-user-agent-pretty.http")
        status, hdrs, body = self.sim.request("GET", path_for(ES, ns), headers={"User-Agent": "curl/8.5.0"})
        self.assertEqual(status, 200)
        self.assertEqual(captures.mask_json_text(body.decode()), captures.mask_json_text(cap["body"].decode()))
        self.assertFalse(body.endswith(b"\n"))
        for ua in ("Wget/1.21", "Mozilla/5.0 (X11)"):
            _, _, b = self.sim.request("GET", path_for(ES, ns), headers={"User-Agent": ua})
            self.assertTrue(b.startswith(b"{\n  \"kind\""))

    def test_large_lists_are_chunked(self):
        ns = self.new_ns("big")
        for i in range(12):
            self.sim.apply(capture_slice(ns, f"web-{i:02d}", f"10.1.0.{i + 1}"))
        s = RawStream(self.sim, path_for(ES, ns))
        self.addCleanup(s.close)
        self.assertEqual(s.headers.get("transfer-encoding"), "chunked")
        self.assertNotIn("content-length", s.headers)
        body = json.loads(s.read_body())
        self.assertEqual(len(body["items"]), 12)


class AccessControl(ApiTestBase):
    def test_bad_token_gets_the_real_401_body(self):
        cap = captures.read_http("unauthorized-401-bad-token.http")
        status, hdrs, body = self.sim.request("GET", path_for(ES, "demo"), token="nope")
        self.assertEqual(status, 401)
        self.assertEqual(body, cap["body"])
        self.assertEqual(int(hdrs["content-length"]), len(body))

    def test_bad_token_on_a_watch_gets_401_before_any_streaming(self):
        cap = captures.read_http("unauthorized-401-bad-token-watch.http")
        s = self.watch("demo", token="nope")
        self.assertEqual(s.status, 401)
        self.assertEqual(s.read_body(), cap["body"])

    def test_limited_user_gets_the_real_403_bodies(self):
        for name, ns, verb, query in (("forbidden-403-limited-cluster-wide-list.http", None, "list", {}),
                                      ("forbidden-403-limited-watch-other-namespace.http", "default", "watch",
                                       {"watch": "1"})):
            cap = captures.read_http(name)
            status, hdrs, body = self.sim.request("GET", path_for(ES, ns, query=query or None), user="limited")
            self.assertEqual(status, 403, name)
            self.assertEqual(body, cap["body"], name)
            self.assertEqual(hdrs["x-content-type-options"], "nosniff")

    def test_limited_user_may_list_its_own_namespace(self):
        self.sim.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}})
        self.sim.apply(capture_slice("demo", "web-1"))
        cap = captures.read_http("ok-200-limited-list-own-namespace.http")
        status, _, body = self.sim.request("GET", path_for(ES, "demo"), user="limited")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["kind"], json.loads(cap["body"])["kind"])
        status, _, body = self.sim.request("GET", path_for(ES, "demo", "web-1"), user="limited")
        self.assertEqual(status, 200)

    def test_anonymous_requests_are_forbidden_like_the_capture(self):
        cap = captures.read_http("forbidden-403-anonymous.http")
        status, _, body = self.sim.request("GET", path_for(ES, "demo"), user=None)
        self.assertEqual(status, 403)
        self.assertEqual(body, cap["body"])

    def test_self_subject_access_review_uses_the_allow_list(self):
        def review(user, **attrs):
            st, _, body = self.sim.request("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", user=user,
                                           body={"apiVersion": "authorization.k8s.io/v1",
                                                 "kind": "SelfSubjectAccessReview",
                                                 "spec": {"resourceAttributes": attrs}})
            self.assertEqual(st, 201)
            return json.loads(body)["status"]["allowed"]
        self.assertTrue(review("limited", verb="watch", group="discovery.k8s.io", resource=ES, namespace="demo"))
        self.assertFalse(review("limited", verb="watch", group="discovery.k8s.io", resource=ES, namespace="x"))
        self.assertFalse(review("limited", verb="list", group="discovery.k8s.io", resource=ES))
        self.assertFalse(review("limited", verb="delete", group="discovery.k8s.io", resource=ES, namespace="demo"))
        self.assertTrue(review("admin", verb="delete", group="", resource="nodes"))


class AdminControls(ApiTestBase):
    def test_tokens_can_be_rotated_at_run_time(self):
        sim = KubeSim(users=USERS, cluster="rotate").start()
        self.addCleanup(sim.cleanup)
        old = sim.token("admin")
        self.assertEqual(sim.request("GET", "/api/v1/nodes")[0], 200)
        users = dict(USERS, admin={"token": "rotated-token", "allow": "*"})
        out = sim.config(users=users)
        self.assertEqual(out["users"]["admin"]["token"], "rotated-token")
        self.assertEqual(sim.request("GET", "/api/v1/nodes", token=old)[0], 401)
        self.assertEqual(sim.request("GET", "/api/v1/nodes", token="rotated-token")[0], 200)
        with open(sim.kubeconfig("admin")) as f:
            self.assertIn("token: rotated-token", f.read())

    def test_request_log_shows_what_clients_sent(self):
        seq = max([r["seq"] for r in self.sim.requests()], default=0)
        self.sim.request("GET", path_for(ES, "demo", query={"labelSelector": "a=b", "limit": "5"}),
                         headers={"User-Agent": "probe/1.0"})
        self.sim.request("GET", path_for(ES, "demo"), token="bad")
        reqs = self.sim.requests(since=seq)
        self.assertEqual([(r["method"], r["path"], r["code"]) for r in reqs],
                         [("GET", path_for(ES, "demo"), 200), ("GET", path_for(ES, "demo"), 401)])
        self.assertEqual(reqs[0]["query"], {"labelSelector": "a=b", "limit": "5"})
        self.assertEqual((reqs[0]["user"], reqs[0]["userAgent"]), ("admin", "probe/1.0"))

    def test_admin_api_needs_the_admin_token(self):
        st, _, _ = self.sim.request("GET", "/kubesim/admin/state")
        self.assertEqual(st, 401)


class Writes(ApiTestBase):
    def test_resource_version_is_a_global_increasing_counter(self):
        ns = self.new_ns("rv")
        a = self.must_create(capture_slice(ns, "a"))
        b = self.must_create(service(ns, "web", [("http", 80, 8080)]))
        self.assertGreater(int(b["metadata"]["resourceVersion"]), int(a["metadata"]["resourceVersion"]))
        _, lst = self.list(ns)
        self.assertGreaterEqual(int(lst["metadata"]["resourceVersion"]), int(b["metadata"]["resourceVersion"]))

    def test_updates_keep_identity_and_count_generations(self):
        ns = self.new_ns("upd")
        a = self.must_create(capture_slice(ns, "a"))
        a2 = json.loads(json.dumps(a))
        a2["endpoints"][0]["addresses"] = ["10.1.0.2"]
        st, _, body = self.sim.request("PUT", path_for(ES, ns, "a"), body=a2)
        self.assertEqual(st, 200, body)
        b = json.loads(body)
        self.assertEqual(b["metadata"]["uid"], a["metadata"]["uid"])
        self.assertEqual(b["metadata"]["creationTimestamp"], a["metadata"]["creationTimestamp"])
        self.assertEqual(b["metadata"]["generation"], 2)
        self.assertGreater(int(b["metadata"]["resourceVersion"]), int(a["metadata"]["resourceVersion"]))
        # the same body again (stale resourceVersion) is a conflict
        st, _, body = self.sim.request("PUT", path_for(ES, ns, "a"), body=a2)
        self.assertEqual(st, 409)
        self.assertEqual(json.loads(body)["reason"], "Conflict")
        # a no-op update changes nothing
        st, _, body = self.sim.request("PUT", path_for(ES, ns, "a"), body=b)
        self.assertEqual(json.loads(body)["metadata"]["resourceVersion"], b["metadata"]["resourceVersion"])

    def test_create_twice_is_already_exists_and_missing_namespace_is_not_found(self):
        ns = self.new_ns("dup")
        self.must_create(capture_slice(ns, "a"))
        st, body = self.create(capture_slice(ns, "a"))
        self.assertEqual((st, body["reason"]), (409, "AlreadyExists"))
        self.assertEqual(body["message"], 'endpointslices.discovery.k8s.io "a" already exists')
        st, body = self.create(capture_slice("no-such-ns", "a"))
        self.assertEqual((st, body["reason"], body["message"]), (404, "NotFound", 'namespaces "no-such-ns" not found'))

    def test_delete_returns_a_status_or_the_object_like_the_real_server(self):
        ns = self.new_ns("del")
        a = self.must_create(capture_slice(ns, "a"))
        self.must_create(service(ns, "web", [("http", 80, 8080)]))
        st, _, body = self.sim.request("DELETE", path_for(ES, ns, "a"))
        self.assertEqual(st, 200)
        body = json.loads(body)
        self.assertEqual((body["kind"], body["status"]), ("Status", "Success"))
        self.assertEqual(body["details"], {"name": "a", "group": "discovery.k8s.io", "kind": ES,
                                           "uid": a["metadata"]["uid"]})
        st, _, body = self.sim.request("DELETE", path_for("services", ns, "web"))
        self.assertEqual((st, json.loads(body)["kind"]), (200, "Service"))
        st, _, body = self.sim.request("DELETE", path_for(ES, ns, "a"))
        self.assertEqual(st, 404)

    def test_validation_follows_the_real_rules_except_loopback(self):
        ns = self.new_ns("val")
        cases = [
            ({"addressType": None}, "addressType", "FieldValueRequired"),
            ({"addressType": "IP"}, "addressType", "FieldValueNotSupported"),
            ({"endpoints": [{"addresses": ["169.254.1.1"]}]}, "endpoints[0].addresses[0]", "FieldValueInvalid"),
            ({"endpoints": [{"addresses": ["0.0.0.0"]}]}, "endpoints[0].addresses[0]", "FieldValueInvalid"),
            ({"endpoints": [{"addresses": ["224.0.0.5"]}]}, "endpoints[0].addresses[0]", "FieldValueInvalid"),
            ({"endpoints": [{"addresses": ["fe80::1"]}], "addressType": "IPv6"}, "endpoints[0].addresses[0]",
             "FieldValueInvalid"),
            ({"endpoints": [{"addresses": ["::1"]}]}, "endpoints[0].addresses[0]", "FieldValueInvalid"),
            ({"endpoints": [{"addresses": []}]}, "endpoints[0].addresses", "FieldValueRequired"),
            ({"endpoints": [{"addresses": ["nodot"]}], "addressType": "FQDN"}, "endpoints[0].addresses[0]",
             "FieldValueInvalid"),
            ({"ports": [{"name": "http", "port": 70000}]}, "ports[0].port", "FieldValueInvalid"),
            ({"ports": [{"name": "Bad_Name", "port": 80}]}, "ports[0].name", "FieldValueInvalid"),
            ({"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]}, "ports[1].name",
             "FieldValueDuplicate"),
            ({"ports": [{"name": "a", "port": 80, "protocol": "HTTP"}]}, "ports[0].protocol",
             "FieldValueNotSupported"),
            ({"metadata": {"name": "a..b", "namespace": ns}}, "metadata.name", "FieldValueInvalid"),
            ({"endpoints": [{"addresses": ["10.1.0.1"], "nodeName": "Node_A"}]}, "endpoints[0].nodeName",
             "FieldValueInvalid"),
        ]
        for i, (patch, field, reason) in enumerate(cases):
            obj = capture_slice(ns, f"v{i}")
            obj.update(patch)
            if obj["addressType"] is None:
                del obj["addressType"]
            st, body = self.create(obj)
            self.assertEqual(st, 422, (patch, body))
            self.assertEqual(body["reason"], "Invalid")
            causes = body["details"]["causes"]
            self.assertIn((reason, field), [(c["reason"], c["field"]) for c in causes], (patch, body))
            self.assertTrue(body["message"].startswith(f'EndpointSlice.discovery.k8s.io "'), body["message"])
        # loopback is accepted on purpose, both families; other addresses as the real server
        for i, (at, addr) in enumerate((("IPv4", "127.0.0.1"), ("IPv4", "127.0.1.5"), ("IPv6", "::1"),
                                        ("IPv6", "2001:db8::1"), ("FQDN", "pod.example.com"))):
            obj = capture_slice(ns, f"ok{i}", addr)
            obj["addressType"] = at
            st, body = self.create(obj)
            self.assertEqual(st, 201, body)
        # the service-name label is just a label: not required
        obj = capture_slice(ns, "nolabel")
        obj["metadata"]["labels"] = {}
        self.assertEqual(self.create(obj)[0], 201)
        # type errors are decode errors (400)
        obj = capture_slice(ns, "typed")
        obj["ports"][0]["port"] = "8080"
        st, body = self.create(obj)
        self.assertEqual((st, body["reason"]), (400, "BadRequest"))
        # immutable addressType
        cur = self.sim.get_json(path_for(ES, ns, "ok0"))[1]
        cur["addressType"] = "IPv6"
        st, _, body = self.sim.request("PUT", path_for(ES, ns, "ok0"), body=cur)
        self.assertEqual(st, 422, body)

    def test_services_get_defaults_and_validation(self):
        ns = self.new_ns("svc")
        svc = self.must_create(service(ns, "web", [("", 80, 8080)]))
        self.assertEqual(svc["spec"]["type"], "ClusterIP")
        self.assertRegex(svc["spec"]["clusterIP"], r"^10\.9[6-9]\.|^10\.1[01]\d\.")
        self.assertEqual(svc["spec"]["ports"][0]["protocol"], "TCP")
        st, body = self.create(service(ns, "two", [("", 80, 8080), ("", 81, 8081)]))
        self.assertEqual(st, 422)
        self.assertIn("spec.ports[0].name: Required value", body["message"])
        st, body = self.create(service(ns, "Upper", [("http", 80, 8080)]))
        self.assertEqual(st, 422)


class ListAndSelectors(ApiTestBase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.sim.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "sel"}})
        labels = {"a": {"tier": "web", "env": "prod"}, "b": {"tier": "db", "env": "prod"},
                  "c": {"tier": "web"}, "d": {"tier": "cache", "env": "dev"}, "e": {}}
        for name, lab in labels.items():
            cls.sim.apply(capture_slice("sel", name, labels=lab))

    def names(self, **query):
        st, body = self.list("sel", **query)
        self.assertEqual(st, 200, body)
        return [i["metadata"]["name"] for i in body["items"]]

    def test_label_selector_operators(self):
        self.assertEqual(self.names(labelSelector="tier=web"), ["a", "c"])
        self.assertEqual(self.names(labelSelector="tier==web"), ["a", "c"])
        self.assertEqual(self.names(labelSelector="tier!=web"), ["b", "d", "e"])
        self.assertEqual(self.names(labelSelector="tier in (web,db)"), ["a", "b", "c"])
        self.assertEqual(self.names(labelSelector="tier notin (web,db)"), ["d", "e"])
        self.assertEqual(self.names(labelSelector="env"), ["a", "b", "d"])
        self.assertEqual(self.names(labelSelector="!env"), ["c", "e"])
        self.assertEqual(self.names(labelSelector="tier=web,env=prod"), ["a"])
        self.assertEqual(self.names(labelSelector="tier in (web, cache),!env"), ["c"])

    def test_bad_label_selector_is_a_bad_request(self):
        st, body = self.list("sel", labelSelector="tier in web")
        self.assertEqual((st, body["reason"]), (400, "BadRequest"))

    def test_set_based_selectors_follow_the_api_servers_grammar(self):
        # whitespace is free around symbols; a value list may hold empty values; "in" and
        # "notin" are plain values inside a list or after "="
        self.assertEqual(self.names(labelSelector="  tier   in(web ,db ) , env "), ["a", "b"])
        self.assertEqual(self.names(labelSelector="tier in (in, notin, web)"), ["a", "c"])
        self.assertEqual(self.names(labelSelector="tier notin (web),env"), ["b", "d"])
        self.assertEqual(self.names(labelSelector="!tier"), ["e"])
        self.assertEqual(self.names(labelSelector="env notin ()"), ["a", "b", "c", "d", "e"])  # () is {""}
        self.assertEqual(self.names(labelSelector="tier in (,web)"), ["a", "c"])
        self.assertEqual(self.names(labelSelector="tier in (web),tier notin (web)"), [])
        self.assertEqual(self.names(labelSelector="tier="), [])  # the empty value; nobody has it
        self.assertEqual(self.names(labelSelector=""), ["a", "b", "c", "d", "e"])

    def test_bad_set_based_selectors_get_the_parsers_message(self):
        for sel, message in (
                ("tier in web", "found 'web' expected: '('"),
                ("tier in (web db)", "found 'db', expected: ',' or ')'"),
                ("tier in (web", "found '', expected: ',' or ')'"),
                ("tier,", "found '', expected: identifier after ','"),
                ("!tier=web", "found '=', expected: ',' or 'end of string'"),
                ("tier web", "found 'web', expected: in, notin, =, ==, !=, gt, lt"),
                ("(tier)", "found '(', expected: !, identifier, or 'end of string'"),
                ("tier in (we b@d)", "found 'b@d', expected: ',' or ')'"),
                ("tier in (b@d)", 'values[0][tier]: Invalid value: "b@d"'),
                ("ti@r in (web)", 'key: Invalid value: "ti@r"'),
                ("n>x", "for 'Gt', 'Lt' operators, the value must be an integer")):
            st, body = self.list("sel", labelSelector=sel)
            self.assertEqual((st, body["reason"]), (400, "BadRequest"), sel)
            self.assertTrue(body["message"].startswith("unable to parse requirement: "), body["message"])
            self.assertIn(message, body["message"], sel)

    def test_watch_with_a_set_based_selector_carries_only_the_selected_services(self):
        ns = self.new_ns("wsel")
        for svc in ("a", "b", "c"):
            self.sim.apply(capture_slice(ns, f"{svc}-1", labels={"kubernetes.io/service-name": svc}))
        sel = "kubernetes.io/service-name in (a,b)"
        st, lst = self.list(ns, labelSelector=sel)
        self.assertEqual([i["metadata"]["name"] for i in lst["items"]], ["a-1", "b-1"])
        s = self.watch(ns, labelSelector=sel, resourceVersion=lst["metadata"]["resourceVersion"], timeoutSeconds="3")
        self.sim.wait_watches(1, ES)
        self.sim.apply(capture_slice(ns, "c-2", "10.1.0.3", labels={"kubernetes.io/service-name": "c"}))
        self.sim.apply(capture_slice(ns, "b-2", "10.1.0.2", labels={"kubernetes.io/service-name": "b"}))
        # relabelled out of the selection: DELETED (with its previous labels, as the watch cache does); into it: ADDED
        self.sim.apply(capture_slice(ns, "a-1", labels={"kubernetes.io/service-name": "c"}))
        self.sim.apply(capture_slice(ns, "c-1", labels={"kubernetes.io/service-name": "a"}))
        evs = s.events(3)
        self.assertEqual([(e["type"], e["object"]["metadata"]["name"],
                           e["object"]["metadata"]["labels"]["kubernetes.io/service-name"]) for e in evs],
                         [("ADDED", "b-2", "b"), ("DELETED", "a-1", "a"), ("ADDED", "c-1", "a")])

    def test_field_selector_on_the_name(self):
        self.assertEqual(self.names(fieldSelector="metadata.name=b"), ["b"])
        self.assertEqual(self.names(fieldSelector="metadata.name!=b"), ["a", "c", "d", "e"])
        self.assertEqual(self.names(fieldSelector="metadata.name=b,metadata.namespace=sel"), ["b"])
        st, body = self.list("sel", fieldSelector="spec.nodeName=x")
        self.assertEqual((st, body["reason"]), (400, "BadRequest"))

    def test_paging_with_limit_and_continue(self):
        st, p1 = self.list("sel", limit="2")
        self.assertEqual([i["metadata"]["name"] for i in p1["items"]], ["a", "b"])
        self.assertEqual(p1["metadata"]["remainingItemCount"], 3)
        # a change between pages is not visible: pages are served at the first page's resourceVersion
        self.sim.apply(capture_slice("sel", "bb"))
        self.addCleanup(self.sim.delete, ES, "sel", "bb")
        st, p2 = self.list("sel", limit="2", **{"continue": p1["metadata"]["continue"]})
        self.assertEqual([i["metadata"]["name"] for i in p2["items"]], ["c", "d"])
        self.assertEqual(p2["metadata"]["resourceVersion"], p1["metadata"]["resourceVersion"])
        st, p3 = self.list("sel", limit="2", **{"continue": p2["metadata"]["continue"]})
        self.assertEqual([i["metadata"]["name"] for i in p3["items"]], ["e"])
        self.assertNotIn("continue", p3["metadata"])
        # with a selector there is no remainingItemCount
        st, p = self.list("sel", limit="1", labelSelector="tier=web")
        self.assertEqual([i["metadata"]["name"] for i in p["items"]], ["a"])
        self.assertNotIn("remainingItemCount", p["metadata"])
        st, p = self.list("sel", limit="1", labelSelector="tier=web", **{"continue": p["metadata"]["continue"]})
        self.assertEqual([i["metadata"]["name"] for i in p["items"]], ["c"])

    def test_list_exact_resource_version_shows_the_past(self):
        ns = self.new_ns("past")
        self.sim.apply(capture_slice(ns, "x"))
        _, before = self.list(ns)
        self.sim.apply(capture_slice(ns, "x", "10.1.0.9"))
        self.sim.apply(capture_slice(ns, "y"))
        _, then = self.list(ns, resourceVersion=before["metadata"]["resourceVersion"], resourceVersionMatch="Exact")
        self.assertEqual([i["metadata"]["name"] for i in then["items"]], ["x"])
        self.assertEqual(then["items"][0]["endpoints"][0]["addresses"], ["10.1.0.1"])
        self.assertEqual(then["metadata"]["resourceVersion"], before["metadata"]["resourceVersion"])

    def test_list_options_are_checked(self):
        st, body = self.list("sel", resourceVersionMatch="Exact")
        self.assertEqual((st, body["reason"]), (422, "Invalid"))
        st, body = self.list("sel", resourceVersion="0", resourceVersionMatch="Exact")
        self.assertEqual(st, 422)


class Watches(ApiTestBase):

    def test_watch_without_resource_version_starts_with_added_events(self):
        ns = self.new_ns("w0")
        self.sim.apply(capture_slice(ns, "web-1"))
        self.sim.apply(capture_slice(ns, "web-2"))
        s = self.watch(ns, timeoutSeconds="1")
        self.assertEqual(s.status, 200)
        self.assertEqual(s.headers["transfer-encoding"], "chunked")
        self.assertNotIn("content-length", s.headers)
        evs = s.events()
        self.assertEqual([(e["type"], e["object"]["metadata"]["name"]) for e in evs],
                         [("ADDED", "web-1"), ("ADDED", "web-2")])
        cap = captures.read_http("watch-endpointslices-no-rv.http1.http")
        first = json.loads(cap["body"].split(b"\n")[0])
        self.assertEqual(json.dumps(captures.shape(evs[0])), json.dumps(captures.shape(first)))

    def test_watch_streams_changes_one_json_line_per_event(self):
        ns = self.new_ns("w1")
        _, lst = self.list(ns)
        s = self.watch(ns, resourceVersion=lst["metadata"]["resourceVersion"], timeoutSeconds="5")
        self.sim.wait_watches(1, ES)
        self.must_create(capture_slice(ns, "web-2", "10.1.0.2"))
        chunk = s.read_chunk()
        self.assertTrue(chunk.endswith(b"\n"))
        self.assertEqual(chunk.count(b"\n"), 1)
        ev = json.loads(chunk)
        cap = captures.read_http("watch-endpointslices.http1-raw.http")
        real = json.loads(cap["chunks"][0])
        self.assertEqual(ev["type"], "ADDED")
        self.assertEqual(list(ev["object"].keys()), list(real["object"].keys()))
        self.assertEqual(list(ev["object"]["metadata"].keys()), list(real["object"]["metadata"].keys()))

    def test_bookmark_after_an_unrelated_change_looks_like_the_capture(self):
        ns = self.new_ns("wb")
        other = self.new_ns("wbo")
        _, lst = self.list(ns)
        rv = lst["metadata"]["resourceVersion"]
        s = self.watch(ns, resourceVersion=rv, allowWatchBookmarks="true", timeoutSeconds="2")
        self.sim.wait_watches(1, ES)
        self.sim.apply(capture_slice(other, "elsewhere"))
        t0 = time.monotonic()
        chunk = s.read_chunk()
        self.assertGreater(time.monotonic() - t0, 0.5, "the bookmark comes near the timeout")
        cap = captures.read_http("watch-bookmark-after-unrelated-event.http1-raw.http")
        want = json.loads(cap["chunks"][0])
        got = json.loads(chunk)
        self.assertGreater(int(got["object"]["metadata"]["resourceVersion"]), int(rv))
        want["object"]["metadata"]["resourceVersion"] = got["object"]["metadata"]["resourceVersion"]
        self.assertEqual(chunk, json.dumps(want, separators=(",", ":")).encode() + b"\n")
        self.assertIsNone(s.read_chunk(), "then the stream ends at the timeout")

    def test_idle_watch_gets_no_bookmark_and_ends_at_the_timeout(self):
        ns = self.new_ns("wi")
        cap = captures.read_http("watch-idle-no-bookmark.http1-raw.http")
        _, lst = self.list(ns)
        # nothing of this type changes after the start: no bookmark (watch from "now")
        s = self.watch(ns, resourceVersion=lst["metadata"]["resourceVersion"], allowWatchBookmarks="true",
                       timeoutSeconds="1")
        self.assertEqual(s.status, cap["status"])
        self.assertEqual(s.headers["transfer-encoding"], "chunked")
        self.assertIsNone(s.read_chunk())

    def test_bookmark_on_demand_and_periodic(self):
        ns = self.new_ns("wp")
        _, lst = self.list(ns)
        s = self.watch(ns, resourceVersion=lst["metadata"]["resourceVersion"], allowWatchBookmarks="true",
                       timeoutSeconds="20")
        w = self.sim.wait_watches(1, ES)
        self.sim.apply(capture_slice(self.new_ns("wpo"), "x"))
        self.sim.watch_control("bookmark", ids=[x["id"] for x in w])
        ev = s.events(1, timeout=5)[0]
        self.assertEqual(ev["type"], "BOOKMARK")
        self.assertEqual(ev["object"]["endpoints"], None)

    def test_periodic_bookmarks_follow_the_configured_interval(self):
        self.sim.config(bookmark_interval=0.3)
        self.addCleanup(self.sim.config, bookmark_interval=60)
        ns = self.new_ns("wper")
        _, lst = self.list(ns)
        s = self.watch(ns, resourceVersion=lst["metadata"]["resourceVersion"], allowWatchBookmarks="true",
                       timeoutSeconds="20")
        self.sim.wait_watches(1, ES)
        self.sim.apply(capture_slice(ns, "x"))
        evs = s.events(3, timeout=5)
        self.assertEqual([e["type"] for e in evs], ["ADDED", "BOOKMARK", "BOOKMARK"])
        self.assertEqual(evs[1]["object"]["metadata"]["resourceVersion"], evs[0]["object"]["metadata"]["resourceVersion"])
        # without allowWatchBookmarks there are none
        s2 = self.watch(ns, resourceVersion=lst["metadata"]["resourceVersion"], timeoutSeconds="1")
        self.assertEqual([e["type"] for e in s2.events()], ["ADDED"])

    def test_selector_changes_become_added_and_deleted(self):
        ns = self.new_ns("wsel")
        self.sim.apply(capture_slice(ns, "x", labels={"tier": "db"}))
        _, lst = self.list(ns)
        s = self.watch(ns, resourceVersion=lst["metadata"]["resourceVersion"], labelSelector="tier=web",
                       timeoutSeconds="5")
        self.sim.wait_watches(1, ES)
        self.sim.apply(capture_slice(ns, "x", labels={"tier": "web"}))
        self.sim.apply(capture_slice(ns, "x", "10.1.0.7", labels={"tier": "web"}))
        self.sim.apply(capture_slice(ns, "x", labels={"tier": "db"}))
        evs = s.events(3, timeout=5)
        self.assertEqual([e["type"] for e in evs], ["ADDED", "MODIFIED", "DELETED"])
        rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in evs]
        self.assertEqual(rvs, sorted(rvs))

    def test_watch_from_an_old_version_replays_history(self):
        ns = self.new_ns("wh")
        _, lst = self.list(ns)
        self.sim.apply(capture_slice(ns, "web-3", "10.1.0.3"))
        self.sim.apply(capture_slice(ns, "web-3", "10.1.0.33"))
        s = self.watch(ns, resourceVersion=lst["metadata"]["resourceVersion"], timeoutSeconds="1")
        evs = s.events()
        self.assertEqual([e["type"] for e in evs], ["ADDED", "MODIFIED"])
        self.assertEqual(evs[1]["object"]["endpoints"][0]["addresses"], ["10.1.0.33"])

    def test_many_watches_each_get_every_event_in_order(self):
        ns = self.new_ns("wmany")
        _, lst = self.list(ns)
        streams = [self.watch(ns, resourceVersion=lst["metadata"]["resourceVersion"], timeoutSeconds="30")
                   for _ in range(10)]
        self.sim.wait_watches(10, ES)
        items = [{"op": "apply", "object": capture_slice(ns, "x", f"10.1.{i // 250}.{i % 250 + 1}")}
                 for i in range(60)]
        self.sim.admin("POST", "/objects", {"items": items})
        for s in streams:
            evs = s.events(60, timeout=10)
            self.assertEqual([e["type"] for e in evs], ["ADDED"] + ["MODIFIED"] * 59)
            rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in evs]
            self.assertEqual(rvs, list(range(rvs[0], rvs[0] + 60)))
            self.assertEqual(evs[-1]["object"]["endpoints"][0]["addresses"], ["10.1.0.60"])

    def test_table_watch_for_kubectl(self):
        ns = self.new_ns("wt")
        self.sim.apply(capture_slice(ns, "web-1"))
        s = self.watch(ns, timeoutSeconds="1")
        s.close()
        st = RawStream(self.sim, path_for(ES, ns, query={"watch": "1", "timeoutSeconds": "1"}),
                       headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"})
        self.addCleanup(st.close)
        ev = st.events(1)[0]
        self.assertEqual(ev["object"]["kind"], "Table")
        self.assertEqual([c["name"] for c in ev["object"]["columnDefinitions"]],
                         ["Name", "AddressType", "Ports", "Endpoints", "Age"])
        self.assertEqual(ev["object"]["rows"][0]["cells"][:4], ["web-1", "IPv4", "8080", "10.1.0.1"])


if __name__ == "__main__":
    unittest.main()
