"""Run the poll cycle on a schedule until SIGTERM: the `twitchwatch run` daemon.

    sys.exit(run_daemon(load_config(path), path))

Threads. The main thread owns the signals and the systemd notifications.
APScheduler's BackgroundScheduler runs the poll job, one at a time
(`max_instances=1`, `coalesce=True`); the cycle fans checks out to its own
pools. A job that raises is counted and logged; the next one runs.

Signals. SIGTERM and SIGINT stop scheduling, tell the running cycle to stop
(checks in flight finish or are abandoned; finished ones are committed),
wait up to `monitor.stop_timeout_seconds`, and exit 0. SIGHUP re-reads the
config file: an invalid one is logged and the old config kept; a valid one
rebuilds the runtime between two cycles.

systemd. READY=1 once the database answered (the runtime is built) and the
metrics port is bound; STOPPING=1 at shutdown; WATCHDOG=1 every
WatchdogSec/2, but only while cycles really progress (see Progress), so a
hung cycle makes systemd restart the service.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from apscheduler.events import EVENT_JOB_ERROR, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor import systemd
from monitor.config import Config, load_config
from monitor.errors import ConfigError, TwitchwatchError
from monitor.helix import MAX_RATELIMIT_WAIT_SECONDS
from monitor.metrics import Metrics, MetricsServer

log = logging.getLogger(__name__)

JOB_ID = "poll"
# Time a running cycle may spend with no check, stage or Helix answer on top
# of the slowest legitimate silence: one capture at its cap, a rate-limit
# wait and a couple of request timeouts. It covers decoding and inference
# queued behind the CPU slots and a database commit on a busy machine.
STALL_SLACK_SECONDS = 60.0



class Closable(Protocol):
    """What the daemon itself does with a runtime (monitor.cycle.Runtime): hand it to cycles, close it."""

    def close(self) -> None: ...


class CycleReport(Protocol):
    """What the daemon reads of a finished cycle (monitor.cycle.CycleSummary): its summary, for STATUS=."""

    def to_json(self) -> dict[str, Any]: ...


RuntimeT = TypeVar("RuntimeT", bound=Closable)
# One cycle over the runtime, told to wrap up when the event is set: run_cycle, or a test's stand-in.
CycleFn = Callable[[RuntimeT, threading.Event], CycleReport | None]
RuntimeFactory = Callable[[Config, Metrics], RuntimeT]
# How often the job runs, from the config: the poll interval, or the scheduler role's tick.
IntervalOf = Callable[[Config], float]


def poll_interval(cfg: Config) -> float:
    """Return the single daemon's job interval: one poll cycle every monitor.interval_seconds."""
    return cfg.monitor.interval_seconds


def stall_bound(cfg: Config) -> float:
    """Return how long a running cycle may go without activity before it counts as hung."""
    return (cfg.monitor.capture_timeout_seconds + 2 * cfg.twitch.request_timeout_seconds
            + MAX_RATELIMIT_WAIT_SECONDS + STALL_SLACK_SECONDS)


def jitter_seconds(interval: float) -> float:
    """Return the random delay added to each cycle's start, so workers drift apart."""
    return min(30.0, interval * 0.1)


class Progress:
    """Tell whether cycles really progress, which is what the watchdog pings vouch for.

    While a cycle runs, it progresses when its start or its last activity
    (a check finished, a stage timed, a Helix answer) is at most `stall`
    seconds old: a slow cycle with many streams keeps progressing, a hung
    one does not. Between cycles, the next one is due within the interval
    plus its jitter; a scheduler that stopped starting cycles fails that.
    """

    def __init__(self, interval: float, stall: float, clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self.stall = stall
        self._clock = clock
        self._lock = threading.Lock()
        self._started: float | None = None
        self._last_end = clock()  # the start of the daemon: the first cycle is due at once
        self.cycles = 0
        self.idle = threading.Event()
        self.idle.set()

    def cycle_started(self) -> None:
        """Mark the start of a cycle."""
        with self._lock:
            self._started = self._clock()
            self.idle.clear()

    def cycle_ended(self) -> None:
        """Mark the end of a cycle, whether it finished or raised."""
        with self._lock:
            self._started = None
            self._last_end = self._clock()
            self.cycles += 1
            self.idle.set()

    def healthy(self, last_activity: float) -> bool:
        """Return whether cycles progress, given the monotonic time of the last activity."""
        now = self._clock()
        with self._lock:
            if self._started is not None:
                return now - max(self._started, last_activity) <= self.stall
            return now - self._last_end <= self.interval + jitter_seconds(self.interval) + self.stall


def run_daemon(
    cfg: Config,
    config_path: str | None,
    *,
    cycle_fn: CycleFn[RuntimeT] | None = None,
    runtime_factory: RuntimeFactory[RuntimeT] | None = None,
    stall_seconds: float | None = None,
    hard_exit: Callable[[int], Any] = os._exit,
    interval_of: IntervalOf = poll_interval,
) -> int:
    """Poll on the schedule until SIGTERM or SIGINT; return the exit code.

    `cycle_fn` and `runtime_factory` default to monitor.cycle's run_cycle and
    Runtime; `stall_seconds` defaults to stall_bound(cfg); the job runs every
    `interval_of(cfg)` seconds (monitor.scheduler ticks faster). When the running
    cycle outlives the stop timeout, its threads cannot be joined, so the
    process ends through `hard_exit(0)` after logging what it abandons.
    """
    if cycle_fn is None or runtime_factory is None:
        from monitor.cycle import Runtime, run_cycle

        cycle_fn = cycle_fn or run_cycle  # type: ignore[assignment]  # RuntimeT is Runtime here
        runtime_factory = runtime_factory or Runtime  # type: ignore[assignment]
    daemon = _Daemon(cfg, config_path, cycle_fn, runtime_factory,
                     stall_seconds if stall_seconds is not None else stall_bound(cfg), hard_exit, interval_of)
    return daemon.run()


class _Daemon(Generic[RuntimeT]):
    rt: RuntimeT  # built by run(), before the scheduler starts the first cycle

    def __init__(self, cfg: Config, config_path: str | None, cycle_fn: CycleFn[RuntimeT],
                 runtime_factory: RuntimeFactory[RuntimeT], stall: float, hard_exit: Callable[[int], Any],
                 interval_of: IntervalOf = poll_interval):
        self.cfg = cfg
        self.interval_of = interval_of
        self.config_path = config_path
        self.cycle_fn = cycle_fn
        self.runtime_factory = runtime_factory
        self.hard_exit = hard_exit
        self.metrics = Metrics()
        self.metrics.set_interval(cfg.monitor.interval_seconds)
        self.progress = Progress(interval_of(cfg), stall)
        self.stop = threading.Event()  # tells the running cycle to wrap up
        self._lock = threading.Lock()  # orders a job's start against the stop
        self._pending: Config | None = None  # a reloaded config, applied before the next cycle
        self._wake = threading.Event()
        self._stop_requested = False
        self._reload_requested = False
        self._watchdog = systemd.watchdog_period()
        self._last_ping = float("-inf")
        self._stall_logged = False
        self._cycles_reported = 0
        self._last_summary: CycleReport | None = None

    # -- main thread ----------------------------------------------------------

    def run(self) -> int:
        _quiet_scheduler_tracebacks()
        server = serve_metrics(self.metrics, self.cfg)
        try:
            self.rt = self.runtime_factory(self.cfg, self.metrics)
        except BaseException:
            server.shutdown()
            raise
        try:
            previous = self._install_signals()
            try:
                scheduler = self._start_scheduler()
                self._announce_ready(server)
                self._loop(scheduler)
            finally:
                # A second SIGTERM during the stop wait now ends the process at once.
                _restore_signals(previous)
            return self._shutdown(scheduler)
        finally:
            server.shutdown()

    def _announce_ready(self, server: MetricsServer) -> None:
        mon = self.cfg.monitor
        watched = len(self.cfg.categories.watch)
        systemd.notify(f"READY=1\nSTATUS=polling {watched} categories every {mon.interval_seconds}s; "
                       f"metrics on {server.addr}:{server.port}")
        log.info("daemon ready: %d categories every %ds, metrics on http://%s:%d/metrics, watchdog %s",
                 watched, mon.interval_seconds, server.addr, server.port,
                 f"{self._watchdog:g}s" if self._watchdog else "off")

    def _install_signals(self) -> dict[int, Any]:
        previous = {}
        for signum, handler in ((signal.SIGTERM, self._on_stop), (signal.SIGINT, self._on_stop),
                                (signal.SIGHUP, self._on_reload)):
            previous[signum] = signal.signal(signum, handler)
        return previous

    def _on_stop(self, signum: int, frame: Any) -> None:
        self._stop_requested = True
        self._wake.set()

    def _on_reload(self, signum: int, frame: Any) -> None:
        self._reload_requested = True
        self._wake.set()

    def _loop(self, scheduler: BackgroundScheduler) -> None:
        tick = min(1.0, self._watchdog / 4) if self._watchdog else 1.0
        while not self._stop_requested:
            self._wake.wait(tick)
            self._wake.clear()
            if self._reload_requested:
                self._reload_requested = False
                self._reload(scheduler)
            self._tend_systemd()

    def _tend_systemd(self) -> None:
        """Ping the watchdog while cycles progress; report the last cycle in STATUS."""
        if self.progress.cycles != self._cycles_reported:
            self._cycles_reported = self.progress.cycles
            systemd.notify(f"STATUS={_status_line(self._cycles_reported, self._last_summary)}")
        if not self._watchdog or time.monotonic() - self._last_ping < self._watchdog / 2:
            return
        if self.progress.healthy(self.metrics.last_activity()):
            systemd.notify("WATCHDOG=1")
            self._last_ping = time.monotonic()
            self._stall_logged = False
        elif not self._stall_logged:
            log.error("cycles made no progress for over %.0fs: no longer pinging the systemd watchdog",
                      self.progress.stall)
            self._stall_logged = True

    def _reload(self, scheduler: BackgroundScheduler) -> None:
        try:
            new = load_config(self.config_path)
        except ConfigError as exc:
            log.error("SIGHUP: keeping the current configuration: %s", exc)
            return
        old = self.cfg
        if (new.monitor.metrics_addr, new.monitor.metrics_port) != (old.monitor.metrics_addr,
                                                                    old.monitor.metrics_port):
            log.warning("SIGHUP: a new metrics address or port takes effect on restart only")
        if self.interval_of(new) != self.interval_of(old):
            scheduler.reschedule_job(JOB_ID, trigger=_trigger(self.interval_of(new)))
            self.progress.interval = self.interval_of(new)
        self.metrics.set_interval(new.monitor.interval_seconds)
        self.cfg = new
        with self._lock:
            self._pending = new
        log.info("SIGHUP: configuration reloaded from %s; applied before the next cycle", new.source)

    def _shutdown(self, scheduler: BackgroundScheduler) -> int:
        timeout = self.cfg.monitor.stop_timeout_seconds
        systemd.notify("STOPPING=1")
        scheduler.shutdown(wait=False)
        with self._lock:
            self.stop.set()
        running = not self.progress.idle.is_set()
        if running:
            log.info("stopping: waiting up to %gs for the running cycle", timeout)
        deadline = time.monotonic() + timeout
        while not self.progress.idle.wait(min(0.2, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                log.error("the running cycle did not stop within %gs: abandoning its checks in flight "
                          "(finished checks are committed)", timeout)
                flush_logs()
                self.hard_exit(0)
                return 0  # reached only when hard_exit is a test double
            self._tend_systemd()
        try:
            self.rt.close()
        except Exception as exc:  # the process ends anyway; say what could not be closed
            log.warning("closing the runtime failed: %s: %s", type(exc).__name__, exc)
        log.info("stopped after %d cycles; %d checks recorded", self.progress.cycles, self.metrics.checks_recorded())
        return 0

    # -- scheduler thread -----------------------------------------------------

    def _start_scheduler(self) -> BackgroundScheduler:
        interval = self.interval_of(self.cfg)
        scheduler = BackgroundScheduler(executors={"default": ThreadPoolExecutor(1)}, timezone=UTC)
        scheduler.add_listener(self._on_job_error, EVENT_JOB_ERROR)
        scheduler.add_job(
            self._job, trigger=_trigger(interval), id=JOB_ID, name="poll cycle",
            coalesce=True, max_instances=1,
            # A cycle that starts late still runs, unless the next one is due.
            misfire_grace_time=max(1, int(interval * 0.9)),
            next_run_time=datetime.now(UTC),
        )
        scheduler.start()
        return scheduler

    def _job(self) -> None:
        with self._lock:
            if self.stop.is_set():
                return
            self.progress.cycle_started()
            pending, self._pending = self._pending, None
        try:
            if pending is not None:
                self._rebuild_runtime(pending)
            self._last_summary = self.cycle_fn(self.rt, self.stop)
        finally:
            self.progress.cycle_ended()

    def _rebuild_runtime(self, cfg: Config) -> None:
        try:
            new = self.runtime_factory(cfg, self.metrics)
        except Exception as exc:
            log.error("reload: cannot build a runtime from %s (%s: %s); keeping the previous one",
                      cfg.source, type(exc).__name__, exc)
            return
        old, self.rt = self.rt, new
        try:
            old.close()
        except Exception as exc:
            log.warning("reload: closing the previous runtime failed: %s: %s", type(exc).__name__, exc)
        log.info("runtime rebuilt from %s", cfg.source)

    def _on_job_error(self, event: JobExecutionEvent) -> None:
        self.metrics.job_error()
        exc = event.exception
        log.error("cycle failed: %s: %s", type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        log.debug("cycle failure traceback:\n%s", event.traceback)


def serve_metrics(metrics: Metrics, cfg: Config) -> MetricsServer:
    """Serve /metrics on monitor.metrics_addr:metrics_port; a taken port is one clear error."""
    mon = cfg.monitor
    try:
        return metrics.serve(mon.metrics_addr, mon.metrics_port)
    except OSError as exc:
        raise TwitchwatchError(
            f"cannot serve metrics on {mon.metrics_addr}:{mon.metrics_port}: {exc.strerror or exc} "
            "(set monitor.metrics_addr / monitor.metrics_port)"
        ) from None


def _trigger(interval: float) -> IntervalTrigger:
    return IntervalTrigger(seconds=interval, jitter=jitter_seconds(interval), timezone=UTC)


def _status_line(cycles: int, summary: CycleReport | None) -> str:
    if summary is None:
        return f"{cycles} cycles run"
    if hasattr(summary, "status_line"):  # a report that says for itself what it did (monitor.scheduler)
        return summary.status_line()
    s = summary.to_json()
    return (f"{cycles} cycles run; last: {s.get('checks', 0)} checks, {s.get('completed', 0)} completed, "
            f"{s.get('flags_opened', 0)} flags opened, {s.get('wall_seconds', 0):.0f}s")


def _quiet_scheduler_tracebacks() -> None:
    # APScheduler logs a failed job with a multi-line traceback; our listener
    # logs it in one journald line and keeps the traceback for --debug.
    if not log.isEnabledFor(logging.DEBUG):
        logging.getLogger("apscheduler.executors.default").setLevel(logging.CRITICAL)


def _restore_signals(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def flush_logs() -> None:
    """Flush the log handlers and the standard streams, before a hard exit."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.flush()
    sys.stdout.flush()
