#!/usr/bin/env python3
"""Scale: 20 services x 3 clusters x 1,000 Pods = 60,000 endpoints in one kup-gateway (issue 12).

Three kubesim instances play the three clusters ("a", "b", "c"). Each holds the Services svc-00 ..
svc-19 in namespace "scale", each with --pods Pods in EndpointSlices of 100 endpoints (the
EndpointSlice controller's default), with realistic metadata: targetRef (Pod name, namespace,
uid), nodeName, zone. kup-gateway gets one upstream per Service, each over the Service's port in
the three clusters (3 ServiceRefs), and a route /svc-NN/ to it.

What it records (all figures are of the kup-gateway process alone, read from /proc; kubesim and
the Pods are other processes):
  1. sync: wall time from starting kup-gateway to /readyz answering 200 (every upstream has its
     first snapshot: the whole LIST of every Service in every cluster), and kup-gateway's CPU
     time (user + system) at that moment;
  2. memory: RSS (VmRSS) once synced and quiet, with --pods Pods per Service and, in the same run
     as the reference, with 1 Pod per Service; per endpoint = the difference / the endpoint
     difference;
  3. rolling update of the --pods Pods of svc-00 in cluster a (batches of --batch: the new Pods
     join ready, the old ones turn terminating, then leave the slice and, --grace-ms later, stop
     listening). First with no traffic (kup-gateway's CPU for the whole update, against an
     equally long quiet window), then under wrk load against a window of the same load without
     an update; failed requests are counted by wrk (connect, read, write, timeout, non-2xx).
     Every svc-00 Pod (all three clusters, old and new) is a real listener of one nginx on its own
     loopback address (127.10-12.x.y and 127.20.x.y); the other Services' Pods are only listed.

Addresses are loopback only (127.0.0.0/8). Every process it starts is stopped by PID at the end,
also on errors and signals. Standard library only. Not part of CI (docs/testing.md).

  python3 bench/scale/run.py [--pods 1000] [--skip-rolling] [--json FILE]
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "kubesim"))
sys.path.insert(0, os.path.join(ROOT, "bench", "gateway"))

from procs import BenchError, ProcessGroup, cpu_seconds, free_port, http_get, check_loopback  # noqa: E402
import configs  # noqa: E402

CLUSTERS = ["a", "b", "c"]
NAMESPACE = "scale"
PER_SLICE = 100
POD_PORT = 8080
NODES_PER_CLUSTER = 50
ZONES = ["zone-1a", "zone-1b", "zone-1c"]


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)


def pod_address(cluster, service, j, generation=0):
    """Pod j of svc-SS in a cluster; generation 1 is the rolled-out Pods of svc-00 in cluster a."""
    if generation:
        return f"127.20.{j // 250}.{j % 250 + 1}"
    return f"127.{10 + cluster}.{service * 4 + j // 250}.{j % 250 + 1}"


def pod_name(cluster, service, j, generation=0):
    # Deployment-style names: <service>-<replicaset hash>-<5 characters>.
    rs = ["7d9f8c6b5d", "5f6c9b8d47"][generation]
    return f"svc-{service:02d}-{rs}-{CLUSTERS[cluster]}{j:04d}"


def endpoint(cluster, service, j, generation=0, ready=True, terminating=False):
    node = (service * 7 + j) % NODES_PER_CLUSTER
    return {
        "addresses": [pod_address(cluster, service, j, generation)],
        "conditions": {"ready": ready, "serving": True, "terminating": terminating},
        "nodeName": f"node-{CLUSTERS[cluster]}-pool1-{node:03d}",
        "zone": ZONES[node % len(ZONES)],
        "targetRef": {"kind": "Pod", "namespace": NAMESPACE, "name": pod_name(cluster, service, j, generation),
                      "uid": f"{cluster:02x}{service:02x}{generation:02x}{j:06x}-0000-4000-8000-000000000000"},
    }


def slice_obj(service, name, endpoints):
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": NAMESPACE,
                         "labels": {"kubernetes.io/service-name": f"svc-{service:02d}",
                                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
            "addressType": "IPv4", "endpoints": endpoints,
            "ports": [{"name": "http", "port": POD_PORT, "protocol": "TCP"}]}


def service_slices(cluster, service, pods):
    """The slices of svc-SS in one cluster: 100 endpoints each."""
    out = []
    for k in range(0, pods, PER_SLICE):
        eps = [endpoint(cluster, service, j) for j in range(k, min(pods, k + PER_SLICE))]
        out.append(slice_obj(service, f"svc-{service:02d}-{k // PER_SLICE:03d}", eps))
    return out


WRK = []  # wrk processes started and not yet read: stopped by PID at cleanup


def wrk_run(url, duration, connections, script):
    """Starts wrk in the background; returns the Popen (wrk_result() reads it)."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", script, url]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    WRK.append(p)
    return p


def wrk_result(p, timeout):
    out, err = p.communicate(timeout=timeout)
    WRK.remove(p)
    line = next((l for l in out.splitlines() if l.startswith("KUPWRK ")), None)
    if p.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({p.returncode}): {out[-800:]} {err[-800:]}")
    r = json.loads(line[len("KUPWRK "):])
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6) if r["duration_us"] else 0.0
    r["errors"] = r["err_connect"] + r["err_read"] + r["err_write"] + r["err_status"] + r["err_timeout"]
    return r


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise BenchError(f"no VmRSS for pid {pid}")


class Scale:
    def __init__(self, a):
        self.a = a
        self.workdir = tempfile.mkdtemp(prefix="kup-scale-")
        self.group = ProcessGroup(self.workdir)
        self.sims = []
        self.gateway = a.gateway or os.path.join(a.build_dir, "examples", "gateway", "kup-gateway")
        self.results = {"pods_per_service": a.pods, "services": a.services, "clusters": len(CLUSTERS)}

    def log(self, msg):
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    # -- clusters
    def start_sims(self):
        from kubesim_client import KubeSim
        for c in CLUSTERS:
            sim = KubeSim(cluster=f"scale-{c}", state_dir=os.path.join(self.workdir, f"kubesim-{c}"),
                          args=["--max-events", "200000"])
            self.sims.append(sim)
            sim.start()
            self.log(f"kubesim {c}: pid {sim.proc.pid}, {sim.server}")

    def populate(self, pods):
        """Every cluster: Services svc-00.. and their slices with `pods` Pods each (old slices removed)."""
        from kubesim_client import service
        t0 = time.monotonic()
        for ci, sim in enumerate(self.sims):
            for s in range(self.a.services):
                svc = service(NAMESPACE, f"svc-{s:02d}", [("http", 80, "http")])
                items = [{"op": "apply", "object": svc}]
                items += [{"op": "apply", "object": o} for o in service_slices(ci, s, pods)]
                out = sim.admin("POST", "/objects", {"items": items})
                bad = [r for r in out["results"] if not r["ok"]]
                if bad:
                    raise BenchError(f"kubesim {CLUSTERS[ci]}: svc-{s:02d}: {bad[0]['status']}")
                # slices beyond the new count (a run with fewer Pods after more)
                for k in range((pods + PER_SLICE - 1) // PER_SLICE, 10 ** 6):
                    name = f"svc-{s:02d}-{k:03d}"
                    st, _ = sim.get_json(f"/apis/discovery.k8s.io/v1/namespaces/{NAMESPACE}/endpointslices/{name}")
                    if st != 200:
                        break
                    sim.delete("endpointslices", NAMESPACE, name)
        self.log(f"kubesim: {self.a.services} services x {len(self.sims)} clusters x {pods} Pods loaded "
                 f"in {time.monotonic() - t0:.1f} s")

    # -- the gateway
    def gateway_yaml(self, listen_port, admin_port):
        lines = [f"listeners: [{{address: 127.0.0.1, port: {listen_port}}}]",
                 f"admin: {{address: 127.0.0.1, port: {admin_port}}}", "clusters:"]
        for c, sim in zip(CLUSTERS, self.sims):
            lines.append(f"  - {{name: {c}, kubeconfig: \"{sim.kubeconfig('admin')}\"}}")
        lines.append("upstreams:")
        for s in range(self.a.services):
            refs = ", ".join(f"{{cluster: {c}, namespace: {NAMESPACE}, service: svc-{s:02d}, port: http}}"
                             for c in CLUSTERS)
            lines += [f"  - name: svc-{s:02d}", "    backend: HTTP", f"    services: [{refs}]"]
        lines.append("routes:")
        for s in range(self.a.services):
            lines.append(f"  - {{host: \"*\", path_prefix: /svc-{s:02d}/, upstream: svc-{s:02d}}}")
        path = os.path.join(self.workdir, "gateway.yaml")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def start_gateway(self, pods):
        """Starts kup-gateway; returns (proc, port, admin_port, sync facts) once /readyz says 200."""
        for attempt in range(5):
            # (two calls in the same millisecond draw the same port: separate ranges)
            port = free_port(["127.0.0.1"], low=20000 + attempt, high=39999)
            admin = free_port(["127.0.0.1"], low=40000 + attempt, high=59999)
            cfg = self.gateway_yaml(port, admin)
            t0 = time.monotonic()
            wrap = self.a.wrap.split() if self.a.wrap and pods == self.a.pods else []
            p = self.group.start("kup-gateway", wrap + [self.gateway, "--config", cfg, "--log-level", "warning"])
            deadline = t0 + self.a.sync_timeout
            while p.alive() and time.monotonic() < t0 + 0.2:
                time.sleep(0.005)  # (a port taken meanwhile by another process ends it at once)
                try:
                    if http_get("127.0.0.1", admin, "/readyz", timeout=2.0)[0] == 200:
                        break
                except OSError:
                    pass
            if p.alive() or "in use" not in p.log_tail():
                break
            self.group.stop(p)
        while True:
            if not p.alive():
                raise BenchError(f"kup-gateway exited (code {p.popen.returncode}):\n{p.log_tail()}")
            try:
                status, _ = http_get("127.0.0.1", admin, "/readyz", timeout=2.0)
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise BenchError(f"kup-gateway not ready after {self.a.sync_timeout} s:\n{p.log_tail()}")
            time.sleep(0.005)
        wall = time.monotonic() - t0
        cpu = cpu_seconds(p.pid)
        # Every endpoint arrived (counted once, after the timing: a scrape costs CPU).
        _, body = http_get("127.0.0.1", admin, "/metrics", timeout=30.0)
        ready = 0
        for line in body.decode().splitlines():
            if line.startswith("kupstream_service_endpoints{") and 'state="ready"' in line:
                ready += int(float(line.rsplit(" ", 1)[1]))
        want = pods * self.a.services * len(CLUSTERS)
        if ready != want:
            raise BenchError(f"kup-gateway synced {ready} ready endpoints, expected {want}")
        return p, port, admin, {"wall_s": wall, "cpu_s": cpu, "endpoints": ready}

    def quiet_rss(self, p):
        """RSS once synced and quiet: the settled value (median of a few reads after --settle s)."""
        time.sleep(self.a.settle)
        reads = []
        for _ in range(5):
            reads.append(rss_kib(p.pid))
            time.sleep(0.2)
        return sorted(reads)[len(reads) // 2]

    # -- Pods (real listeners for svc-00)
    def pods_nginx(self, generations):
        """One nginx answering on every svc-00 Pod address of the given (cluster, generation) pairs."""
        d = self.workdir
        listens = []
        for cluster, gen in generations:
            for j in range(self.a.pods):
                listens.append(f"    listen {check_loopback(pod_address(cluster, 0, j, gen))}:{POD_PORT};\n")
        text = (f"worker_processes 1;\nworker_rlimit_nofile 16384;\nerror_log {d}/pods-error.log warn;\n"
                f"pid {d}/pods.pid;\nevents {{ worker_connections 8192; }}\nhttp {{\n"
                + configs._nginx_http_common(d, "pods") +
                "  server {\n" + "".join(listens) +
                "    location / { default_type text/plain; return 200 \"pod $server_addr\\n\"; }\n  }\n}\n")
        path = os.path.join(d, "pods-nginx.conf")
        os.makedirs(os.path.join(d, "pods-tmp"), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        return path

    def reload_pods(self, generations):
        self.pods_nginx(generations)
        os.kill(self.pods_proc.pid, signal.SIGHUP)

    def roll(self, sim, from_gen, to_gen):
        """Rolling update of svc-00 in cluster a, from one generation of Pods to the other, in batches
        of --batch: the new Pods join ready and the old ones turn terminating (still serving), then
        the old ones leave their slices (a slice left empty is deleted). Returns the slice writes."""
        pods, batch, grace = self.a.pods, self.a.batch, self.a.grace_ms / 1e3

        def name(gen, k):
            return f"svc-00-{k:03d}" if gen == 0 else f"svc-00-g{gen}-{k:03d}"

        old = {j: "ready" for j in range(pods)}
        new = set()
        exists = {(from_gen, k): True for k in range((pods + PER_SLICE - 1) // PER_SLICE)}

        def items_for(ks):
            items = []
            for k in ks:
                js = range(k * PER_SLICE, min(pods, (k + 1) * PER_SLICE))
                for gen, eps in ((to_gen, [endpoint(0, 0, j, to_gen) for j in js if j in new]),
                                 (from_gen, [endpoint(0, 0, j, from_gen, ready=old[j] == "ready",
                                                      terminating=old[j] == "terminating")
                                             for j in js if old[j] != "gone"])):
                    if eps:
                        items.append({"op": "apply", "object": slice_obj(0, name(gen, k), eps)})
                        exists[(gen, k)] = True
                    elif exists.get((gen, k)):
                        items.append({"op": "delete", "resource": "endpointslices", "namespace": NAMESPACE,
                                      "name": name(gen, k)})
                        exists[(gen, k)] = False
            return items

        writes = 0
        for start in range(0, pods, batch):
            js = range(start, min(pods, start + batch))
            ks = sorted({j // PER_SLICE for j in js})
            for step in ("surge", "remove"):
                for j in js:
                    if step == "surge":
                        new.add(j)
                        old[j] = "terminating"
                    else:
                        old[j] = "gone"
                items = items_for(ks)
                out = sim.admin("POST", "/objects", {"items": items})
                bad = [r for r in out["results"] if not r["ok"]]
                if bad:
                    raise BenchError(f"rolling update: kubesim refused a slice write: {bad[0]['status']}")
                writes += len(items)
                time.sleep(grace)
        return writes

    def rolling(self):
        a = self.a
        self.log("rolling update: starting the svc-00 Pods (one nginx, every Pod address its own listener)")
        gens = [(0, 0), (1, 0), (2, 0), (0, 1)]
        conf = self.pods_nginx(gens)
        self.pods_proc = self.group.start("pods-nginx", ["nginx", "-p", self.workdir, "-c", conf, "-g", "daemon off;"])
        deadline = time.monotonic() + 30
        for cluster, gen in gens:
            addr = pod_address(cluster, 0, a.pods - 1, gen)
            while True:
                try:
                    if http_get(addr, POD_PORT)[0] == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline or not self.pods_proc.alive():
                    raise BenchError(f"Pod nginx not serving on {addr}:{POD_PORT}:\n{self.pods_proc.log_tail()}")
                time.sleep(0.05)
        self.populate(a.pods)
        gw, port, admin, sync = self.start_gateway(a.pods)
        url = f"http://127.0.0.1:{port}/svc-00/"
        script = configs.wrk_script(self.workdir)
        sim = self.sims[0]
        out = {}
        try:
            time.sleep(a.settle)
            # 1. No traffic: the update alone, against a quiet window as long as it.
            c0, t0 = cpu_seconds(gw.pid), time.monotonic()
            writes = self.roll(sim, 0, 1)
            update_s, update_cpu = time.monotonic() - t0, cpu_seconds(gw.pid) - c0
            c0 = cpu_seconds(gw.pid)
            time.sleep(update_s)
            quiet_cpu = cpu_seconds(gw.pid) - c0
            out["idle"] = {"duration_s": update_s, "slice_writes": writes, "endpoint_changes": 2 * a.pods,
                           "cpu_s": update_cpu, "quiet_window_cpu_s": quiet_cpu}
            self.log(f"rolling update without traffic: {update_s:.1f} s, {writes} slice writes, "
                     f"kup-gateway CPU {update_cpu * 1e3:.0f} ms (quiet window: {quiet_cpu * 1e3:.0f} ms)")
            self.reload_pods([(0, 1), (1, 0), (2, 0), (0, 0)])
            time.sleep(1.0)
            # 2. Under traffic: a reference window with no update, then the update back.
            dur = max(5, int(update_s) + 3)
            c0 = cpu_seconds(gw.pid)
            ref = wrk_result(wrk_run(url, dur, a.connections, script), dur + 60)
            ref["cpu_s"] = cpu_seconds(gw.pid) - c0
            c0 = cpu_seconds(gw.pid)
            w = wrk_run(url, dur, a.connections, script)
            time.sleep(1.0)
            writes = self.roll(sim, 1, 0)
            self.reload_pods([(0, 0), (1, 0), (2, 0)])  # the old generation stops listening
            upd = wrk_result(w, dur + 60)
            upd["cpu_s"] = cpu_seconds(gw.pid) - c0
            upd["slice_writes"] = writes
            for r in (ref, upd):
                r["cpu_us_per_req"] = r["cpu_s"] * 1e6 / r["requests"] if r["requests"] else None
            out["traffic_reference"], out["traffic_update"] = ref, upd
            self.log(f"under traffic ({dur} s windows, wrk -c{a.connections}): reference {ref['rps']:.0f} req/s, "
                     f"{ref['errors']} errors, CPU {ref['cpu_s']:.2f} s; with the rolling update {upd['rps']:.0f} req/s, "
                     f"{upd['errors']} errors, CPU {upd['cpu_s']:.2f} s")
            if not gw.alive():
                raise BenchError(f"kup-gateway exited during the rolling update:\n{gw.log_tail()}")
        finally:
            self.group.stop(gw)
        return out

    def run(self):
        a = self.a
        if not os.path.exists(self.gateway):
            raise BenchError(f"no kup-gateway at {self.gateway} (cmake --build --preset release --target kup-gateway)")
        self.start_sims()
        # Reference: 1 Pod per Service.
        self.populate(1)
        gw, _, _, small = self.start_gateway(1)
        small["rss_kib"] = self.quiet_rss(gw)
        self.group.stop(gw)
        self.log(f"1 Pod per service: {small['endpoints']} endpoints, synced in {small['wall_s'] * 1e3:.0f} ms "
                 f"(kup-gateway CPU {small['cpu_s'] * 1e3:.0f} ms), RSS {small['rss_kib'] / 1024:.1f} MiB")
        self.populate(a.pods)
        large = None
        for i in range(a.repeat):
            gw, _, _, r = self.start_gateway(a.pods)
            r["rss_kib"] = self.quiet_rss(gw)
            self.group.stop(gw)
            self.log(f"{a.pods} Pods per service: {r['endpoints']} endpoints, synced in {r['wall_s'] * 1e3:.0f} ms "
                     f"(kup-gateway CPU {r['cpu_s'] * 1e3:.0f} ms), RSS {r['rss_kib'] / 1024:.1f} MiB")
            self.results.setdefault("runs", []).append(r)
        runs = sorted(self.results["runs"], key=lambda r: r["cpu_s"])
        large = runs[len(runs) // 2]
        per_ep = (large["rss_kib"] - small["rss_kib"]) * 1024 / (large["endpoints"] - small["endpoints"])
        self.results.update({"small": small, "large": large, "bytes_per_endpoint": per_ep})
        self.log(f"sync: {large['endpoints']} endpoints, kup-gateway CPU {large['cpu_s'] * 1e3:.0f} ms "
                 f"(target <= 1000 ms: {'met' if large['cpu_s'] <= 1.0 else 'NOT met'}), wall {large['wall_s'] * 1e3:.0f} ms")
        self.log(f"memory: ({large['rss_kib']} - {small['rss_kib']}) KiB / ({large['endpoints']} - {small['endpoints']}) "
                 f"= {per_ep:.0f} B per endpoint (target <= 256: {'met' if per_ep <= 256 else 'NOT met'})")
        if not a.skip_rolling:
            self.results["rolling"] = self.rolling()
        if a.json:
            with open(a.json, "w") as f:
                json.dump(self.results, f, indent=2)
        return 0

    def cleanup(self):
        for p in list(WRK):
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
                p.wait(5)
            WRK.remove(p)
        self.group.stop_all()
        for sim in self.sims:
            try:
                sim.stop()
            except Exception as e:  # keep stopping the others
                print(f"warning: stopping kubesim (pid {sim.proc.pid if sim.proc else '?'}): {e}", flush=True)
        if self.a.keep_workdir:
            self.log(f"work directory kept: {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)
            for sim in self.sims:
                shutil.rmtree(sim.state_dir, ignore_errors=True)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pods", type=int, default=1000, help="Pods per Service per cluster (default 1000)")
    ap.add_argument("--services", type=int, default=20, help="Services (= upstreams), default 20")
    ap.add_argument("--repeat", type=int, default=3, help="gateway starts at full size (the median is kept)")
    ap.add_argument("--settle", type=float, default=2.0, help="seconds to wait before reading RSS")
    ap.add_argument("--sync-timeout", type=float, default=120.0)
    ap.add_argument("--batch", type=int, default=50, help="Pods per rolling-update step")
    ap.add_argument("--grace-ms", type=int, default=200, help="pause between the steps of a batch")
    ap.add_argument("--connections", type=int, default=16, help="wrk connections")
    ap.add_argument("--skip-rolling", action="store_true")
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build", "release"))
    ap.add_argument("--gateway", help="kup-gateway binary (default BUILD_DIR/examples/gateway/kup-gateway)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--keep-workdir", action="store_true")
    ap.add_argument("--wrap", help="run the full-size kup-gateway under this command, e.g. "
                    "\"perf record -g -o /tmp/gw.data --\" (its CPU then includes the wrapper's)")
    return ap.parse_args(argv)


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    for tool in ("wrk", "nginx"):
        if not a.skip_rolling and shutil.which(tool) is None:
            print(f"SKIP: {tool} is not installed (scripts/install-deps installs it)", flush=True)
            return 77
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    sc = Scale(a)
    try:
        return sc.run()
    except BenchError as e:
        print(f"ERROR: {e}", flush=True)
        return 1
    finally:
        sc.cleanup()


if __name__ == "__main__":
    sys.exit(main())
