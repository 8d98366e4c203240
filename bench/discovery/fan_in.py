#!/usr/bin/env python3
"""Watch fan-in: one EndpointSlice watch per namespace (--slice-watch per_namespace) beside one per
Service (per_service), side by side in one run against one kubesim.

For each size (default 20 and 200 Services, all in one namespace, each with one EndpointSlice of
--pods Pods) and each mode, alternating the modes --runs times, one kup-watch process watches
every Service (one ClusterClient, so the modes differ only in how the slices are watched):

  1. sync: from the process start until every Service has published its first snapshot (the
     time), and until every watch is open too (the CPU and bytes);
  2. churn: --rounds rounds; each round rewrites one slice of --churn-share of the Services (a
     Pod changing address), and the round ends when kup-watch has published every change;
  3. what one more Service joining costs (kup-watch's targets are fixed, so this is the LIST
     each mode makes for it, fetched from kubesim as the client would): per_service LISTs that
     Service's slices; per_namespace restarts the shared watch and LISTs every selected slice.

Measured per run, for the kup-watch process only (kubesim's own CPU is not counted):
  - watches: the EndpointSlice and Service watches kubesim has open once synced, and the LISTs
    the client made (kubesim's request log);
  - bytes: what the process read (/proc/PID/io rchar: the API server's TLS bytes, plus the
    kubeconfig and certificates it reads at start, the same in both modes);
  - CPU: user + system time from /proc/PID/stat at the end of the sync and at the end of the churn.

    cmake --build --preset release --target kup-watch
    python3 bench/discovery/fan_in.py [--sizes 20,200] [--runs 2] [--pods 3] [--rounds 5]
        [--churn-share 0.25] [--kup-watch build/release/examples/watch/kup-watch]

Prints one row per (size, mode) with medians over the runs, and the ratio per_namespace /
per_service. Talks only to kubesim on 127.0.0.1; Pod addresses are 127.0.x.y data.
"""

import argparse
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import threading
import time
from urllib.parse import quote

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "kubesim"))

from kubesim_client import KubeSim, service  # noqa: E402

NS = "bench"
TICK = os.sysconf("SC_CLK_TCK")


def slice_obj(svc, pods, generation):
    # loopback addresses only: 127.<1 + generation % 200>.<service block>.<pod>
    idx = int(svc.split("-")[1])
    addrs = [f"127.{1 + generation % 200}.{idx // 50}.{(idx % 50) * 5 + p + 1}" for p in range(pods)]
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{svc}-1", "namespace": NS, "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addrs]}


def apply_all(sim, objs):
    for i in range(0, len(objs), 100):
        res = sim.admin("POST", "/objects", {"items": [{"op": "apply", "object": o} for o in objs[i:i + 100]]})
        bad = [r for r in res["results"] if not r.get("ok")]
        if bad:
            raise RuntimeError(f"kubesim refused: {bad[0]}")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def read_bytes(pid):
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    return 0


class Watcher:
    """kup-watch --json on every Service; a thread counts update lines per Service."""

    def __init__(self, kup_watch, kubeconfig, services, mode):
        targets = [f"{NS}/{s}:http" for s in services]
        self.proc = subprocess.Popen([kup_watch, "--kubeconfig", kubeconfig, "--json", "--slice-watch", mode] + targets,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.updates = {}  # "bench/svc:http" -> count
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            ev = json.loads(line)
            if ev.get("type") != "update":
                continue
            with self.lock:
                self.updates[ev["service"]] = self.updates.get(ev["service"], 0) + 1
                self.changed.notify_all()

    def wait(self, predicate, timeout):
        deadline = time.monotonic() + timeout
        with self.lock:
            while not predicate(self.updates):
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise RuntimeError("kup-watch did not publish in time")
                self.changed.wait(min(left, 0.5))

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            rc = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
            rc = -9
        self.reader.join(5)
        if rc != 0:
            raise RuntimeError(f"kup-watch exited with {rc}")


def open_watches(sim):
    out = {"endpointslices": 0, "services": 0}
    for w in sim.watches():
        if w.get("namespace") == NS and w["resource"] in out:
            out[w["resource"]] += 1
    return out


def one_run(sim, args, services, mode, generation):
    seq0 = max([r["seq"] for r in sim.requests()], default=0)
    t0 = time.monotonic()
    w = Watcher(args.kup_watch, sim.kubeconfig(), services, mode)
    try:
        labels = [f"{NS}/{s}:http" for s in services]
        w.wait(lambda u: all(u.get(l, 0) >= 1 for l in labels), args.timeout)
        sync_s = time.monotonic() - t0
        # Watches open once every Service watch is (a watch opens just after its LIST has been
        # published), sampled again until two samples 0.3 s apart agree.
        deadline = time.monotonic() + 20
        watches = open_watches(sim)
        while time.monotonic() < deadline:
            time.sleep(0.3)
            again = open_watches(sim)
            if again == watches and again["services"] >= len(services):
                break
            watches = again
        # CPU and bytes of the sync: every snapshot published and every watch open
        sync_cpu = cpu_seconds(w.proc.pid)
        sync_bytes = read_bytes(w.proc.pid)
        # churn: each round changes one slice of a share of the Services
        per_round = max(1, int(len(services) * args.churn_share))
        expected = {l: 1 for l in labels}
        t1 = time.monotonic()
        for r in range(args.rounds):
            generation += 1
            chosen = [services[(r * per_round + i) % len(services)] for i in range(per_round)]
            apply_all(sim, [slice_obj(s, args.pods, generation) for s in chosen])
            for s in chosen:
                expected[f"{NS}/{s}:http"] += 1
            w.wait(lambda u: all(u.get(l, 0) >= n for l, n in expected.items()), args.timeout)
        churn_s = time.monotonic() - t1
        end_cpu = cpu_seconds(w.proc.pid)
        end_bytes = read_bytes(w.proc.pid)
    finally:
        w.stop()
    calls = [r for r in sim.requests(seq0) if "watch" not in r["query"]]
    lists = [r for r in calls if r["path"].endswith("/endpointslices")]
    return generation, {
        "slice_watches": watches["endpointslices"], "service_watches": watches["services"],
        "slice_lists": len(lists),
        # kup-watch's LISTs and access reviews, and the TCP (TLS) connections they came on
        # (kubesim numbers each accepted connection): equal when every call opens its own
        # connection. (Watches hold one each; kubesim logs a watch when it ends.)
        "api_calls": len(calls), "api_connections": len({r["conn"] for r in calls}),
        "sync_s": sync_s, "sync_cpu_ms": sync_cpu * 1000, "sync_kb": sync_bytes / 1024,
        "churn_events": per_round * args.rounds, "churn_s": churn_s,
        "churn_cpu_ms": (end_cpu - sync_cpu) * 1000, "churn_kb": (end_bytes - sync_bytes) / 1024,
        "total_cpu_ms": end_cpu * 1000, "total_kb": end_bytes / 1024,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="20,200")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--pods", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--churn-share", type=float, default=0.25)
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--kup-watch", default=os.path.join(ROOT, "build", "release", "examples", "watch", "kup-watch"))
    args = ap.parse_args()
    if not os.path.exists(args.kup_watch):
        sys.exit(f"{args.kup_watch} not found: cmake --build --preset release --target kup-watch")
    sizes = [int(x) for x in args.sizes.split(",")]
    modes = ["per_service", "per_namespace"]
    sim = KubeSim(cluster="bench", args=["--bookmark-interval", "60"]).start()
    results = {}
    generation = 0
    try:
        for size in sizes:
            services = [f"svc-{i:03d}" for i in range(size)]
            objs = []
            for s in services:
                objs.append(service(NS, s, [("http", 80, 8080)]))
                objs.append(slice_obj(s, args.pods, generation))
            apply_all(sim, objs)
            join = {}
            path = f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices"
            for mode, sel in (("per_service", f"kubernetes.io/service-name={services[-1]}"),
                              ("per_namespace", "kubernetes.io/service-name in (" + ",".join(services) + ")")):
                st, _, body = sim.request("GET", f"{path}?labelSelector={quote(sel)}&limit=500")
                if st != 200:
                    raise RuntimeError(f"LIST with {sel[:60]}...: HTTP {st}")
                join[mode] = len(body) / 1024
            for run in range(args.runs):
                for mode in (modes if run % 2 == 0 else modes[::-1]):
                    generation, r = one_run(sim, args, services, mode, generation)
                    r["join_kb"] = join[mode]
                    results.setdefault((size, mode), []).append(r)
                    print(f"# size {size} {mode} run {run + 1}: {json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()})}",
                          flush=True)
    finally:
        sim.cleanup()

    cols = [("slice_watches", "slice watches", "{:.0f}"), ("service_watches", "service watches", "{:.0f}"),
            ("slice_lists", "slice LISTs", "{:.0f}"), ("api_calls", "LISTs + reviews", "{:.0f}"),
            ("api_connections", "their connections", "{:.0f}"), ("sync_s", "sync s", "{:.2f}"),
            ("sync_cpu_ms", "sync CPU ms", "{:.0f}"), ("sync_kb", "sync KiB read", "{:.0f}"),
            ("churn_events", "churn events", "{:.0f}"), ("churn_cpu_ms", "churn CPU ms", "{:.0f}"),
            ("churn_kb", "churn KiB read", "{:.0f}"), ("total_cpu_ms", "total CPU ms", "{:.0f}"),
            ("total_kb", "total KiB read", "{:.0f}"), ("join_kb", "a join: KiB listed", "{:.1f}")]
    print()
    print("| services | mode | " + " | ".join(c[1] for c in cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for size in sizes:
        med = {}
        for mode in modes:
            rs = results[(size, mode)]
            med[mode] = {k: statistics.median([r[k] for r in rs if r[k] is not None] or [0]) for k, _, _ in cols}
            print(f"| {size} | {mode} | " + " | ".join(f.format(med[mode][k]) for k, _, f in cols) + " |")
        ratio = []
        for k, _, _ in cols:
            a, b = med["per_namespace"][k], med["per_service"][k]
            ratio.append(f"{a / b:.2f}×" if b else "-")
        print(f"| {size} | per_namespace / per_service | " + " | ".join(ratio) + " |")


if __name__ == "__main__":
    main()
