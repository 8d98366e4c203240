#!/usr/bin/env python3
"""Command-line admin client for a running kubesim (for shell scripts, the demo and C++ tests).

    kubesimctl.py --state-dir DIR GET /state
    kubesimctl.py --state-dir DIR POST /faults '{"code": 429, "retry_after": 2}'
    kubesimctl.py --state-dir DIR POST /objects @slice.json
    kubesimctl.py --state-dir DIR api GET /apis/discovery.k8s.io/v1/endpointslices [--user admin]

Prints the JSON answer on stdout. Exit status: 0 for 2xx, 1 otherwise (the body is still printed).
"""

import argparse
import http.client
import json
import os
import ssl
import sys


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--state-dir", help="kubesim state dir (reads DIR/kubesim.json)")
    ap.add_argument("--ready-file", help="path of the ready file instead of --state-dir")
    ap.add_argument("--user", default="admin", help="user whose token 'api' requests use")
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("args", nargs="+", help="[api] METHOD PATH [JSON | @file]")
    a = ap.parse_args(argv)
    ready = a.ready_file or (os.path.join(a.state_dir, "kubesim.json") if a.state_dir else None)
    if not ready:
        ap.error("give --state-dir or --ready-file")
    with open(ready) as f:
        info = json.load(f)
    args = list(a.args)
    api = args[0] == "api"
    if api:
        args = args[1:]
    if len(args) < 2:
        ap.error("need METHOD PATH")
    method, path = args[0].upper(), args[1]
    body = None
    if len(args) > 2:
        text = args[2]
        if text.startswith("@"):
            with open(text[1:]) as f:
                text = f.read()
        body = text.encode()
    if api:
        token = info["users"][a.user]["token"]
    else:
        token = info["admin_token"]
        if not path.startswith("/kubesim/admin"):
            path = "/kubesim/admin" + path
    ctx = ssl.create_default_context(cafile=info["ca_file"])
    conn = http.client.HTTPSConnection(info["host"], info["port"], context=ctx, timeout=a.timeout)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json", "User-Agent": "kubesimctl/1.0"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    out = resp.read()
    sys.stdout.write(out.decode(errors="replace"))
    if not out.endswith(b"\n"):
        sys.stdout.write("\n")
    conn.close()
    return 0 if 200 <= resp.status < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
