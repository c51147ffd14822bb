"""Run the migrations against the URL that monitor.store.migrate puts in the config.

`sqlalchemy.url` is set in code by Store.upgrade (there is no alembic.ini).
The whole upgrade is one transaction that first takes a lock, so several
workers running `twitchwatch db upgrade` at once queue up: the first
migrates, the others then find the schema at head and do nothing.
SQLite gets batch mode (it cannot ALTER most things in place) and runs its
DDL in that one BEGIN IMMEDIATE transaction too.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from monitor.store.engine import make_engine
from monitor.store.migrate import include_name
from monitor.store.models import Base

# Any constant: the PostgreSQL advisory lock key every twitchwatch process agrees on.
UPGRADE_LOCK_KEY = 7_391_004_211

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    """Emit the SQL to stdout (alembic --sql), without a database."""
    url = config.get_main_option("sqlalchemy.url")
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=url is not None and url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate the database at sqlalchemy.url in one locked transaction."""
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "", foreign_keys=False)
    try:
        with engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:
                # The write lock at BEGIN serializes concurrent upgrades on SQLite.
                connection.execution_options(sqlite_begin="IMMEDIATE")
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=sqlite,
                transactional_ddl=True,
                compare_type=True,
                include_name=include_name,
            )
            with context.begin_transaction():
                if not sqlite:
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": UPGRADE_LOCK_KEY})
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
