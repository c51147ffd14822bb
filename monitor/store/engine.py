"""Create the SQLAlchemy engine for a database URL: SQLite (embedded) or PostgreSQL.

    engine = make_engine("sqlite:///twitchwatch.db")
    with engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn: ...

SQLite: WAL (readers never wait for the writer), foreign keys on, a busy
timeout, and BEGIN emitted by us: the sqlite3 module would otherwise start a
transaction only at the first write, so reads before it would see no snapshot.
Write transactions ask for `sqlite_begin="IMMEDIATE"`: they take the write
lock at BEGIN, waiting up to the busy timeout, instead of failing when a
read-then-write transaction finds another writer got there first.
PostgreSQL: psycopg 3, pool_pre_ping so a restarted server costs no error.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError

from monitor.errors import StoreError

BUSY_TIMEOUT_MS = 30_000


def normalize_url(database_url: str | URL) -> URL:
    """Parse a database URL; plain postgresql:// means psycopg 3, the driver installed."""
    try:
        url = make_url(database_url)
    except ArgumentError:
        raise StoreError(f"invalid database URL {str(database_url)!r}: use sqlite:///PATH or "
                         "postgresql+psycopg://USER@HOST/DB") from None
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise StoreError(f"unsupported database {backend!r} in {safe_url(url)}: use sqlite or postgresql")
    return url


def safe_url(url: str | URL) -> str:
    """Render a URL with its password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid URL>"


def missing_sqlite_file(url: URL) -> Path | None:
    """Return the file of a file-backed SQLite URL that does not exist in an existing folder.

    Connecting would create it empty. (In a missing folder it cannot be created at all, and
    connecting says so.)
    """
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    if url.database.startswith("file:"):  # a URI filename: SQLite's own rules, not a plain path
        return None
    path = Path(url.database).expanduser().resolve()
    return path if path.parent.is_dir() and not path.exists() else None


def make_engine(
    database_url: str | URL, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS, foreign_keys: bool = True
) -> Engine:
    """Return an engine set up for this project's use of the database.

    foreign_keys=False is for migrations only: SQLite's batch mode rebuilds
    tables, which enforced foreign keys would refuse.
    """
    url = normalize_url(database_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, busy_timeout_ms, foreign_keys)
    return create_engine(url, pool_pre_ping=True)


def _sqlite_engine(url: URL, busy_timeout_ms: int, foreign_keys: bool) -> Engine:
    # Checks run in worker threads; each thread checks a connection out of the pool.
    engine = create_engine(url, connect_args={"check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see _on_begin)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            _enable_wal(cursor, busy_timeout_ms / 1000)
            cursor.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        if mode not in ("DEFERRED", "IMMEDIATE"):
            raise ValueError(f"sqlite_begin must be DEFERRED or IMMEDIATE, got {mode!r}")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _enable_wal(cursor: sqlite3.Cursor, timeout_seconds: float) -> None:
    """Switch the database to WAL, retrying while another connection holds the lock the switch needs.

    SQLite does not call the busy handler for this switch: two processes opening a new
    database at once (two workers' `db upgrade`) would see one fail at once with "database
    is locked". The mode is persistent, so the loser's retry finds it done.
    """
    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
