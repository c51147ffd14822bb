"""What one check measured: the record a check fills in, the store keeps and the JSON shows.

    record = CheckRecord("1", "alice", "Alice", "509658", "Just Chatting", "stream-1", "agree")
    record.frames_decoded = 18
    store.record(record, confirmations=2)     # one observations row, field for field
    record.to_json()                          # {"user_id": "1", ..., "checked_at": "2026-01-01T12:00:00Z"}

`CheckRecord` is the one definition of a check's measurements. The
observations table has one column per field (`monitor.store.models` builds
them from these fields), `Store.observations()` reads its rows back through
it, and `twitchwatch check --json` prints it. A new measurement is one field
here plus an Alembic migration that adds its column.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

DIGITS = "digits"  # field metadata: decimals `check --json` shows; the store keeps full precision


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class CheckRecord:
    """One check of one live stream, whatever its outcome."""

    # The stream, as Helix listed it.
    user_id: str
    user_login: str
    display_name: str
    declared_game_id: str
    declared_game_name: str
    stream_id: str
    # The verdict (monitor.verdict).
    outcome: str  # an Outcome value
    predicted_game_id: str | None = None  # a watched category; None for unknown-game gameplay or no prediction
    predicted_label: str = ""  # a category id, "gameplay", or "" without a prediction
    confidence: float | None = field(default=None, metadata={DIGITS: 4})
    scores: dict[str, float] = field(default_factory=dict, metadata={DIGITS: 4})  # category id -> probability
    model_id: str | None = None
    # How the check went.
    frames_decoded: int = 0
    frames_expected: int = 0
    capture_seconds: float = field(default=0.0, metadata={DIGITS: 3})
    decode_seconds: float = field(default=0.0, metadata={DIGITS: 3})
    inference_seconds: float = field(default=0.0, metadata={DIGITS: 3})
    bytes_downloaded: int = 0
    error: str | None = None
    checked_at: datetime = field(default_factory=_now)  # aware, UTC

    def values(self) -> dict[str, Any]:
        """Return every field as a plain Python value of its declared type (numpy scalars become float, int)."""
        types, _ = field_types(type(self))
        return {f.name: _plain(getattr(self, f.name), types[f.name]) for f in fields(self)}

    def to_json(self, *, rounded: bool = False) -> dict[str, Any]:
        """Return every field as a JSON value, times in ISO 8601 UTC; `rounded` as `check --json` shows them."""
        out = self.values()
        out["checked_at"] = iso(self.checked_at)
        if rounded:
            for f in fields(self):
                if DIGITS in f.metadata:
                    out[f.name] = _round(out[f.name], f.metadata[DIGITS])
        return out

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> CheckRecord:
        """Build a record from {field name: value}, such as a stored row's columns."""
        return cls(**{f.name: values[f.name] for f in fields(cls)})


@functools.cache
def field_types(cls: type[CheckRecord] = CheckRecord) -> tuple[dict[str, Any], frozenset[str]]:
    """Return each field's type without None (`float | None` -> float), and the fields that may be None."""
    types: dict[str, Any] = {}
    optional: set[str] = set()
    for name, hint in typing.get_type_hints(cls).items():
        args = typing.get_args(hint)
        if type(None) in args:
            optional.add(name)
            hint = next(arg for arg in args if arg is not type(None))
        types[name] = hint
    return types, frozenset(optional)


def iso(value: datetime | None) -> str | None:
    """Format an aware datetime as ISO 8601 in UTC, e.g. 2024-05-01T12:00:00.123456Z."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _plain(value: Any, kind: Any) -> Any:
    if value is None:
        return None
    if typing.get_origin(kind) is dict:
        key_type, value_type = typing.get_args(kind)
        return {key_type(k): value_type(v) for k, v in value.items()}
    if kind in (str, int, float, bool):
        return kind(value)
    return value


def _round(value: Any, digits: int) -> Any:
    if isinstance(value, dict):
        return {k: round(v, digits) for k, v in value.items()}
    return None if value is None else round(value, digits)
