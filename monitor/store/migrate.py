"""Run the Alembic migrations from code, and tell whether a database is at the current schema.

    upgrade(engine.url)               # `twitchwatch db upgrade`
    current_revisions(engine)         # {"0002"}, or set() for an empty database
    head_revisions()                  # what this version of twitchwatch expects
    include_name(name, "table", {})   # what autogenerate compares: our tables, not the queue's

On PostgreSQL the migrations also create the check queue's tables
(procrastinate_*, revision 0002): procrastinate's schema, not our models.
"""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.engine import URL

import migrations

SCRIPT_LOCATION = Path(migrations.__file__).resolve().parent
# Alembic's `context` is process-global: two upgrades in one process must not overlap.
_ALEMBIC_LOCK = threading.Lock()


def alembic_config(url: URL | None = None) -> AlembicConfig:
    """Build the Alembic config in code: the migrations package, and the URL when given."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    if url is not None:
        # ConfigParser interpolates '%': a URL-encoded password or option must be escaped.
        cfg.set_main_option("sqlalchemy.url", url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


QUEUE_PREFIX = "procrastinate_"


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Tell Alembic's comparison to skip the task queue's tables, which the models do not declare."""
    return not (type_ == "table" and name is not None and name.startswith(QUEUE_PREFIX))


def upgrade(url: URL) -> None:
    """Migrate the database at url to the newest revision; a no-op when it is there already."""
    with _ALEMBIC_LOCK:
        command.upgrade(alembic_config(url), "head")


def head_revisions() -> set[str]:
    """Return the revisions a database must be at for this code."""
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


def known_revisions() -> set[str]:
    """Return every revision this code has a migration for (a database at another one is newer)."""
    return {rev.revision for rev in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def current_revisions(engine: Engine) -> set[str]:
    """Return the revisions the database is at (empty when never migrated)."""
    with engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())
