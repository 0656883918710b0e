"""What the client tests share: the real daemon in a temp folder, and fake
servers that misbehave on purpose."""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
PHOTOS = os.path.join(REPO, "tests", "fixtures", "photos")


def photo(name):
    with open(os.path.join(PHOTOS, name), "rb") as f:
        return f.read()


def predictd_bin():
    """The daemon under test: $PREDICTD_BIN (set by `cargo test`), or a
    build in target/. Never skips: a missing binary is a failure."""
    candidates = [os.environ.get("PREDICTD_BIN", "")]
    candidates += [os.path.join(REPO, "target", p, "predictd") for p in ("debug", "release")]
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    raise RuntimeError("no predictd binary: set PREDICTD_BIN or run `cargo build`")


class Daemon:
    """`predictd serve` in the foreground on a socket in its own folder."""

    def __init__(self, extra_server="", folder=None):
        self.bin = predictd_bin()
        self.dir = folder or tempfile.mkdtemp(prefix="predictd-client-")
        self.socket = os.path.join(self.dir, "predictd.sock")
        self.config = os.path.join(self.dir, "predictd.toml")
        text = subprocess.run([self.bin, "config"], cwd=REPO, check=True,
                              capture_output=True, text=True).stdout
        text = re.sub(r'(?m)^socket = .*$', f'socket = "{self.socket}"', text)
        text = re.sub(r'(?m)^pidfile = .*$',
                      f'pidfile = "{os.path.join(self.dir, "predictd.pid")}"', text)
        for line in extra_server.strip().splitlines():
            key = line.split("=")[0].strip()
            text = re.sub(rf'(?m)^{re.escape(key)} = .*$', line.strip(), text)
        with open(self.config, "w") as f:
            f.write(text)
        self.proc = None
        self.log = open(os.path.join(self.dir, "stderr.log"), "ab")

    def start(self, wait=True):
        self.proc = subprocess.Popen([self.bin, "serve", "--config", self.config],
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=120):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"predictd exited {self.proc.returncode}: {self.stderr()}")
            if get_status(self.socket, "/readyz") == 200:
                return
            time.sleep(0.02)
        raise RuntimeError(f"predictd not ready: {self.stderr()}")

    def stderr(self):
        with open(os.path.join(self.dir, "stderr.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def close(self):
        self.stop()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def get_status(sock_path, path):
    """The status of a GET, or None when nothing answers."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(sock_path)
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            data = s.recv(4096)
        return int(data.split(b" ", 2)[1])
    except (OSError, IndexError, ValueError):
        return None


class FakeServer:
    """A Unix-socket server that answers every request with `behaviour`:
    "silent" (reads, never answers), "drip" (a byte of the answer every
    100 ms, forever), "cut" (half an answer, then closes), or
    (status, code) for a JSON error, or (status, raw_body) for any body."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.dir = tempfile.mkdtemp(prefix="predictd-fake-")
        self.socket = os.path.join(self.dir, "fake.sock")
        self.requests = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.socket)
        self.listener.listen(64)
        self.listener.settimeout(0.1)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn):
        try:
            conn.settimeout(10)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            m = re.search(rb"(?i)content-length: *(\d+)", head)
            length = int(m.group(1)) if m else 0
            while len(body) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                body += chunk
            with self._lock:
                self.requests += 1
            b = self.behaviour
            if b == "silent":
                self._stop.wait(30)
            elif b == "drip":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                while not self._stop.wait(0.1):
                    conn.sendall(b" ")
            elif b == "cut":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 400\r\n\r\n{\"id\": \"0192")
                conn.shutdown(socket.SHUT_RDWR)
            else:
                status, what = b
                if isinstance(what, bytes):
                    payload = what
                else:
                    payload = ('{"error": {"code": "%s", "message": "fake %s"}}' % (what, what)).encode()
                conn.sendall(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (status, len(payload), payload))
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self._stop.set()
        self.listener.close()
        shutil.rmtree(self.dir, ignore_errors=True)
