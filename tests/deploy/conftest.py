"""Fixtures for the deploy checks: a throwaway PostgreSQL database."""

from __future__ import annotations

import os
import uuid

import pytest

PG_URL = os.environ.get("TWITCHWATCH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture
def postgres_url():
    """Create a fresh PostgreSQL database for one test and drop it afterwards."""
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(PG_URL)
    name = f"twitchwatch_deploy_{uuid.uuid4().hex[:12]}"
    admin_dsn = base.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    try:
        admin = psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {base.render_as_string()}: {exc}")
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()
