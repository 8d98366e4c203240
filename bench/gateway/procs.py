"""Processes and ports for the gateway benchmark: start, wait, stop by PID (children included).

Only loopback addresses are ever bound or connected to. Standard library only.
"""

import os
import random
import signal
import socket
import subprocess
import time


class BenchError(Exception):
    """A failure of the harness or of a measured process (the message names it)."""


def check_loopback(addr):
    if not (addr.startswith("127.") or addr == "::1"):
        raise BenchError(f"refusing non-loopback address {addr}")
    return addr


def free_port(addrs, low=20000, high=60000, tries=200):
    """A TCP port that can be bound right now on every address of addrs (all loopback)."""
    for a in addrs:
        check_loopback(a)
    rnd = random.Random(os.getpid() ^ int(time.time() * 1000))
    for _ in range(tries):
        port = rnd.randint(low, high)
        socks = []
        try:
            for a in addrs:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind((a, port))
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise BenchError(f"no free port on {addrs} after {tries} tries")


def _start_time(pid):
    """Kernel start time of pid (field 22 of /proc/PID/stat), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(")") + 2:].split()[19]


def cpu_times(pid):
    """(user, system) CPU time of pid and its descendants (e.g. nginx master and worker), in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    user = system = 0
    for p in [pid] + _descendants(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rindex(")") + 2:].split()
        user += int(fields[11])  # utime (field 14 of stat)
        system += int(fields[12])  # stime (field 15)
    return user / tick, system / tick


def cpu_seconds(pid):
    """User + system CPU time of pid and its descendants, in seconds."""
    return sum(cpu_times(pid))


def tcp_out_segments():
    """Machine-wide TCP segments sent so far (Tcp OutSegs of /proc/net/snmp): every process's,
    loopback included. A delta over a run, divided by its requests, tells how many packets a
    request costs the kernel, whichever process sent them."""
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Tcp:")]
    return int(rows[1][rows[0].index("OutSegs")])


def process_tree(pid):
    """pid and its descendants."""
    return [pid] + _descendants(pid)


def _children(pid):
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def _descendants(pid):
    seen = []
    todo = [pid]
    while todo:
        for c in _children(todo.pop()):
            if c not in seen:
                seen.append(c)
                todo.append(c)
    return seen


class Proc:
    def __init__(self, name, popen, log_path):
        self.name = name
        self.popen = popen
        self.pid = popen.pid
        self.log_path = log_path
        self.start_time = _start_time(self.pid)

    def alive(self):
        return self.popen.poll() is None

    def log_tail(self, n=2000):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
            return data[-n:].decode(errors="replace")
        except OSError:
            return ""


class ProcessGroup:
    """Every process the harness starts; stop() and stop_all() end them by PID."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.procs = []

    def start(self, name, cmd, cwd=None, env=None):
        log_path = os.path.join(self.workdir, f"{name}.log")
        log = open(log_path, "wb")
        try:
            popen = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     cwd=cwd or self.workdir, env=env)
        finally:
            log.close()
        p = Proc(name, popen, log_path)
        self.procs.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, grace=5.0):
        if p not in self.procs:
            return
        # Remember children (nginx workers) with their start times, so that a child left behind
        # is killed by PID and a reused PID is never touched.
        kids = [(c, _start_time(c)) for c in _descendants(p.pid)]
        if p.alive():
            try:
                os.kill(p.pid, sig)
                p.popen.wait(grace)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.popen.wait(grace)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        for c, st in kids:
            while st is not None and _start_time(c) == st and time.monotonic() < deadline:
                time.sleep(0.02)
            if st is not None and _start_time(c) == st:
                try:
                    os.kill(c, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.procs.remove(p)

    def stop_all(self):
        for p in reversed(list(self.procs)):
            try:
                self.stop(p)
            except Exception as e:  # keep stopping the others
                print(f"warning: stopping {p.name} (pid {p.pid}): {e}", flush=True)


def http_get(addr, port, path="/", timeout=1.0, host="bench.local"):
    """One HTTP/1.1 GET on a fresh connection; returns (status, body bytes). Raises OSError."""
    check_loopback(addr)
    with socket.create_connection((addr, port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    if not lines or not lines[0].startswith(b"HTTP/1."):
        raise OSError(f"bad HTTP response from {addr}:{port}: {data[:80]!r}")
    status = int(lines[0].split()[1])
    if any(l.lower().startswith(b"transfer-encoding:") and b"chunked" in l.lower() for l in lines[1:]):
        body = _dechunk(body)
    return status, body


def _dechunk(body):
    out = b""
    while body:
        line, _, rest = body.partition(b"\r\n")
        size = int(line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2:]
    return out


def wait_http(proc, addr, port, want_prefix=b"pod-", timeout=15.0, what=None):
    """Waits until addr:port answers 200 with a body starting with want_prefix; returns the body."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise BenchError(f"{what or proc.name} exited (code {proc.popen.returncode}) before serving:\n"
                             f"{proc.log_tail()}")
        try:
            status, body = http_get(addr, port)
            if status == 200 and body.startswith(want_prefix):
                return body
            last = f"status {status} body {body[:60]!r}"
        except OSError as e:
            last = str(e)
        time.sleep(0.05)
    tail = proc.log_tail() if proc is not None else ""
    raise BenchError(f"{what or (proc.name if proc else addr)} at {addr}:{port} not serving after {timeout}s "
                     f"(last: {last})\n{tail}")
