#!/usr/bin/env python3
"""Gateway benchmark: kup-gateway beside nginx and HAProxy in front of the same Pods, in one run.

    python3 bench/gateway/run.py                 # full run (5 s per measurement, 3 rounds, 20 flips)
    python3 bench/gateway/run.py --quick         # 1 s runs, 1 round, 5 flips
    python3 bench/gateway/run.py --gateway PATH  # a kup-gateway binary elsewhere
    python3 bench/gateway/run.py --workers 2     # kup-gateway --workers 2, nginx worker_processes 2,
                                                 # HAProxy nbthread 2, the Pods' nginx 2 workers, wrk -t2

Throughput: wrk (1 thread, 64 connections, --latency) against, one at a time,
  - one Pod directly (the ceiling), the Pods being one nginx process with 1 worker and one server
    block per Pod address (127.0.1.11-13) answering "pod-N vN\\n";
  - nginx as a reverse proxy (1 worker, upstream keepalive 64) in front of the 3 Pods;
  - HAProxy (1 thread, http-reuse always) in front of the 3 Pods;
  - kup-gateway (one uv loop, one thread) in front of the 3 Pods, found through kubesim.
Propagation: see propagation.py.

Every process is started here with its own config in a temporary directory and stopped by PID,
also on errors and signals. Only loopback addresses are used. Standard library only.
Exit status: 0 when every available target was measured without errors; 1 otherwise (or when
kup-gateway is missing, unless --no-gateway-required); 77 when wrk or nginx is not installed.
"""

import argparse
import asyncio
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "kubesim"))

import configs  # noqa: E402
import propagation  # noqa: E402
from procs import BenchError, ProcessGroup, cpu_times, free_port, http_get, process_tree, tcp_out_segments, wait_http  # noqa: E402

TARGETS = ["direct", "nginx", "haproxy", "kup-gateway"]
# Not measured unless asked for (--only, ab.py --floor): what moving the same bytes costs a proxy
# that does no HTTP work at all (docs/gateway-performance.md, "The floor").
FLOOR_TARGETS = ["tcp-relay", "haproxy-tcp"]
LABELS = {"direct": "Pods direct (1 Pod)", "nginx": "nginx proxy", "haproxy": "HAProxy",
          "kup-gateway": "kup-gateway", "tcp-relay": "tcp_relay (floor)", "haproxy-tcp": "HAProxy mode tcp"}


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, help="seconds per wrk measurement (default 5, --quick 1)")
    ap.add_argument("--warmup", type=int, help="seconds of wrk warm-up before each measurement (default 1)")
    ap.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    ap.add_argument("--workers", type=int, default=1,
                    help="workers of every proxy (kup-gateway --workers, nginx worker_processes, HAProxy "
                         "nbthread) and of the Pods' nginx (default 1)")
    ap.add_argument("--wrk-threads", type=int, help="wrk threads (default: --workers)")
    ap.add_argument("--rounds", type=int,
                    help="rounds over all targets, interleaved; the report gives medians (default 3, --quick 1)")
    ap.add_argument("--flips", type=int, help="EndpointSlice changes for propagation (default 20, --quick 5)")
    ap.add_argument("--poll-interval-ms", type=float, default=0.0,
                    help="pause between propagation polls (default 0: back to back, one request in flight)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 s measurements, 1 round, 5 flips")
    ap.add_argument("--gateway", help="kup-gateway binary (default: BUILD_DIR/examples/gateway/kup-gateway)")
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build", "release"),
                    help="build tree holding examples/gateway/kup-gateway (default build/release)")
    ap.add_argument("--no-gateway-required", action="store_true",
                    help="exit 0 when kup-gateway is not built (the others are measured either way)")
    ap.add_argument("--only", help="comma-separated subset of targets: " + ",".join(TARGETS + FLOOR_TARGETS)
                    + " (the last two only when named)")
    ap.add_argument("--relay", help="tcp_relay binary (default: BUILD_DIR/bench/gateway/tcp_relay)")
    ap.add_argument("--json", help="results file (default BUILD_DIR/bench-gateway.json)")
    ap.add_argument("--syscalls", action="store_true",
                    help="also count the system calls of the process under test per request (needs perf)")
    ap.add_argument("--keep-workdir", action="store_true", help="keep the temporary directory (configs, logs)")
    a = ap.parse_args(argv)
    for k, full, quick in (("duration", 5, 1), ("warmup", 1, 1), ("rounds", 3, 1), ("flips", 20, 5)):
        if getattr(a, k) is None:
            setattr(a, k, quick if a.quick else full)
    if a.wrk_threads is None:
        a.wrk_threads = a.workers
    if a.json is None:
        a.json = os.path.join(a.build_dir, "bench-gateway.json" if a.workers == 1
                              else f"bench-gateway-{a.workers}workers.json")
    return a


def binaries(ap, specs):
    """{label: absolute path} from --bin LABEL=PATH arguments (ab.py, instructions.py); ap.error()
    names a malformed one or one that is not an executable."""
    bins = {}
    for spec in specs:
        label, sep, path = spec.partition("=")
        if not sep or not os.access(path, os.X_OK):
            ap.error(f"--bin {spec}: want LABEL=PATH of an executable")
        bins[label] = os.path.abspath(path)
    return bins


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)


# ------------------------------------------------------------------------------------------
# wrk

def run_wrk(url, duration, connections, script, threads=1):
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "-s", script, url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    line = next((l for l in out.stdout.splitlines() if l.startswith("KUPWRK ")), None)
    if out.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({out.returncode}) on {url}: {out.stdout[-800:]} {out.stderr[-800:]}")
    r = json.loads(line[len("KUPWRK "):])
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6) if r["duration_us"] else 0.0
    r["errors"] = r["err_connect"] + r["err_read"] + r["err_write"] + r["err_status"] + r["err_timeout"]
    r["command"] = " ".join(cmd[:-3] + [url])
    return r


# ------------------------------------------------------------------------------------------
# the run

class Bench:
    def __init__(self, args):
        self.a = args
        self.workdir = tempfile.mkdtemp(prefix="kup-gwbench-")
        os.chmod(self.workdir, 0o755)  # nginx workers may run as another user when started as root
        self.group = ProcessGroup(self.workdir)
        self.sim = None
        self.pod_port = None
        self.script = configs.wrk_script(self.workdir)
        self.gateway = None
        self.admin_port = None  # the admin listener of the last kup-gateway started
        self.pods_proc = None
        self.notes = []
        self.load_start = os.getloadavg()[0]

    # -- helpers
    def log(self, msg):
        print(msg, flush=True)

    def find_gateway(self):
        path = self.a.gateway or os.path.join(self.a.build_dir, "examples", "gateway", "kup-gateway")
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return os.path.abspath(path)
        return None

    def find_relay(self):
        path = self.a.relay or os.path.join(self.a.build_dir, "bench", "gateway", "tcp_relay")
        return os.path.abspath(path) if os.path.isfile(path) and os.access(path, os.X_OK) else None

    def start_server(self, name, make_cmd, probe_addr, want=b"pod-", timeout=15.0):
        """Starts a listening process on a free loopback port (retries on a port race)."""
        last = None
        for _ in range(3):
            port = free_port([probe_addr])
            cmd = make_cmd(port)
            p = self.group.start(name, cmd)
            try:
                wait_http(p, probe_addr, port, want_prefix=want, timeout=timeout)
                return p, port
            except BenchError as e:
                last = e
                log = p.log_tail()
                self.group.stop(p)
                if "in use" not in log:
                    raise
        raise last

    # -- setup
    def start_pods(self):
        addrs = [a for _, _, a in configs.PODS + configs.FLIP_PODS]
        self.pod_port = free_port(addrs)
        conf = configs.pods_nginx(self.workdir, self.pod_port, self.a.workers)
        p = self.group.start("pods-nginx", ["nginx", "-p", self.workdir, "-c", conf, "-g", "daemon off;"])
        self.pods_proc = p
        for name, version, addr in configs.PODS + configs.FLIP_PODS:
            body = wait_http(p, addr, self.pod_port, want_prefix=name.encode(), what=f"Pod {name}")
            if body != f"{name} {version}\n".encode():
                raise BenchError(f"Pod {name} answered {body!r}")
        self.log(f"Pods: one nginx (pid {p.pid}, {self.a.workers} worker(s)) on 127.0.1.11-15:{self.pod_port}")

    def slice_obj(self, name, service, pods, trigger=None):
        from kubesim_client import endpointslice
        obj = endpointslice("default", name, service, [a for _, _, a in pods], self.pod_port, port_name="http")
        if trigger:
            obj["metadata"]["annotations"] = {"endpoints.kubernetes.io/last-change-trigger-time": trigger}
        return obj

    def start_kubesim(self):
        from kubesim_client import KubeSim, service
        self.sim = KubeSim(cluster="bench", state_dir=os.path.join(self.workdir, "kubesim")).start()
        self.sim.apply(service("default", "pods", [("http", 80, "http")]))
        self.sim.apply(self.slice_obj("pods-1", "pods", configs.PODS))
        self.sim.apply(service("default", "flip", [("http", 80, "http")]))
        out = self.sim.apply(self.slice_obj("flip-1", "flip", configs.FLIP_PODS[:1]))
        self.flip_rv = out["metadata"]["resourceVersion"]
        self.log(f"kubesim: pid {self.sim.proc.pid}, https://127.0.0.1:{self.sim.port}; Service default/pods "
                 f"-> slice of 127.0.1.11-13:{self.pod_port}")

    # -- one target
    def start_target(self, t, service="pods"):
        d = self.workdir
        if t == "direct":
            return None, configs.PODS[0][2], self.pod_port
        if t == "nginx":
            def cmd(port):
                conf = configs.proxy_nginx(d, port, self.pod_port, self.a.workers)
                return ["nginx", "-p", d, "-c", conf, "-g", "daemon off;"]
            p, port = self.start_server("nginx-proxy", cmd, "127.0.0.1")
        elif t == "haproxy":
            def cmd(port):
                return ["haproxy", "-f", configs.proxy_haproxy(d, port, self.pod_port, self.a.workers), "-db"]
            p, port = self.start_server("haproxy", cmd, "127.0.0.1")
        elif t == "haproxy-tcp":
            def cmd(port):
                return ["haproxy", "-f", configs.proxy_haproxy_tcp(d, port, self.pod_port, self.a.workers), "-db"]
            p, port = self.start_server("haproxy-tcp", cmd, "127.0.0.1")
        elif t == "tcp-relay":
            def cmd(port):
                return [self.find_relay(), str(port), str(self.a.workers)] + [
                    f"{addr}:{self.pod_port}" for _, _, addr in configs.PODS]
            p, port = self.start_server("tcp-relay", cmd, "127.0.0.1")
        else:
            admin_port = free_port(["127.0.0.1"])
            self.admin_port = admin_port

            def cmd(port):
                cfg = configs.gateway_yaml(d, f"gateway-{service}", port, admin_port,
                                           self.sim.kubeconfig("admin"), service)
                return [self.gateway, "--config", cfg] + (["--workers", str(self.a.workers)] if self.a.workers > 1 else [])
            p, port = self.start_server(f"kup-gateway-{service}", cmd, "127.0.0.1", timeout=30.0)
        return p, "127.0.0.1", port

    def check_spread(self, t, addr, port):
        """All three Pods answer through the proxy (so the balancing covers the same Pods)."""
        seen = set()
        deadline = time.monotonic() + 10
        while len(seen) < 3 and time.monotonic() < deadline:
            status, body = http_get(addr, port)
            if status == 200:
                seen.add(body.split(b" ")[0].decode())
            else:
                time.sleep(0.01)
        if len(seen) < 3:
            self.notes.append(f"{t}: only {sorted(seen)} answered before the measurement")
        return sorted(seen)

    def measure(self, t):
        p, addr, port = self.start_target(t)
        try:
            url = f"http://{addr}:{port}/"
            pods_seen = self.check_spread(t, addr, port) if t != "direct" else ["pod-1"]
            if self.a.warmup > 0:
                run_wrk(url, self.a.warmup, self.a.connections, self.script, self.a.wrk_threads)
            # CPU time of the process under test (the Pods' nginx for "direct") over the measurement
            watched = p.pid if p is not None else self.pods_proc.pid
            perf = self.start_syscall_count(watched) if self.a.syscalls else None
            (user0, sys0), segs0 = cpu_times(watched), tcp_out_segments()
            r = run_wrk(url, self.a.duration, self.a.connections, self.script, self.a.wrk_threads)
            (user1, sys1), segs = cpu_times(watched), tcp_out_segments() - segs0
            cpu = (user1 - user0) + (sys1 - sys0)
            r["segments_per_req"] = segs / r["requests"] if r["requests"] else None
            if perf is not None:
                n = self.stop_syscall_count(perf)
                r["syscalls_per_req"] = n / r["requests"] if n is not None and r["requests"] else None
            r["cpu_s"] = cpu
            r["cpu_us_per_req"] = cpu * 1e6 / r["requests"] if r["requests"] else None
            # The same split into user space and the kernel (its system calls and the TCP work
            # they do, the receiving side's on loopback included).
            r["user_us_per_req"] = (user1 - user0) * 1e6 / r["requests"] if r["requests"] else None
            r["sys_us_per_req"] = (sys1 - sys0) * 1e6 / r["requests"] if r["requests"] else None
            r["pods_seen"] = pods_seen
            if p is not None and not p.alive():
                raise BenchError(f"{t} exited during the measurement:\n{p.log_tail()}")
            return r
        finally:
            if p is not None:
                self.group.stop(p)

    def start_syscall_count(self, pid):
        out = os.path.join(self.workdir, "perf-stat.csv")
        if os.path.exists(out):
            os.unlink(out)
        p = self.start_perf("perf-stat", pid, ["stat", "-x,", "-e", "raw_syscalls:sys_enter", "-o", out])
        time.sleep(0.2)  # attached before wrk starts
        return p, out

    def start_perf(self, name, pid, perf_args):
        """Starts `perf PERF_ARGS -p PIDS` on pid and its descendants; stop it with SIGINT."""
        pids = ",".join(str(x) for x in process_tree(pid))
        return self.group.start(name, ["perf"] + perf_args + ["-p", pids])

    def stop_syscall_count(self, perf):
        p, out = perf
        self.group.stop(p, sig=signal.SIGINT)
        try:
            with open(out) as f:
                for line in f:
                    parts = line.split(",")
                    if len(parts) > 2 and "raw_syscalls:sys_enter" in line and parts[0].strip().isdigit():
                        return int(parts[0])
        except OSError:
            pass
        self.notes.append("perf stat gave no system call count (is perf allowed here?)")
        return None

    def run_propagation(self):
        from kubesim_client import KubeSimError
        before = max((w["id"] for w in self.sim.watches()), default=0)
        p, addr, port = self.start_target("kup-gateway", service="flip")
        try:
            # steady state: the gateway's EndpointSlice watch is open before the first change
            try:
                self.sim.wait_watches(count=1, resource="endpointslices", after_id=before, timeout=10)
            except KubeSimError as e:
                self.notes.append(f"propagation: the gateway's EndpointSlice watch was not seen open: {e}")
            pods = (configs.FLIP_PODS[0][0], configs.FLIP_PODS[1][0])

            def slice_for(idx, trigger):
                return self.slice_obj("flip-1", "flip", [configs.FLIP_PODS[idx]], trigger)
            return asyncio.run(propagation.measure(self.sim, port, slice_for, pods, self.a.flips, self.flip_rv,
                                                   self.a.poll_interval_ms / 1e3))
        finally:
            self.group.stop(p)

    # -- all
    def run(self):
        a = self.a
        targets = TARGETS if not a.only else [t.strip() for t in a.only.split(",")]
        for t in targets:
            if t not in TARGETS + FLOOR_TARGETS:
                raise BenchError(f"--only: unknown target {t!r} (known: {', '.join(TARGETS + FLOOR_TARGETS)})")
        avail = {}
        for t in targets:
            if t in ("haproxy", "haproxy-tcp") and shutil.which("haproxy") is None:
                avail[t] = "haproxy is not installed"
            elif t == "tcp-relay" and self.find_relay() is None:
                avail[t] = f"no binary at {a.relay or os.path.join(a.build_dir, 'bench/gateway/tcp_relay')}"
            elif t == "kup-gateway":
                self.gateway = self.find_gateway()
                if self.gateway is None:
                    avail[t] = f"no binary at {a.gateway or os.path.join(a.build_dir, 'examples/gateway/kup-gateway')}"
        measured = [t for t in targets if t not in avail]
        for t, why in avail.items():
            self.log(f"{LABELS[t]}: not available ({why})")

        self.start_pods()
        if "kup-gateway" in measured:
            self.start_kubesim()
        rounds = {t: [] for t in measured}
        for rnd in range(a.rounds):
            for t in measured:
                r = self.measure(t)
                rounds[t].append(r)
                self.log(f"round {rnd + 1}/{a.rounds} {LABELS[t]:<20} {r['rps']:>10,.0f} req/s  "
                         f"p50 {r['p50_us'] / 1e3:.3f} ms  p99 {r['p99_us'] / 1e3:.3f} ms  errors {r['errors']}")
        prop = None
        if "kup-gateway" in measured and a.flips > 0:
            self.log(f"propagation: {a.flips} EndpointSlice changes through kubesim ...")
            prop = self.run_propagation()
        return self.report(targets, avail, rounds, prop)

    # -- report
    def report(self, targets, avail, rounds, prop):
        a = self.a
        summary = {}
        for t, rs in rounds.items():
            summary[t] = {"rps": statistics.median(r["rps"] for r in rs),
                          "p50_ms": statistics.median(r["p50_us"] for r in rs) / 1e3,
                          "p99_ms": statistics.median(r["p99_us"] for r in rs) / 1e3,
                          "errors": sum(r["errors"] for r in rs),
                          "cpu_us_per_req": statistics.median(r["cpu_us_per_req"] or 0 for r in rs),
                          "syscalls_per_req": (statistics.median(r["syscalls_per_req"] for r in rs)
                                               if all(r.get("syscalls_per_req") is not None for r in rs) else None),
                          "rounds": rs}
        ratios = {}
        g = summary.get("kup-gateway")
        for ref in ("nginx", "haproxy", "direct"):
            if g and ref in summary and summary[ref]["rps"] > 0:
                ratios[f"kup-gateway/{ref}"] = {"rps": g["rps"] / summary[ref]["rps"],
                                                # the Pods' nginx is not a proxy: no CPU ratio against it
                                                "cpu_per_req": (g["cpu_us_per_req"] / summary[ref]["cpu_us_per_req"]
                                                                if summary[ref]["cpu_us_per_req"] and ref != "direct"
                                                                else None),
                                                "p99": g["p99_ms"] / summary[ref]["p99_ms"] if summary[ref]["p99_ms"] else None}
        targets_met = {}
        if g and "nginx" in summary:
            n = summary["nginx"]
            targets_met["rps_ge_nginx"] = g["rps"] >= n["rps"]
            targets_met["p99_le_nginx"] = g["p99_ms"] <= n["p99_ms"]
            if a.workers > 1 and n["cpu_us_per_req"]:
                # issue #12, N workers: CPU per request <= 0.9x nginx's at equal or higher req/s
                targets_met["cpu_per_req_le_0.9_nginx"] = g["cpu_us_per_req"] <= 0.9 * n["cpu_us_per_req"]
        if prop and prop["upper_ms"]:
            targets_met["propagation_le_10ms"] = prop["upper_ms"]["max"] <= 10.0
            targets_met["propagation_median_le_10ms"] = prop["upper_ms"]["median"] <= 10.0

        lines = []
        when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        lines.append(f"kup-gateway benchmark, {when}, {os.cpu_count()} CPUs, 1-min load average "
                     f"{self.load_start:.2f} at start, {os.getloadavg()[0]:.2f} at end")
        lines.append(f"wrk -t{a.wrk_threads} -c{a.connections} -d{a.duration}s --latency after a {a.warmup} s warm-up; "
                     f"{a.rounds} round(s) over the targets, one proxy at a time; medians of the rounds.")
        lines.append(f"wrk ({a.wrk_threads} thread(s)), the proxy under test ({a.workers} worker(s)/thread(s): "
                     f"kup-gateway --workers {a.workers}, nginx worker_processes {a.workers}, HAProxy nbthread "
                     f"{a.workers}) and the Pods' nginx ({a.workers} worker(s)) share "
                     f"the machine's {os.cpu_count()} cores; nothing is pinned. Loopback only.")
        lines.append("CPU us/req: user+system CPU time of the process under test (for 'Pods direct': the Pods' "
                     "nginx) during the measurement, per request; less sensitive to machine load than req/s.")
        lines.append("")
        lines.append(f"{'target':<22}{'req/s':>11}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}{'CPU us/req':>12}"
                     f"   req/s over the rounds")
        for t in targets:
            if t in summary:
                s = summary[t]
                spread = " ".join(f"{r['rps']:,.0f}" for r in s["rounds"])
                sc = f"   syscalls/req {s['syscalls_per_req']:.2f}" if s["syscalls_per_req"] is not None else ""
                lines.append(f"{LABELS[t]:<22}{s['rps']:>11,.0f}{s['p50_ms']:>10.3f}{s['p99_ms']:>10.3f}{s['errors']:>8}"
                             f"{s['cpu_us_per_req']:>12.1f}   {spread}{sc}")
            else:
                lines.append(f"{LABELS[t]}: not available ({avail.get(t, '')})")
        lines.append("")
        for k, v in ratios.items():
            p99 = f"{v['p99']:.2f}x" if v["p99"] is not None else "n/a"
            cpu = f"{v['cpu_per_req']:.2f}x" if v["cpu_per_req"] is not None else "n/a"
            lines.append(f"{k:<24} req/s {v['rps']:.2f}x   p99 {p99}   CPU per request {cpu}")
        def ok(b):
            return "met" if b else "NOT met"
        if "rps_ge_nginx" in targets_met:
            lines.append(f"target req/s >= 1.0x nginx: {ok(targets_met['rps_ge_nginx'])}; "
                         f"p99 <= nginx: {ok(targets_met['p99_le_nginx'])}")
        if "cpu_per_req_le_0.9_nginx" in targets_met:
            lines.append(f"target ({a.workers} workers) CPU per request <= 0.9x nginx: "
                         f"{ok(targets_met['cpu_per_req_le_0.9_nginx'])}")
        if prop is not None:
            lines.append("")
            lines.append(f"Propagation, {prop['flips']} EndpointSlice changes (Pod A <-> Pod B), "
                         f"{prop['poll_rate_per_s']:,.0f} polls/s through the gateway:")
            for key, what in (("upper_ms", "admin request sent -> first response from the new Pod (upper bound)"),
                              ("after_ack_ms", "admin answer received -> first response from the new Pod"),
                              ("lower_ms", "lower bound (last old-Pod request sent after the admin answer)"),
                              ("watch_ms", "admin request sent -> event on the harness's own watch (simulator share)"),
                              ("gateway_ms", "event on the harness's watch -> first response from the new Pod (gateway share)"),
                              ("admin_ms", "admin request sent -> admin answer received"),
                              ("max_poll_gap_ms", "longest gap in the polling during a change (resolution)")):
                st = prop[key]
                if st:
                    lines.append(f"  {what}: median {st['median']:.2f} ms, max {st['max']:.2f} ms")
            lines.append(f"  timeouts {prop['timeouts']}, failed requests {prop['errors']}, "
                         f"old-Pod answers after the switch {prop['stragglers']}")
            if prop["watch_error"]:
                lines.append(f"  harness watch failed: {prop['watch_error']}")
            if prop["upper_ms"]:
                lines.append(f"  target <= 10 ms (upper bound): median {ok(targets_met['propagation_median_le_10ms'])}, "
                             f"max {ok(targets_met['propagation_le_10ms'])}")
        for n in self.notes:
            lines.append(f"note: {n}")
        text = "\n".join(lines)
        print("\n" + text, flush=True)

        out = {"date": when, "host": {"cpus": os.cpu_count(), "machine": platform.machine(),
                                      "kernel": platform.release(), "load_start": self.load_start,
                                      "load_end": os.getloadavg()},
               "versions": versions(), "settings": {k: getattr(a, k) for k in
                                                      ("duration", "warmup", "connections", "rounds", "flips", "poll_interval_ms", "quick",
                                                       "syscalls", "workers", "wrk_threads")},
               "gateway_binary": self.gateway, "not_available": avail, "results": summary, "ratios": ratios,
               "targets_met": targets_met, "propagation": prop, "notes": self.notes, "report": text}
        os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
        self.log(f"\nJSON: {a.json}")

        failed = [t for t, s in summary.items() if s["errors"] or s["rps"] <= 0]
        if failed:
            self.log(f"FAILED: errors or no requests for {', '.join(failed)}")
            return 1
        if prop is not None and (prop["timeouts"] or not prop["upper_ms"]):
            self.log("FAILED: the gateway did not follow some EndpointSlice changes")
            return 1
        if "kup-gateway" in avail and not a.no_gateway_required:
            self.log("kup-gateway: not available (use --no-gateway-required to accept)")
            return 1
        return 0

    def cleanup(self):
        self.group.stop_all()
        if self.sim is not None:
            self.sim.stop()
        if self.a.keep_workdir:
            self.log(f"work directory kept: {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


def versions():
    def first_line(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return None
    return {"nginx": first_line(["nginx", "-v"]), "haproxy": first_line(["haproxy", "-v"]),
            "wrk": first_line(["wrk", "--version"]), "python": sys.version.split()[0]}


def with_bench(args, body):
    """Runs body(bench) on a fresh Bench and returns its exit status (1 on a BenchError). Signals
    end the run; every process it started is stopped by PID at the end, also on errors."""
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    bench = Bench(args)
    try:
        return body(bench)
    except BenchError as e:
        print(f"ERROR: {e}", flush=True)
        return 1
    finally:
        bench.cleanup()


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            print(f"SKIP: {tool} is not installed (scripts/install-deps installs it)", flush=True)
            return 77
    return with_bench(args, Bench.run)


if __name__ == "__main__":
    sys.exit(main())
