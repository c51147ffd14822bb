"""Create the check queue's tables on PostgreSQL: procrastinate 3.10's schema (nothing on SQLite).

`twitchwatch run --role scheduler|worker` share their checks through
procrastinate, whose jobs, workers and events live in this database. The
schema is procrastinate 3.10.0's `sql/schema.sql`, copied beside this file
(0002_task_queue.sql) so that this revision creates the same objects
whatever procrastinate is installed: when the procrastinate pin moves past
3.10, a new revision applies procrastinate's `sql/migrations/*.sql` in
between. SQLite has no queue (several workers need PostgreSQL), so there
this revision does nothing.

Revision ID: 0002
Revises: 0001
Create Date: 2026-02-01
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA_SQL = Path(__file__).with_name("0002_task_queue.sql")

# Every object the schema creates is named procrastinate_*; the tables take their triggers,
# indexes and foreign keys with them.
DROP_QUEUE = r"""
DROP TABLE IF EXISTS procrastinate_events, procrastinate_periodic_defers, procrastinate_jobs,
    procrastinate_workers CASCADE;
DO $$
DECLARE item record;
BEGIN
    FOR item IN SELECT p.oid::regprocedure AS name FROM pg_proc p
                WHERE p.pronamespace = current_schema()::regnamespace AND p.proname LIKE 'procrastinate\_%'
    LOOP
        EXECUTE 'DROP FUNCTION ' || item.name || ' CASCADE';
    END LOOP;
    FOR item IN SELECT t.typname AS name FROM pg_type t
                WHERE t.typnamespace = current_schema()::regnamespace AND t.typname LIKE 'procrastinate\_%'
                  AND t.typtype IN ('e', 'c')
    LOOP
        EXECUTE 'DROP TYPE ' || quote_ident(item.name) || ' CASCADE';
    END LOOP;
END;
$$;
"""


def _run_script(sql: str) -> None:
    # The script holds '%' (plpgsql RAISE) and ':' (casts): hand it to the driver untouched.
    op.get_bind().exec_driver_sql(sql, execution_options={"no_parameters": True})


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _run_script(SCHEMA_SQL.read_text(encoding="utf-8"))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _run_script(DROP_QUEUE)
