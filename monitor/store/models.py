"""Declare the database schema: categories, channels, observations, flags.

    from monitor.store.models import Base
    Base.metadata            # what migrations/versions creates, table for table

Datetimes are stored as UTC and always come back timezone-aware (SQLite keeps
no zone, so `UTCDateTime` puts UTC back on the way out).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Deterministic constraint names: a later migration can drop or alter them by name
# on both databases (SQLite's batch mode needs names to recreate tables).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID = String(32)  # Twitch ids are decimal strings
NAME = String(200)


class UTCDateTime(TypeDecorator[datetime]):
    """Store aware datetimes as UTC; return them aware in UTC on every database."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} given: pass an aware one (UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:  # SQLite drops the zone; what we stored was UTC
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class Category(Base):
    __tablename__ = "categories"

    id: Mapped[str] = mapped_column(ID, primary_key=True)  # Twitch game id
    name: Mapped[str] = mapped_column(NAME)


class Channel(Base):
    __tablename__ = "channels"

    id: Mapped[str] = mapped_column(ID, primary_key=True)  # Twitch user_id: logins can change, ids cannot
    login: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    # monitor.verdict.ChannelState, kept per channel (flag_open is "has an open flag")
    state_declared_game_id: Mapped[str | None] = mapped_column(ID)
    mismatch_streak: Mapped[int] = mapped_column(Integer, default=0)


class Observation(Base):
    """One check of one live stream, whatever its outcome."""

    __tablename__ = "observations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel_id: Mapped[str] = mapped_column(ID, ForeignKey("channels.id"))
    stream_id: Mapped[str] = mapped_column(ID)
    checked_at: Mapped[datetime]
    declared_game_id: Mapped[str] = mapped_column(ID)
    declared_game_name: Mapped[str] = mapped_column(NAME)
    outcome: Mapped[str] = mapped_column(String(16))
    predicted_game_id: Mapped[str | None] = mapped_column(ID)
    predicted_label: Mapped[str] = mapped_column(ID)
    confidence: Mapped[float | None] = mapped_column(Float)
    scores: Mapped[dict[str, Any]]
    model_id: Mapped[str | None] = mapped_column(String(64))
    frames_decoded: Mapped[int] = mapped_column(Integer)
    frames_expected: Mapped[int] = mapped_column(Integer)
    capture_seconds: Mapped[float] = mapped_column(Float)
    decode_seconds: Mapped[float] = mapped_column(Float)
    inference_seconds: Mapped[float] = mapped_column(Float)
    bytes_downloaded: Mapped[int] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint("outcome IN ('agree', 'mismatch', 'unsure', 'offline', 'error')", name="outcome"),
        Index("ix_observations_channel_id_checked_at", "channel_id", "checked_at"),
    )


OPEN = "open"
CLOSED = "closed"


class Flag(Base):
    """A channel whose screen did not match its declared category for `checks` checks."""

    __tablename__ = "flags"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel_id: Mapped[str] = mapped_column(ID, ForeignKey("channels.id"))
    declared_game_id: Mapped[str] = mapped_column(ID)
    declared_game_name: Mapped[str] = mapped_column(NAME)
    # of the latest mismatching check
    predicted_game_id: Mapped[str | None] = mapped_column(ID)
    predicted_label: Mapped[str] = mapped_column(ID)
    confidence: Mapped[float] = mapped_column(Float)
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    checks: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(8))
    closed_at: Mapped[datetime | None]
    close_reason: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (
        CheckConstraint("status IN ('open', 'closed')", name="status"),
        # At most one open flag per channel, enforced by the database itself so that
        # two workers racing on one channel cannot both open one.
        Index(
            "uq_flags_channel_id_open",
            "channel_id",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
        Index("ix_flags_status_declared_game_id", "status", "declared_game_id"),
    )
