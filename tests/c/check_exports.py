#!/usr/bin/env python3
"""The shared library exports exactly the C functions kupstream_c.h declares (both directions),
and nothing else but C++ symbols of the kupstream namespace (KUPSTREAM_API) and std:: template
instantiations (vague linkage: libstdc++ declares namespace std with default visibility, so
-fvisibility=hidden cannot hide them). A dependency's symbol (uv_*, SSL_*, fmt::, YAML::,
simdjson::) or any other name fails the check.

    check_exports.py LIBKUPSTREAM_SO KUPSTREAM_C_H
"""

import re
import subprocess
import sys


def main(lib, header):
    out = subprocess.run(["nm", "-D", "--defined-only", lib], check=True, capture_output=True, text=True).stdout
    exported = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            exported.add(parts[2].split("@")[0])
    with open(header) as f:
        text = f.read()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    declared = set(re.findall(r"\bKUP_API\b[^;]*?\b(kup_\w+)\s*\(", text))
    c_exported = {s for s in exported if s.startswith("kup_")}
    problems = []
    for s in sorted(declared - c_exported):
        problems.append(f"declared in the header but not exported: {s}")
    for s in sorted(c_exported - declared):
        problems.append(f"exported but not declared in the header: {s}")
    # Everything else must be C++ in namespace kupstream (mangled _ZN9kupstream / _ZNK9kupstream,
    # vtables/typeinfo _ZTVN9kupstream, _ZTIN9kupstream, _ZTSN9kupstream, ...).
    std_instances = 0
    for s in sorted(exported - c_exported):
        if re.match(r"^_Z\w*?9kupstream", s):
            continue
        if re.match(r"^_Z(?:Z|GVZ|T[ISV])?N?K?St", s) or s.startswith("_ZSt"):
            std_instances += 1
            continue
        problems.append(f"exported, neither kup_* nor kupstream:: nor std::: {s}")
    print(f"{len(declared)} C functions declared, {len(c_exported)} kup_* exported, "
          f"{len(exported) - len(c_exported) - std_instances} kupstream:: symbols, {std_instances} std:: instantiations")
    for p in problems:
        print(p)
    return 1 if problems or not declared else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
