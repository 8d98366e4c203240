#!/usr/bin/env python3
"""User-space instructions per request of kup-gateway, counted by callgrind: exact where CPU time is noisy.

    python3 bench/gateway/instructions.py --bin cur=build/release/examples/gateway/kup-gateway
    python3 bench/gateway/instructions.py --bin base=/tmp/kup-gateway-before --bin new=build/release/examples/gateway/kup-gateway --top 25

Same setup as run.py (the Pods' nginx, kubesim, one route to the Pods). Each binary runs under
`valgrind --tool=callgrind` with instrumentation off; after the warm-up it is switched on,
wrk sends --seconds of load (few connections: valgrind runs the process on one thread, slowly),
the counts are dumped and divided by the requests the gateway counted meanwhile
(kup_gateway_requests_total of its admin listener, read just before and just after). The result
is every instruction kup-gateway executed in user space per request (its code, llhttp, libuv,
libc, libstdc++), the same on every run of the same binary and configuration within about 1%:
the measure for changes to the request path that CPU time on this shared machine cannot
resolve (docs/performance.md). It says nothing about the kernel's share, which is most of a
request's CPU (bench/gateway/ab.py measures both). --top N lists the N functions with the most
instructions of their own. Every process is started and stopped by PID, as in run.py.
"""

import argparse
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import run  # noqa: E402
from procs import BenchError, http_get  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", action="append", required=True, metavar="LABEL=PATH",
                    help="a kup-gateway binary and its label (one or more)")
    ap.add_argument("--seconds", type=float, default=8.0, help="seconds of load while callgrind counts")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--top", type=int, default=0, help="list the N functions with the most own instructions")
    ap.add_argument("--keep", action="store_true", help="keep the work directory with the callgrind dumps "
                    "(for callgrind_annotate --inclusive=yes, kcachegrind)")
    a = ap.parse_args()
    for tool in ("valgrind", "callgrind_control", "wrk", "nginx"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode != 0:
            print(f"SKIP: {tool} is not installed", flush=True)
            return 77
    bins = run.binaries(ap, a.bin)
    args = run.parse_args(["--quick", "--connections", str(a.connections)] + (["--keep-workdir"] if a.keep else []))
    return run.with_bench(args, lambda bench: count_all(bench, bins, a))


def requests_total(bench):
    status, body = http_get("127.0.0.1", bench.admin_port, "/metrics", timeout=10.0)
    m = re.search(rb"^kup_gateway_requests_total (\d+)", body, re.M)
    if status != 200 or m is None:
        raise BenchError(f"kup-gateway's /metrics gave no kup_gateway_requests_total (status {status})")
    return int(m.group(1))


def callgrind(*args):
    r = subprocess.run(["callgrind_control", *args], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise BenchError(f"callgrind_control {' '.join(args)} failed: {r.stdout} {r.stderr}")


def count_one(bench, label, binary, a):
    out_prefix = os.path.join(bench.workdir, f"callgrind-{label}")
    wrapper = os.path.join(bench.workdir, f"valgrind-{label}.sh")
    with open(wrapper, "w") as f:
        f.write(f"#!/bin/sh\nexec valgrind --tool=callgrind --instr-atstart=no "
                f"--callgrind-out-file={out_prefix}.%p '{binary}' \"$@\"\n")
    os.chmod(wrapper, 0o755)
    bench.gateway = wrapper
    p, addr, port = bench.start_target("kup-gateway")
    try:
        url = f"http://{addr}:{port}/"
        bench.check_spread(label, addr, port)
        run.run_wrk(url, 2, a.connections, bench.script)  # warm-up: pools open, code paths touched
        before = requests_total(bench)
        callgrind("-i", "on", str(p.pid))
        run.run_wrk(url, max(1, round(a.seconds)), a.connections, bench.script)
        callgrind("-d", str(p.pid))
        requests = requests_total(bench) - before
    finally:
        bench.group.stop(p)
    dumps = sorted(x for x in os.listdir(bench.workdir)
                   if x.startswith(f"callgrind-{label}.") and not x.endswith(".sh"))
    # The dump made by `-d` has a part suffix (NAME.PID.1); the file written at exit has none.
    part = [x for x in dumps if x.count(".") >= 2]
    if not part or requests <= 0:
        raise BenchError(f"{label}: no callgrind dump or no requests ({dumps}, {requests} requests)")
    path = os.path.join(bench.workdir, part[0])
    total = None
    with open(path) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                total = int(line.split()[1])
    if total is None:
        raise BenchError(f"{label}: no totals in {path}")
    top = []
    if a.top:
        r = subprocess.run(["callgrind_annotate", "--threshold=100", "--auto=no", "--inclusive=no", path],
                           capture_output=True, text=True, timeout=120)
        for line in r.stdout.splitlines():
            m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)", line)
            if m and "PROGRAM TOTALS" not in line:
                top.append((int(m.group(1).replace(",", "")), m.group(2)))
        top = top[:a.top]
    return total, requests, top


def count_all(bench, bins, a):
    bench.start_pods()
    bench.gateway = next(iter(bins.values()))
    bench.start_kubesim()
    results = {}
    for label, binary in bins.items():
        t0 = time.monotonic()
        total, requests, top = count_one(bench, label, binary, a)
        results[label] = total / requests
        print(f"{label:<10} {total / requests:>10,.0f} instructions per request  ({total:,} over {requests:,} "
              f"requests, {time.monotonic() - t0:.0f} s)", flush=True)
        for n, name in top:
            print(f"    {n / requests:>8,.0f}  {name[:150]}")
    first = next(iter(bins))
    for label in list(bins)[1:]:
        print(f"{label} / {first}: {results[label] / results[first]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
