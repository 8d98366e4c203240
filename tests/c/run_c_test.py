#!/usr/bin/env python3
"""Runs a C test program of the C ABI against a kubesim cluster and real HTTP Pods.

    run_c_test.py PROGRAM [ARGS...]

Starts cluster "tke-a" (kubesim) with Service default/httpbin (port "http" 8000 -> 8080) and two
pods.py Pods on a random loopback /24, then runs PROGRAM with
    KUP_TEST_KUBECONFIG  the cluster's kubeconfig (user admin)
    KUP_TEST_PODS        "name=address,name=address"
and serves the program's requests: a stdout line "RUNNER drop NAME" / "RUNNER add NAME" takes a
Pod out of the EndpointSlice / puts it back. Other lines are echoed. Exits with the program's
status; stops everything it started (by PID), also when the program fails.
Standard library only; reuses tests/gateway/harness.py.
"""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("KUPSTREAM_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SOURCE, "tests", "gateway"))

from harness import Env  # noqa: E402

PORT = 8080


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    env = Env()
    try:
        cluster = env.cluster("tke-a")
        pods = env.pods()
        names = []
        for i in (1, 2):
            name, address = f"tke-a-v1-{i}", env.address(i)
            pods.add(name, address, PORT, "v1", "tke-a")
            cluster.set_pod(name, address, publish=False)
            names.append((name, address))
        cluster.publish()
        child_env = dict(os.environ)
        child_env["KUP_TEST_KUBECONFIG"] = cluster.kubeconfig
        child_env["KUP_TEST_PODS"] = ",".join(f"{n}={a}" for n, a in names)
        addresses = dict(names)
        proc = subprocess.Popen(argv[1:], env=child_env, stdout=subprocess.PIPE, text=True)
        try:
            for line in proc.stdout:
                words = line.split()
                if len(words) == 3 and words[0] == "RUNNER":
                    if words[1] == "drop":
                        cluster.drop_pod(words[2])
                    elif words[1] == "add":
                        cluster.set_pod(words[2], addresses[words[2]])
                    else:
                        print(f"run_c_test.py: unknown request {line!r}", file=sys.stderr)
                    continue
                sys.stdout.write(line)
                sys.stdout.flush()
            return proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    finally:
        env.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
