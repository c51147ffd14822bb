"""`twitchwatch run --role worker`: run the queued checks, on any number of machines, until SIGTERM.

    sys.exit(run_worker(cfg))                 # a procrastinate worker on the PostgreSQL store
    summary = run_worker(cfg, once=True)      # `--once`: work the queue until it is empty, then exit

A worker takes `monitor.capture_workers` checks at once from the queue
(monitor.checkqueue), each in a thread, each exactly the check the single
daemon runs (monitor.check: capture, classify, store, flag); decoding and
inference share the core-bounded CPU slots. It never calls Helix: the
scheduler lists the streams and a job carries its stream.

It records a heartbeat every `queue.heartbeat_seconds`. Killed, frozen or
cut off, it stops beating, and the active scheduler hands its running
checks to another worker after `queue.stalled_seconds`.

Signals. SIGTERM and SIGINT stop taking checks; the running ones finish, up
to `monitor.stop_timeout_seconds`; those still running then are put back in
the queue at once (another worker takes them) and the process exits 0.
SIGHUP is ignored (restart a worker to change its configuration).

systemd. READY=1 once the database answered, the metrics port is bound and
the worker is registered; WATCHDOG=1 every WatchdogSec/2 while checks make
progress (or none is running); STOPPING=1 at shutdown. Its metrics carry the
`instance` of its own metrics port, so the dashboard shows each worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from procrastinate.worker import Worker

from monitor import systemd
from monitor.check import check_stream
from monitor.checkqueue import QUEUE, RUNNER, conninfo, worker_app
from monitor.config import Config
from monitor.cycle import Runtime
from monitor.daemon import flush_logs, serve_metrics, stall_bound
from monitor.errors import TwitchwatchError
from monitor.helix import Stream
from monitor.metrics import Metrics
from monitor.verdict import Outcome

log = logging.getLogger(__name__)

ALREADY_CHECKED = "already_checked"


@dataclass
class WorkSummary:
    """What a worker ran, as `run --role worker --once --json` prints it."""

    checks: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    already_checked: int = 0
    failed: int = 0
    wall_seconds: float = 0.0
    exit_code: int = 0  # 1: the worker stopped by itself (lost its database)

    def to_json(self) -> dict[str, Any]:
        return {"checks": self.checks, "verdicts": {o.value: self.verdicts.get(o.value, 0) for o in Outcome},
                "already_checked": self.already_checked, "failed": self.failed,
                "wall_seconds": round(self.wall_seconds, 3)}


class CheckRunner:
    """Run one queued check in a worker thread; know which are in flight."""

    def __init__(self, rt: Runtime):
        self.rt = rt
        self.summary = WorkSummary()
        self._lock = threading.Lock()
        self._in_flight: dict[int, str] = {}

    def in_flight(self) -> dict[int, str]:
        """Return {job id: login} of the checks running now."""
        with self._lock:
            return dict(self._in_flight)

    def __call__(self, stream: Stream, listed_at: float, job_id: int) -> str:
        with self._lock:
            self._in_flight[job_id] = stream.user_login
        try:
            return self._run(stream, listed_at, job_id)
        except Exception as exc:
            with self._lock:
                self.summary.failed += 1
            self.rt.metrics.job_error()
            if isinstance(exc, TwitchwatchError):  # says what failed and what to do: one line
                log.error("job %s: check of %s failed: %s: %s", job_id, stream.user_login, type(exc).__name__, exc)
            else:  # a bug: its traceback, once (procrastinate's own line stays one line)
                log.exception("job %s: check of %s failed unexpectedly", job_id, stream.user_login)
            raise
        finally:
            with self._lock:
                self._in_flight.pop(job_id, None)

    def _run(self, stream: Stream, listed_at: float, job_id: int) -> str:
        if self.rt.store.checked_since(stream.user_id, datetime.fromtimestamp(listed_at, UTC)):
            # An earlier attempt of this job committed its check, then its worker died before saying so.
            log.info("job %s: %s was checked since its cycle listed it: not checking it twice", job_id,
                     stream.user_login)
            with self._lock:
                self.summary.already_checked += 1
            return ALREADY_CHECKED
        log.info("job %s: checking %s (declared %s)", job_id, stream.user_login, stream.game_name or stream.game_id)
        result = check_stream(self.rt.check_context, stream, self.rt.classifier())
        with self._lock:
            self.summary.checks += 1
            self.summary.verdicts[result.outcome] += 1
        log.info("job %s: %s %s", job_id, stream.user_login, result.outcome)
        return result.outcome


def run_worker(cfg: Config, *, once: bool = False,
               runtime_factory: Callable[[Config, Metrics], Runtime] = Runtime) -> WorkSummary:
    """Run the worker until SIGTERM, or with once until no check is left to take; return what it ran."""
    conninfo(cfg.storage.database_url)  # PostgreSQL only: a clear ConfigError before anything starts
    _one_line_errors()
    metrics = Metrics()
    metrics.set_interval(cfg.monitor.interval_seconds)
    metrics.set_scheduler_active(False)
    server = None if once else serve_metrics(metrics, cfg)
    try:
        rt = runtime_factory(cfg, metrics)
        try:
            runner = CheckRunner(rt)
            started = time.monotonic()
            runner.summary.exit_code = asyncio.run(_Work(cfg, rt, runner, once).main())
            runner.summary.wall_seconds = time.monotonic() - started
        finally:
            rt.close()
    finally:
        if server is not None:
            server.shutdown()
    return runner.summary


class _Work:
    """The worker's event loop: the procrastinate worker, signals, systemd."""

    def __init__(self, cfg: Config, rt: Runtime, runner: CheckRunner, once: bool):
        self.cfg = cfg
        self.rt = rt
        self.runner = runner
        self.once = once
        self.stopping = False

    async def main(self) -> int:
        q, mon = self.cfg.queue, self.cfg.monitor
        app = worker_app(self.cfg.storage.database_url, pool_size=mon.capture_workers + 2)
        async with app.open_async():
            worker = Worker(
                app, queues=[QUEUE], name=f"twitchwatch@{socket.gethostname()}:{os.getpid()}",
                concurrency=mon.capture_workers, wait=not self.once,
                # Woken at once by NOTIFY when a job is queued; the polling catches requeued ones.
                fetch_job_polling_interval=min(5.0, q.heartbeat_seconds),
                additional_context={RUNNER: self.runner}, install_signal_handlers=False,
                update_heartbeat_interval=q.heartbeat_seconds, stalled_worker_timeout=q.stalled_seconds,
            )
            run = asyncio.create_task(worker.run(), name="procrastinate worker")
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self._on_stop, worker)
            loop.add_signal_handler(signal.SIGHUP, lambda: log.info("SIGHUP ignored: restart a worker to "
                                                                    "change its configuration"))
            tend = asyncio.create_task(self._tend_systemd(worker, run), name="systemd")
            try:
                await asyncio.wait([run])
            finally:
                tend.cancel()
                for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    loop.remove_signal_handler(signum)
            run.result()  # re-raise what ended the worker
        if self.stopping or self.once:
            log.info("worker stopped: %d checks run", self.runner.summary.checks)
            return 0
        log.error("the worker stopped by itself (lost the database?): exiting 1 for a restart")
        return 1

    def _on_stop(self, worker: Worker) -> None:
        if self.stopping:
            return
        self.stopping = True
        systemd.notify("STOPPING=1")
        in_flight = self.runner.in_flight()
        if in_flight:
            log.info("stopping: waiting up to %gs for %d running checks", self.cfg.monitor.stop_timeout_seconds,
                     len(in_flight))
        worker.stop()
        asyncio.get_running_loop().create_task(self._abandon_after_timeout(worker))

    async def _abandon_after_timeout(self, worker: Worker) -> None:
        await asyncio.sleep(self.cfg.monitor.stop_timeout_seconds)
        held = await self._held_jobs(worker)
        for job_id in held:
            try:
                await worker.app.job_manager.retry_job_by_id_async(job_id, retry_at=datetime.now(UTC))
            except Exception as exc:  # the scheduler requeues it after stalled_seconds anyway
                log.warning("job %s: cannot put it back in the queue (%s); it goes back once stalled", job_id, exc)
        log.error("the running checks did not finish within %gs: abandoned %s (back in the queue)",
                  self.cfg.monitor.stop_timeout_seconds, ", ".join(sorted(held.values())) or "none")
        flush_logs()
        os._exit(0)

    async def _held_jobs(self, worker: Worker) -> dict[int, str]:
        """Return {job id: login} of the checks this worker holds, started or only just fetched."""
        held = self.runner.in_flight()
        if worker.worker_id is None:
            return held
        try:
            rows = await worker.app.connector.execute_query_all_async(
                "SELECT id, args->'stream'->>'user_login' AS login FROM procrastinate_jobs "
                "WHERE worker_id = %(worker_id)s AND status = 'doing'", worker_id=worker.worker_id)
        except Exception as exc:  # the database is gone too: what this process knows of
            log.warning("cannot list this worker's checks (%s)", exc)
            return held
        return {**held, **{row["id"]: row["login"] for row in rows}}

    async def _tend_systemd(self, worker: Worker, run: asyncio.Task) -> None:
        """READY=1 once registered; WATCHDOG=1 while checks progress; STATUS= with the counts."""
        while worker.worker_id is None and not run.done():
            await asyncio.sleep(0.05)
        mon = self.cfg.monitor
        systemd.notify(f"READY=1\nSTATUS=worker: up to {mon.capture_workers} checks at once")
        log.info("worker %s ready: up to %d checks at once, heartbeat every %gs", worker.worker_id,
                 mon.capture_workers, self.cfg.queue.heartbeat_seconds)
        period = systemd.watchdog_period()
        stall = stall_bound(self.cfg)
        reported, pinged = -1, float("-inf")
        while True:
            await asyncio.sleep(min(1.0, period / 4) if period else 1.0)
            in_flight = self.runner.in_flight()
            if self.runner.summary.checks != reported:
                reported = self.runner.summary.checks
                systemd.notify(f"STATUS=worker: {reported} checks run, {len(in_flight)} running")
            # A loop that still turns is not enough: running checks must also show activity.
            healthy = not in_flight or time.monotonic() - self.rt.metrics.last_activity() <= stall
            if period and healthy and time.monotonic() - pinged >= period / 2:
                systemd.notify("WATCHDOG=1")
                pinged = time.monotonic()


class _NoTraceback(logging.Filter):
    """Keep procrastinate's job failure lines on one line: the check already logged why it failed."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        return True


def _one_line_errors() -> None:
    logger = logging.getLogger("procrastinate.worker")
    if not logging.getLogger().isEnabledFor(logging.DEBUG) and not any(
            isinstance(f, _NoTraceback) for f in logger.filters):
        logger.addFilter(_NoTraceback())
