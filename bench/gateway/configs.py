"""Configuration files for the processes of the gateway benchmark (all on loopback)."""

import os

# The simulated Pods: (name, version, address). The first three are the measured upstream;
# the last two are Pod A and Pod B of the propagation measurement.
PODS = [
    ("pod-1", "v1", "127.0.1.11"),
    ("pod-2", "v2", "127.0.1.12"),
    ("pod-3", "v3", "127.0.1.13"),
]
FLIP_PODS = [
    ("pod-a", "v1", "127.0.1.14"),
    ("pod-b", "v2", "127.0.1.15"),
]

# Requests per client/upstream connection are not limited (nginx closes a keep-alive connection
# after 1000 requests by default; HAProxy and kup-gateway do not), so that no proxy pays for
# reconnects the others do not.
KEEPALIVE_REQUESTS = 1000000


def _write(d, name, text):
    """Writes text to the file `name` in d; returns its path."""
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def _nginx_common(d, tag, workers=1):
    tmp = os.path.join(d, f"{tag}-tmp")
    os.makedirs(tmp, exist_ok=True)
    return (f"worker_processes {workers};\n"
            f"error_log {d}/{tag}-error.log warn;\n"
            f"pid {d}/{tag}.pid;\n"
            f"events {{ worker_connections 4096; }}\n")


def _nginx_http_common(d, tag):
    tmp = os.path.join(d, f"{tag}-tmp")
    return (f"  access_log off;\n"
            f"  client_body_temp_path {tmp}/body;\n  proxy_temp_path {tmp}/proxy;\n"
            f"  fastcgi_temp_path {tmp}/fastcgi;\n  uwsgi_temp_path {tmp}/uwsgi;\n  scgi_temp_path {tmp}/scgi;\n"
            f"  keepalive_requests {KEEPALIVE_REQUESTS};\n")


def pods_nginx(d, port, workers=1):
    """One nginx process (`workers` workers), one server block per Pod answering 'pod-N vN\\n'."""
    servers = ""
    for name, version, addr in PODS + FLIP_PODS:
        servers += (f"  server {{\n    listen {addr}:{port};\n"
                    f"    location / {{ default_type text/plain; return 200 \"{name} {version}\\n\"; }}\n  }}\n")
    text = _nginx_common(d, "pods", workers) + "http {\n" + _nginx_http_common(d, "pods") + servers + "}\n"
    return _write(d, "pods-nginx.conf", text)


def proxy_nginx(d, listen_port, pod_port, workers=1):
    """nginx as a reverse proxy: `workers` worker processes, upstream keepalive to the three Pods."""
    servers = "".join(f"    server {addr}:{pod_port};\n" for _, _, addr in PODS)
    text = (_nginx_common(d, "nginx-proxy", workers) + "http {\n" + _nginx_http_common(d, "nginx-proxy") +
            "  upstream pods {\n" + servers +
            f"    keepalive 64;\n    keepalive_requests {KEEPALIVE_REQUESTS};\n  }}\n"
            f"  server {{\n    listen 127.0.0.1:{listen_port};\n"
            f"    location / {{\n      proxy_pass http://pods;\n      proxy_http_version 1.1;\n"
            f"      proxy_set_header Connection \"\";\n    }}\n  }}\n}}\n")
    return _write(d, "nginx-proxy.conf", text)


def proxy_haproxy(d, listen_port, pod_port, threads=1):
    """HAProxy: `threads` threads, round robin over the three Pods, server-side connection reuse."""
    servers = "".join(f"  server {name} {addr}:{pod_port}\n" for name, _, addr in PODS)
    text = (f"global\n  nbthread {threads}\n  maxconn 4096\n\n"
            "defaults\n  mode http\n  option http-keep-alive\n  http-reuse always\n"
            "  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\n"
            f"frontend fe\n  bind 127.0.0.1:{listen_port}\n  default_backend pods\n\n"
            "backend pods\n  balance roundrobin\n" + servers)
    return _write(d, "haproxy.cfg", text)


def proxy_haproxy_tcp(d, listen_port, pod_port, threads=1):
    """HAProxy in TCP mode (layer 4): each client connection is relayed to one Pod, round robin,
    with no HTTP processing: a real proxy's cost of moving the same bytes (the floor's peer)."""
    servers = "".join(f"  server {name} {addr}:{pod_port}\n" for name, _, addr in PODS)
    text = (f"global\n  nbthread {threads}\n  maxconn 4096\n\n"
            "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\n"
            f"frontend fe\n  bind 127.0.0.1:{listen_port}\n  default_backend pods\n\n"
            "backend pods\n  balance roundrobin\n" + servers)
    return _write(d, "haproxy-tcp.cfg", text)


def gateway_yaml(d, name, listen_port, admin_port, kubeconfig, service):
    """kup-gateway config: one cluster (kubesim), one HTTP upstream of one Service, one route."""
    text = (f"listeners: [{{address: 127.0.0.1, port: {listen_port}}}]\n"
            f"admin: {{address: 127.0.0.1, port: {admin_port}}}\n"
            f"clusters: [{{name: sim, kubeconfig: \"{kubeconfig}\"}}]\n"
            f"upstreams:\n"
            f"  - name: {service}\n"
            f"    backend: HTTP\n"
            f"    services: [{{cluster: sim, namespace: default, service: {service}, port: http, weight: 1}}]\n"
            f"routes: [{{host: \"*\", path_prefix: /, upstream: {service}}}]\n")
    return _write(d, f"{name}.yaml", text)


WRK_LUA = r"""
-- Prints wrk's summary as one JSON line (latencies in microseconds).
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'KUPWRK {"requests": %d, "duration_us": %d, "bytes": %d, "err_connect": %d, "err_read": %d, ' ..
    '"err_write": %d, "err_status": %d, "err_timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


def wrk_script(d):
    return _write(d, "report.lua", WRK_LUA)
