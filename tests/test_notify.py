from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import generate_latest

from monitor.metrics import Metrics
from monitor.notify import Notifier


class Receiver:
    """A local webhook receiver that fails its first `failures` requests."""

    def __init__(self, failures: int = 0, delay: float = 0.0):
        self.failures = failures
        self.delay = delay
        self.bodies: list[dict] = []
        self.attempts = 0
        self.got = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                receiver.attempts += 1
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(receiver.delay)
                if receiver.attempts <= receiver.failures:
                    self.send_response(503)
                    self.end_headers()
                    return
                receiver.bodies.append(json.loads(body))
                assert self.headers["Content-Type"] == "application/json"
                self.send_response(204)
                self.end_headers()
                receiver.got.set()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver_factory():
    made = []

    def make(**kwargs):
        made.append(Receiver(**kwargs))
        return made[-1]

    yield make
    for r in made:
        r.close()


def deliveries(m: Metrics, result: str) -> float:
    line = f'twitchwatch_webhook_deliveries_total{{result="{result}"}}'
    for text in generate_latest(m.registry).decode().splitlines():
        if text.startswith(line):
            return float(text.split()[-1])
    return 0.0


def test_an_event_is_posted_as_json(receiver_factory):
    rx = receiver_factory()
    m = Metrics()
    n = Notifier(rx.url, m)
    n.send({"action": "open", "flag": {"user_login": "alice", "confidence": 0.9}})
    n.close()
    assert rx.bodies == [{"action": "open", "flag": {"user_login": "alice", "confidence": 0.9}}]
    assert deliveries(m, "ok") == 1


def test_failed_posts_are_retried_with_growing_backoff(receiver_factory):
    rx = receiver_factory(failures=2)
    m = Metrics()
    delays: list[float] = []
    n = Notifier(rx.url, m, retries=3, backoff_seconds=0.01, sleep=lambda s: (delays.append(s), time.sleep(s)))
    n.send({"action": "close", "flag": {"id": 1}})
    assert rx.got.wait(5)
    n.close()
    assert rx.attempts == 3
    assert delays == [0.01, 0.02]
    assert deliveries(m, "ok") == 1 and deliveries(m, "failed") == 0


def test_a_receiver_that_keeps_failing_is_counted_not_raised(receiver_factory):
    rx = receiver_factory(failures=100)
    m = Metrics()
    n = Notifier(rx.url, m, retries=2, backoff_seconds=0.001)
    n.send({"action": "open", "flag": {}})
    n.close()
    assert rx.attempts == 3
    assert deliveries(m, "failed") == 1


def test_an_unreachable_receiver_is_counted_as_failed():
    m = Metrics()
    # Port 9 on loopback: nothing listens, the connection is refused at once.
    n = Notifier("http://127.0.0.1:9/hook", m, retries=1, backoff_seconds=0.001)
    n.send({"action": "open", "flag": {}})
    n.close()
    assert deliveries(m, "failed") == 1


def test_send_never_blocks_on_a_slow_receiver(receiver_factory):
    rx = receiver_factory(delay=1.0)
    n = Notifier(rx.url, Metrics())
    started = time.monotonic()
    for i in range(5):
        n.send({"action": "open", "flag": {"id": i}})
    assert time.monotonic() - started < 0.5
    n.close(timeout=0.1)
    # close() is bounded: events still queued at its deadline are dropped, not sent later.
    time.sleep(1.5)
    assert rx.attempts <= 1


def test_a_full_queue_drops_and_counts_new_events(receiver_factory):
    rx = receiver_factory(delay=0.5)
    m = Metrics()
    n = Notifier(rx.url, m, queue_size=1)
    for i in range(5):
        n.send({"action": "open", "flag": {"id": i}})
    assert deliveries(m, "dropped") >= 3
    n.close(timeout=0.1)


def test_datetimes_in_events_are_sent_as_text(receiver_factory):
    from datetime import UTC, datetime

    rx = receiver_factory()
    n = Notifier(rx.url, Metrics())
    n.send({"action": "open", "flag": {"first_seen": datetime(2024, 1, 1, tzinfo=UTC)}})
    n.close()
    assert rx.bodies[0]["flag"]["first_seen"].startswith("2024-01-01")


def test_an_empty_url_is_a_no_op():
    m = Metrics()
    threads_before = sum(t.name == "webhook" for t in threading.enumerate())
    n = Notifier("", m)
    assert sum(t.name == "webhook" for t in threading.enumerate()) == threads_before
    n.send({"action": "open"})
    n.close()
    assert deliveries(m, "ok") == deliveries(m, "failed") == deliveries(m, "dropped") == 0
