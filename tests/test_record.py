"""A check's record: one definition for the check, the observations table and the JSON."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import Float, MetaData, Table, Text

from monitor.record import CheckRecord
from monitor.store.models import Observation, measured_columns

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def record(**measured) -> CheckRecord:
    return CheckRecord("1", "alice", "Alice", "509658", "Just Chatting", "s1", "mismatch", checked_at=T0, **measured)


def test_the_observations_table_has_a_column_for_each_field_the_channel_row_does_not_keep():
    measured = {f.name for f in fields(CheckRecord)} - {"user_id", "user_login", "display_name"}
    assert set(Observation.__table__.columns.keys()) == {"id", "channel_id"} | measured
    assert Observation.__table__.columns["confidence"].nullable
    assert not Observation.__table__.columns["frames_decoded"].nullable


def test_values_are_plain_python_of_the_declared_types():
    values = record(confidence=np.float32(0.5), scores={"21779": np.float64(0.25)}, frames_decoded=np.int64(18),
                    bytes_downloaded=np.int32(7)).values()
    assert values["scores"] == {"21779": 0.25} and type(values["scores"]["21779"]) is float
    assert type(values["confidence"]) is float and type(values["frames_decoded"]) is int
    assert type(values["bytes_downloaded"]) is int and values["checked_at"] == T0


def test_json_rounds_only_when_asked_and_keeps_none():
    rec = record(confidence=0.123456, scores={"21779": 0.987654}, capture_seconds=11.98765)
    assert rec.to_json()["capture_seconds"] == 11.98765
    shown = rec.to_json(rounded=True)
    assert (shown["confidence"], shown["scores"], shown["capture_seconds"]) == (0.1235, {"21779": 0.9877}, 11.988)
    assert shown["checked_at"] == "2024-05-01T12:00:00.123456Z"
    assert record().to_json(rounded=True)["confidence"] is None


def test_a_new_field_becomes_a_column_and_a_stored_value_with_no_other_edit():
    # What adding a measurement takes: the field (here on a subclass), then a migration adding the column.
    @dataclass
    class WithVariant(CheckRecord):
        variant: str | None = None  # e.g. the HLS variant captured
        speed: float = 0.0

    table = Table("observations", MetaData(), *measured_columns(WithVariant))
    assert table.columns["variant"].nullable and isinstance(table.columns["variant"].type, Text)
    assert not table.columns["speed"].nullable and isinstance(table.columns["speed"].type, Float)
    rec = WithVariant("1", "alice", "Alice", "509658", "Just Chatting", "s1", "agree", variant="360p",
                      speed=np.float32(1.5), checked_at=T0)
    assert rec.values()["variant"] == "360p" and type(rec.values()["speed"]) is float
    assert rec.to_json()["variant"] == "360p"
