#!/usr/bin/env python3
"""Regenerates the seed corpora in tests/fuzz/fixtures/seeds from real wire samples and fixtures.

Sources (data only; no address in them is ever connected to):
  - ../shared/captures (a real kube-apiserver's responses, copied here as tests/fuzz/fixtures);
  - tests/kube/fixtures (watch streams and objects);
  - the kubeconfig, ExecCredential and gateway YAML examples of the unit tests.
Each fuzz target's first input byte holds its flags (see the target's header comment); the
seeds use printable flag bytes ('0'..'9', 'A'..) so that the files stay readable.
Usage: tests/fuzz/make_seeds.py   (rewrites tests/fuzz/fixtures/seeds/*)
"""
import pathlib
import shutil

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CAPTURES = HERE / "fixtures"
FIXTURES = ROOT / "tests" / "kube" / "fixtures"
SEEDS = HERE / "fixtures" / "seeds"


def chunked(body: bytes, pieces=None) -> bytes:
    """A 200 response carrying `body` as chunks (one per line, or the given pieces)."""
    parts = pieces if pieces is not None else [l + b"\n" for l in body.split(b"\n") if l.strip()]
    out = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    for p in parts:
        out += b"%x\r\n" % len(p) + p + b"\r\n"
    return out + b"0\r\n\r\n"


def write(target: str, name: str, data: bytes) -> None:
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def main() -> None:
    if SEEDS.exists():
        shutil.rmtree(SEEDS)
    http = sorted(p for p in CAPTURES.glob("*.http"))
    raw_watches = [p for p in http if p.name.endswith(".http1-raw.http")]

    # watch_stream: byte 0 = mode ('0' LIST then WATCH, '1' watch-list); the rest is the WATCH response.
    for p in raw_watches:
        write("watch_stream", p.stem, b"0" + p.read_bytes())
    write("watch_stream", "watch-list-initial-events", b"1" + raw_watches[0].read_bytes())
    for p in sorted(FIXTURES.glob("watch-*.jsonl")):
        body = p.read_bytes()
        write("watch_stream", "fixture-" + p.stem, b"0" + chunked(body))
        # The same events split at arbitrary points: chunk != event.
        write("watch_stream", "fixture-split-" + p.stem, b"0" + chunked(body, [body[i:i + 97] for i in range(0, len(body), 97)]))
    for p in http:
        if "401" in p.name or "403" in p.name or "410" in p.name or "422" in p.name:
            write("watch_stream", "status-" + p.stem, b"0" + p.read_bytes())

    # http_response: byte 0 = flags (1 HEAD, 2 pause, 4 small limits, 8 second request).
    for p in http:
        write("http_response", p.stem, b"0" + p.read_bytes())
    write("http_response", "paused-chunked", b"2" + raw_watches[0].read_bytes())
    write("http_response", "small-limits", b"4" + http[0].read_bytes())
    write("http_response", "head-request", b"1" + (CAPTURES / "version.http").read_bytes())
    two = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 204 No Content\r\n\r\n"
    write("http_response", "keep-alive-two", b"8" + two)
    write("http_response", "continue-then-200", b"0" + b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc")
    write("http_response", "close-delimited", b"0" + b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
    write("http_response", "short-content-length", b"0" + b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    write("http_response", "cl-and-te", b"0" + b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    write("http_response", "chunk-extensions-trailers", b"0" + b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\n")

    # kubeconfig: the file itself.
    write("kubeconfig", "basic", (HERE / "seed-sources" / "kubeconfig-basic.yaml").read_bytes())
    write("kubeconfig", "exec", (HERE / "seed-sources" / "kubeconfig-exec.yaml").read_bytes())

    # exec_credential: byte 0 even = v1, odd = v1beta1.
    v1 = b'{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","status":{"token":"t0k","expirationTimestamp":"2099-01-01T00:00:00Z"}}'
    beta = b'{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","status":{"clientCertificateData":"-----BEGIN CERTIFICATE-----\\nMII\\n-----END CERTIFICATE-----\\n","clientKeyData":"-----BEGIN PRIVATE KEY-----\\nMII\\n-----END PRIVATE KEY-----\\n","expirationTimestamp":"2001-01-01T00:00:00.5+02:00"}}'
    write("exec_credential", "token-v1", b"0" + v1)
    write("exec_credential", "cert-v1beta1", b"1" + beta)
    write("exec_credential", "wrong-version", b"0" + beta)

    # gateway_config: the YAML file.
    for p in sorted((HERE / "seed-sources").glob("gateway-*.yaml")):
        write("gateway_config", p.stem, p.read_bytes())

    # gateway_request: byte 0 = number of writes - 1 (mod 4); the rest is what the client sends.
    reqs = {
        "get": b"GET /v1/users?q=1 HTTP/1.1\r\nHost: api.example.com\r\nX-User: alice\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\n\r\n",
        "post-length": b"POST / HTTP/1.1\r\nHost: web\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
        "post-chunked": b"POST /admin/x HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "pipelined": b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: b\r\nX-Forwarded-For: 127.0.0.9\r\n\r\n",
        "http10": b"GET / HTTP/1.0\r\n\r\n",
        "smuggle-cl-te": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\n\r\n",
        "no-route": b"GET nohost HTTP/1.1\r\nHost: x\r\n\r\n",
    }
    for i, (name, data) in enumerate(sorted(reqs.items())):
        write("gateway_request", name, bytes([ord("0") + i % 4]) + data)


if __name__ == "__main__":
    main()
