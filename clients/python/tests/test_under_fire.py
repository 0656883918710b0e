"""An application under fire: the example application (examples/app.py)
serves simulated users while predictd is reloaded, flooded, made slow,
stopped and started again. Every user request must be answered within the
application's deadline; with suggestions whenever predictd was up and not
overloaded. Prints the counts per phase.

Run: python -m unittest -v test_under_fire   (from clients/python/tests)
"""

import collections
import http.client
import json
import os
import signal
import socket
import sys
import threading
import time
import unittest

from support import Daemon, photo

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
import app  # noqa: E402

#: What a user of the application waits for at most: predictd's part (0.5 s)
#: plus the application's own work.
DEADLINE = 1.0
CLIENT_TIMEOUT = 0.5
#: Phases in which every answer must carry suggestions.
MUST_SUGGEST = ("calm", "reload", "recovered")


def flood_once(sock_path, body):
    """One request straight to predictd, as another noisy caller would."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(sock_path)
            s.sendall(b"POST /v1/predict?x=10&y=10 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body) + body)
            while s.recv(65536):
                pass
    except OSError:
        pass


class ApplicationUnderFire(unittest.TestCase):
    def test_every_user_is_answered_within_the_deadline(self):
        daemon = Daemon().start()
        self.addCleanup(daemon.close)
        server = app.serve(daemon.socket, 0, timeout=CLIENT_TIMEOUT)
        port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)

        phase = ["calm"]
        records = []  # (phase, outcome, seconds); outcome: "suggestions", "without:<reason>", "failed:<why>"
        lock = threading.Lock()
        done = threading.Event()
        photos = [photo("skimage-coffee.jpg"), photo("tuxpaint-strawberry2.jpg")]

        def user(n):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            i = 0
            while not done.is_set():
                i += 1
                current = phase[0]
                t = time.monotonic()
                try:
                    if i % 4 == 0:
                        conn.request("GET", "/")
                        r = conn.getresponse()
                        body = r.read()
                        ok = r.status == 200 and b"<html>" in body
                        outcome = "page" if ok else f"failed:page {r.status}"
                    else:
                        conn.request("POST", f"/suggest?x={50 + n}&y={60 + i % 40}",
                                     body=photos[i % 2])
                        r = conn.getresponse()
                        answer = json.loads(r.read())
                        if r.status != 200:
                            outcome = f"failed:status {r.status}"
                        elif answer["suggestions"]:
                            outcome = "suggestions"
                        else:
                            outcome = f"without:{answer['reason']}"
                except Exception as e:
                    outcome = f"failed:{e!r}"
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                took = time.monotonic() - t
                with lock:
                    records.append((current, outcome, took))
            conn.close()

        def set_phase(name, seconds=0.0):
            phase[0] = name
            time.sleep(seconds)

        users = [threading.Thread(target=user, args=(n,)) for n in range(4)]
        for u in users:
            u.start()
        try:
            set_phase("calm", 1.5)
            phase[0] = "reload"
            for _ in range(3):
                daemon.signal(signal.SIGHUP)
                time.sleep(0.5)
            # Wait for the last reload to finish before leaving the phase.
            time.sleep(1.0)

            phase[0] = "flood"
            stop_flood = threading.Event()
            big = photo("tuxpaint-strawberry2.jpg")

            def flooder():
                while not stop_flood.is_set():
                    flood_once(daemon.socket, big)

            flooders = [threading.Thread(target=flooder) for _ in range(24)]
            for f in flooders:
                f.start()
            time.sleep(3.0)
            stop_flood.set()
            for f in flooders:
                f.join()

            set_phase("slow")
            daemon.signal(signal.SIGSTOP)
            time.sleep(1.5)
            daemon.signal(signal.SIGCONT)
            set_phase("settle", 1.0)

            set_phase("stopped")
            daemon.stop()
            time.sleep(1.5)

            phase[0] = "restart"
            t_restart = time.monotonic()
            daemon.start(wait=False)
            daemon.wait_ready()
            # Until the application serves suggestions again (its client's
            # circuit may be open for its cooldown).
            while time.monotonic() - t_restart < 15:
                with lock:
                    last = [r for r in records[-8:] if r[0] == "restart"]
                if last and last[-1][1] == "suggestions":
                    break
                time.sleep(0.05)
            recovery = time.monotonic() - t_restart
            set_phase("recovered", 1.5)
        finally:
            done.set()
            for u in users:
                u.join()

        table = collections.OrderedDict()
        for name, outcome, took in records:
            row = table.setdefault(name, collections.Counter())
            kind = "late" if took > DEADLINE else outcome.split(":")[0]
            row[kind] += 1
            if outcome.startswith("without:"):
                row[outcome] += 1
        print(f"\napplication under fire: {len(records)} user requests, deadline {DEADLINE} s")
        for name, row in table.items():
            print(f"  {name:<10} " + ", ".join(f"{k} {v}" for k, v in sorted(row.items())))
        print(f"  suggestions again {recovery:.2f} s after the restart began")
        failed = [r for r in records if r[1].startswith("failed")]
        late = [r for r in records if r[2] > DEADLINE]
        print(f"  failed: {len(failed)}, late: {len(late)}, "
              f"slowest: {max(r[2] for r in records) * 1000:.0f} ms")

        self.assertEqual(failed, [])
        self.assertEqual(late, [])
        for name in MUST_SUGGEST:
            missing = [r for r in records if r[0] == name and r[1].startswith("without")]
            self.assertEqual(missing, [], f"no suggestions while predictd was up ({name})")
            self.assertTrue(any(r[0] == name and r[1] == "suggestions" for r in records), name)
        self.assertTrue(any(r[0] == "stopped" and r[1].startswith("without") for r in records))


if __name__ == "__main__":
    unittest.main()
