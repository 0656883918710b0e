#!/usr/bin/env python3
"""predictd against the reference stack, one run, same photos: see compare.sh.

    compare.py PREDICTD_BIN VENV_PYTHON LARGE_PHOTOS_DIR [SECONDS]

Starts each server alone on a socket of its own (the reference first, then
predictd), loads it with `predictd bench` (the same client for both), and
prints one Markdown table with both columns and their ratio, then the theme
CNN's milliseconds per inference in tract and in TensorFlow.
"""

import glob
import http.client
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=60):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def request(sock, method, path, body=None):
    conn = UnixConnection(sock)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/octet-stream"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wait_ready(sock, proc, seconds=180):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"compare: the server exited with {proc.returncode} before it was ready")
        try:
            if request(sock, "GET", "/readyz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit("compare: the server did not get ready in time")


def rss_kb(pid, field):
    """VmRSS or VmHWM of a process and its children (the reference has none)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def bench(binary, sock, images, concurrency, seconds=None, requests=None):
    cmd = [binary, "bench", "--socket", sock, "--concurrency", str(concurrency)]
    cmd += ["--duration", str(seconds)] if seconds else ["--requests", str(requests)]
    out = subprocess.run(cmd + images, capture_output=True, text=True, check=True).stdout
    num = lambda key: float(re.search(rf"^{key}:\s+([\d.]+)", out, re.M).group(1))  # noqa: E731
    errors = int(re.search(r"\((\d+) errors\)", out).group(1))
    return {
        "rps": num("throughput"),
        "mean": num("mean"),
        "p50": num("p50"),
        "p99": num("p99"),
        "errors": errors,
    }


def clicks(sock, photos, per_photo=5):
    """5 clicks on each photo, each a new request that sends the photo again."""
    started = time.perf_counter()
    failures = 0
    for path in photos:
        body = open(path, "rb").read()
        # points spread over the displayed image (EXIF-rotated photos swap w/h,
        # so stay within the smaller extent of both)
        for k in range(per_photo):
            x, y = 400 + 500 * k, 300 + 450 * k
            status, _ = request(sock, "POST", f"/v1/predict?x={x}&y={y}", body)
            failures += status != 200
    return time.perf_counter() - started, failures


def run_server(name, cmd, sock, binary, small, large, seconds, env=None):
    print(f"== {name}: starting", file=sys.stderr)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_ready(sock, proc)
        bench(binary, sock, small[:4], 1, requests=8)  # warm-up
        r = {"idle_mb": rss_kb(proc.pid, "VmRSS") / 1024}
        print(f"== {name}: small photos, 1 client", file=sys.stderr)
        r["small1"] = bench(binary, sock, small, 1, seconds=seconds)
        print(f"== {name}: small photos, 8 clients", file=sys.stderr)
        r["small8"] = bench(binary, sock, small, 8, seconds=seconds)
        print(f"== {name}: 12-16 MP, 1 client", file=sys.stderr)
        r["large1"] = bench(binary, sock, large, 1, requests=4 * len(large))
        print(f"== {name}: 5 clicks on each large photo", file=sys.stderr)
        r["clicks"] = clicks(sock, large)
        print(f"== {name}: mix, 8 clients", file=sys.stderr)
        r["mix8"] = bench(binary, sock, small + large, 8, seconds=seconds)
        print(f"== {name}: 12-16 MP, 8 clients", file=sys.stderr)
        r["large8"] = bench(binary, sock, large, 8, seconds=seconds)
        r["peak_mb"] = rss_kb(proc.pid, "VmHWM") / 1024
        return r
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def main():
    binary, python, large_dir = sys.argv[1:4]
    seconds = int(sys.argv[4]) if len(sys.argv) > 4 else 10
    small = sorted(glob.glob(os.path.join(ROOT, "tests/fixtures/photos/*.jpg")))
    large = sorted(glob.glob(os.path.join(large_dir, "*.jpg")))
    tmp = tempfile.mkdtemp(prefix="predictd-compare-")
    ref_sock = os.path.join(tmp, "reference.sock")
    pd_sock = os.path.join(tmp, "predictd.sock")

    ref = run_server(
        "reference",
        [python, os.path.join(HERE, "reference_server.py"), ref_sock,
         os.path.join(ROOT, "models"), os.path.join(ROOT, "labels")],
        ref_sock, binary, small, large, seconds,
    )
    env = dict(os.environ, PREDICTD_LOG="warn")
    pd = run_server(
        "predictd",
        [binary, "serve", "--socket", pd_sock],
        pd_sock, binary, small, large, seconds, env=env,
    )
    os.chdir(ROOT)

    print("== theme CNN alone", file=sys.stderr)
    model_speed = os.path.join(os.path.dirname(binary), "examples", "model_speed")
    def tract_ms(threads):
        out = subprocess.run([model_speed, "models/themeClassifier.pb", "224", "50", str(threads)],
                             capture_output=True, text=True, check=True).stdout
        return float(re.search(r"median ([\d.]+) ms", out).group(1))
    def tf_ms(threads):
        out = subprocess.run([python, os.path.join(HERE, "reference_server.py"), "--time-theme",
                              "50", str(threads)], capture_output=True, text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])
    theme = {t: (tract_ms(t), tf_ms(t)) for t in (1, 2)}

    rows = []
    def row(label, a, b, unit, better):
        ratio = b / a if a else float("nan")
        rows.append((label, f"{a:.1f} {unit}", f"{b:.1f} {unit}", ratio, better))
    row("small photos, 1 client: p50 latency", ref["small1"]["p50"], pd["small1"]["p50"], "ms", "lower")
    row("small photos, 8 clients: throughput", ref["small8"]["rps"], pd["small8"]["rps"], "req/s", "higher")
    row("small photos, 8 clients: p99 latency", ref["small8"]["p99"], pd["small8"]["p99"], "ms", "lower")
    row("mix of small and 12-16 MP, 8 clients: throughput", ref["mix8"]["rps"], pd["mix8"]["rps"], "req/s", "higher")
    row("mix of small and 12-16 MP, 8 clients: p99 latency", ref["mix8"]["p99"], pd["mix8"]["p99"], "ms", "lower")
    row("12-16 MP JPEG, 1 client: mean latency", ref["large1"]["mean"], pd["large1"]["mean"], "ms", "lower")
    row("5 clicks on each of 4 photos of 12-16 MP: total", ref["clicks"][0] * 1000, pd["clicks"][0] * 1000, "ms", "lower")
    row("12-16 MP JPEG, 8 clients: throughput", ref["large8"]["rps"], pd["large8"]["rps"], "req/s", "higher")
    row("idle resident memory", ref["idle_mb"], pd["idle_mb"], "MB", "lower")
    row("peak resident memory (8 clients on 12-16 MP included)", ref["peak_mb"], pd["peak_mb"], "MB", "lower")
    row("theme CNN alone, 1 thread: ms per inference (tract vs TF)", theme[1][1], theme[1][0], "ms", "lower")
    row("theme CNN alone, 2 threads: ms per inference (tract vs TF)", theme[2][1], theme[2][0], "ms", "lower")

    errors = {k: (ref[k]["errors"], pd[k]["errors"]) for k in ("small1", "small8", "mix8", "large1", "large8")}
    cpu = open("/proc/cpuinfo").read()
    model = re.search(r"model name\s*:\s*(.*)", cpu).group(1)
    checked = subprocess.run([binary, "check"], capture_output=True, text=True, cwd=ROOT).stdout
    kernels = next((l.split(" ", 1)[1] for l in checked.splitlines() if l.startswith("kernels ")), "unknown")
    print(f"predictd vs reference, one run, {os.cpu_count()} cores ({model}), kernels {kernels}, "
          f"{len(small)} small photos, {len(large)} photos of 12-16 MP, {seconds} s per load")
    print()
    print("| workload | reference | predictd | predictd / reference |")
    print("|---|---|---|---|")
    for label, a, b, ratio, better in rows:
        print(f"| {label} | {a} | {b} | {ratio:.2f}x ({better} is better) |")
    print()
    print("errors (reference, predictd): " + ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in errors.items())
          + f", clicks {ref['clicks'][1]}/{pd['clicks'][1]}")


if __name__ == "__main__":
    main()
