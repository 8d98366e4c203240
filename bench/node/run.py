#!/usr/bin/env python3
"""Node.js addon benchmark (run by hand, not in CI): examples/node-gateway in two modes beside a
plain node:http proxy, in one run, with wrk against the same Pods.

    python3 bench/node/run.py            # 5 s per measurement, 3 interleaved rounds, medians
    python3 bench/node/run.py --quick    # 2 s, 1 round

Targets (each one node process, one thread of JS, in front of the same 3 Pods):
  - kup-request: examples/node-gateway/gateway.js, Upstream.request() (kupstream's pools, retries);
  - kup-pick:    the same gateway with pick() + node's http.request and a keep-alive Agent;
  - plain-node:  bench/node/plain_proxy.js, a node:http proxy over a static list of the Pods.
The Pods are one nginx (bench/gateway/configs.py) on 127.0.1.11-13, found by the gateway through
kubesim. The addon must be built (cd bindings/node && npm install). Reuses bench/gateway's
process helpers; every process is stopped by PID.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "bench", "gateway"))
sys.path.insert(0, os.path.join(ROOT, "tests", "kubesim"))

import configs  # noqa: E402
from procs import ProcessGroup, cpu_seconds, free_port, wait_http  # noqa: E402
from run import run_wrk  # noqa: E402

TARGETS = ["plain-node", "kup-request", "kup-pick"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.duration, a.rounds = 2, 1
    addon = os.path.join(ROOT, "bindings", "node", "build", "Release", "kupstream.node")
    if not os.path.exists(addon):
        print("build the addon first: cd bindings/node && npm install", file=sys.stderr)
        return 77

    work = tempfile.mkdtemp(prefix="kup-nodebench-")
    os.chmod(work, 0o755)
    group = ProcessGroup(work)
    sim = None
    try:
        pod_port = free_port([addr for _, _, addr in configs.PODS + configs.FLIP_PODS])
        conf = configs.pods_nginx(work, pod_port)
        pods = group.start("pods-nginx", ["nginx", "-p", work, "-c", conf, "-g", "daemon off;"])
        for name, _, addr in configs.PODS:
            wait_http(pods, addr, pod_port, want_prefix=name.encode())
        from kubesim_client import KubeSim, endpointslice, service
        sim = KubeSim(cluster="bench", state_dir=os.path.join(work, "kubesim")).start()
        sim.apply(service("default", "pods", [("http", 80, "http")]))
        sim.apply(endpointslice("default", "pods-1", "pods", [addr for _, _, addr in configs.PODS], pod_port,
                                port_name="http"))
        upstream = os.path.join(work, "upstream.yaml")
        with open(upstream, "w") as f:
            f.write("name: pods\nservices: [{cluster: sim, namespace: default, service: pods, port: http}]\n")
        node = "node"
        gateway = os.path.join(ROOT, "examples", "node-gateway", "gateway.js")
        static = ",".join(f"{addr}:{pod_port}" for _, _, addr in configs.PODS)

        def command(t, port):
            if t == "plain-node":
                return [node, os.path.join(HERE, "plain_proxy.js"), str(port), static]
            return [node, gateway, sim.kubeconfig("admin"), upstream, str(port), t.split("-")[1]]

        script = configs.wrk_script(work)
        results = {t: [] for t in TARGETS}
        for rnd in range(a.rounds):
            for t in TARGETS:
                port = free_port(["127.0.0.1"])
                p = group.start(t, command(t, port), env=dict(os.environ, KUP_CLUSTER="sim"))
                try:
                    wait_http(p, "127.0.0.1", port, want_prefix=b"pod-", timeout=30)
                    url = f"http://127.0.0.1:{port}/"
                    run_wrk(url, a.warmup, a.connections, script)
                    cpu0 = cpu_seconds(p.pid)
                    r = run_wrk(url, a.duration, a.connections, script)
                    r["cpu_us_per_req"] = (cpu_seconds(p.pid) - cpu0) * 1e6 / max(r["requests"], 1)
                    results[t].append(r)
                    print(f"round {rnd + 1} {t:12s} {r['rps']:9.0f} req/s  p50 {r['p50_us'] / 1000:6.2f} ms  "
                          f"p99 {r['p99_us'] / 1000:6.2f} ms  CPU {r['cpu_us_per_req']:5.1f} µs/req  "
                          f"errors {r['errors']}", flush=True)
                finally:
                    group.stop(p)
        med = {t: {k: statistics.median(r[k] for r in results[t]) for k in ("rps", "p50_us", "p99_us",
                                                                             "cpu_us_per_req", "errors")}
               for t in TARGETS}
        print(f"\nmedians of {a.rounds} round(s), wrk -t1 -c{a.connections} -d{a.duration}s --latency, "
              f"load average {os.getloadavg()[0]:.1f}")
        print("| target | req/s | p50 ms | p99 ms | CPU µs per request | errors |")
        print("|---|---:|---:|---:|---:|---:|")
        for t in TARGETS:
            m = med[t]
            print(f"| {t} | {m['rps']:,.0f} | {m['p50_us'] / 1000:.2f} | {m['p99_us'] / 1000:.2f} | "
                  f"{m['cpu_us_per_req']:.1f} | {m['errors']:.0f} |")
        base = med["plain-node"]
        for t in ("kup-request", "kup-pick"):
            print(f"{t} / plain-node: req/s {med[t]['rps'] / base['rps']:.2f}x, p99 "
                  f"{med[t]['p99_us'] / base['p99_us']:.2f}x")
        return 0
    finally:
        group.stop_all()
        if sim is not None:
            sim.cleanup()


if __name__ == "__main__":
    sys.exit(main())
