"""Migrations and schema checks, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from monitor.errors import StoreError
from monitor.record import CheckRecord
from monitor.store import Store
from monitor.store.migrate import include_name
from monitor.store.models import Base


def schema_differences(store: Store) -> list:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": include_name})
        return compare_metadata(context, Base.metadata)


def test_ensure_current_on_an_empty_database_says_to_run_db_upgrade(database_url):
    if database_url.startswith("sqlite:///"):
        Path(database_url.removeprefix("sqlite:///")).touch()  # an empty SQLite database is an empty file
    store = Store(database_url)
    try:
        with pytest.raises(StoreError) as err:
            store.ensure_current()
        assert str(err.value) == "database is not at the current schema: run `twitchwatch db upgrade`"
    finally:
        store.dispose()


def test_ensure_current_on_a_missing_sqlite_file_says_so_and_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with Store("sqlite:///twitchwatch.db") as store, pytest.raises(StoreError) as err:
        store.ensure_current()
    assert str(err.value).startswith(f"no database at {tmp_path / 'twitchwatch.db'}: create it with "
                                     "`twitchwatch db upgrade`")
    assert list(tmp_path.iterdir()) == []


def test_upgrade_brings_the_database_to_the_current_schema(database_url):
    store = Store(database_url)
    try:
        store.upgrade()
        store.ensure_current()
        assert set(inspect(store.engine).get_table_names()) >= {
            "categories", "channels", "observations", "flags", "alembic_version"}
    finally:
        store.dispose()


def test_migrated_schema_equals_the_models(store):
    assert schema_differences(store) == []


def test_the_schema_comparison_sees_a_missing_index(store):
    # Guards the test above: the comparison does look at indexes.
    with store.engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_observations_channel_id_checked_at"))
    diff = schema_differences(store)
    assert [d[0] for d in diff] == ["add_index"]


def test_upgrade_twice_changes_nothing_and_keeps_the_data(store):
    store.record(CheckRecord("1", "alice", "Alice", "509658", "Just Chatting", "s1", "agree"), confirmations=2)
    store.upgrade()
    store.ensure_current()
    assert schema_differences(store) == []
    assert len(store.observations()) == 1


def test_the_database_itself_allows_one_open_flag_per_channel(store):
    store.record(CheckRecord("1", "alice", "Alice", "509658", "Just Chatting", "s1", "agree"), confirmations=2)
    now = datetime.now(UTC)
    insert = text(
        "INSERT INTO flags (channel_id, declared_game_id, declared_game_name, predicted_label, confidence, "
        "first_seen, last_seen, checks, status) VALUES ('1', '509658', 'Just Chatting', 'gameplay', 0.9, "
        ":t, :t, 2, :status)")
    with store.engine.begin() as conn:
        for status in ("closed", "closed", "open"):  # closed flags are not limited
            conn.execute(insert, {"t": now, "status": status})
    with pytest.raises(IntegrityError), store.engine.begin() as conn:
        conn.execute(insert, {"t": now, "status": "open"})


def test_ensure_current_on_an_unreachable_server_is_one_clear_line():
    store = Store("postgresql+psycopg://postgres@127.0.0.1:1/nothing")
    try:
        with pytest.raises(StoreError) as err:
            store.ensure_current()
    finally:
        store.dispose()
    message = str(err.value)
    assert message.startswith("cannot reach the database at postgresql+psycopg://postgres@127.0.0.1:1/nothing")
    assert "\n" not in message


def test_a_sqlite_file_in_a_missing_folder_is_one_clear_line(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'x.db'}")
    try:
        with pytest.raises(StoreError, match="cannot reach the database at sqlite:///") as err:
            store.ensure_current()
        assert "\n" not in str(err.value)
        with pytest.raises(StoreError, match="cannot upgrade the database"):
            store.upgrade()
    finally:
        store.dispose()


def test_a_password_never_shows_in_the_message():
    store = Store("postgresql+psycopg://postgres:s3cret@127.0.0.1:1/nothing")
    try:
        with pytest.raises(StoreError) as err:
            store.ensure_current()
    finally:
        store.dispose()
    assert "s3cret" not in str(err.value)


def test_an_unsupported_url_is_refused():
    with pytest.raises(StoreError, match="unsupported database"):
        Store("mysql://root@127.0.0.1/x")


def test_plain_postgresql_urls_use_psycopg():
    store = Store("postgresql://postgres@127.0.0.1:1/x")
    try:
        assert store.engine.dialect.driver == "psycopg"
    finally:
        store.dispose()


# Waits until every process has imported everything, so the upgrades really overlap.
UPGRADE_AFTER_BARRIER = """
import sys, time
from pathlib import Path
from monitor.store import Store
url, here, count = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
store = Store(url)
here.touch()
deadline = time.monotonic() + 30
while len(list(here.parent.glob("ready-*"))) < count and time.monotonic() < deadline:
    time.sleep(0.005)
store.upgrade()
"""


def test_two_processes_upgrading_at_once_both_succeed(database_url, tmp_path):
    # Separate processes, as two workers are: each runs `Store(url).upgrade()`.
    root = Path(__file__).resolve().parents[2]
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", UPGRADE_AFTER_BARRIER, database_url,
                               str(barrier / f"ready-{n}"), "2"], cwd=root,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in range(2)]
    results = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    store = Store(database_url)
    try:
        store.ensure_current()
        assert schema_differences(store) == []
    finally:
        store.dispose()


def test_upgrades_from_threads_of_one_process_do_not_collide(database_url):
    stores = [Store(database_url) for _ in range(2)]
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def upgrade(store: Store) -> None:
        try:
            start.wait()
            store.upgrade()
        except BaseException as exc:  # reported below, in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=upgrade, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert not errors, errors
        stores[0].ensure_current()
    finally:
        for s in stores:
            s.dispose()


def test_a_database_from_a_newer_twitchwatch_says_so(store):
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StoreError, match="newer than this twitchwatch knows .*: upgrade twitchwatch"):
        store.ensure_current()
    with pytest.raises(StoreError, match="cannot upgrade the database"):
        store.upgrade()


def test_upgrade_downgrade_base_upgrade_again_leaves_the_schema_of_the_models(database_url):
    # Every migration's downgrade runs, on both databases, and the schema comes back whole.
    from alembic import command

    from monitor.store.migrate import alembic_config

    store = Store(database_url)
    try:
        store.upgrade()
        store.record(CheckRecord("1", "alice", "Alice", "509658", "Just Chatting", "s1", "agree"), confirmations=2)
        if store.engine.dialect.name == "postgresql":
            assert "procrastinate_jobs" in inspect(store.engine).get_table_names()
        command.downgrade(alembic_config(store.url), "base")
        store.engine.dispose()
        assert set(inspect(store.engine).get_table_names()) <= {"alembic_version"}
        if store.engine.dialect.name == "postgresql":
            assert queue_objects(store) == []
        with pytest.raises(StoreError, match="run `twitchwatch db upgrade`"):
            store.ensure_current()
        store.upgrade()
        store.ensure_current()
        assert schema_differences(store) == []
        assert store.observations() == []
    finally:
        store.dispose()


def queue_objects(store: Store) -> list[str]:
    """Return the functions and types of the task queue left in the current schema."""
    with store.engine.connect() as conn:
        return conn.execute(text(
            "SELECT proname FROM pg_proc WHERE pronamespace = current_schema()::regnamespace "
            "AND proname LIKE 'procrastinate%' UNION ALL SELECT typname FROM pg_type "
            "WHERE typnamespace = current_schema()::regnamespace AND typname LIKE 'procrastinate%'")).scalars().all()


def test_the_queue_schema_is_the_one_the_installed_procrastinate_expects():
    import procrastinate

    import migrations

    installed = Path(procrastinate.__file__).parent / "sql" / "schema.sql"
    frozen = Path(migrations.__file__).parent / "versions" / "0002_task_queue.sql"
    assert frozen.read_text() == installed.read_text(), (
        f"procrastinate {procrastinate.__version__} has another schema than revision 0002 creates: add a "
        "revision that applies its sql/migrations/*.sql since 3.10.0, or keep the pin at 3.10")


def test_sqlite_gets_no_queue_tables(tmp_path):
    with Store(f"sqlite:///{tmp_path / 'tw.db'}") as store:
        store.upgrade()
        assert not [t for t in inspect(store.engine).get_table_names() if t.startswith("procrastinate")]


def test_a_database_at_an_older_revision_says_to_run_db_upgrade(database_url):
    from alembic import command

    from monitor.store.migrate import alembic_config

    store = Store(database_url)
    try:
        command.upgrade(alembic_config(store.url), "0001")
        with pytest.raises(StoreError, match="not at the current schema: run `twitchwatch db upgrade`"):
            store.ensure_current()
        store.upgrade()
        store.ensure_current()
    finally:
        store.dispose()
