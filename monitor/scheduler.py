"""`twitchwatch run --role scheduler`: poll Helix on the schedule and queue one check per channel.

    sys.exit(run_scheduler(cfg, config_path))   # the daemon (monitor.daemon) ticking scheduler_tick
    report = schedule_once(cfg)                  # `run --role scheduler --once`: one cycle, now

Several schedulers may run, on several machines, for failover; one is
active: the one holding a PostgreSQL advisory lock (`Leadership`), which
PostgreSQL releases when its holder's connection ends, as when the process
dies. The daemon runs `scheduler_tick` every `queue.failover_seconds`:

- a standby tries to take the lock, and otherwise does nothing;
- the active one puts the checks of silent workers back in the queue
  (`queue.stalled_seconds`), and once per `monitor.interval_seconds` runs a
  cycle: list the watched categories' top streams, close the flags of
  channels that left (as the single daemon does), queue one check per
  channel (monitor.checkqueue). A scheduler that takes over keeps the
  schedule: its first cycle is due an interval after the last one queued.

Workers (monitor/worker.py) run the checks. The lock is held on a
connection of its own, idle outside a tick: no row lock, no open
transaction across Helix or video I/O.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

from monitor.checkqueue import CheckQueue, EnqueueReport, conninfo
from monitor.config import Config
from monitor.cycle import CycleSummary, Runtime, list_streams, refresh_drift, refresh_open_flags
from monitor.errors import TwitchwatchError
from monitor.metrics import Metrics

log = logging.getLogger(__name__)

# pg_try_advisory_lock(LOCK_CLASS, hashtext(current_schema())): one scheduler per twitchwatch schema.
LOCK_CLASS = 0x74770001
# The server drops a silent holder's connection (and so the lock) after about idle + interval x count.
SERVER_KEEPALIVE = {"tcp_keepalives_idle": 10, "tcp_keepalives_interval": 5, "tcp_keepalives_count": 3}
CLEANUP_EVERY_SECONDS = 3600.0


class AnotherSchedulerActive(TwitchwatchError):
    """`run --role scheduler --once` while another scheduler holds the lock."""


class Leadership:
    """Hold, or keep trying for, the advisory lock that makes one scheduler the active one."""

    def __init__(self, database_url: str):
        self._conninfo = conninfo(database_url)
        self._conn: psycopg.Connection | None = None
        self.active = False
        self._unreachable = False  # said so once, until the database answers again

    def hold(self) -> bool:
        """Return whether this process holds the lock now: keep it, or try to take it."""
        try:
            if self._conn is None:
                self._conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=10,
                                             keepalives=1, keepalives_idle=10, keepalives_interval=5,
                                             keepalives_count=3)
                for name, value in SERVER_KEEPALIVE.items():
                    self._conn.execute(f"SET {name} = {int(value)}")
            if self.active:
                self._conn.execute("SELECT 1")
            else:
                row = self._conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(current_schema()))",
                                         (LOCK_CLASS,)).fetchone()
                self.active = bool(row and row[0])
            self._unreachable = False
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if self.active:
                log.error("lost the scheduler lock: the database connection broke (%s); standing by", reason)
            elif not self._unreachable:
                log.warning("cannot reach the database for the scheduler lock (%s); trying again", reason)
            self._unreachable = True
            self.release()
        return self.active

    def release(self) -> None:
        """Give the lock up, then close its connection."""
        was_active, self.active = self.active, False
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if was_active:
                # Unlock before closing: the server frees a closed session's locks only when its backend
                # has exited, which may be after a standby's next try.
                conn.execute("SELECT pg_advisory_unlock_all()")
        except psycopg.Error:
            pass  # the connection is gone, and the lock with it
        try:
            conn.close()
        except psycopg.Error:
            pass


@dataclass
class TickReport:
    """What one tick did: a cycle when one was due, and stalled checks requeued."""

    active: bool
    stalled_requeued: int = 0
    cycle: dict[str, Any] | None = None  # ScheduleSummary.to_json() of the cycle run in this tick
    queue: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"active": self.active, "stalled_requeued": self.stalled_requeued, "cycle": self.cycle,
                "queue": dict(self.queue)}

    def status_line(self) -> str:
        """Return the systemd STATUS= line."""
        if not self.active:
            return "standby: another scheduler is active"
        queue = f"queue {self.queue.get('todo', 0)} waiting, {self.queue.get('doing', 0)} running"
        return f"active; {queue}"


@dataclass
class ScheduleSummary:
    """One scheduling cycle, as `run --role scheduler --once --json` prints it."""

    listed: int = 0
    enqueue: EnqueueReport = field(default_factory=EnqueueReport)
    flags_closed: int = 0
    categories_failed: list[str] = field(default_factory=list)
    listed_at: float = 0.0
    wall_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"listed": self.listed, **self.enqueue.to_json(), "flags_closed": self.flags_closed,
                "categories_failed": list(self.categories_failed), "listed_at": self.listed_at,
                "wall_seconds": round(self.wall_seconds, 3)}


class SchedulerRuntime:
    """The scheduler's long-lived parts: the daemon's Runtime (store, Helix), the queue, the lock."""

    def __init__(self, cfg: Config, metrics: Metrics | None = None):
        self.cfg = cfg
        self.metrics = metrics or Metrics()
        self.leader = Leadership(cfg.storage.database_url)  # refuses SQLite before anything opens
        self.runtime = Runtime(cfg, self.metrics)
        try:
            self.queue = CheckQueue(cfg.storage.database_url).open()
        except BaseException:
            self.runtime.close()
            raise
        self.next_cycle: float | None = None  # Unix time the next cycle is due, once active
        self._last_cleanup = 0.0
        self._standby_logged = False

    def close(self) -> None:
        """Give the lock up and close the connections."""
        self.leader.release()
        self.queue.close()
        self.runtime.close()


def scheduler_tick(srt: SchedulerRuntime, stop: threading.Event | None = None) -> TickReport:
    """Keep or try for the lock; when active, requeue stalled checks and run a cycle if one is due."""
    stop = stop or threading.Event()
    was_active = srt.leader.active
    active = srt.leader.hold()
    srt.metrics.set_scheduler_active(active)
    if not active:
        if was_active:
            srt.metrics.set_open_flags({})  # the active scheduler exports them now
        if not srt._standby_logged:
            log.info("standby: another scheduler holds the lock; trying every %gs", srt.cfg.queue.failover_seconds)
            srt._standby_logged = True
        return TickReport(active=False)
    if not was_active:
        srt._standby_logged = False
        last = srt.queue.last_listing()
        srt.next_cycle = time.time() if last is None else last + srt.cfg.monitor.interval_seconds
        log.info("this scheduler is now the active one; next cycle %s",
                 "now" if srt.next_cycle <= time.time() else f"in {srt.next_cycle - time.time():.0f}s")
    report = TickReport(active=True, stalled_requeued=srt.queue.recover_stalled(srt.cfg.queue.stalled_seconds))
    srt.metrics.stalled_checks(report.stalled_requeued)
    if srt.next_cycle is not None and time.time() >= srt.next_cycle and not stop.is_set():
        summary = schedule_cycle(srt)
        srt.next_cycle = summary.listed_at + srt.cfg.monitor.interval_seconds
        report.cycle = summary.to_json()
    if time.monotonic() - srt._last_cleanup >= CLEANUP_EVERY_SECONDS:
        srt.queue.delete_finished()
        srt._last_cleanup = time.monotonic()
    report.queue = srt.queue.counts()
    srt.metrics.set_check_queue(report.queue)
    return report


def schedule_cycle(srt: SchedulerRuntime) -> ScheduleSummary:
    """List every watched category's top streams, close the flags of channels gone, queue their checks."""
    rt = srt.runtime
    started = time.monotonic()
    summary = ScheduleSummary(listed_at=time.time())
    listing = CycleSummary()
    streams = list_streams(rt, listing, rt.category_names())
    summary.listed, summary.flags_closed = len(streams), listing.flags_closed
    summary.categories_failed = list(listing.categories_failed)
    summary.enqueue = srt.queue.enqueue(streams, listed_at=summary.listed_at)
    srt.metrics.checks_enqueued(summary.enqueue.to_json())
    refresh_open_flags(rt)
    refresh_drift(rt)
    summary.wall_seconds = time.monotonic() - started
    rt.metrics.cycle_done(summary.wall_seconds, ok=not summary.categories_failed)
    e = summary.enqueue
    log.info("cycle: %d streams listed, %d checks queued, %d still queued, %d still running, %d flags closed, "
             "%.1fs", summary.listed, e.queued, e.already_queued, e.running, summary.flags_closed,
             summary.wall_seconds)
    return summary


class _NoSkippedTicks(logging.Filter):
    """Drop APScheduler's warning for a tick that falls while a cycle still runs: a cycle outlasts ticks."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


def run_scheduler(cfg: Config, config_path: str | None) -> int:
    """Run the scheduler daemon until SIGTERM (monitor.daemon: signals, systemd, metrics)."""
    from monitor.daemon import run_daemon

    apscheduler_log = logging.getLogger("apscheduler.scheduler")
    if not any(isinstance(f, _NoSkippedTicks) for f in apscheduler_log.filters):
        apscheduler_log.addFilter(_NoSkippedTicks())
    return run_daemon(cfg, config_path, cycle_fn=scheduler_tick, runtime_factory=SchedulerRuntime,
                      interval_of=lambda c: c.queue.failover_seconds)


def schedule_once(cfg: Config) -> ScheduleSummary:
    """Run one scheduling cycle now; AnotherSchedulerActive when another scheduler holds the lock."""
    srt = SchedulerRuntime(cfg)
    try:
        if not srt.leader.hold():
            raise AnotherSchedulerActive(
                "another scheduler is active (it holds the scheduler lock): it queues the cycles; "
                "stop it first to queue one by hand")
        srt.metrics.stalled_checks(srt.queue.recover_stalled(cfg.queue.stalled_seconds))
        return schedule_cycle(srt)
    finally:
        srt.close()
