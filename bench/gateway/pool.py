#!/usr/bin/env python3
"""Pools the rounds of several gateway benchmark runs into one verdict.

    python3 bench/gateway/run.py --rounds 9 --json a.json
    python3 bench/gateway/run.py --rounds 9 --json b.json
    python3 bench/gateway/pool.py a.json b.json

One run's medians move by more than the margins the targets are judged on (this machine's
throughput varies by 10% and more between minutes), so a verdict fixed in advance is taken over
all rounds of several runs: the median over every round of req/s and of p99 for each target,
and their ratios to nginx's. The rounds interleave the targets, so it also gives the median of
the round-by-round ratios ("paired") and how many rounds kup-gateway won.
"""

import json
import statistics
import sys


def rounds_of(runs, target):
    out = []
    for run in runs:
        res = run["results"].get(target)
        if res:
            out.extend(res["rounds"])
    return out


def main(paths):
    if not paths:
        print(__doc__)
        return 2
    runs = [json.load(open(p)) for p in paths]
    targets = [t for t in ("direct", "nginx", "haproxy", "kup-gateway") if rounds_of(runs, t)]
    print(f"{len(runs)} run(s): " + ", ".join(r["date"] for r in runs))
    med = {}
    for t in targets:
        rs = rounds_of(runs, t)
        rps = [r["requests"] / (r["duration_us"] / 1e6) for r in rs]
        p99 = [r["p99_us"] / 1e3 for r in rs]
        med[t] = (statistics.median(rps), statistics.median(p99), rps, p99)
        print(f"  {t:<12} {len(rs):>3} rounds  median req/s {med[t][0]:>9,.0f}  median p99 {med[t][1]:.3f} ms")
    if "kup-gateway" not in med:
        return 1
    g = med["kup-gateway"]
    verdict = True
    for ref in ("nginx", "haproxy"):
        if ref not in med:
            continue
        r = med[ref]
        n = min(len(g[2]), len(r[2]))
        paired_rps = statistics.median(g[2][i] / r[2][i] for i in range(n))
        paired_p99 = statistics.median(g[3][i] / r[3][i] for i in range(n))
        won_rps = sum(g[2][i] > r[2][i] for i in range(n))
        won_p99 = sum(g[3][i] < r[3][i] for i in range(n))
        print(f"kup-gateway/{ref:<8} pooled req/s {g[0] / r[0]:.3f}x  p99 {g[1] / r[1]:.3f}x   "
              f"paired req/s {paired_rps:.3f}x  p99 {paired_p99:.3f}x   "
              f"higher req/s in {won_rps}/{n} rounds, lower p99 in {won_p99}/{n}")
        if ref == "nginx":
            verdict = g[0] >= r[0] and g[1] <= r[1]
            print(f"target (pooled) req/s >= 1.0x nginx and p99 <= nginx: {'met' if verdict else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
