"""POST flag events to a webhook from a background thread, never blocking checks.

    notifier = Notifier(cfg.notify.webhook_url.get_secret_value(), metrics)
    notifier.send({"action": "open", "flag": {...}})   # returns at once
    notifier.close()                                   # delivers what is queued, bounded

Each event is one JSON POST. A failed delivery (no answer, or an HTTP status
other than 2xx) is retried with exponential backoff; after the last try it
is counted as failed and dropped. The queue is bounded: when the receiver is
down for long, new events are dropped and counted rather than piling up.
An empty URL makes every call a no-op.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from monitor.metrics import Metrics

log = logging.getLogger(__name__)

_CLOSE = object()


class Notifier:
    """Deliver events to one webhook URL on a daemon thread."""

    def __init__(
        self,
        url: str,
        metrics: Metrics | None = None,
        *,
        retries: int = 3,
        backoff_seconds: float = 1.0,
        timeout_seconds: float = 5.0,
        queue_size: int = 100,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.url = url
        self._metrics = metrics
        self._retries = retries
        self._backoff = backoff_seconds
        self._timeout = timeout_seconds
        self._sleep = sleep
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._closing = threading.Event()
        self._deadline = float("inf")  # set by close(): retries must end by then
        self._thread: threading.Thread | None = None
        if url:
            self._session = requests.Session()
            self._thread = threading.Thread(target=self._run, name="webhook", daemon=True)
            self._thread.start()

    def send(self, event: dict[str, Any]) -> None:
        """Queue one event for delivery and return at once."""
        if self._thread is None or self._closing.is_set():
            return
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            log.warning("webhook queue full: dropping a %s event", event.get("action", "flag"))
            self._count("dropped")

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued within `timeout` seconds, then stop the thread."""
        if self._thread is None or self._closing.is_set():
            return
        self._deadline = time.monotonic() + timeout
        self._closing.set()
        try:
            self._queue.put(_CLOSE, timeout=timeout)
        except queue.Full:
            pass
        self._thread.join(timeout)
        self._session.close()

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            if event is _CLOSE:
                return
            if time.monotonic() > self._deadline:
                # close() gave up waiting: what is left is dropped, not sent after shutdown.
                self._count("dropped")
                continue
            self._deliver(event)

    def _deliver(self, event: dict[str, Any]) -> None:
        body = json.dumps(event, default=str).encode("utf-8")
        attempts = self._retries + 1
        for attempt in range(1, attempts + 1):
            problem = self._post(body)
            if problem is None:
                self._count("ok")
                return
            delay = self._backoff * 2 ** (attempt - 1)
            if attempt < attempts and time.monotonic() + delay < self._deadline:
                log.info("webhook delivery failed (%s); retry %d/%d in %.1fs",
                         problem, attempt, self._retries, delay)
                self._sleep(delay)
            else:
                # Out of tries, or a retry would outlive close()'s bound.
                log.warning("webhook delivery failed after %d tries: %s", attempt, problem)
                self._count("failed")
                return

    def _post(self, body: bytes) -> str | None:
        """POST once; return None on success, else what went wrong."""
        try:
            response = self._session.post(
                self.url, data=body, timeout=self._timeout,
                headers={"Content-Type": "application/json", "User-Agent": "twitchwatch"},
            )
        except requests.RequestException as exc:
            return type(exc).__name__
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"

    def _count(self, result: str) -> None:
        if self._metrics is not None:
            self._metrics.webhook_delivery(result)
