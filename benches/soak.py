#!/usr/bin/env python3
"""The soak that benches/soak.sh runs against a started daemon.

    soak.py PID SOCKET SECONDS RELOAD_SECS PHOTO...

Eight clients send predictions for a mix of small photos and 12-16 MP
camera JPEGs (one request in four is large; half of all requests carry a
fresh comment segment so that the daemon sees a photo it has not decoded
before, as it does in service). Meanwhile: SIGHUP every RELOAD_SECS; once a
second a client that sends a request's headers and half its body, then
vanishes; a hostile client that sends random bytes, either as the whole
connection or as the body of a prediction. Every 10 s it samples the
daemon's resident memory, descriptors, threads, in-flight requests, model
sets alive and the allocator's own figures (bytes allocated, and resident
pages it holds with nothing in them). At the end it prints the
totals, the samples, and the checks the issue names (every non-hostile
request 200, every reload ok, peak memory <= 250 MB, no growth of memory or
descriptors after warm-up), and exits 1 if a check fails.

Standard library only.
"""

import os
import random
import re
import signal
import socket
import struct
import sys
import threading
import time
from collections import Counter

PEAK_LIMIT_MB = 250
WARM_UP_SECONDS = 60


def http(sock_path, method, target, body=b"", headers=(), timeout=60):
    """One request on a new connection; returns (status, body)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sock_path)
        head = [f"{method} {target} HTTP/1.1", "Host: localhost", "Connection: close",
                f"Content-Length: {len(body)}", *headers]
        s.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    if not data.startswith(b"HTTP/1.1 "):
        return 0, data
    status = int(data[9:12])
    return status, data.split(b"\r\n\r\n", 1)[-1]


def with_comment(jpeg, rng):
    """The same JPEG with a COM segment of random bytes after SOI: another
    file (another hash, no cache hit) with the same pixels."""
    payload = rng.randbytes(16)
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


class Soak:
    def __init__(self, pid, sock, seconds, reload_secs, photos):
        self.pid, self.sock = pid, sock
        self.deadline = time.monotonic() + seconds
        self.reload_secs = reload_secs
        self.lock = threading.Lock()
        self.statuses = Counter()        # non-hostile predictions
        self.hostile = Counter()
        self.latencies = []
        self.failures = []
        self.vanished = 0
        self.hups = 0
        self.samples = []
        self.small, self.large = [], []
        for path in photos:
            data = open(path, "rb").read()
            status, body = http(sock, "POST", "/v1/predict?x=0&y=0", data,
                                ["Content-Type: image/jpeg"], timeout=120)
            if status != 200:
                sys.exit(f"soak: {path} answered {status}: {body[:200]!r}")
            w = int(re.search(rb'"width":\s*(\d+)', body).group(1))
            h = int(re.search(rb'"height":\s*(\d+)', body).group(1))
            (self.large if w * h >= 10_000_000 else self.small).append((path, data, w, h))
        if not self.small or not self.large:
            sys.exit("soak: needs small photos and 12-16 MP ones")

    def running(self):
        return time.monotonic() < self.deadline

    def client(self, seed):
        rng = random.Random(seed)
        while self.running():
            path, data, w, h = rng.choice(self.large if rng.random() < 0.25 else self.small)
            if rng.random() < 0.5:
                data = with_comment(data, rng)
            x, y = rng.randrange(w), rng.randrange(h)
            started = time.monotonic()
            try:
                status, body = http(self.sock, "POST", f"/v1/predict?x={x}&y={y}", data,
                                    ["Content-Type: image/jpeg"])
            except OSError as e:
                status, body = 0, str(e).encode()
            took = time.monotonic() - started
            with self.lock:
                self.statuses[status] += 1
                if status == 200:
                    self.latencies.append(took)
                elif len(self.failures) < 10:
                    self.failures.append(f"{os.path.basename(path)} ({x},{y}): {status} {body[:160]!r}")

    def vanisher(self):
        rng = random.Random(7)
        while self.running():
            _, data, w, h = rng.choice(self.large + self.small)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.sock)
                s.sendall(f"POST /v1/predict?x={w // 2}&y={h // 2} HTTP/1.1\r\nHost: localhost\r\n"
                          f"Content-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n".encode()
                          + data[: len(data) // 2])
            except OSError:
                pass
            s.close()
            self.vanished += 1
            time.sleep(1)

    def hostile_client(self):
        rng = random.Random(13)
        while self.running():
            junk = rng.randbytes(rng.randrange(1, 65536))
            try:
                if rng.random() < 0.5:
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    s.settimeout(30)
                    s.connect(self.sock)
                    s.sendall(junk)
                    s.shutdown(socket.SHUT_WR)
                    reply = s.recv(64)
                    s.close()
                    status = int(reply[9:12]) if reply.startswith(b"HTTP/1.1 ") else "closed"
                else:
                    status, _ = http(self.sock, "POST", "/v1/predict?x=1&y=1", junk,
                                     ["Content-Type: image/jpeg"], timeout=30)
            except OSError as e:
                status = type(e).__name__
            with self.lock:
                self.hostile[status] += 1
            time.sleep(0.05)

    def reloader(self):
        while True:
            time.sleep(self.reload_secs)
            if not self.running():
                return
            os.kill(self.pid, signal.SIGHUP)
            self.hups += 1

    def metrics(self):
        _, body = http(self.sock, "GET", "/metrics", timeout=30)
        out = {}
        for line in body.decode().splitlines():
            if line.startswith("#") or not line:
                continue
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
        return out

    def sample(self, started):
        m = self.metrics()
        status = open(f"/proc/{self.pid}/status").read()
        kib = lambda key: int(re.search(key + r":\s+(\d+)", status).group(1))
        self.samples.append({
            "t": time.monotonic() - started,
            "rss": kib("VmRSS") / 1024,
            "hwm": kib("VmHWM") / 1024,
            "threads": kib("Threads"),
            "fds": len(os.listdir(f"/proc/{self.pid}/fd")),
            "in_flight": m.get("predictd_requests_in_flight", -1),
            "sets": m.get("predictd_model_sets_alive", -1),
            "workers": m.get("predictd_model_worker_threads", -1),
            "in_use": m.get('predictd_allocator_bytes{part="allocated"}', 0) / 2**20,
            # Pages the allocator holds without a live allocation in them:
            # what it has not handed back yet.
            "heap_free": (m.get('predictd_allocator_bytes{part="resident"}', 0)
                          - m.get('predictd_allocator_bytes{part="active"}', 0)) / 2**20,
            "reloads_ok": m.get('predictd_reloads_total{outcome="ok"}', 0),
            "reloads_failed": m.get('predictd_reloads_total{outcome="failed"}', 0),
            "requests": sum(self.statuses.values()),
        })
        s = self.samples[-1]
        print(f"{s['t']:6.0f} s  rss {s['rss']:6.1f} MB  peak {s['hwm']:6.1f}  "
              f"allocated {s['in_use']:6.1f}  allocator-idle {s['heap_free']:6.1f}  "
              f"fds {s['fds']:3d}  threads {s['threads']:3d}  in-flight {s['in_flight']:2.0f}  "
              f"model-sets {s['sets']:.0f}  requests {s['requests']}", flush=True)

    def run(self):
        started = time.monotonic()
        threads = [threading.Thread(target=self.client, args=(i,), daemon=True) for i in range(8)]
        threads += [threading.Thread(target=f, daemon=True)
                    for f in (self.vanisher, self.hostile_client, self.reloader)]
        for t in threads:
            t.start()
        self.sample(started)
        while self.running():
            time.sleep(min(10, max(0.1, self.deadline - time.monotonic())))
            self.sample(started)
        for t in threads:
            t.join(timeout=120)
        time.sleep(6)  # the last reload and the vanished requests settle
        self.sample(started)
        return self.report()

    def report(self):
        lat = sorted(self.latencies)
        pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1e3 if lat else float("nan")
        total = sum(self.statuses.values())
        last = self.samples[-1]
        print()
        print(f"requests: {total} ({', '.join(f'{k}: {v}' for k, v in sorted(self.statuses.items()))}); "
              f"p50 {pct(0.5):.0f} ms, p99 {pct(0.99):.0f} ms")
        for f in self.failures:
            print(f"  failed: {f}")
        print(f"hostile: {sum(self.hostile.values())} "
              f"({', '.join(f'{k}: {v}' for k, v in sorted(self.hostile.items(), key=str))}); "
              f"vanished mid-body: {self.vanished}")
        print(f"reloads: {self.hups} SIGHUP sent; ok {last['reloads_ok']:.0f}, failed {last['reloads_failed']:.0f}")
        warm = [s for s in self.samples if s["t"] >= WARM_UP_SECONDS] or self.samples
        half = len(warm) // 2
        first, second = warm[:half] or warm, warm[half:]
        mean = lambda xs, k: sum(x[k] for x in xs) / len(xs)
        peak = max(s["hwm"] for s in self.samples)
        print(f"after warm-up ({WARM_UP_SECONDS} s): rss {min(s['rss'] for s in warm):.1f}-{max(s['rss'] for s in warm):.1f} MB "
              f"(mean of first half {mean(first, 'rss'):.1f}, second half {mean(second, 'rss'):.1f}); "
              f"peak {peak:.1f} MB; fds {min(s['fds'] for s in warm)}-{max(s['fds'] for s in warm)} "
              f"(means {mean(first, 'fds'):.1f}, {mean(second, 'fds'):.1f}); "
              f"in-flight at the end {last['in_flight']:.0f}; model sets at the end {last['sets']:.0f}")
        checks = [
            ("every non-hostile request answered 200", total > 0 and self.statuses[200] == total),
            ("every reload ok", last["reloads_failed"] == 0 and last["reloads_ok"] >= self.hups),
            (f"peak resident memory <= {PEAK_LIMIT_MB} MB", peak <= PEAK_LIMIT_MB),
            # Flat: the second half of the run holds no more than the first
            # (10% or 10 MB of slack for sampling), by mean, memory and fds.
            ("memory flat after warm-up",
             mean(second, "rss") <= max(mean(first, "rss") * 1.10, mean(first, "rss") + 10)),
            ("descriptors flat after warm-up", mean(second, "fds") <= mean(first, "fds") + 3),
            ("no request in flight at the end", last["in_flight"] <= 1),
            ("one model set alive at the end", last["sets"] == 1),
        ]
        for name, ok in checks:
            print(f"{'ok  ' if ok else 'FAIL'} {name}")
        return all(ok for _, ok in checks)


def main():
    pid, sock, seconds, reload_secs = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    ok = Soak(pid, sock, seconds, reload_secs, sys.argv[5:]).run()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
