#!/usr/bin/env python3
"""Time to the first snapshot: kup-watch with --watch-list (and its fallback) beside plain
LIST + watch, against every kubesim watch-list mode, in the same run.

For each kubesim mode (refuse = v1.25, support = v1.28 holding the initial-events-end bookmark
back, support-immediate) and each target (a Service with one slice; the same with a node-label
filter, which adds the Nodes), it starts kup-watch --json RUNS times per client mode, alternating
the two, and measures from the process start to its first "update" line. The cluster is quiet
(nobody writes while it syncs), the case where v1.28 never sends the bookmark.

    cmake --build --preset release --target kup-watch
    python3 bench/discovery/watch_list_first_snapshot.py [--runs 5] [--bound-ms 3000]
        [--kup-watch build/release/examples/watch/kup-watch]

Prints one table row per (server mode, target): the median, min and max of each client mode and
the ratio of the medians (watch-list / LIST + watch). Talks only to kubesim on 127.0.0.1.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "kubesim"))

from kubesim_client import KubeSim, node, service  # noqa: E402

NS = "bench"


def endpoint_slice(name, svc, addresses, node_name):
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": NS, "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [a], "conditions": {"ready": True}, "nodeName": node_name}
                          for a in addresses]}


def first_snapshot_seconds(kup_watch, kubeconfig, target, extra, timeout=30.0):
    """Seconds from starting kup-watch to its first update line; the process is stopped by PID."""
    t0 = time.monotonic()
    p = subprocess.Popen([kup_watch, "--kubeconfig", kubeconfig, target, "--json"] + extra,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = t0 + timeout
        for line in p.stdout:
            if json.loads(line).get("type") == "update":
                return time.monotonic() - t0
            if time.monotonic() > deadline:
                break
        raise RuntimeError(f"no snapshot from {target} {extra} within {timeout} s")
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGTERM)
        p.wait(10)
        p.stdout.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--bound-ms", type=int, default=3000, help="kup-watch --watch-list-timeout (the default is 3000)")
    ap.add_argument("--kup-watch", default=os.path.join(ROOT, "build", "release", "examples", "watch", "kup-watch"))
    args = ap.parse_args()
    if not os.path.exists(args.kup_watch):
        sys.exit(f"kup-watch not found at {args.kup_watch}: build it first (see the docstring)")

    targets = [("service + slices", f"{NS}/web:http", []),
               ("+ nodes (node label)", f"{NS}/web:http", ["--node-label", "pool=blue"])]
    clients = [("LIST + watch", []), ("watch-list", ["--watch-list", "--watch-list-timeout", str(args.bound_ms)])]
    rows = []
    with KubeSim(args=["--bookmark-interval", "60"]) as sim:
        sim.apply(node("n1", labels={"pool": "blue"}))
        sim.apply(service(NS, "web", [("http", 80, 8080)]))
        sim.apply(endpoint_slice("web-a", "web", [f"127.0.1.{i}" for i in range(1, 11)], "n1"))
        kubeconfig = sim.kubeconfig("admin")
        for mode in ("refuse", "support", "support-immediate"):
            sim.config(watch_list=mode)
            for tname, target, extra in targets:
                times = {c: [] for c, _ in clients}
                for _ in range(args.runs):
                    for cname, cargs in clients:
                        times[cname].append(first_snapshot_seconds(args.kup_watch, kubeconfig, target, extra + cargs))
                rows.append((mode, tname, times))
                med = {c: statistics.median(v) for c, v in times.items()}
                print(f"{mode:18} {tname:22} " + "  ".join(
                    f"{c}: {med[c] * 1000:7.0f} ms [{min(times[c]) * 1000:.0f}–{max(times[c]) * 1000:.0f}]"
                    for c, _ in clients) + f"  ratio {med['watch-list'] / med['LIST + watch']:.2f}", flush=True)
    print()
    print(f"| kubesim --watch-list | target | LIST + watch | watch-list (bound {args.bound_ms} ms) | ratio |")
    print("|---|---|---:|---:|---:|")
    for mode, tname, times in rows:
        med = {c: statistics.median(v) for c, v in times.items()}
        print(f"| {mode} | {tname} | {med['LIST + watch'] * 1000:.0f} ms | {med['watch-list'] * 1000:.0f} ms | "
              f"{med['watch-list'] / med['LIST + watch']:.2f} |")
    print(f"\nmedians of {args.runs} runs each, alternating the client modes; "
          f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
