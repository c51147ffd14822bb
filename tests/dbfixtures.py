"""Database fixtures for any test folder: a fresh database per test, on SQLite and PostgreSQL.

    # in a test module or a conftest.py (the tests/ folder is on sys.path under pytest)
    from dbfixtures import database_url, postgres_schema_url, postgres_url  # noqa: F401

    def test_something(database_url):       # runs twice: [sqlite] and [postgresql]
        store = Store(database_url)

    def test_another_process(postgres_database_url):  # a database of its own; tests/conftest.py offers it
        ...

PostgreSQL comes from TWITCHWATCH_TEST_POSTGRES_URL (default
postgresql+psycopg://postgres@127.0.0.1:5432/test). The session creates one
throwaway database next to it (through the `postgres` database) and drops it
at the end; each test gets its own schema in it, so tests never see each
other's rows. A test that needs a database to itself (another process runs
migrations on it, a table lock) takes `postgres_database_url` instead. When
the server cannot be reached the PostgreSQL tests are skipped, saying what
is needed; with CI set in the environment they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

POSTGRES_ENV = "TWITCHWATCH_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_base_url() -> URL:
    """Return the PostgreSQL URL the tests are pointed at."""
    return make_url(os.environ.get(POSTGRES_ENV) or DEFAULT_POSTGRES_URL)


def _unreachable(url: URL, exc: Exception) -> None:
    message = (f"PostgreSQL not reachable at {url.render_as_string(hide_password=True)}: to run the "
               f"PostgreSQL tests, start it or set {POSTGRES_ENV}=postgresql+psycopg://USER@HOST:PORT/DB "
               f"({type(exc).__name__})")
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def throwaway_database(prefix: str) -> Iterator[URL]:
    """Create an empty PostgreSQL database beside the tests' one, yield its URL, drop it on exit.

    Skips the test (fails it under CI) when the server cannot be reached.
    """
    base = postgres_base_url()
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool,
                          connect_args={"connect_timeout": 5})
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except SQLAlchemyError as exc:
        admin.dispose()
        _unreachable(base, exc)
    try:
        yield base.set(database=name)
    finally:
        # FORCE: connections a test (or a process it started) left open would block the DROP.
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[URL]:
    """Create a throwaway PostgreSQL database for this test session; drop it at the end."""
    with throwaway_database("twitchwatch_test") as url:
        yield url


@pytest.fixture
def postgres_database_url() -> Iterator[str]:
    """Return the URL of a PostgreSQL database of this test's own, dropped after it."""
    with throwaway_database("twitchwatch_own") as url:
        yield url.render_as_string(hide_password=False)


@pytest.fixture
def postgres_schema_url(postgres_url: URL) -> Iterator[str]:
    """Return a URL whose search_path is a new, empty schema of the session's database."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    # NullPool: a test may kill this database's connections; teardown must not reuse a dead one.
    engine = create_engine(postgres_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with engine.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = postgres_url.update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            # Connections a test left open would block the DROP: end them first.
            conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """Return the URL of a fresh, empty database: a SQLite file, or a PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'twitchwatch.db'}"
    return request.getfixturevalue("postgres_schema_url")
