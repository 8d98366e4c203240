# The private-range IP literals here are values to validate and compare: addresses are data only (nothing connects to them).
"""kubesim driven and read by the real kubectl, compared with real kubectl output in the captures."""

import json
import os
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import captures  # noqa: E402
from kubesim_client import KubeSim, kubectl_path, run_kubectl, service  # noqa: E402

USERS = {
    "admin": {"token": "admin-token-1", "allow": "*"},
    "limited": {"token": "limited-token-1",
                "allow": [{"verbs": ["get", "list", "watch"], "resources": ["endpointslices"],
                           "namespace": "demo"}]},
}

SLICE_YAML = """apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}
  namespace: {ns}
  labels:
    kubernetes.io/service-name: web
    endpointslice.kubernetes.io/managed-by: capture-script
addressType: IPv4
endpoints:
- addresses: ["{addr}"]
  conditions: {{ready: {ready}}}
  nodeName: node-a
ports:
- name: http
  port: 8080
  protocol: TCP
"""


def slice_yaml(name, ns="demo", addr="127.0.1.1", ready="true"):
    return SLICE_YAML.format(name=name, ns=ns, addr=addr, ready=ready)


def columns(line):
    return re.split(r"\s{2,}", line.strip())


if kubectl_path() is None:
    sys.stderr.write("\n" + "!" * 78 + "\n!!! kubectl is NOT installed: kubesim's kubectl conformance tests are SKIPPED\n"
                     + "!" * 78 + "\n")


@unittest.skipIf(kubectl_path() is None,
                 "\n\n!!!!! kubectl is NOT installed: the kubectl conformance tests of kubesim are SKIPPED !!!!!\n")
class KubectlConformance(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = KubeSim(users=USERS, cluster="tke-a")
        cls.sim.start()
        cls.addClassCleanup(cls.sim.cleanup)
        r = cls.kubectl_cls("create", "namespace", "demo")
        assert r.returncode == 0, r.stderr

    @classmethod
    def kubectl_cls(cls, *args, **kw):
        return run_kubectl(cls.sim, *args, **kw)

    def kubectl(self, *args, ok=True, **kw):
        r = run_kubectl(self.sim, *args, **kw)
        if ok:
            self.assertEqual(r.returncode, 0, f"kubectl {' '.join(args)} failed: {r.stderr}")
        return r

    def test_version_reports_the_simulated_server(self):
        r = self.kubectl("version")
        self.assertIn("Server Version: v1.32.0-kubesim", r.stdout)

    def test_namespaces_list_like_the_capture(self):
        self.kubectl("create", "namespace", "wiretest")
        r = self.kubectl("get", "ns")
        lines = r.stdout.splitlines()
        cap = captures.read_text("kubectl-setup.txt")
        cap_header = [l for l in cap.splitlines() if l.startswith("NAME") and "STATUS" in l][0]
        self.assertEqual(columns(lines[0]), columns(cap_header))
        names = [columns(l)[0] for l in lines[1:]]
        for ns in ("default", "demo", "kube-node-lease", "kube-public", "kube-system", "wiretest"):
            self.assertIn(ns, names)
        self.assertEqual(names, sorted(names))
        self.assertTrue(all(columns(l)[1] == "Active" for l in lines[1:]))
        r = self.kubectl("get", "namespace", "wiretest", "-o", "json")
        obj = json.loads(r.stdout)
        self.assertEqual(obj["metadata"]["labels"]["kubernetes.io/metadata.name"], "wiretest")
        self.assertEqual(obj["status"]["phase"], "Active")

    def test_service_and_endpointslice_setup_matches_the_capture(self):
        self.kubectl("create", "namespace", "setup")
        r = self.kubectl("-n", "setup", "create", "service", "clusterip", "web", "--tcp=80:8080")
        self.assertEqual(r.stdout.strip(), "service/web created")
        r = self.kubectl("create", "-f", "-", input_text=slice_yaml("web-1", "setup", "127.0.1.1"))
        self.assertEqual(r.stdout.strip(), "endpointslice.discovery.k8s.io/web-1 created")
        r = self.kubectl("-n", "setup", "get", "svc,endpointslices", "-o", "wide")
        got = [l for l in r.stdout.splitlines()]
        cap = captures.read_text("kubectl-setup.txt").splitlines()
        i = cap.index("$ kubectl -n demo get svc,endpointslices -o wide")
        want = cap[i + 1:i + 6]
        self.assertEqual(len(got), len(want), r.stdout)
        self.assertEqual(columns(got[0]), columns(want[0]))
        svc, want_svc = columns(got[1]), columns(want[1])
        self.assertEqual(svc[0:2], want_svc[0:2])
        self.assertRegex(svc[2], r"^10\.\d+\.\d+\.\d+$")
        self.assertEqual(svc[3:5], want_svc[3:5])
        self.assertEqual(svc[6], want_svc[6])
        self.assertEqual(got[2], "")
        self.assertEqual(columns(got[3]), columns(want[3]))
        es, want_es = columns(got[4]), columns(want[4])
        self.assertEqual(es[0:3], want_es[0:3])
        self.assertEqual(es[3], "127.0.1.1")

    def test_get_watch_prints_the_events_like_the_capture(self):
        self.kubectl("create", "namespace", "wdemo")
        self.kubectl("create", "-f", "-", input_text=slice_yaml("web-1", "wdemo", "127.0.1.1"))
        before = [w["id"] for w in self.sim.watches()]
        env = dict(os.environ, KUBECONFIG=os.path.join(self.sim.state_dir, "empty-kubeconfig"))
        proc = subprocess.Popen([kubectl_path(), "--server", self.sim.server, "--token", self.sim.token(),
                                 "--certificate-authority", self.sim.ca_file, "--cache-dir",
                                 os.path.join(self.sim.state_dir, "kubectl-cache"), "-n", "wdemo", "get",
                                 "endpointslices", "-w", "--output-watch-events"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        self.sim.wait_watches(1, "endpointslices", after_id=max(before, default=0))
        self.kubectl("create", "-f", "-", input_text=slice_yaml("web-2", "wdemo", "127.0.1.2", "false"))
        self.kubectl("replace", "-f", "-", input_text=slice_yaml("web-2", "wdemo", "127.0.1.2", "true"))
        self.kubectl("-n", "wdemo", "label", "endpointslice", "web-1", "capture/touched=yes")
        self.kubectl("-n", "wdemo", "delete", "endpointslice", "web-2")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            st = self.sim.state()
            if all(w["eventsSent"] >= 5 for w in st["watches"] if w["resource"] == "endpointslices"
                   and w["namespace"] == "wdemo"):
                break
            time.sleep(0.05)
        time.sleep(0.3)
        proc.terminate()
        out, err = proc.communicate(timeout=10)
        got = [columns(l) for l in out.splitlines()]
        want = [columns(l) for l in captures.read_text("kubectl-get-endpointslices-w.txt").splitlines()]
        self.assertEqual(got[0], want[0])
        self.assertEqual([(g[0], g[1]) for g in got[1:]],
                         [("ADDED", "web-1"), ("ADDED", "web-2"), ("MODIFIED", "web-2"), ("MODIFIED", "web-1"),
                          ("DELETED", "web-2")], out + err)
        # the same event sequence as the real server produced, with the same columns
        self.assertEqual([(g[0], g[1]) for g in got[1:]], [(w[0], w[1]) for w in want[1:]])
        for g, w in zip(got[1:], want[1:]):
            self.assertEqual(g[2:4], w[2:4])
            self.assertRegex(g[5], r"^\d+s$")

    def watch_with_kubectl(self, *args):
        before = [w["id"] for w in self.sim.watches()]
        env = dict(os.environ, KUBECONFIG=os.path.join(self.sim.state_dir, "empty-kubeconfig"))
        proc = subprocess.Popen([kubectl_path(), "--server", self.sim.server, "--token", self.sim.token(),
                                 "--certificate-authority", self.sim.ca_file, "--cache-dir",
                                 os.path.join(self.sim.state_dir, "kubectl-cache")] + list(args) +
                                ["-w", "--output-watch-events"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        watch = self.sim.wait_watches(1, after_id=max(before, default=0))[0]
        return proc, watch["id"]

    def stop_watch(self, proc, wid, events):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ws = [w for w in self.sim.watches() if w["id"] == wid]
            if not ws or ws[0]["eventsSent"] >= events:
                break
            time.sleep(0.05)
        time.sleep(0.3)
        proc.terminate()
        out, err = proc.communicate(timeout=10)
        return [columns(l) for l in out.splitlines()], err

    def test_create_replace_delete_and_watch_every_kind(self):
        self.kubectl("create", "namespace", "kinds")
        svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "kinds"},
               "spec": {"selector": {"app": "api"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-k"},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
        ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kinds-extra"}}
        for obj, watch_args, shown in ((svc, ["-n", "kinds", "get", "services"], "api"),
                                       (node, ["get", "nodes"], "node-k"),
                                       (ns, ["get", "namespaces"], "kinds-extra")):
            kind = obj["kind"].lower()
            proc, wid = self.watch_with_kubectl(*watch_args)
            r = self.kubectl("create", "-f", "-", input_text=json.dumps(obj))
            self.assertEqual(r.stdout.strip(), f"{kind}/{shown} created")
            changed = json.loads(json.dumps(obj))
            changed["metadata"]["labels"] = {"changed": "yes"}
            r = self.kubectl("replace", "-f", "-", input_text=json.dumps(changed))
            self.assertEqual(r.stdout.strip(), f"{kind}/{shown} replaced")
            got = json.loads(self.kubectl("get", "-f", "-", "-o", "json", input_text=json.dumps(obj)).stdout)
            got = got["items"][0] if got["kind"] == "List" else got
            self.assertEqual(got["metadata"]["labels"]["changed"], "yes")
            r = self.kubectl("delete", "-f", "-", input_text=json.dumps(obj))
            self.assertEqual(r.stdout.strip(), f'{kind} "{shown}" deleted')
            rows, err = self.stop_watch(proc, wid, 3)
            self.assertEqual(rows[0][0], "EVENT", err)
            events = [(r[0], r[1]) for r in rows[1:] if r[1] == shown]
            self.assertEqual(events, [("ADDED", shown), ("MODIFIED", shown), ("DELETED", shown)], rows)

    def test_replace_with_a_stale_resource_version_is_a_conflict(self):
        self.kubectl("create", "-f", "-", input_text=slice_yaml("stale", "demo", "127.0.1.3"))
        obj = json.loads(self.kubectl("-n", "demo", "get", "endpointslice", "stale", "-o", "json").stdout)
        old_rv = obj["metadata"]["resourceVersion"]
        self.kubectl("replace", "-f", "-", input_text=slice_yaml("stale", "demo", "127.0.1.4"))
        obj["endpoints"][0]["addresses"] = ["127.0.1.5"]
        obj["metadata"]["resourceVersion"] = old_rv
        r = self.kubectl("replace", "-f", "-", input_text=json.dumps(obj), ok=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('Error from server (Conflict): error when replacing "STDIN": Operation cannot be fulfilled on '
                      'endpointslices.discovery.k8s.io "stale": the object has been modified; please apply your '
                      'changes to the latest version and try again', r.stderr)

    def test_delete_then_get_is_not_found(self):
        self.kubectl("create", "-f", "-", input_text=slice_yaml("gone", "demo", "127.0.1.6"))
        r = self.kubectl("-n", "demo", "delete", "endpointslice", "gone")
        self.assertEqual(r.stdout.strip(), 'endpointslice.discovery.k8s.io "gone" deleted')
        r = self.kubectl("-n", "demo", "get", "endpointslice", "gone", ok=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('Error from server (NotFound): endpointslices.discovery.k8s.io "gone" not found', r.stderr)

    def test_metadata_is_filled_by_the_server(self):
        self.kubectl("create", "-f", "-", input_text=slice_yaml("meta", "demo", "127.0.1.7"))
        obj = json.loads(self.kubectl("-n", "demo", "get", "endpointslice", "meta", "-o", "json").stdout)
        md = obj["metadata"]
        self.assertRegex(md["uid"], r"^[0-9a-f-]{36}$")
        self.assertRegex(md["resourceVersion"], r"^\d+$")
        self.assertEqual(md["generation"], 1)
        self.assertRegex(md["creationTimestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(obj["ports"][0], {"name": "http", "port": 8080, "protocol": "TCP"})

    def test_nodes_can_be_created_and_listed(self):
        node = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": "node-a", "labels": {"node-role.kubernetes.io/worker": ""}},
                "status": {"conditions": [{"type": "Ready", "status": "True"}],
                           "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                           "nodeInfo": {"kubeletVersion": "v1.32.0"}}}
        self.kubectl("create", "-f", "-", input_text=json.dumps(node))
        r = self.kubectl("get", "nodes", "-o", "wide")
        lines = r.stdout.splitlines()
        self.assertEqual(columns(lines[0])[:6], ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP"])
        row = columns([l for l in lines if l.startswith("node-a")][0])
        self.assertEqual(row[:3], ["node-a", "Ready", "worker"])
        self.assertEqual(row[4:6], ["v1.32.0", "127.0.0.1"])

    def test_label_selectors_through_kubectl(self):
        self.kubectl("create", "namespace", "sel")
        for name, tier in (("a", "web"), ("b", "db"), ("c", "web")):
            y = slice_yaml(name, "sel", "127.0.2.1").replace("    kubernetes.io/service-name: web",
                                                             f"    kubernetes.io/service-name: web\n    tier: {tier}")
            self.kubectl("create", "-f", "-", input_text=y)
        r = self.kubectl("-n", "sel", "get", "endpointslices", "-l", "tier in (web)", "-o", "name")
        self.assertEqual(r.stdout.split(), ["endpointslice.discovery.k8s.io/a", "endpointslice.discovery.k8s.io/c"])
        r = self.kubectl("-n", "sel", "get", "endpointslices", "-l", "tier!=web", "-o", "name")
        self.assertEqual(r.stdout.split(), ["endpointslice.discovery.k8s.io/b"])
        r = self.kubectl("-n", "sel", "get", "endpointslices", "--field-selector", "metadata.name=c", "-o", "name")
        self.assertEqual(r.stdout.split(), ["endpointslice.discovery.k8s.io/c"])

    def test_set_based_selectors_on_list_and_watch_through_kubectl(self):
        # the selector kupstream's watch fan-in sends: kubernetes.io/service-name in (a,b,...)
        self.kubectl("create", "namespace", "fan")

        def fan_slice(name, service, addr, extra=""):
            return slice_yaml(name, "fan", addr).replace("kubernetes.io/service-name: web",
                                                         f"kubernetes.io/service-name: {service}{extra}")
        self.kubectl("create", "-f", "-", input_text=fan_slice("a-1", "a", "127.0.3.1", "\n    tier: web"))
        self.kubectl("create", "-f", "-", input_text=fan_slice("b-1", "b", "127.0.3.2"))
        self.kubectl("create", "-f", "-", input_text=fan_slice("c-1", "c", "127.0.3.3", "\n    tier: db"))

        def names(selector):
            r = self.kubectl("-n", "fan", "get", "endpointslices", "-l", selector, "-o", "name")
            return [n.split("/", 1)[1] for n in r.stdout.split()]
        self.assertEqual(names("kubernetes.io/service-name in (a,b)"), ["a-1", "b-1"])
        self.assertEqual(names("kubernetes.io/service-name notin (a,b)"), ["c-1"])
        self.assertEqual(names("!tier"), ["b-1"])
        self.assertEqual(names("tier"), ["a-1", "c-1"])
        self.assertEqual(names("kubernetes.io/service-name in (a, c),tier notin (db)"), ["a-1"])
        r = self.kubectl("-n", "fan", "get", "endpointslices", "-l", "kubernetes.io/service-name in a", ok=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("Error from server (BadRequest)", r.stderr)
        self.assertIn("unable to parse requirement: found 'a' expected: '('", r.stderr)

        proc, wid = self.watch_with_kubectl("-n", "fan", "get", "endpointslices",
                                            "-l", "kubernetes.io/service-name in (a,b)")
        self.kubectl("create", "-f", "-", input_text=fan_slice("c-2", "c", "127.0.3.4"))  # not selected
        self.kubectl("create", "-f", "-", input_text=fan_slice("b-2", "b", "127.0.3.5"))
        # relabelled out of the selection: DELETED; into it: ADDED
        self.kubectl("-n", "fan", "label", "--overwrite", "endpointslice", "a-1", "kubernetes.io/service-name=c")
        self.kubectl("-n", "fan", "label", "--overwrite", "endpointslice", "c-2", "kubernetes.io/service-name=a")
        self.kubectl("-n", "fan", "delete", "endpointslice", "b-2")
        got, err = self.stop_watch(proc, wid, 6)
        self.assertEqual([(g[0], g[1]) for g in got[1:]],
                         [("ADDED", "a-1"), ("ADDED", "b-1"), ("ADDED", "b-2"), ("DELETED", "a-1"),
                          ("ADDED", "c-2"), ("DELETED", "b-2")], err)

    def test_invalid_objects_are_refused_like_the_real_server(self):
        r = self.kubectl("create", "-f", "-", ok=False,
                         input_text=slice_yaml("bad", "demo", "169.254.0.9"))
        self.assertIn('The EndpointSlice "bad" is invalid: endpoints[0].addresses[0]: Invalid value: "169.254.0.9": '
                      'may not be in the link-local range', r.stderr)
        r = self.kubectl("create", "-f", "-", ok=False,
                         input_text=slice_yaml("Bad_Name", "demo", "127.0.1.1"))
        self.assertIn('The EndpointSlice "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name"', r.stderr)
        r = self.kubectl("create", "-f", "-", ok=False,
                         input_text=slice_yaml("badip", "demo", "10.1.0.300"))
        self.assertIn('endpoints[0].addresses[0]: Invalid value: "10.1.0.300": must be a valid IPv4 address',
                      r.stderr)
        # the deliberate deviation: loopback Pod addresses are accepted
        r = self.kubectl("create", "-f", "-", input_text=slice_yaml("loop", "demo", "127.0.0.1"))
        self.assertIn("created", r.stdout)

    def test_auth_can_i_answers_from_the_allow_lists(self):
        self.assertEqual(self.kubectl("auth", "can-i", "list", "endpointslices", "-n", "demo").stdout.strip(), "yes")
        r = self.kubectl("auth", "can-i", "watch", "endpointslices", "-n", "demo", user="limited")
        self.assertEqual(r.stdout.strip(), "yes")
        r = self.kubectl("auth", "can-i", "list", "endpointslices", "-A", user="limited", ok=False)
        self.assertEqual((r.returncode, r.stdout.strip()), (1, "no"))
        r = self.kubectl("auth", "can-i", "create", "services", "-n", "demo", user="limited", ok=False)
        self.assertEqual((r.returncode, r.stdout.strip()), (1, "no"))

    def test_limited_user_gets_the_real_forbidden_messages(self):
        self.kubectl("create", "-f", "-", input_text=slice_yaml("web-1", "demo", "127.0.1.1"))
        cap = captures.read_text("kubectl-limited-user.txt").splitlines()
        r = self.kubectl("-n", "demo", "get", "endpointslices", user="limited")
        self.assertEqual(columns(r.stdout.splitlines()[0]), columns(cap[1]))
        r = self.kubectl("get", "endpointslices", "-A", user="limited", ok=False)
        self.assertEqual(r.stderr.strip(), cap[4])
        r = self.kubectl("-n", "demo", "create", "service", "clusterip", "x", "--tcp=1:1", user="limited", ok=False)
        self.assertEqual(r.stderr.strip(), cap[6])

    def test_bad_token_is_unauthorized(self):
        # discovery already cached: the list itself gets the 401 Status
        self.kubectl("get", "endpointslices", "-n", "demo")
        r = self.kubectl("get", "endpointslices", "-n", "demo", token="not-a-token", ok=False)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.strip().splitlines()[-1], "error: You must be logged in to the server (Unauthorized)")
        # cold cache: discovery is refused first
        r = self.kubectl("get", "endpointslices", token="not-a-token", ok=False,
                         cache_dir=os.path.join(self.sim.state_dir, "cold-cache"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("error: You must be logged in to the server", r.stderr)


    def kubectl_background(self, *args):
        """kubectl with client-go's watch-list on (KUBE_FEATURE_WatchListClient), -v=6 to a file."""
        log = open(os.path.join(self.sim.state_dir, f"kubectl-wl-{time.monotonic_ns()}.log"), "w+")
        self.addCleanup(log.close)
        env = dict(os.environ, KUBE_FEATURE_WatchListClient="true",
                   KUBECONFIG=os.path.join(self.sim.state_dir, "empty-kubeconfig"))
        open(env["KUBECONFIG"], "a").close()
        cmd = [kubectl_path(), "--server", self.sim.server, "--certificate-authority", self.sim.ca_file,
               "--cache-dir", os.path.join(self.sim.state_dir, "kubectl-cache"), "--token", self.sim.token("admin"),
               "-v=6"] + list(args)
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env)

        def stop():
            if p.poll() is None:
                os.kill(p.pid, 15)
            p.wait(10)
            p.stdout.close()
        self.addCleanup(stop)
        return p, log

    def wait_log(self, log, text, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log.seek(0)
            content = log.read()
            if text in content:
                return content
            time.sleep(0.1)
        log.seek(0)
        self.fail(f"kubectl never logged {text!r}:\n{log.read()[-3000:]}")

    def test_watch_list_client_syncs_only_after_the_held_bookmark(self):
        # client-go's reflector (kubectl wait, WatchListClient on) against --watch-list support:
        # like against the captured v1.28 server, its cache is not populated while Services are
        # quiet, and is once a Service changes in another namespace. (Setup and writes go through
        # the admin API: one kubectl process keeps the test short.)
        self.sim.config(watch_list="support")
        self.addCleanup(self.sim.config, watch_list="refuse")
        self.sim.apply(service("demo", "wl-one", [("http", 80, 8080)]))
        p, log = self.kubectl_background("-n", "demo", "wait", "--for=jsonpath={.spec.type}=NodePort",
                                         "service/wl-one", "--timeout=60s")
        content = self.wait_log(log, "sendInitialEvents=true", timeout=20)
        self.assertIn("resourceVersionMatch=NotOlderThan", content)
        time.sleep(1.5)
        log.seek(0)
        self.assertNotIn("Caches populated", log.read(), "synced before the held bookmark")
        self.assertIsNone(p.poll())
        self.sim.apply(service("wl-other", "wl-elsewhere", [("http", 80, 8080)]))
        content = self.wait_log(log, "Caches populated", timeout=10)
        self.assertIn("received the bookmark that marks the end of initial events stream", content)
        nodeport = service("demo", "wl-one", [("http", 80, 8080)])
        nodeport["spec"]["type"] = "NodePort"
        self.sim.apply(nodeport)
        self.assertEqual(p.wait(20), 0)
        self.assertIn("condition met", p.stdout.read())

if __name__ == "__main__":
    unittest.main()
