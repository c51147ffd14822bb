"""The check queue: a cycle's checks spread over workers through procrastinate, on the PostgreSQL store.

    queue = CheckQueue(cfg.storage.database_url)       # PostgreSQL only, else ConfigError
    queue.open()                                       # the scheduler's side: plain calls
    report = queue.enqueue(streams, listed_at=time.time())   # one job per channel, never two
    queue.recover_stalled(cfg.queue.stalled_seconds)   # a dead worker's checks go back to the queue
    queue.counts()                                     # {"todo": 3, "doing": 4}
    queue.close()

    app = worker_app(cfg.storage.database_url, concurrency=4)   # the worker's side (monitor/worker.py)

A job is one check: the stream as Helix listed it and the time of the
listing. Its `queueing_lock` and `lock` are the channel (`channel:<user_id>`):
procrastinate refuses a second queued job of a channel and never runs two of
one channel at once, and `enqueue` also skips a channel whose job is running,
so a slow channel never piles up. A worker that dies mid-check stops beating
(`queue.heartbeat_seconds`); after `queue.stalled_seconds` the active
scheduler puts its job back in the queue for another worker. A job whose
channel already has an observation since its listing is not run again: its
first attempt committed before its worker died.

Jobs hold no database lock while they run: a job is a row whose status says
"doing", and the check's own writes are short transactions after the capture.
The tables are procrastinate's own (migration 0002); the few queries below
that procrastinate has no synchronous call for run its own SQL
(`procrastinate.sql.queries`) or read its jobs table.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import procrastinate
from procrastinate import exceptions as pq_exceptions
from procrastinate import sql as pq_sql
from procrastinate.tasks import Task
from sqlalchemy.engine import URL

from monitor.errors import ConfigError, StoreError
from monitor.helix import Stream
from monitor.store.engine import normalize_url, safe_url

log = logging.getLogger(__name__)

QUEUE = "checks"
TASK = "twitchwatch.check"
RUNNER = "run_check"  # the worker's additional_context key: (stream, listed_at, job_id) -> outcome
# Finished jobs are kept this long (for `procrastinate` inspection and the takeover's schedule), then deleted.
KEEP_FINISHED_HOURS = 24


def channel_lock(user_id: str) -> str:
    """Return the lock and queueing lock of a channel's checks."""
    return f"channel:{user_id}"


def conninfo(database_url: str | URL) -> str:
    """Return the libpq connection string of a PostgreSQL database URL; ConfigError on SQLite."""
    url = normalize_url(database_url)
    if url.get_backend_name() != "postgresql":
        raise ConfigError(
            f"config key storage.database_url is {safe_url(url)}: several processes share their checks "
            "through PostgreSQL only; set it to postgresql+psycopg://USER@HOST/DB, or run --role all")
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass
class EnqueueReport:
    """What one cycle's enqueue did, channel by channel."""

    queued: int = 0
    already_queued: int = 0  # a job of the channel still waits (workers behind)
    running: int = 0  # a job of the channel is being checked

    def to_json(self) -> dict[str, int]:
        return asdict(self)


def _register(app: procrastinate.App) -> Task:
    def run_check(context: procrastinate.JobContext, stream: dict, listed_at: float) -> str:
        runner = (context.additional_context or {}).get(RUNNER)
        if runner is None:  # a process that only enqueues was handed a job: cannot happen in a worker
            raise RuntimeError("this process runs no checks (no runner in the worker's context)")
        return runner(Stream(**stream), listed_at, context.job.id)

    return app.task(name=TASK, queue=QUEUE, pass_context=True)(run_check)


def worker_app(database_url: str | URL, *, pool_size: int) -> procrastinate.App:
    """Return the procrastinate app of a worker process (asynchronous connector, opened by the worker)."""
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(
        conninfo=conninfo(database_url), min_size=1, max_size=max(2, pool_size)))
    _register(app)
    return app


class CheckQueue:
    """The scheduler's side of the queue: enqueue a cycle, recover stalled checks, count."""

    def __init__(self, database_url: str | URL):
        self.url = normalize_url(database_url)
        self.app = procrastinate.App(connector=procrastinate.SyncPsycopgConnector(
            conninfo=conninfo(self.url), min_size=1, max_size=2))
        self._task = _register(self.app)
        self._opened = False

    def open(self) -> CheckQueue:
        """Connect (a small pool); StoreError when the database cannot be reached."""
        self._call("open", self.app.open)
        self._opened = True
        return self

    def close(self) -> None:
        """Close the pool."""
        if self._opened:
            self._opened = False
            self.app.close()

    def enqueue(self, streams: Iterable[Stream], *, listed_at: float) -> EnqueueReport:
        """Queue one check per stream, unless its channel's check is queued or running already."""
        report = EnqueueReport()
        running = {job.lock for job in self._call("list running jobs", self.app.job_manager.list_jobs,
                                                  queue=QUEUE, status="doing")}
        for stream in streams:
            lock = channel_lock(stream.user_id)
            if lock in running:
                report.running += 1
                continue
            deferrer = self._task.configure(lock=lock, queueing_lock=lock)
            try:
                self._call(f"enqueue {stream.user_login}", deferrer.defer, stream=asdict(stream),
                           listed_at=listed_at)
            except pq_exceptions.AlreadyEnqueued:
                report.already_queued += 1
            else:
                report.queued += 1
        return report

    def recover_stalled(self, stalled_seconds: float) -> int:
        """Put the running checks of workers silent for `stalled_seconds` back in the queue; return how many."""
        rows = self._query_all("find stalled checks", "select_stalled_jobs_by_heartbeat",
                               seconds_since_heartbeat=stalled_seconds, queue=QUEUE, task_name=TASK)
        for row in rows:
            try:
                self._call("requeue a stalled check", self.app.job_manager.retry_job_by_id,
                           job_id=row["id"], retry_at=datetime.now(UTC))
                log.warning("check job %s (%s) was running on a worker silent for over %.0fs: back in the queue",
                            row["id"], row["lock"], stalled_seconds)
            except pq_exceptions.UniqueViolation:
                # A newer check of the channel is queued already: that one will run; this one ends.
                self._query("end a superseded check", "finish_job", job_id=row["id"], status="failed",
                            delete_job=False)
                log.warning("check job %s (%s) was running on a silent worker; a newer one is queued: ended it",
                            row["id"], row["lock"])
        if rows:
            self._query("prune silent workers", "prune_stalled_workers", seconds_since_heartbeat=stalled_seconds)
        return len(rows)

    def counts(self) -> dict[str, int]:
        """Return the jobs waiting (todo) and running (doing)."""
        rows = self._raw_all(
            "count checks", "SELECT status::text AS status, count(*) AS n FROM procrastinate_jobs "
            "WHERE queue_name = %(queue)s AND status IN ('todo', 'doing') GROUP BY status", queue=QUEUE)
        out = {"todo": 0, "doing": 0}
        out.update({row["status"]: int(row["n"]) for row in rows})
        return out

    def last_listing(self) -> float | None:
        """Return when the newest queued cycle was listed (Unix seconds), by whichever scheduler."""
        rows = self._raw_all(
            "find the last cycle", "SELECT max((args->>'listed_at')::float) AS last FROM procrastinate_jobs "
            "WHERE queue_name = %(queue)s AND task_name = %(task)s", queue=QUEUE, task=TASK)
        return rows[0]["last"] if rows else None

    def delete_finished(self, hours: int = KEEP_FINISHED_HOURS) -> None:
        """Delete the checks finished more than `hours` ago."""
        self._query("delete old checks", "delete_old_jobs", nb_hours=hours, queue=QUEUE,
                    statuses=["succeeded", "failed", "aborted", "cancelled"])

    # -- plumbing ---------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (pq_exceptions.AlreadyEnqueued, pq_exceptions.UniqueViolation):
            raise
        except pq_exceptions.ConnectorException as exc:
            cause = exc.__cause__ or exc
            reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
            raise StoreError(f"check queue: {what} failed on {safe_url(self.url)}: {reason}") from exc

    def _sync(self) -> Any:
        return self.app.connector.get_sync_connector()

    def _query(self, what: str, name: str, **args: Any) -> None:
        self._call(what, self._sync().execute_query, pq_sql.queries[name], **args)

    def _query_all(self, what: str, name: str, **args: Any) -> list[dict[str, Any]]:
        return self._call(what, self._sync().execute_query_all, pq_sql.queries[name], **args)

    def _raw_all(self, what: str, query: str, **args: Any) -> list[dict[str, Any]]:
        return self._call(what, self._sync().execute_query_all, query, **args)
