#!/usr/bin/env python3
"""Profiles one proxy of the gateway benchmark under load with `perf record`.

    python3 bench/gateway/profile.py                          # kup-gateway, 10 s, perf.data in build/release
    python3 bench/gateway/profile.py --target nginx --duration 5
    python3 bench/gateway/profile.py --no-perf --duration 3   # just the load (e.g. to attach something else)

Starts the same setup as run.py (the Pods' nginx, kubesim for kup-gateway, the target with the
same configuration), warms it up, then runs wrk (1 thread, --connections) for --duration seconds
while `perf record -g -p PID` samples the process under test. Then `perf report --no-children -i
OUT` shows the hot spots. Every process is stopped by PID at the end, as in run.py.
"""

import argparse
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import run  # noqa: E402
from procs import BenchError  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", default="kup-gateway", choices=["nginx", "haproxy", "kup-gateway"] + run.FLOOR_TARGETS)
    ap.add_argument("--duration", type=int, default=10, help="seconds of wrk load while perf records")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--workers", type=int, default=1, help="as run.py --workers (wrk then runs that many threads)")
    ap.add_argument("--gateway", help="kup-gateway binary (default build/release/examples/gateway/kup-gateway)")
    ap.add_argument("--relay", help="tcp_relay binary (default BUILD_DIR/bench/gateway/tcp_relay)")
    ap.add_argument("--build-dir", default=os.path.join(run.ROOT, "build", "release"))
    ap.add_argument("--out", help="perf.data path (default BUILD_DIR/perf-TARGET.data)")
    ap.add_argument("--call-graph", default="fp", help="perf --call-graph mode (fp, dwarf, lbr; default fp)")
    ap.add_argument("--stat", metavar="EVENTS",
                    help="instead of recording: `perf stat -e EVENTS` and print each count per request "
                         "(e.g. probe_libc:malloc after `perf probe -x LIBC malloc`)")
    ap.add_argument("--no-perf", action="store_true", help="only run the load")
    a = ap.parse_args()
    out = os.path.abspath(a.out or os.path.join(a.build_dir, f"perf-{a.target}.data"))
    args = run.parse_args(["--quick", "--build-dir", a.build_dir, "--connections", str(a.connections),
                           "--workers", str(a.workers)]
                          + (["--gateway", a.gateway] if a.gateway else [])
                          + (["--relay", a.relay] if a.relay else []))
    return run.with_bench(args, lambda bench: profile(bench, a, out))


def profile(bench, a, out):
    """Starts the Pods, kubesim when needed and the target; loads it with wrk while perf watches it."""
    bench.start_pods()
    if a.target == "kup-gateway":
        bench.gateway = bench.find_gateway()
        if bench.gateway is None:
            raise BenchError("kup-gateway is not built")
        bench.start_kubesim()
    p, addr, port = bench.start_target(a.target)
    url = f"http://{addr}:{port}/"
    bench.check_spread(a.target, addr, port)
    run.run_wrk(url, 1, a.connections, bench.script, bench.a.wrk_threads)
    perf = None
    if not a.no_perf:
        if a.stat:
            out = os.path.join(bench.workdir, "perf-stat.csv")
            perf = bench.start_perf("perf-stat", p.pid, ["stat", "-x,", "-e", a.stat, "-o", out])
        else:
            perf = bench.start_perf("perf-record", p.pid, ["record", "-g", "--call-graph", a.call_graph, "-o", out])
        time.sleep(0.3)
    r = run.run_wrk(url, a.duration, a.connections, bench.script, bench.a.wrk_threads)
    if perf is not None:
        bench.group.stop(perf, sig=signal.SIGINT, grace=30.0)
    print(f"{a.target}: {r['rps']:,.0f} req/s p50 {r['p50_us'] / 1e3:.3f} ms p99 {r['p99_us'] / 1e3:.3f} ms "
          f"errors {r['errors']}, load {os.getloadavg()[0]:.2f}")
    if perf is not None and a.stat:
        with open(out) as f:
            for line in f:
                parts = line.split(",")
                try:
                    n = float(parts[0])
                except ValueError:
                    continue
                if len(parts) > 2:
                    unit = f" {parts[1]}" if parts[1] else ""
                    print(f"{parts[2]}: {n:,.0f}{unit} = {n / max(r['requests'], 1):.4g}{unit} per request")
    elif perf is not None:
        print(f"perf report --no-children -i {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
