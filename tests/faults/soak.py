#!/usr/bin/env python3
"""Soak: steady traffic through kup-gateway for --duration seconds while the Pods of its Service
are replaced one after another (continuous endpoint churn: a new Pod starts not ready, becomes
ready, an old one turns terminating, leaves the EndpointSlice and stops after a grace period) and
the API server (kubesim) restarts every --restart-every seconds (POST /restart; every other
restart starts a new resourceVersion history, so the gateway must relist after a 410).

Reports the gateway's RSS and open file descriptors at the warm-up mark and at the end, the
requests sent and failed, and exits 1 when a bound is broken:
  - failed requests (any non-200 or transport error): 0;
  - RSS at the end <= RSS at the warm-up mark + --rss-bound-mib (default 4 MiB);
  - open fds at the end <= fds at the warm-up mark + 16 (client and Pod connections vary);
  - kup-gateway exits 0 on SIGTERM (its loop closed cleanly).

Not a ctest test. Run it (release build) with
  python3 tests/faults/soak.py --duration 300
  cmake --build --preset release --target soak          # the same, KUPSTREAM_SOAK_SECONDS=300
For hours: --duration 14400 (memory is sampled every --sample-every seconds and the report lists
the samples; pass --json FILE to keep them). Standard library only; everything it starts is
stopped by its PID, also on Ctrl-C.
"""

import argparse
import json
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("KUPSTREAM_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SOURCE, "tests", "gateway"))

from harness import Env, Load, gateway_config  # noqa: E402

PORT = 8080


def proc_status(pid):
    rss_kib = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss_kib = int(line.split()[1])
    return {"rss_kib": rss_kib, "fds": len(os.listdir(f"/proc/{pid}/fd"))}


class Churn:
    """Replaces the oldest Pod every `interval` seconds, the way a rolling update does."""

    def __init__(self, env, pods, cluster, size, interval, grace):
        self.env, self.pods, self.cluster = env, pods, cluster
        self.interval, self.grace = interval, grace
        self.live = []          # pod names in the slice, oldest first
        self.stopping = []      # (deadline, name): out of the slice, still running
        self.next = 1
        self.replaced = 0
        self.retried_calls = 0
        self.errors = []
        self._stop = threading.Event()
        for _ in range(size):
            self.live.append(self._start_pod(ready=True, publish=False))
        cluster.publish()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _start_pod(self, ready, publish=True):
        i = self.next
        self.next = self.next % 240 + 1
        name = f"soak-{self.replaced + len(self.live) + len(self.stopping)}-{i}"
        self.pods.add(name, self.env.address(i), PORT, "v1", self.cluster.name)
        self.cluster.set_pod(name, self.env.address(i), publish=publish, ready=ready)
        return name

    def _publish(self):
        """Publishes the slice; an API-server restart may cut one call, so try a few times."""
        for attempt in range(10):
            try:
                return self.cluster.publish()
            except Exception:
                if attempt == 9:
                    raise
                self.retried_calls += 1
                time.sleep(0.2)

    def _step(self):
        new = self._start_pod(ready=False, publish=False)
        self._publish()
        time.sleep(0.2)
        self.cluster.set_pod(new, self.cluster.endpoints[new]["address"], publish=False, ready=True)
        self._publish()
        self.live.append(new)
        time.sleep(0.2)
        old = self.live.pop(0)
        self.cluster.set_pod(old, self.cluster.endpoints[old]["address"], publish=False, ready=False, serving=True,
                             terminating=True)
        self._publish()
        time.sleep(0.3)
        self.cluster.drop_pod(old, publish=False)
        self._publish()
        self.stopping.append((time.monotonic() + self.grace, old))
        self.replaced += 1

    def _reap(self, force=False):
        while self.stopping and (force or self.stopping[0][0] <= time.monotonic()):
            _, name = self.stopping.pop(0)
            self.pods.remove(name)

    def _run(self):
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self._step()
                self._reap()
            except Exception as e:  # an admin call that met a restart: note it, go on
                self.errors.append(f"{type(e).__name__}: {e}")
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def start(self):
        self.thread.start()

    def stop(self):
        self._stop.set()
        self.thread.join()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=300, help="seconds of traffic (default 300)")
    ap.add_argument("--restart-every", type=float, default=30, help="API-server restart period, s (default 30)")
    ap.add_argument("--churn-every", type=float, default=2.0, help="one Pod replaced per this many s (default 2)")
    ap.add_argument("--grace", type=float, default=5.0, help="a Pod out of the slice stops after this, s (default 5)")
    ap.add_argument("--pods", type=int, default=3, help="ready Pods at any time (default 3)")
    ap.add_argument("--concurrency", type=int, default=4, help="keep-alive client threads (default 4)")
    ap.add_argument("--warmup", type=float, default=20, help="the RSS/fd baseline is taken after this, s")
    ap.add_argument("--sample-every", type=float, default=10, help="RSS/fd sample period, s (default 10)")
    ap.add_argument("--rss-bound-mib", type=float, default=4.0, help="allowed RSS growth after warm-up (MiB)")
    ap.add_argument("--json", help="write the report (with every sample) to this file")
    args = ap.parse_args(argv)

    env = Env()
    report = {"args": vars(args)}
    ok = False
    try:
        pods = env.pods()
        cluster = env.cluster("tke-a")
        churn = Churn(env, pods, cluster, args.pods, args.churn_every, args.grace)
        upstream = {"name": "web", "services": [{"cluster": "tke-a", "service": "httpbin", "port": "http"}],
                    "retries": {"max": 2, "min_concurrent": 8}}
        gw = env.gateway(gateway_config([cluster], [upstream]), log_level="warning")
        gw.wait_ready()
        load = Load(gw.port, concurrency=args.concurrency).start()
        churn.start()
        t0 = time.monotonic()
        samples, restarts, restart_errors = [], 0, []
        next_restart, next_sample = t0 + args.restart_every, t0
        baseline = None
        while time.monotonic() - t0 < args.duration:
            now = time.monotonic()
            if now >= next_sample:
                s = dict(proc_status(gw.proc.pid), t=round(now - t0, 1), requests=load.tally.total,
                         failed=len(load.tally.errors))
                samples.append(s)
                if baseline is None and now - t0 >= args.warmup:
                    baseline = s
                print(f"t={s['t']:7.1f}s rss={s['rss_kib'] / 1024:7.1f} MiB fds={s['fds']:4d} "
                      f"requests={s['requests']} failed={s['failed']} restarts={restarts} "
                      f"pods replaced={churn.replaced}", flush=True)
                next_sample += args.sample_every
            if now >= next_restart:
                try:
                    cluster.sim.restart(history="new" if restarts % 2 else "same")
                    restarts += 1
                except Exception as e:
                    restart_errors.append(f"{type(e).__name__}: {e}")
                next_restart += args.restart_every
            time.sleep(0.05)
        churn.stop()
        tally = load.stop()
        # kubesim numbers its watches across restarts: the highest id is how many the gateway opened.
        watches_opened = max((w["id"] for w in cluster.sim.watches()), default=0)
        end = dict(proc_status(gw.proc.pid), t=round(time.monotonic() - t0, 1), requests=tally.total,
                   failed=len(tally.errors))
        samples.append(end)
        baseline = baseline or samples[0]
        churn._reap(force=True)
        exit_code = gw.stop()
        growth_mib = (end["rss_kib"] - baseline["rss_kib"]) / 1024
        report.update({
            "requests": tally.total, "failed": len(tally.errors), "first_errors": tally.errors[:5],
            "restarts": restarts, "watches_opened": watches_opened, "restart_errors": restart_errors, "pods_replaced": churn.replaced,
            "churn_errors": churn.errors[:5], "admin_calls_retried": churn.retried_calls, "baseline": baseline, "end": end, "rss_growth_mib": round(growth_mib, 2),
            "rss_max_kib": max(s["rss_kib"] for s in samples), "gateway_exit": exit_code, "samples": samples})
        problems = []
        if tally.errors:
            problems.append(f"{len(tally.errors)} failed requests, e.g. {tally.errors[:3]}")
        if growth_mib > args.rss_bound_mib:
            problems.append(f"RSS grew {growth_mib:.1f} MiB after warm-up (bound {args.rss_bound_mib} MiB)")
        if end["fds"] > baseline["fds"] + 16:
            problems.append(f"open fds grew from {baseline['fds']} to {end['fds']}")
        if exit_code != 0:
            problems.append(f"kup-gateway exited {exit_code}")
        if churn.errors or restart_errors:
            problems.append(f"harness errors: {churn.errors[:3]} {restart_errors[:3]}")
        report["problems"] = problems
        print(f"\nsoak {args.duration:.0f} s: {tally.total} requests ({tally.total / max(end['t'], 1):.0f}/s), "
              f"{len(tally.errors)} failed; {restarts} API-server restarts ({watches_opened} watches opened); "
              f"{churn.replaced} Pods replaced\n"
              f"RSS {baseline['rss_kib'] / 1024:.1f} MiB at t={baseline['t']} s -> {end['rss_kib'] / 1024:.1f} MiB at "
              f"the end ({growth_mib:+.2f} MiB, max {report['rss_max_kib'] / 1024:.1f} MiB; first sample "
              f"{samples[0]['rss_kib'] / 1024:.1f} MiB); fds {baseline['fds']} -> {end['fds']}; "
              f"kup-gateway exit {exit_code}")
        print("PASS" if not problems else "FAIL: " + "; ".join(problems))
        ok = not problems
    finally:
        if args.json:
            with open(args.json, "w") as f:
                json.dump(report, f, indent=1)
        env.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
