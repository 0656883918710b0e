#!/usr/bin/env python3
"""A minimal HTTP/1.1 client over a Unix socket, for tests that must run
the client as another user (`setpriv --reuid ...`, or a uid set by the test).

Sends the same request REPEAT times, one connection each, and prints one
JSON line per answer: {"status", "code", "retry_after", "ms", "end_ms"}
(end_ms: when the answer was complete, since the first request started).

    http_client.py SOCKET METHOD PATH [--body FILE] [--header 'K: V'] [--repeat N]
"""

import argparse
import json
import socket
import sys
import time


def request(sock_path, method, path, headers, body):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    s.connect(sock_path)
    head = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
    head += f"Content-Length: {len(body)}\r\n"
    for h in headers:
        head += h + "\r\n"
    s.sendall(head.encode() + b"\r\n" + body)
    raw = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        raw += chunk
    s.close()
    header_end = raw.index(b"\r\n\r\n")
    lines = raw[:header_end].decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    fields = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        fields[k.strip().lower()] = v.strip()
    payload = raw[header_end + 4:]
    code = ""
    if fields.get("content-type", "").startswith("application/json") and payload:
        try:
            code = json.loads(payload).get("error", {}).get("code", "")
        except (ValueError, AttributeError):
            code = ""
    return status, code, fields.get("retry-after")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("socket")
    p.add_argument("method")
    p.add_argument("path")
    p.add_argument("--body")
    p.add_argument("--header", action="append", default=[])
    p.add_argument("--repeat", type=int, default=1)
    a = p.parse_args()
    body = open(a.body, "rb").read() if a.body else b""
    start = time.monotonic()
    for _ in range(a.repeat):
        t0 = time.monotonic()
        status, code, retry_after = request(a.socket, a.method, a.path, a.header, body)
        t1 = time.monotonic()
        print(json.dumps({
            "status": status, "code": code, "retry_after": retry_after,
            "ms": round((t1 - t0) * 1000, 2), "end_ms": round((t1 - start) * 1000, 2),
        }))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
