"""The database: observations of every check, and the flags they open and close.

    from monitor.store import Store, FlagEvent
    store = Store(cfg.storage.database_url)
    store.ensure_current()
    event = store.record(record, confirmations=cfg.monitor.confirmations)   # a monitor.record.CheckRecord

Modules: `models` (the schema), `engine` (SQLite/PostgreSQL engine set-up),
`migrate` (Alembic from code), `repository` (Store and its transactions).
"""

from __future__ import annotations

from monitor.store.repository import FlagEvent, ReviewRow, Store

__all__ = ["FlagEvent", "ReviewRow", "Store"]
