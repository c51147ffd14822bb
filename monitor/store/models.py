"""Declare the database schema: categories, channels, observations, flags, reviews.

    from monitor.store.models import Base
    Base.metadata            # what migrations/versions creates, table for table

Datetimes are stored as UTC and always come back timezone-aware (SQLite keeps
no zone, so `UTCDateTime` puts UTC back on the way out).

The observations table is built from `monitor.record.CheckRecord`: one
column per field, named as the field, typed by the field's Python type
(`MEASURED_TYPES`; `COLUMN_TYPES` where the first migration chose a
narrower type) and nullable where the field may be None. The record's
`user_id` is the row's `channel_id`; its login and display name live on the
channel's row (`CHANNEL_FIELDS`).
"""

from __future__ import annotations

import dataclasses
import typing
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

from monitor.record import CheckRecord, field_types
from monitor.verdict import Outcome

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


# CheckRecord fields kept on the channel's row; user_id is the observation's channel_id.
CHANNEL_FIELDS = ("user_id", "user_login", "display_name")
MEASURED_TYPES: dict[Any, type[TypeEngine[Any]]] = {
    str: Text, int: Integer, float: Float, bool: Boolean, datetime: UTCDateTime, dict: JSON,
}
# Where migration 0001 chose another type than MEASURED_TYPES would: kept, so the schema stays as it is.
COLUMN_TYPES: dict[str, TypeEngine[Any]] = {
    "stream_id": ID, "declared_game_id": ID, "declared_game_name": NAME, "outcome": String(16),
    "predicted_game_id": ID, "predicted_label": ID, "model_id": String(64), "bytes_downloaded": BigInteger(),
}


def measured_columns(record: type[CheckRecord] = CheckRecord) -> list[Column[Any]]:
    """Return one observations column per field of the record that the observation row keeps."""
    types, optional = field_types(record)
    columns = []
    for f in dataclasses.fields(record):
        if f.name in CHANNEL_FIELDS:
            continue
        kind = types[f.name]
        sql_type = COLUMN_TYPES.get(f.name) or MEASURED_TYPES[typing.get_origin(kind) or kind]()
        columns.append(Column(f.name, sql_type, nullable=f.name in optional))
    return columns


class Observation(Base):
    """One check of one live stream, whatever its outcome: a CheckRecord as a row."""

    __table__ = Table(
        "observations",
        Base.metadata,
        Column("id", Integer, primary_key=True),
        Column("channel_id", ID, ForeignKey("channels.id"), nullable=False),
        *measured_columns(),
        CheckConstraint(f"outcome IN ({', '.join(repr(o.value) for o in Outcome)})", name="outcome"),
        Index("ix_observations_channel_id_checked_at", "channel_id", "checked_at"),
        # The last day of one model's checks, every cycle (monitor.drift): migration 0004.
        Index("ix_observations_model_id_checked_at", "model_id", "checked_at"),
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


CONFIRMED = "confirmed"
REJECTED = "rejected"


class Review(Base):
    """A human verdict on a flag, or on a queued check (a retained mismatching clip) of no flag."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    flag_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("flags.id"))
    clip_id: Mapped[str | None] = mapped_column(String(64))  # monitor.retain's clip id, without a flag
    channel_id: Mapped[str] = mapped_column(ID)
    declared_game_id: Mapped[str] = mapped_column(ID)
    label: Mapped[str] = mapped_column(ID)  # what is on screen: a category id or "gameplay"
    verdict: Mapped[str] = mapped_column(String(16))  # "confirmed" | "rejected"
    clips: Mapped[int] = mapped_column(Integer)  # retained clips moved into training
    reviewed_at: Mapped[datetime]

    __table_args__ = (
        CheckConstraint("verdict IN ('confirmed', 'rejected')", name="verdict"),
        CheckConstraint("(flag_id IS NULL) <> (clip_id IS NULL)", name="flag_or_clip"),
        Index("uq_reviews_flag_id", "flag_id", unique=True),
        Index("uq_reviews_clip_id", "clip_id", unique=True),
    )
