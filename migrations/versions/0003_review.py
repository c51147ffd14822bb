"""Create reviews: the human verdicts on flags and on queued checks (`twitchwatch review`).

One row per verdict. A flag's row names the flag (at most one row per flag);
a queued check reviewed on its own names its retained clip instead. The
daemon's metrics count the flags confirmed and rejected from these rows, so
a review done by another process shows on its /metrics.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(32)
UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("flag_id", sa.Integer(), nullable=True),
        sa.Column("clip_id", sa.String(64), nullable=True),
        sa.Column("channel_id", ID, nullable=False),
        sa.Column("declared_game_id", ID, nullable=False),
        sa.Column("label", ID, nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("clips", sa.Integer(), nullable=False),
        sa.Column("reviewed_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_reviews"),
        sa.ForeignKeyConstraint(["flag_id"], ["flags.id"], name="fk_reviews_flag_id_flags"),
        sa.CheckConstraint("verdict IN ('confirmed', 'rejected')", name="ck_reviews_verdict"),
        sa.CheckConstraint("(flag_id IS NULL) <> (clip_id IS NULL)", name="ck_reviews_flag_or_clip"),
    )
    # A flag gets one verdict; NULLs (queued checks reviewed alone) are distinct on both databases.
    op.create_index("uq_reviews_flag_id", "reviews", ["flag_id"], unique=True)
    op.create_index("uq_reviews_clip_id", "reviews", ["clip_id"], unique=True)


def downgrade() -> None:
    op.drop_table("reviews")
