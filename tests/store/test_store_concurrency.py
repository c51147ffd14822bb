"""Several writers on one channel, and connections that drop mid-transaction."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from tcpcut import CuttingProxy

from monitor.record import CheckRecord
from monitor.store import Store

CHAT, LOL = "509658", "21779"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def mismatch(at: datetime, user: str = "1") -> CheckRecord:
    return CheckRecord(
        user_id=user, user_login=f"user{user}", display_name=f"User{user}", declared_game_id=CHAT,
        declared_game_name="Just Chatting", stream_id=f"s{user}", outcome="mismatch", predicted_game_id=LOL,
        predicted_label=LOL, confidence=0.9, scores={LOL: 0.9, CHAT: 0.1}, checked_at=at,
    )


def count_observations(store: Store) -> int:
    with store.engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM observations")).scalar_one()


def test_two_workers_recording_one_channel_keep_one_flag_and_lose_no_check(store, database_url):
    per_worker = 12
    other = Store(database_url)  # a second worker: its own engine and connections
    start = threading.Barrier(2)
    events: list[list[str]] = [[], []]
    errors: list[BaseException] = []

    def worker(n: int, s: Store) -> None:
        try:
            start.wait()
            for i in range(per_worker):
                at = T0 + timedelta(seconds=i, microseconds=n)
                event = s.record(mismatch(at), confirmations=2)
                events[n].append(event.action if event else "none")
        except BaseException as exc:  # reported below, in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n, s)) for n, s in enumerate((store, other))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    other.dispose()
    assert not errors, errors
    actions = events[0] + events[1]
    # The checks were applied one after the other: one none, one open, then extends.
    assert sorted(actions) == ["extend"] * (2 * per_worker - 2) + ["none", "open"]
    flags = store.flags(include_closed=True)
    assert len(flags) == 1 and flags[0]["status"] == "open"
    assert flags[0]["checks"] == 2 * per_worker
    assert count_observations(store) == 2 * per_worker


@pytest.fixture
def postgres_store_via_proxy(postgres_schema_url):
    """A migrated store whose connections go through a proxy that can cut them."""
    url = make_url(postgres_schema_url)
    Store(postgres_schema_url).upgrade()
    with CuttingProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        store = Store(url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False))
        yield store, proxy
        store.dispose()


@pytest.mark.postgres
def test_a_connection_lost_before_commit_is_retried_once(postgres_store_via_proxy):
    store, proxy = postgres_store_via_proxy
    assert store.record(mismatch(T0), confirmations=2) is None
    proxy.cut_on(b"INSERT INTO observations", after_reply=False)
    event = store.record(mismatch(T0 + timedelta(minutes=5)), confirmations=2)
    assert proxy.cut.is_set()
    assert event is not None and event.action == "open"
    assert count_observations(store) == 2
    [flag] = store.flags()
    assert flag["checks"] == 2


@pytest.mark.postgres
def test_a_commit_whose_answer_is_lost_is_not_written_twice(postgres_store_via_proxy):
    store, proxy = postgres_store_via_proxy
    store.record(mismatch(T0), confirmations=2)
    proxy.cut_on(b"COMMIT", after_reply=True)
    event = store.record(mismatch(T0 + timedelta(minutes=5)), confirmations=2)
    assert proxy.cut.is_set()
    assert count_observations(store) == 2  # committed once, not retried into a duplicate
    # The event is rebuilt from what the first attempt committed.
    assert event is not None and event.action == "open" and event.flag["checks"] == 2
    proxy.cut_on(b"COMMIT", after_reply=True)
    event = store.record(mismatch(T0 + timedelta(minutes=10)), confirmations=2)
    assert event.action == "extend" and event.flag["checks"] == 3
    assert count_observations(store) == 3


@pytest.mark.postgres
def test_a_restarted_server_costs_no_error(postgres_schema_url):
    store = Store(postgres_schema_url)
    store.upgrade()
    store.record(mismatch(T0), confirmations=2)
    # Kill every server process of this database, as a restart does, leaving the pool's connections dead.
    killer = Store(postgres_schema_url)
    with killer.engine.connect() as conn:
        killed = conn.execute(text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar_one()
    killer.dispose()
    assert killed >= 1
    event = store.record(mismatch(T0 + timedelta(minutes=5)), confirmations=2)
    assert event.action == "open"
    assert count_observations(store) == 2
    store.dispose()
