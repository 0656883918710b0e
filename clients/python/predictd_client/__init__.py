"""Client for predictd: suggestions for a point on a photo, within a deadline.

Suggestions are a help, never a requirement. ``Client.predict`` and
``Client.feedback`` never raise for anything the daemon or the socket does
(missing socket, refused, reset, stalled, any status) and return within the
client's ``timeout`` plus a few milliseconds; the result says why there are
no suggestions, and the application shows its page without them.

    from predictd_client import Client
    c = Client("/run/predictd/predictd.sock", timeout=0.5)
    r = c.predict(image, x, y)        # image: bytes, or a path the client reads
    if r.ok:
        themes = r.predictions["theme"]   # [{"label": ..., "probability": ...}, ...]
    else:
        print("no suggestions:", r.error)
    c.feedback(r.id, "theme", "Gardening")

After ``failures`` consecutive unavailable/timeout results the client
answers ``circuit_open`` at once for ``cooldown`` seconds, then tries again.
A 503 (``overloaded``, ``not_ready``) or 429 is never retried inside a call.

Standard library only. The contract is ../shared/SPEC.md, "Clients for the
application"; the Rust client (``predictd::client``) behaves the same.
"""

import json
import os
import socket
import threading
import time
import urllib.parse

__all__ = ["Client", "Result"]

#: Reasons that count towards opening the circuit.
_FAILURES = ("unavailable", "timeout")


class Result:
    """The outcome of ``Client.predict``."""

    __slots__ = ("ok", "predictions", "id", "error", "message", "status", "body")

    def __init__(self, ok=False, predictions=None, id=None, error=None,
                 message=None, status=None, body=None):
        self.ok = ok                        # True only for a 200
        self.predictions = predictions or {}  # {} unless ok
        self.id = id                        # the prediction id, or None
        self.error = error                  # None, or why there are no suggestions
        self.message = message              # the daemon's message, or what broke
        self.status = status                # the HTTP status, when there was one
        self.body = body                    # the whole JSON answer of a 200

    def __repr__(self):
        if self.ok:
            return f"Result(ok=True, id={self.id!r}, models={sorted(self.predictions)})"
        return f"Result(ok=False, error={self.error!r}, message={self.message!r})"


class _Timeout(Exception):
    pass


class _Unavailable(Exception):
    pass


class Client:
    """A client for one daemon socket. Thread-safe; one connection per call."""

    def __init__(self, socket_path, timeout=0.5, failures=5, cooldown=5.0):
        self.socket_path = os.fspath(socket_path)
        self.timeout = float(timeout)
        self.failures = int(failures)
        self.cooldown = float(cooldown)
        self._lock = threading.Lock()
        self._consecutive = 0
        self._open_until = 0.0

    # -- the application's calls -------------------------------------------

    def predict(self, image, x, y, models=None, top=5):
        """Suggestions at (x, y) of ``image`` (bytes, or a path read here)."""
        try:
            deadline = time.monotonic() + self.timeout
            refused = self._circuit_open()
            if refused:
                return refused
            if isinstance(image, (bytes, bytearray, memoryview)):
                body = bytes(image)
            else:
                try:
                    with open(image, "rb") as f:
                        body = f.read()
                except (OSError, TypeError, ValueError) as e:
                    return Result(error="not_found", message=f"cannot read {image!r}: {e}")
            query = [("x", _number(x)), ("y", _number(y)), ("top", str(int(top)))]
            if models:
                query.append(("models", ",".join(models) if not isinstance(models, str) else models))
            path = "/v1/predict?" + urllib.parse.urlencode(query)
            result = self._call(deadline, "POST", path, "application/octet-stream", body)
        except Exception as e:  # never raise into the application
            result = Result(error="unavailable", message=f"client error: {e!r}")
        return self._record(result)

    def feedback(self, prediction_id, model, chosen):
        """Records what the user chose. True when recorded; never raises."""
        try:
            if not prediction_id or self._circuit_open():
                return False
            deadline = time.monotonic() + self.timeout
            body = json.dumps({"id": prediction_id, "model": model, "chosen": chosen}).encode()
            result = self._call(deadline, "POST", "/v1/feedback", "application/json", body)
        except Exception as e:
            result = Result(error="unavailable", message=f"client error: {e!r}")
        return self._record(result).ok

    # -- circuit breaker -----------------------------------------------------

    def _circuit_open(self):
        with self._lock:
            now = time.monotonic()
            if now < self._open_until:
                return Result(
                    error="circuit_open",
                    message=f"predictd failed {self._consecutive} times in a row; "
                            f"not asking again for {self._open_until - now:.1f} s")
        return None

    def _record(self, result):
        with self._lock:
            if result.error in _FAILURES:
                self._consecutive += 1
                if self.failures > 0 and self._consecutive >= self.failures:
                    self._open_until = time.monotonic() + self.cooldown
            else:
                # The daemon answered: whatever it said, it is there.
                self._consecutive = 0
                self._open_until = 0.0
        return result

    # -- HTTP/1.1 over the Unix socket ---------------------------------------

    def _call(self, deadline, method, path, content_type, body):
        try:
            status, headers, data = _exchange(self.socket_path, deadline, method, path,
                                              content_type, body)
        except _Timeout as e:
            return Result(error="timeout", message=f"no answer within {self.timeout} s ({e})")
        except _Unavailable as e:
            return Result(error="unavailable", message=str(e))
        return _interpret(status, data)


def _number(v):
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _remaining(deadline):
    left = deadline - time.monotonic()
    if left <= 0:
        raise _Timeout("deadline passed")
    return left


def _exchange(socket_path, deadline, method, path, content_type, body):
    """One request on a new connection; (status, headers, body) or raises
    _Timeout / _Unavailable."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            s.settimeout(_remaining(deadline))
            s.connect(socket_path)
        except socket.timeout:
            raise _Timeout("connecting")
        except OSError as e:
            raise _Unavailable(f"cannot reach predictd at {socket_path}: {e}")
        head = (f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n")
        send_error = None
        try:
            s.settimeout(_remaining(deadline))
            s.sendall(head.encode("ascii") + body)
        except socket.timeout:
            raise _Timeout("sending")
        except OSError as e:
            # The daemon may answer (413, say) and close before reading it
            # all: its answer, if any, is still there to read.
            send_error = e
        try:
            return _read_response(s, deadline)
        except _Unavailable:
            if send_error is not None:
                raise _Unavailable(f"connection broken while sending: {send_error}")
            raise
    finally:
        s.close()


def _read_response(s, deadline):
    buf = b""

    def more():
        nonlocal buf
        try:
            s.settimeout(_remaining(deadline))
            chunk = s.recv(65536)
        except socket.timeout:
            raise _Timeout("waiting for the answer")
        except OSError as e:
            raise _Unavailable(f"connection broken: {e}")
        if not chunk:
            raise _Unavailable("connection closed before the answer was complete")
        buf += chunk

    while b"\r\n\r\n" not in buf:
        more()
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split(" ", 2)[1])
    except (IndexError, ValueError):
        raise _Unavailable(f"not an HTTP answer: {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    buf = rest
    if "chunked" in headers.get("transfer-encoding", "").lower():
        data = b""
        while True:
            while b"\r\n" not in buf:
                more()
            size_line, _, buf = buf.partition(b"\r\n")
            try:
                size = int(size_line.split(b";")[0], 16)
            except ValueError:
                raise _Unavailable("malformed chunked answer")
            while len(buf) < size + 2:
                more()
            data += buf[:size]
            buf = buf[size + 2:]
            if size == 0:
                return status, headers, data
    if "content-length" in headers:
        try:
            length = int(headers["content-length"])
        except ValueError:
            raise _Unavailable("malformed Content-Length")
        while len(buf) < length:
            more()
        return status, headers, buf[:length]
    if status in (204, 304) or 100 <= status < 200:
        return status, headers, b""
    # Until the server closes.
    while True:
        try:
            more()
        except _Unavailable:
            return status, headers, buf


def _interpret(status, data):
    if 200 <= status < 300:
        if status == 204:
            return Result(ok=True, status=status)
        try:
            answer = json.loads(data)
            predictions = answer.get("predictions", {})
            if not isinstance(predictions, dict):
                raise ValueError("predictions is not an object")
        except (ValueError, AttributeError) as e:
            return Result(error="unavailable", status=status, message=f"unreadable answer: {e}")
        return Result(ok=True, predictions=predictions, id=answer.get("id"),
                      status=status, body=answer)
    try:
        err = json.loads(data)["error"]
        return Result(error=str(err["code"]), message=str(err.get("message", "")), status=status)
    except (ValueError, KeyError, TypeError):
        # Not the daemon's JSON: a proxy in between, or something else.
        code = {429: "rate_limited", 504: "timeout"}.get(status, "unavailable")
        text = data[:200].decode("utf-8", "replace").strip()
        return Result(error=code, status=status, message=f"HTTP {status}: {text}")
