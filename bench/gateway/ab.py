#!/usr/bin/env python3
"""Before/after: two or more kup-gateway binaries and nginx, interleaved in every round, one run.

    python3 bench/gateway/ab.py --bin base=/tmp/kup-gateway-before --bin new=build/release/examples/gateway/kup-gateway
    python3 bench/gateway/ab.py --bin base=A --bin new=B --rounds 6 --workers 2 --duration 5
    python3 bench/gateway/ab.py --bin cur=build/release/examples/gateway/kup-gateway --floor

--floor also measures, in every round, tcp_relay (bench/gateway/tcp_relay.c: one read and one
write per hop, nothing else) and HAProxy in TCP mode: what the same bytes cost a proxy that does
no HTTP work (docs/gateway-performance.md, "The floor").

Same setup as run.py (the Pods' nginx, kubesim, wrk; --workers N for every proxy), but each round
measures nginx and then every binary given, so a change to kup-gateway is compared with the build
before it under the same machine load, round by round. Prints per round req/s, CPU us per request
(user+system of the process, /proc, and the two apart), p99 and system calls per request (perf, unless --no-syscalls),
then the medians and, per binary, the CPU-per-request ratio to nginx and to the first binary in
every round. Every process is started and stopped by PID, as in run.py. Standard library only.
"""

import argparse
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import run  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", action="append", required=True, metavar="LABEL=PATH",
                    help="a kup-gateway binary and its label (give two or more; the first is the reference)")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--no-syscalls", action="store_true")
    ap.add_argument("--floor", action="store_true",
                    help="also measure tcp_relay and HAProxy mode tcp in every round (the floor)")
    ap.add_argument("--also", default="", metavar="TARGETS",
                    help="comma-separated run.py targets to measure in every round too (haproxy, tcp-relay, "
                         "haproxy-tcp)")
    ap.add_argument("--relay", help="tcp_relay binary (default build/release/bench/gateway/tcp_relay)")
    a = ap.parse_args()
    bins = run.binaries(ap, a.bin)
    args = run.parse_args(["--workers", str(a.workers), "--flips", "0", "--duration", str(a.duration)]
                          + ([] if a.no_syscalls else ["--syscalls"])
                          + (["--relay", a.relay] if a.relay else []))
    floor = [t for t in a.also.split(",") if t] + (run.FLOOR_TARGETS if a.floor else [])
    for t in floor:
        if t not in ("haproxy", *run.FLOOR_TARGETS):
            ap.error(f"--also {t}: want haproxy, tcp-relay or haproxy-tcp")
    floor = list(dict.fromkeys(floor))
    return run.with_bench(args, lambda bench: compare(bench, bins, a.rounds, floor))


def compare(bench, bins, rounds, floor):
    if "tcp-relay" in floor and bench.find_relay() is None:
        raise run.BenchError("--floor: no tcp_relay binary (build the release preset, or give --relay)")
    bench.start_pods()
    bench.gateway = next(iter(bins.values()))
    bench.start_kubesim()
    res = {k: [] for k in ["nginx"] + list(bins) + floor}
    for rnd in range(rounds):
        for k in res:
            if k in bins:
                bench.gateway = bins[k]
            r = bench.measure("kup-gateway" if k in bins else k)
            res[k].append(r)
            sc = r.get("syscalls_per_req")
            print(f"round {rnd + 1}/{rounds} {k:<10} {r['rps']:>9,.0f} req/s  CPU {r['cpu_us_per_req']:6.2f} us/req "
                  f"(user {r['user_us_per_req']:5.2f}, kernel {r['sys_us_per_req']:5.2f})  "
                  f"p99 {r['p99_us'] / 1e3:8.2f} ms" + (f"  syscalls/req {sc:.3f}" if sc else "")
                  + f"  TCP segments/req {r['segments_per_req']:.2f}"
                  + f"  load {os.getloadavg()[0]:.1f}", flush=True)
    print()
    for k, v in res.items():
        sc = [x.get("syscalls_per_req") for x in v if x.get("syscalls_per_req")]
        print(f"{k:<10} median req/s {statistics.median(x['rps'] for x in v):>9,.0f}  "
              f"CPU {statistics.median(x['cpu_us_per_req'] for x in v):6.2f} us/req "
              f"(user {statistics.median(x['user_us_per_req'] for x in v):5.2f}, "
              f"kernel {statistics.median(x['sys_us_per_req'] for x in v):5.2f})  "
              f"p99 {statistics.median(x['p99_us'] for x in v) / 1e3:7.2f} ms"
              + (f"  syscalls/req {statistics.median(sc):.3f}" if sc else ""))
    first = next(iter(bins))
    for k in floor:
        to_nginx = [a["cpu_us_per_req"] / b["cpu_us_per_req"] for a, b in zip(res[k], res["nginx"])]
        print(f"{k:<10} CPU per request / nginx: median {statistics.median(to_nginx):.3f} "
              f"(rounds {', '.join(f'{x:.2f}' for x in to_nginx)})")
    for k in bins:
        to_nginx = [a["cpu_us_per_req"] / b["cpu_us_per_req"] for a, b in zip(res[k], res["nginx"])]
        to_first = [a["cpu_us_per_req"] / b["cpu_us_per_req"] for a, b in zip(res[k], res[first])]
        print(f"{k:<10} CPU per request / nginx: median {statistics.median(to_nginx):.3f} "
              f"(rounds {', '.join(f'{x:.2f}' for x in to_nginx)})"
              + ("" if k == first else f"; / {first}: median {statistics.median(to_first):.3f} "
                 f"(rounds {', '.join(f'{x:.2f}' for x in to_first)})"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
