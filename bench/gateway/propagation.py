"""Propagation: time from an EndpointSlice change at the API server to the gateway routing to it.

One asyncio loop on one thread runs three things side by side, all over loopback:
  - a poller: one keep-alive connection to the gateway, sending GET / (one request in flight, a pause
    of --poll-interval-ms between a response and the next request) and recording,
    per request, the time it was sent, the time its response was complete, and which Pod answered;
  - a watch of the same EndpointSlices on kubesim (the harness's own watcher), recording when each
    event arrived;
  - the change itself: the harness opens a TLS connection to kubesim's admin API (handshake done
    first), notes t0, sends one apply of the slice (Pod A replaced by Pod B, or back), and notes t1
    when the response (the committed object) is complete. kubesim commits between t0 and t1.

Per flip it reports:
  upper      = first response from the new Pod complete - t0  (an upper bound of the propagation:
               the commit is after t0, and routing had changed before that response ended)
  after_ack  = first response from the new Pod complete - t1  (may be < 0: the gateway can switch
               before kubesim's admin answer reaches the harness)
  lower      = max(0, send time of the last request still answered by the old Pod - t1)
  watch      = arrival of the event on the harness's own watch - t0 (the simulator's share:
               admin request parsing, commit, event encoding and sending, in Python)
  gateway    = first response from the new Pod complete - arrival of the event on the harness's
               own watch (the gateway's share, estimated: both are watchers of the same server and
               get the event at about the same time; < 0 when the gateway got it first)
  max_poll_gap = longest time between t0 and the detection with no poll request being sent or
               answered (a large value means the harness was not running, e.g. on a loaded machine)
  stragglers = responses from the old Pod to requests sent after the first new-Pod request (0 expected)
  errors     = failed requests from t0 to the end of the flip
Standard library only.
"""

import asyncio
import datetime
import json
import ssl
import statistics
import time
import urllib.parse

now = time.perf_counter


class Sample:
    __slots__ = ("sent", "done", "pod", "error")

    def __init__(self, sent, done, pod, error=None):
        self.sent, self.done, self.pod, self.error = sent, done, pod, error


async def _read_response(reader):
    """Reads one HTTP/1.1 response; returns (status, headers dict lowercased, body, must_close)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head[:-4].split(b"\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        hdrs[k.strip().lower().decode()] = v.strip().decode()
    must_close = hdrs.get("connection", "").lower() == "close"
    if "chunked" in hdrs.get("transfer-encoding", "").lower():
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                break
            body += (await reader.readexactly(size + 2))[:-2]
    elif "content-length" in hdrs:
        body = await reader.readexactly(int(hdrs["content-length"]))
    else:
        body = await reader.read()
        must_close = True
    return status, hdrs, body, must_close


class Poller:
    def __init__(self, addr, port, interval):
        self.addr, self.port, self.interval = addr, port, interval
        self.samples = []
        self.changed = asyncio.Event()
        self.stopping = False
        self.reconnects = 0

    async def run(self):
        req = b"GET / HTTP/1.1\r\nHost: bench.local\r\n\r\n"
        writer = None
        while not self.stopping:
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(self.addr, self.port)
                    self.reconnects += 1
                sent = now()
                writer.write(req)
                status, _, body, must_close = await _read_response(reader)
                done = now()
                if status == 200:
                    self.samples.append(Sample(sent, done, body.split(b" ")[0].decode()))
                else:
                    self.samples.append(Sample(sent, done, None, f"status {status}"))
                if must_close:
                    writer.close()
                    writer = None
                if self.interval > 0:
                    await asyncio.sleep(self.interval)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
                self.samples.append(Sample(now(), now(), None, repr(e)))
                if writer is not None:
                    writer.close()
                writer = None
                await asyncio.sleep(0.001)
            self.changed.set()
        if writer is not None:
            writer.close()


class Watcher:
    """The harness's own watch of the slices of one Service on kubesim: arrival time per resourceVersion."""

    def __init__(self, sim, service, rv):
        self.sim, self.service, self.rv = sim, service, rv
        self.arrivals = {}
        self.error = None

    async def run(self, ctx):
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.sim.port, ssl=ctx,
                                                           server_hostname="127.0.0.1")
            q = urllib.parse.urlencode({"watch": "true", "resourceVersion": self.rv,
                                        "labelSelector": f"kubernetes.io/service-name={self.service}"})
            writer.write((f"GET /apis/discovery.k8s.io/v1/namespaces/default/endpointslices?{q} HTTP/1.1\r\n"
                          f"Host: 127.0.0.1:{self.sim.port}\r\nAuthorization: Bearer {self.sim.token()}\r\n"
                          f"Accept: application/json\r\n\r\n").encode())
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise OSError(f"watch refused: {head[:100]!r}")
            pending = b""
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    return
                pending += (await reader.readexactly(size + 2))[:-2]
                t = now()
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    ev = json.loads(line)
                    rv = ev.get("object", {}).get("metadata", {}).get("resourceVersion")
                    if rv is not None:
                        self.arrivals.setdefault(rv, t)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # reported; the flips still measure the gateway
            self.error = repr(e)


async def _apply(sim, ctx, obj):
    """One admin apply on a fresh TLS connection; returns (t0, t1, committed object)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port, ssl=ctx, server_hostname="127.0.0.1")
    try:
        body = json.dumps({"op": "apply", "object": obj}).encode()
        msg = (f"POST /kubesim/admin/objects HTTP/1.1\r\nHost: 127.0.0.1:{sim.port}\r\n"
               f"Authorization: Bearer {sim.info['admin_token']}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body
        t0 = now()
        writer.write(msg)
        status, _, out, _ = await _read_response(reader)
        t1 = now()
        if status != 200:
            raise OSError(f"kubesim admin apply answered {status}: {out[:300]!r}")
        return t0, t1, json.loads(out)
    finally:
        writer.close()


def _trigger_time():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def measure(sim, gw_port, slice_for, pods, flips, initial_rv, poll_interval, flip_timeout=2.0, settle=0.05):
    """slice_for(pod_index, trigger_time) -> EndpointSlice object listing only that Pod;
    pods = (name_a, name_b); the slice lists pods[0] when this is called and the gateway routes there."""
    ctx = ssl.create_default_context(cafile=sim.ca_file)
    poller = Poller("127.0.0.1", gw_port, poll_interval)
    watcher = Watcher(sim, "flip", initial_rv)
    ptask = asyncio.create_task(poller.run())
    wtask = asyncio.create_task(watcher.run(ctx))
    results = []
    try:
        # the poller must be seeing Pod A only before the first flip
        start = now()
        while not (poller.samples and poller.samples[-1].pod == pods[0]):
            if now() - start > 5:
                raise OSError(f"gateway does not route to {pods[0]} before the first flip")
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        cur = 0
        for i in range(flips):
            new = 1 - cur
            old_name, new_name = pods[cur], pods[new]
            obj = slice_for(new, _trigger_time())
            scan = scan_start = len(poller.samples)
            t0, t1, committed = await _apply(sim, ctx, obj)
            rv = committed["metadata"]["resourceVersion"]
            first_new = None
            deadline = t0 + flip_timeout
            while first_new is None and now() < deadline:
                # responses completed before t0 cannot show the change
                while scan < len(poller.samples):
                    s = poller.samples[scan]
                    scan += 1
                    if s.pod == new_name and s.done >= t0:
                        first_new = s
                        break
                if first_new is None:
                    poller.changed.clear()
                    try:
                        await asyncio.wait_for(poller.changed.wait(), max(0.001, deadline - now()))
                    except asyncio.TimeoutError:
                        pass
            await asyncio.sleep(settle)
            window = [s for s in poller.samples[scan_start:] if s.done >= t0]
            r = {"flip": i + 1, "from": old_name, "to": new_name, "resourceVersion": rv,
                 "admin_ms": (t1 - t0) * 1e3,
                 "errors": sum(1 for s in window if s.error),
                 "error_examples": [s.error for s in window if s.error][:3]}
            if first_new is None:
                r["timeout"] = True
            else:
                olds = [s for s in window if s.pod == old_name and s.sent < first_new.sent]
                r["upper_ms"] = (first_new.done - t0) * 1e3
                r["after_ack_ms"] = (first_new.done - t1) * 1e3
                r["lower_ms"] = max(0.0, ((olds[-1].sent - t1) * 1e3) if olds else 0.0)
                r["stragglers"] = sum(1 for s in window if s.pod == old_name and s.sent > first_new.sent)
                # longest stretch without any poll in flight between t0 and the detection: a large
                # value means the delay was the machine not running the poller, not routing
                times = [t0] + [x for s in window if s.done <= first_new.done for x in (s.sent, s.done)]
                times.sort()
                r["max_poll_gap_ms"] = max((b - a_) * 1e3 for a_, b in zip(times, times[1:])) if len(times) > 1 else 0.0
            if rv in watcher.arrivals:
                r["watch_ms"] = (watcher.arrivals[rv] - t0) * 1e3
                if first_new is not None:
                    r["gateway_ms"] = (first_new.done - watcher.arrivals[rv]) * 1e3
            results.append(r)
            cur = new
            await asyncio.sleep(settle)
    finally:
        poller.stopping = True
        wtask.cancel()
        try:
            await asyncio.wait_for(ptask, 2)
        except (asyncio.TimeoutError, Exception):
            ptask.cancel()
        try:
            await wtask
        except (asyncio.CancelledError, Exception):
            pass
    return summarize(results, poller, watcher)


def _stats(vals):
    if not vals:
        return None
    return {"median": statistics.median(vals), "max": max(vals), "min": min(vals)}


def summarize(results, poller, watcher):
    ok = [r for r in results if "upper_ms" in r]
    reqs = len(poller.samples)
    span = (poller.samples[-1].done - poller.samples[0].sent) if reqs > 1 else 0
    return {
        "flips": len(results),
        "timeouts": sum(1 for r in results if r.get("timeout")),
        "upper_ms": _stats([r["upper_ms"] for r in ok]),
        "after_ack_ms": _stats([r["after_ack_ms"] for r in ok]),
        "lower_ms": _stats([r["lower_ms"] for r in ok]),
        "watch_ms": _stats([r["watch_ms"] for r in results if "watch_ms" in r]),
        "gateway_ms": _stats([r["gateway_ms"] for r in results if "gateway_ms" in r]),
        "admin_ms": _stats([r["admin_ms"] for r in results]),
        "max_poll_gap_ms": _stats([r["max_poll_gap_ms"] for r in ok]),
        "errors": sum(r["errors"] for r in results),
        "stragglers": sum(r.get("stragglers", 0) for r in ok),
        "poll_requests": reqs,
        "poll_rate_per_s": reqs / span if span > 0 else 0,
        "poll_connections": poller.reconnects,
        "watch_error": watcher.error,
        "per_flip": results,
    }
