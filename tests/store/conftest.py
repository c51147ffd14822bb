"""Fixtures of the store tests: a migrated Store on each database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dbfixtures import database_url, postgres_schema_url, postgres_url  # noqa: F401

from monitor.store import Store

CATEGORIES = {
    "509658": "Just Chatting",
    "21779": "League of Legends",
    "33214": "Fortnite",
    "27471": "Minecraft",
}


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:  # noqa: F811
    """Return a Store on a fresh database at the current schema, with the categories known."""
    store = Store(database_url)
    store.upgrade()
    store.upsert_categories(CATEGORIES)
    yield store
    store.dispose()
