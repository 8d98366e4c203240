#!/usr/bin/env python3
"""The consumer test: install kupstream into temporary prefixes and use it as a stranger would.

For each given build directory (a static and a shared build of kupstream):
  1. `cmake --install BUILD --prefix TMP/<kind>`;
  2. build examples/embed/embed_upstream.cpp against that prefix twice:
     - as the separate CMake project tests/consumer (find_package(kupstream CONFIG REQUIRED));
     - with the compiler alone and `pkg-config --cflags --libs kupstream` (plus --static for a
       static kupstream, as pkg-config users do);
  3. run every binary against kubesim and one real Pod (tests/support/pods.py) and check that it
     printed the Pod's answer and exited 0 (its loop closed).
Usage: run_consumer_test.py [--static-build DIR] [--shared-build DIR]
Standard library only; kubesim and the Pods are stopped by PID, also on failure.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "kubesim"))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))

from kubesim_client import KubeSim, service, endpointslice  # noqa: E402
from pods import PodsProcess  # noqa: E402

EXAMPLE = os.path.join(ROOT, "examples", "embed", "embed_upstream.cpp")


def run(cmd, env=None, cwd=None):
    print("+ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    subprocess.run(cmd, check=True, env=env, cwd=cwd)


def build_consumers(build_dir, kind, work):
    """Installs `build_dir` and returns the consumer binaries built against it."""
    prefix = os.path.join(work, kind)
    run(["cmake", "--install", build_dir, "--prefix", prefix])
    for must in ("lib/cmake/kupstream/kupstreamConfig.cmake", "lib/cmake/kupstream/kupstreamConfigVersion.cmake",
                 "lib/pkgconfig/kupstream.pc", "include/kupstream/kupstream.h", "include/kupstream/version.h"):
        if not os.path.exists(os.path.join(prefix, must)):
            raise SystemExit(f"FAIL: {kind} install lacks {must}")
    if os.path.exists(os.path.join(prefix, "bin")):
        raise SystemExit(f"FAIL: {kind} install put programs in bin/ (examples are an optional component)")

    cmake_build = os.path.join(work, f"consumer-{kind}-cmake")
    run(["cmake", "-S", HERE, "-B", cmake_build, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
         f"-DCMAKE_PREFIX_PATH={prefix}"])
    run(["cmake", "--build", cmake_build])

    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(prefix, "lib", "pkgconfig"))
    pc_args = ["pkg-config", "--cflags", "--libs"] + (["--static"] if kind == "static" else []) + ["kupstream"]
    flags = subprocess.run(pc_args, env=env, check=True, capture_output=True, text=True).stdout.split()
    print(f"+ {' '.join(pc_args)} -> {' '.join(flags)}", flush=True)
    pc_binary = os.path.join(work, f"kup-embed-{kind}-pkgconfig")
    rpath = [f"-Wl,-rpath,{os.path.join(prefix, 'lib')}"] if kind == "shared" else []
    run(["c++", "-std=c++20", "-O1", EXAMPLE, "-o", pc_binary] + flags + rpath)
    return [os.path.join(cmake_build, "kup-embed"), pc_binary]


def check_linkage(binary, kind):
    """A shared consumer must load libkupstream.so from the prefix; a static one must not."""
    out = subprocess.run(["ldd", binary], check=True, capture_output=True, text=True).stdout
    loads = "libkupstream.so" in out
    if loads != (kind == "shared"):
        raise SystemExit(f"FAIL: {binary} ({kind}) ldd shows libkupstream.so={loads}:\n{out}")


def check_getting_started_page():
    """docs/getting-started.md must show examples/embed/embed_upstream.cpp as it is."""
    with open(EXAMPLE) as f:
        code = f.read()
    with open(os.path.join(ROOT, "docs", "getting-started.md")) as f:
        page = f.read()
    if "```cpp\n" + code + "```" not in page:
        raise SystemExit("FAIL: docs/getting-started.md does not show examples/embed/embed_upstream.cpp as it is")


def main():
    check_getting_started_page()
    ap = argparse.ArgumentParser()
    ap.add_argument("--static-build")
    ap.add_argument("--shared-build")
    args = ap.parse_args()
    builds = [(d, k) for d, k in ((args.static_build, "static"), (args.shared_build, "shared")) if d]
    if not builds:
        raise SystemExit("give --static-build and/or --shared-build")

    with tempfile.TemporaryDirectory(prefix="kup-consumer-") as work:
        binaries = []
        for build_dir, kind in builds:
            for b in build_consumers(os.path.abspath(build_dir), kind, work):
                check_linkage(b, kind)
                binaries.append(b)

        with KubeSim() as sim, PodsProcess() as pods:
            pods.add("web-1", "127.0.1.61", 0, version="v1")
            port = pods.list()["web-1"]["port"]
            sim.apply(service("default", "web", [("http", 80, port)]))
            sim.apply(endpointslice("default", "web-abc", "web", ["127.0.1.61"], port))
            kubeconfig = sim.kubeconfig()
            for b in binaries:
                print(f"+ {b}", flush=True)
                r = subprocess.run([b, kubeconfig, "default", "web", "http", "/consumer"], capture_output=True,
                                   text=True, timeout=30)
                if r.returncode != 0 or '"web-1"' not in r.stdout:
                    raise SystemExit(f"FAIL: {b} exited {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}")
                print(f"  ok: {r.stderr.strip()}, body names pod web-1", flush=True)
    print(f"consumer test passed: {len(binaries)} programs ({', '.join(k for _, k in builds)})")


if __name__ == "__main__":
    main()
