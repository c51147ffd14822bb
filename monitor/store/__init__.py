"""The database: observations of every check, and the flags they open and close.

    from monitor.store import Store, ObservationIn, FlagEvent
    store = Store(cfg.storage.database_url)
    store.ensure_current()
    event = store.record(obs, confirmations=cfg.monitor.confirmations)

Modules: `models` (the schema), `engine` (SQLite/PostgreSQL engine set-up),
`migrate` (Alembic from code), `repository` (Store and its transactions).
"""

from __future__ import annotations

from monitor.store.repository import FlagEvent, ObservationIn, Store

__all__ = ["FlagEvent", "ObservationIn", "Store"]
