"""predictd_client as an application uses it: against the real daemon, and
against servers that misbehave. Every call must come back within its
timeout plus 50 ms, with the reason as a value and never an exception.

Run: python -m unittest discover -s clients/python/tests
(with predictd_client installed, and $PREDICTD_BIN or a build in target/).
"""

import os
import signal
import tempfile
import threading
import time
import unittest

from predictd_client import Client, Result
from support import Daemon, FakeServer, photo, PHOTOS

TIMEOUT = 0.3
SLACK = 0.05


class Timed:
    def __init__(self, client):
        self.client = client

    def predict(self, *args, **kwargs):
        t = time.monotonic()
        r = self.client.predict(*args, **kwargs)
        return r, time.monotonic() - t


class MisbehavingServers(unittest.TestCase):
    def failure(self, behaviour, expected, timeout=TIMEOUT):
        fake = FakeServer(behaviour)
        self.addCleanup(fake.close)
        c = Client(fake.socket, timeout=timeout)
        r, took = Timed(c).predict(photo("skimage-coffee.jpg"), 100, 100)
        self.assertIsInstance(r, Result)
        self.assertFalse(r.ok)
        self.assertEqual(r.predictions, {})
        self.assertIsNone(r.id)
        self.assertEqual(r.error, expected, r.message)
        self.assertLessEqual(took, timeout + SLACK, f"{behaviour} took {took:.3f} s")
        return took, fake

    def test_missing_socket_is_unavailable_at_once(self):
        folder = tempfile.mkdtemp()
        c = Client(os.path.join(folder, "none.sock"), timeout=TIMEOUT)
        r, took = Timed(c).predict(b"\xff\xd8", 1, 1)
        self.assertEqual(r.error, "unavailable")
        self.assertLess(took, TIMEOUT)
        self.assertFalse(c.feedback("some-id", "color", "red"))

    def test_a_server_that_never_answers_is_a_timeout_at_the_deadline(self):
        took, _ = self.failure("silent", "timeout")
        self.assertGreaterEqual(took, TIMEOUT - 0.005)

    def test_the_deadline_is_for_the_whole_call_not_each_read(self):
        # A byte every 100 ms would keep a per-read timeout waiting forever.
        took, _ = self.failure("drip", "timeout")
        self.assertGreaterEqual(took, TIMEOUT - 0.005)

    def test_overloaded_is_passed_through_and_not_retried(self):
        took, fake = self.failure((503, "overloaded"), "overloaded")
        self.assertLess(took, TIMEOUT)
        self.assertEqual(fake.requests, 1)
        self.failure((503, "not_ready"), "not_ready")

    def test_rate_limited_is_passed_through(self):
        _, fake = self.failure((429, "rate_limited"), "rate_limited")
        self.assertEqual(fake.requests, 1)

    def test_an_answer_cut_short_is_unavailable(self):
        self.failure("cut", "unavailable")

    def test_a_proxy_error_page_is_unavailable(self):
        self.failure((502, b"<html>Bad Gateway</html>"), "unavailable")

    def test_refused_input_passes_the_daemons_code_through(self):
        self.failure((422, "invalid_image"), "invalid_image")

    def test_the_circuit_opens_after_failures_in_a_row_then_closes(self):
        fake = FakeServer("silent")
        self.addCleanup(fake.close)
        c = Client(fake.socket, timeout=0.1, failures=3, cooldown=0.5)
        for _ in range(3):
            self.assertEqual(c.predict(b"x", 1, 1).error, "timeout")
        r, took = Timed(c).predict(b"x", 1, 1)
        self.assertEqual(r.error, "circuit_open")
        self.assertLess(took, 0.02)
        self.assertFalse(c.feedback("id", "color", "red"))
        self.assertEqual(fake.requests, 3)
        time.sleep(0.55)
        self.assertEqual(c.predict(b"x", 1, 1).error, "timeout")
        self.assertEqual(fake.requests, 4)

    def test_an_answer_closes_the_circuit(self):
        fake = FakeServer((422, "invalid_image"))
        self.addCleanup(fake.close)
        c = Client(fake.socket, timeout=TIMEOUT, failures=1, cooldown=60)
        for _ in range(3):
            self.assertEqual(c.predict(b"x", 1, 1).error, "invalid_image")

    def test_bad_arguments_do_not_raise(self):
        folder = tempfile.mkdtemp()
        c = Client(os.path.join(folder, "none.sock"), timeout=TIMEOUT)
        self.assertEqual(c.predict(os.path.join(folder, "missing.jpg"), 1, 1).error, "not_found")
        self.assertFalse(c.predict(None, 1, 1).ok)
        self.assertFalse(c.feedback(None, "color", "red"))


class RealDaemon(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.daemon = Daemon().start()

    @classmethod
    def tearDownClass(cls):
        cls.daemon.close()

    def test_suggestions_and_feedback(self):
        c = Client(self.daemon.socket, timeout=10)
        r = c.predict(photo("tuxpaint-strawberry2.jpg"), 149, 333)
        self.assertTrue(r.ok, r)
        self.assertIsNone(r.error)
        self.assertEqual(sorted(r.predictions), ["color", "theme"])
        self.assertEqual(r.predictions["color"][0]["label"], "red")
        self.assertEqual(r.predictions["theme"][0]["label"], "Food & Cooking")
        self.assertEqual(len(r.predictions["theme"]), 5)
        self.assertTrue(c.feedback(r.id, "theme", "Food & Cooking"))
        self.assertFalse(c.feedback("no-such-id", "theme", "Food & Cooking"))

    def test_models_top_and_a_path(self):
        c = Client(self.daemon.socket, timeout=10)
        r = c.predict(os.path.join(PHOTOS, "skimage-coffee.jpg"), 10, 10, models=["color"], top=2)
        self.assertTrue(r.ok, r)
        self.assertEqual(list(r.predictions), ["color"])
        self.assertEqual(len(r.predictions["color"]), 2)
        r = c.predict(photo("skimage-coffee.jpg"), 10, 10, models=["a b&c"])
        self.assertEqual((r.status, r.error), (404, "not_found"))

    def test_refused_input(self):
        c = Client(self.daemon.socket, timeout=10)
        self.assertEqual(c.predict(b"", 1, 1).error, "invalid_image")
        self.assertEqual(c.predict(b"not an image", 1, 1).error, "unsupported_media_type")
        self.assertEqual(c.predict(photo("skimage-coffee.jpg"), 10 ** 6, 1).error,
                         "point_out_of_bounds")
        jpeg = photo("skimage-coffee.jpg")
        self.assertEqual(c.predict(jpeg[: len(jpeg) // 2], 1, 1).error, "invalid_image")


class RestartedAndReloadedUnderLoad(unittest.TestCase):
    """Three application threads call predict without pause while the
    daemon is reloaded, stopped and started again."""

    def test_no_call_raises_or_misses_its_deadline(self):
        daemon = Daemon().start()
        self.addCleanup(daemon.close)
        timeout = 1.0
        client = Client(daemon.socket, timeout=timeout, failures=5, cooldown=0.2)
        jpeg = photo("skimage-coffee.jpg")
        phase = ["reload"]
        outcomes = []
        lock = threading.Lock()
        done = threading.Event()

        def user():
            while not done.is_set():
                # The phase the call started in: a call begun while the
                # daemon was still draining may end, answered, after stop().
                started_in = phase[0]
                t = time.monotonic()
                try:
                    r = client.predict(jpeg, 100, 100)
                except Exception as e:  # the client must never raise
                    r = Result(error=f"raised {e!r}")
                took = time.monotonic() - t
                with lock:
                    outcomes.append((started_in, r.ok, r.error, took))

        users = [threading.Thread(target=user) for _ in range(3)]
        for u in users:
            u.start()
        try:
            # Reloads: every call succeeds.
            for _ in range(3):
                time.sleep(0.4)
                daemon.signal(signal.SIGHUP)
            time.sleep(1.0)
            # Stopped: calls answer without suggestions, at once or at the deadline.
            phase[0] = "stopping"
            daemon.stop()
            phase[0] = "stopped"
            time.sleep(1.0)
            # Started again: suggestions come back.
            phase[0] = "restarting"
            daemon.start(wait=False)
            daemon.wait_ready()
            time.sleep(0.5)  # past the circuit's cooldown
            phase[0] = "after"
            time.sleep(1.0)
        finally:
            done.set()
            for u in users:
                u.join()

        def count(name):
            return [o for o in outcomes if o[0] == name]

        late = [o for o in outcomes if o[3] > timeout + SLACK]
        raised = [o for o in outcomes if o[2] and o[2].startswith("raised")]
        reload_failed = [o for o in count("reload") if not o[1]]
        stopped_ok = [o for o in count("stopped") if o[1]]
        after_ok = [o for o in count("after") if o[1]]
        errors = sorted({str(o[2]) for o in count("stopped")})
        print(f"\nunder load: {len(outcomes)} calls; reload phase {len(count('reload'))} "
              f"({len(reload_failed)} without suggestions); stopped {len(count('stopped'))} "
              f"({errors}); after restart {len(after_ok)}/{len(count('after'))} with suggestions; "
              f"{len(late)} late, {len(raised)} raised")
        self.assertEqual(raised, [])
        self.assertEqual(late, [])
        self.assertEqual(reload_failed, [], "a reload failed a request")
        self.assertEqual(stopped_ok, [])
        self.assertTrue(set(errors) <= {"unavailable", "circuit_open", "timeout"}, errors)
        self.assertGreater(len(after_ok), 0)
        self.assertEqual(len(after_ok), len(count("after")), "failures after the restart")


if __name__ == "__main__":
    unittest.main()
