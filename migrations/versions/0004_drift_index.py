"""Index observations by model and check time: `twitchwatch drift` and the per-cycle drift gauges.

Every cycle reads the last day's checks of the active model (monitor.drift);
without this index that is a scan of every observation ever stored.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_observations_model_id_checked_at", "observations", ["model_id", "checked_at"])


def downgrade() -> None:
    op.drop_index("ix_observations_model_id_checked_at", table_name="observations")
