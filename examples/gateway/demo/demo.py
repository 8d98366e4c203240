#!/usr/bin/env python3
"""The kup-gateway demo (run by scripts/demo).

Two simulated Kubernetes clusters (kubesim) "tke-a" and "tke-b" each hold the Service
default/httpbin (port 8000 "http" → targetPort 8080) with Pods of versions v1, v2 and v3: real
HTTP servers (tests/support/pods.py) on loopback addresses, listed in EndpointSlices. kup-gateway
(gateway.yaml.in here, filled in with the clusters' kubeconfigs) serves two upstreams:
  httpbin       both clusters, weights 3:1 (per Pod), Host override httpbin.example.com
  httpbin-blue  the same Services, only Pods on Nodes labelled pool=blue
The demo sends traffic, prints how it spread, then performs a rolling update to v4 and a
scale-down while traffic flows, and prints the error count (the target is zero). Everything it
starts is stopped by PID at the end, on Ctrl-C and on errors.
"""

import argparse
import collections
import os
import signal
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
os.environ.setdefault("KUPSTREAM_SOURCE_DIR", SOURCE)
sys.path.insert(0, os.path.join(SOURCE, "tests", "gateway"))

from harness import Env, Load  # noqa: E402

PORT = 8080
VERSIONS = ("v1", "v2", "v3")


def port_free(address, port):
    s = socket.socket()
    try:
        s.bind((address, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def table(title, counter, total, expected=None):
    print(f"  {title}")
    for key in sorted(counter):
        n = counter[key]
        exp = f"   (expected {expected[key] * 100:5.1f}%)" if expected and key in expected else ""
        print(f"    {key:<22} {n:>6}  {n / total * 100:5.1f}%{exp}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gateway", help="kup-gateway binary (default build/release/...)")
    ap.add_argument("--requests", type=int, default=4000)
    args = ap.parse_args()
    if args.gateway:
        os.environ["KUP_GATEWAY"] = os.path.abspath(args.gateway)

    def on_term(*_):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    env = Env()
    try:
        return run(env, args)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything", file=sys.stderr)
        return 130
    finally:
        env.close()


def run(env, args):
    print("== starting two simulated clusters (kubesim) and the Pods (pods.py)")
    pods = env.pods()
    clusters = {name: env.cluster(name) for name in ("tke-a", "tke-b")}
    net = {"tke-a": "127.0.1", "tke-b": "127.0.2"}
    if not all(port_free(f"{n}.{i}", PORT) for n in net.values() for i in range(1, 14)):
        base = env.address(1).rsplit(".", 1)[0]  # someone uses them: a random loopback range
        net = {"tke-a": base, "tke-b": base.rsplit(".", 1)[0] + f".{(int(base.rsplit('.', 1)[1]) % 250) + 1}"}
    for name, c in clusters.items():
        c.add_node(f"{name}-node-blue", {"pool": "blue"})
        c.add_node(f"{name}-node-green", {"pool": "green"})
        for i, version in enumerate(VERSIONS, start=1):
            pod = f"httpbin-{version}-{name}"
            addr = f"{net[name]}.{i}"
            node = f"{name}-node-{'blue' if i != 2 else 'green'}"
            pods.add(pod, addr, PORT, version, name)
            c.set_pod(pod, addr, publish=False, node=node)
        c.publish()
        print(f"  {name}: API server {c.sim.server}, Pods "
              + ", ".join(f"{e['pod']}@{e['address']}:{PORT} ({e['node']})" for e in c.endpoints.values()))

    with open(os.path.join(HERE, "gateway.yaml.in")) as f:
        text = f.read()
    for name, c in clusters.items():
        text = text.replace(f"@KUBECONFIG_{name.upper().replace('-', '_')}@", c.kubeconfig)
    print("== starting kup-gateway")
    gw = env.gateway(text)
    gw.wait_ready()
    print(f"  listening on 127.0.0.1:{gw.port}, admin on 127.0.0.1:{gw.admin_port} (config {gw.config_path})")

    n = args.requests
    print(f"\n== {n} requests to upstream httpbin (tke-a weight 3, tke-b weight 1, per Pod)")
    t = Load(gw.port, concurrency=4).run(n)
    table("per Pod", t.pod, n, {p: (3 if "tke-a" in p else 1) / 12 for p in t.pod})
    table("per version", t.version, n, {v: 1 / 3 for v in VERSIONS})
    table("per cluster", t.cluster, n, {"tke-a": 0.75, "tke-b": 0.25})
    print(f"  errors: {len(t.errors)}")
    errors = len(t.errors)

    m = 1000
    print(f"\n== {m} requests to upstream httpbin-blue (only Pods on Nodes with pool=blue)")
    t = Load(gw.port, concurrency=4, path="/blue").run(m)
    table("per Pod", t.pod, m)
    print(f"  errors: {len(t.errors)}")
    errors += len(t.errors)

    print("\n== rolling update v1,v2,v3 → v4 in both clusters, then a scale-down, while traffic flows")
    load = Load(gw.port, concurrency=4).start()
    start = time.monotonic()

    def step(text):
        print(f"  {time.monotonic() - start:5.2f}s  {text}")

    try:
        time.sleep(0.5)
        for name, c in clusters.items():
            for i, version in enumerate(VERSIONS, start=1):
                old = f"httpbin-{version}-{name}"
                new = f"httpbin-v4-{name}-{i}"
                addr = f"{net[name]}.{10 + i}"
                node = c.endpoints[old]["node"]
                pods.add(new, addr, PORT, "v4", name)
                c.set_pod(new, addr, ready=False, node=node)
                step(f"{name}: {new} started ({addr}), not ready yet")
                time.sleep(0.3)
                c.set_pod(new, addr, ready=True, node=node)
                step(f"{name}: {new} ready")
                time.sleep(0.3)
                c.set_pod(old, c.endpoints[old]["address"], ready=False, serving=True, terminating=True, node=node)
                step(f"{name}: {old} terminating (still serving)")
                time.sleep(0.4)
                c.drop_pod(old)
                step(f"{name}: {old} removed from the EndpointSlice")
                time.sleep(0.3)
                pods.remove(old)
                step(f"{name}: {old} stopped")
        c = clusters["tke-a"]
        gone = "httpbin-v4-tke-a-3"
        c.set_pod(gone, c.endpoints[gone]["address"], ready=False, serving=True, terminating=True,
                  node=c.endpoints[gone]["node"])
        step(f"scale-down: {gone} terminating")
        time.sleep(0.4)
        c.drop_pod(gone)
        time.sleep(0.3)
        pods.remove(gone)
        step(f"scale-down: {gone} removed and stopped")
        time.sleep(1.0)
    finally:
        t = load.stop()
    table("per version during the update", t.version, t.total)
    print(f"  requests: {t.total}, errors: {len(t.errors)}")
    for e, k in collections.Counter(t.errors).most_common(5):
        print(f"    {k} × {e}")
    errors += len(t.errors)

    t = Load(gw.port, concurrency=4).run(1200)
    print("\n== after the update: 1200 requests")
    table("per Pod", t.pod, t.total, {p: (3 if "tke-a" in p else 1) / 9 for p in t.pod})
    errors += len(t.errors)

    print("\n== a few gateway metrics (admin /metrics)")
    _, text = gw.admin("/metrics")
    for line in text.splitlines():
        if line.startswith(("kup_gateway_responses_total", "kup_gateway_connections_accepted_total",
                            "kupstream_requests_total", "kupstream_retries_total")):
            print(f"  {line}")
    rc = gw.stop()
    print(f"\n== kup-gateway stopped (exit status {rc}); total errors: {errors} (target 0)")
    return 0 if errors == 0 and rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
