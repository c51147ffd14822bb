"""Create categories, channels, observations and flags.

Revision ID: 0001
Revises:
Create Date: 2024-06-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(32)
NAME = sa.String(200)
UTC_DATETIME = sa.DateTime(timezone=True)
OPEN_ONLY = sa.text("status = 'open'")


def upgrade() -> None:
    op.create_table(
        "categories",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_categories"),
    )
    op.create_table(
        "channels",
        sa.Column("id", ID, nullable=False),
        sa.Column("login", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(100), nullable=False),
        sa.Column("state_declared_game_id", ID, nullable=True),
        sa.Column("mismatch_streak", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_channels"),
        sa.UniqueConstraint("login", name="uq_channels_login"),
    )
    op.create_table(
        "observations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel_id", ID, nullable=False),
        sa.Column("stream_id", ID, nullable=False),
        sa.Column("checked_at", UTC_DATETIME, nullable=False),
        sa.Column("declared_game_id", ID, nullable=False),
        sa.Column("declared_game_name", NAME, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("predicted_game_id", ID, nullable=True),
        sa.Column("predicted_label", ID, nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("model_id", sa.String(64), nullable=True),
        sa.Column("frames_decoded", sa.Integer(), nullable=False),
        sa.Column("frames_expected", sa.Integer(), nullable=False),
        sa.Column("capture_seconds", sa.Float(), nullable=False),
        sa.Column("decode_seconds", sa.Float(), nullable=False),
        sa.Column("inference_seconds", sa.Float(), nullable=False),
        sa.Column("bytes_downloaded", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_observations"),
        sa.ForeignKeyConstraint(["channel_id"], ["channels.id"], name="fk_observations_channel_id_channels"),
        sa.CheckConstraint("outcome IN ('agree', 'mismatch', 'unsure', 'offline', 'error')",
                           name="ck_observations_outcome"),
    )
    op.create_index("ix_observations_channel_id_checked_at", "observations", ["channel_id", "checked_at"])
    op.create_table(
        "flags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel_id", ID, nullable=False),
        sa.Column("declared_game_id", ID, nullable=False),
        sa.Column("declared_game_name", NAME, nullable=False),
        sa.Column("predicted_game_id", ID, nullable=True),
        sa.Column("predicted_label", ID, nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("first_seen", UTC_DATETIME, nullable=False),
        sa.Column("last_seen", UTC_DATETIME, nullable=False),
        sa.Column("checks", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("closed_at", UTC_DATETIME, nullable=True),
        sa.Column("close_reason", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_flags"),
        sa.ForeignKeyConstraint(["channel_id"], ["channels.id"], name="fk_flags_channel_id_channels"),
        sa.CheckConstraint("status IN ('open', 'closed')", name="ck_flags_status"),
    )
    # At most one open flag per channel: a partial unique index, on both databases.
    op.create_index("uq_flags_channel_id_open", "flags", ["channel_id"], unique=True,
                    sqlite_where=OPEN_ONLY, postgresql_where=OPEN_ONLY)
    op.create_index("ix_flags_status_declared_game_id", "flags", ["status", "declared_game_id"])


def downgrade() -> None:
    op.drop_table("flags")
    op.drop_table("observations")
    op.drop_table("channels")
    op.drop_table("categories")
