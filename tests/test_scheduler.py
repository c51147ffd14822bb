"""The scheduler role in one process, on PostgreSQL: the lock, the queue's locks, stalled checks, the ticks.

The processes themselves (one scheduler, a standby, three workers, SIGKILL)
are in test_scale_out.py.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from cli_helpers import write_config
from dbfixtures import postgres_schema_url, postgres_url  # noqa: F401
from sqlalchemy.engine import make_url

from monitor.checkqueue import CheckQueue, channel_lock, conninfo
from monitor.config import load_config, replace
from monitor.errors import ConfigError
from monitor.helix import Stream
from monitor.record import CheckRecord
from monitor.scheduler import (
    AnotherSchedulerActive,
    Leadership,
    SchedulerRuntime,
    schedule_once,
    scheduler_tick,
)
from monitor.store import Store

pytestmark = pytest.mark.postgres


def stream(n: int, game: str = "509658") -> Stream:
    return Stream(id=f"s{n}", user_id=f"{n}", user_login=f"user{n}", user_name=f"User{n}", game_id=game,
                  game_name="Just Chatting", viewer_count=10, thumbnail_url="", started_at="")


@pytest.fixture
def db(postgres_schema_url):  # noqa: F811
    """A migrated database (a schema of its own) and a raw connection to look inside the queue."""
    with Store(postgres_schema_url) as store:
        store.upgrade()
    with psycopg.connect(conninfo(postgres_schema_url), autocommit=True) as conn:
        yield postgres_schema_url, conn


@pytest.fixture
def queue(db):
    q = CheckQueue(db[0]).open()
    yield q
    q.close()


def jobs(conn) -> list[tuple]:
    return conn.execute("SELECT lock, status::text, attempts FROM procrastinate_jobs ORDER BY id").fetchall()


def make_running(conn, lock: str, heartbeat_age_seconds: float) -> int:
    """Mark a channel's queued job as taken by a worker whose last heartbeat is that old; return the worker id."""
    worker = conn.execute("INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - %s * interval '1 second') "
                          "RETURNING id", (heartbeat_age_seconds,)).fetchone()[0]
    conn.execute("UPDATE procrastinate_jobs SET status = 'doing', worker_id = %s WHERE lock = %s AND status = 'todo'",
                 (worker, lock))
    return worker


# -- the queue --------------------------------------------------------------------


def test_a_channel_is_queued_once_whatever_the_cycles_offer(queue, db):
    _, conn = db
    first = queue.enqueue([stream(1), stream(2)], listed_at=time.time())
    again = queue.enqueue([stream(1), stream(2), stream(3)], listed_at=time.time())
    assert (first.queued, first.already_queued) == (2, 0)
    assert (again.queued, again.already_queued, again.running) == (1, 2, 0)
    assert [(lock, status) for lock, status, _ in jobs(conn)] == [
        ("channel:1", "todo"), ("channel:2", "todo"), ("channel:3", "todo")]
    assert queue.counts() == {"todo": 3, "doing": 0}


def test_a_channel_whose_check_is_running_is_not_queued_again(queue, db):
    _, conn = db
    queue.enqueue([stream(1), stream(2)], listed_at=time.time())
    make_running(conn, channel_lock("1"), heartbeat_age_seconds=0)
    report = queue.enqueue([stream(1), stream(2)], listed_at=time.time())
    assert (report.queued, report.already_queued, report.running) == (0, 1, 1)
    assert queue.counts() == {"todo": 1, "doing": 1}


def test_the_check_of_a_silent_worker_goes_back_to_the_queue(queue, db):
    _, conn = db
    queue.enqueue([stream(1), stream(2)], listed_at=time.time())
    make_running(conn, channel_lock("1"), heartbeat_age_seconds=120)  # silent for 2 minutes
    make_running(conn, channel_lock("2"), heartbeat_age_seconds=1)  # alive
    assert queue.recover_stalled(60) == 1
    assert jobs(conn) == [("channel:1", "todo", 1), ("channel:2", "doing", 0)]
    assert queue.recover_stalled(60) == 0
    # The silent worker is forgotten; the live one stays.
    assert conn.execute("SELECT count(*) FROM procrastinate_workers").fetchone()[0] == 1


def test_a_stalled_check_superseded_by_a_newer_queued_one_ends(queue, db):
    _, conn = db
    queue.enqueue([stream(1)], listed_at=time.time())
    make_running(conn, channel_lock("1"), heartbeat_age_seconds=120)
    # The channel's job of the next cycle got in before the recovery (the scheduler saw it not yet running).
    conn.execute("INSERT INTO procrastinate_jobs (queue_name, task_name, lock, queueing_lock, args) "
                 "SELECT queue_name, task_name, lock, queueing_lock, args FROM procrastinate_jobs")
    assert queue.recover_stalled(60) == 1
    assert [(lock, status) for lock, status, _ in jobs(conn)] == [("channel:1", "failed"), ("channel:1", "todo")]


def test_the_last_listing_is_the_newest_cycle_queued(queue):
    assert queue.last_listing() is None
    queue.enqueue([stream(1)], listed_at=1000.5)
    queue.enqueue([stream(2)], listed_at=2000.25)
    assert queue.last_listing() == 2000.25


def test_sqlite_has_no_queue_and_says_which_key_to_change(tmp_path):
    with pytest.raises(ConfigError, match=r"config key storage\.database_url is sqlite:///.*PostgreSQL only"):
        CheckQueue(f"sqlite:///{tmp_path / 'tw.db'}")


# -- the lock -----------------------------------------------------------------------


def test_one_scheduler_holds_the_lock_and_another_takes_it_when_released(db):
    url, _ = db
    first, second = Leadership(url), Leadership(url)
    try:
        assert first.hold() and first.hold()
        assert not second.hold() and not second.hold()
        first.release()
        assert second.hold()
        assert not first.hold()
    finally:
        first.release()
        second.release()


def test_a_holder_whose_connection_is_cut_knows_it_lost_the_lock(db, caplog):
    url, conn = db
    holder, standby = Leadership(url), Leadership(url)
    try:
        assert holder.hold()
        pid = holder._conn.info.backend_pid
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert standby.hold()  # the server released the lock with the connection
        with caplog.at_level(logging.ERROR, logger="monitor.scheduler"):
            assert not holder.hold()
        assert "lost the scheduler lock" in caplog.text
        assert not holder.hold()  # reconnected, but the standby holds it now
    finally:
        holder.release()
        standby.release()


def test_schedulers_of_two_schemas_do_not_share_a_lock(db):
    url, conn = db
    schema = f"other_{uuid.uuid4().hex[:8]}"
    conn.execute(f'CREATE SCHEMA "{schema}"')
    other = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(False)
    here, there = Leadership(url), Leadership(other)
    try:
        assert here.hold() and there.hold()
    finally:
        here.release()
        there.release()
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


# -- ticks against the stand-in ------------------------------------------------------------


def scheduler_config(sim, tmp_path, url: str, **queue):
    path = write_config(tmp_path / "twitchwatch.toml", {
        "twitch": {**sim.twitch_config(), "request_timeout_seconds": 5.0},
        "categories": {"watch": ["509658", "21779"], "chatting": "509658"},
        "monitor": {"interval_seconds": 60},
        "storage": {"database_url": url, "data_dir": str(tmp_path / "data")},
        "queue": {"heartbeat_seconds": 1.0, "stalled_seconds": 3.0, "failover_seconds": 1.0, **queue},
    })
    return load_config(path, environ={})


def test_the_active_scheduler_queues_a_cycle_per_interval_and_a_standby_keeps_its_schedule(
        small_standin, tmp_path, db):
    url, conn = db
    cfg = scheduler_config(small_standin, tmp_path, url)
    active, standby = SchedulerRuntime(cfg), SchedulerRuntime(cfg)
    try:
        first = scheduler_tick(active)
        assert first.active and first.cycle is not None
        listed = first.cycle["listed"]
        assert listed == 7 and first.cycle["queued"] == listed  # Just Chatting 4 + League of Legends 3
        assert first.queue == {"todo": listed, "doing": 0}
        assert active.metrics.registry.get_sample_value("twitchwatch_scheduler_active") == 1
        assert active.metrics.registry.get_sample_value("twitchwatch_check_queue_jobs", {"status": "todo"}) == 7

        assert scheduler_tick(active).cycle is None  # the next cycle is an interval away
        idle = scheduler_tick(standby)
        assert not idle.active and idle.status_line() == "standby: another scheduler is active"
        assert standby.metrics.registry.get_sample_value("twitchwatch_scheduler_active") == 0

        active.close()
        taken = scheduler_tick(standby)
        assert taken.active and taken.cycle is None  # it keeps the dead one's schedule
        assert standby.next_cycle == pytest.approx(first.cycle["listed_at"] + 60)
        standby.next_cycle = time.time()  # an interval later; no worker took the first cycle's checks
        again = scheduler_tick(standby).cycle
        assert (again["listed"], again["queued"], again["already_queued"]) == (7, 0, 7)
    finally:
        active.close()
        standby.close()
    assert len(jobs(conn)) == 7


def test_schedule_once_refuses_while_another_scheduler_is_active(small_standin, tmp_path, db):
    url, _ = db
    cfg = scheduler_config(small_standin, tmp_path, url)
    holder = Leadership(url)
    try:
        assert holder.hold()
        with pytest.raises(AnotherSchedulerActive, match="another scheduler is active"):
            schedule_once(cfg)
    finally:
        holder.release()
    assert schedule_once(cfg).enqueue.queued == 7


def test_a_retried_check_whose_first_attempt_committed_is_not_run_again(db, tmp_path):
    from monitor.cycle import Runtime
    from monitor.worker import ALREADY_CHECKED, CheckRunner

    url, _ = db
    cfg = load_config(environ={}, overrides={"storage": {"database_url": url, "data_dir": str(tmp_path / "d")}})
    rt = Runtime(cfg)
    try:
        listed_at = datetime.now(UTC) - timedelta(seconds=30)
        rt.store.record(CheckRecord("1", "user1", "User1", "509658", "Just Chatting", "s1", "agree"),
                        confirmations=2)
        runner = CheckRunner(rt)
        assert runner(stream(1), listed_at.timestamp(), job_id=7) == ALREADY_CHECKED
        assert runner.summary.already_checked == 1 and runner.summary.checks == 0
        assert runner.in_flight() == {}
    finally:
        rt.close()



def test_a_worker_once_runs_every_queued_check_then_exits(small_standin, tmp_path, db):
    from proc_helpers import activate_untrained_model

    from monitor.sim import small_scenario
    from monitor.worker import run_worker

    url, conn = db
    cfg = scheduler_config(small_standin, tmp_path, url)
    cfg = replace(cfg, monitor={"capture_seconds": 2, "segments": 2, "frames_per_segment": 2, "capture_workers": 2})
    activate_untrained_model(tmp_path / "data", [c.id for c in small_scenario().categories])
    assert schedule_once(cfg).enqueue.queued == 7
    summary = run_worker(cfg, once=True)
    assert summary.exit_code == 0 and summary.failed == 0
    assert summary.checks == 7 == sum(summary.verdicts.values())
    assert [status for _, status, _ in jobs(conn)] == ["succeeded"] * 7
    with Store(url) as store:
        assert len(store.observations()) == 7
    # Nothing left: a second worker finds no work and ends at once.
    assert run_worker(cfg, once=True).checks == 0


def test_a_worker_without_a_model_fails_each_check_in_one_line_and_loses_nothing(small_standin, tmp_path, db,
                                                                                 caplog):
    from monitor.worker import run_worker

    url, conn = db
    cfg = scheduler_config(small_standin, tmp_path, url)
    schedule_once(cfg)
    with caplog.at_level(logging.INFO):
        summary = run_worker(cfg, once=True)
    assert summary.exit_code == 0 and (summary.checks, summary.failed) == (0, 7)
    assert [status for _, status, _ in jobs(conn)] == ["failed"] * 7  # kept, for inspection, not lost
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and all(r.exc_info is None for r in errors)
    assert any("failed: ModelError: no active model" in r.getMessage() for r in errors)
    assert "Traceback" not in caplog.text
