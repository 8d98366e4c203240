"""Reading the real kube-apiserver wire samples (../shared/captures) for comparisons."""

import json
import os
import re
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


def captures_dir():
    env = os.environ.get("KUPSTREAM_CAPTURES_DIR")
    candidates = [env] if env else []
    candidates += [os.path.join(HERE, "..", "..", "..", "shared", "captures"),
                   os.path.join(HERE, "..", "..", "..", "..", "shared", "captures"),
                   "/work/shared/captures"]
    for c in candidates:
        if c and os.path.isdir(c):
            return os.path.abspath(c)
    return None


def _require():
    d = captures_dir()
    if d is None:
        raise unittest.SkipTest("the real wire samples (../shared/captures) are not available; set "
                                "KUPSTREAM_CAPTURES_DIR to compare with them")
    return d


def read_text(name):
    d = _require()
    with open(os.path.join(d, name), "rb") as f:
        return f.read().decode()


def read_http(name):
    """Returns (status, headers dict (lower-case keys), body bytes, raw body) of a .http capture.
    Chunked bodies are de-chunked; `chunks` holds the raw chunk payloads when framing is present."""
    d = _require()
    with open(os.path.join(d, name), "rb") as f:
        raw = f.read()
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    chunks = None
    if headers.get("transfer-encoding") == "chunked" and re.match(rb"^[0-9a-f]+\r\n", body):
        chunks, rest = [], body
        while rest:
            size_line, rest = rest.split(b"\r\n", 1)
            size = int(size_line, 16)
            if size == 0:
                break
            chunks.append(rest[:size])
            rest = rest[size + 2:]
        body = b"".join(chunks)
    return {"status": status, "headers": headers, "body": body, "chunks": chunks}


def shape(value):
    """Structure of a JSON value: dict keys (in order) and element shapes, values replaced by types."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if value is None:
        return None
    return type(value).__name__


def mask_json_text(text):
    """Replaces string and number literals so pretty-printed bodies can be compared by layout."""
    # strings are scanned left to right; those followed by ':' are keys and stay
    text = re.sub(r'"(?:[^"\\]|\\.)*"(\s*:)?', lambda m: m.group(0) if m.group(1) else '"S"', text)
    text = re.sub(r'(:\s*|^\s*)-?\d+(\.\d+)?', r'\1N', text, flags=re.M)
    return text
