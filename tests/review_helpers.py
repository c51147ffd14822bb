"""A review queue to test against: flags and queued checks made the way a check makes them.

    from review_helpers import ReviewWorld      # tests/ is on sys.path under pytest
    world = ReviewWorld(tmp_path, database_url)
    flag_id = world.flag("dana", declared=CHATTING, shows=LOL)     # two mismatching checks, two review clips

Each check is stored as `monitor.check.check_stream` stores it: the
observation through Store.record, then its frames through Retainer.keep
with the observation's checked_at.
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from cli_helpers import write_config

from monitor.config import load_config
from monitor.helix import Stream
from monitor.record import CheckRecord
from monitor.retain import Retainer
from monitor.store import Store
from monitor.verdict import Verdict

CHATTING, LOL, FORTNITE = "509658", "21779", "33214"
NAMES = {CHATTING: "Just Chatting", LOL: "League of Legends", FORTNITE: "Fortnite"}
WATCH = [LOL, CHATTING, FORTNITE]
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def frames(seed: int, count: int = 4, kind: int | None = None) -> list[np.ndarray]:
    """Return small frames: noise, or one of tests/toydata.py's three scenes when `kind` is given."""
    rng = np.random.default_rng(seed)
    if kind is not None:
        from toydata import toy_frame

        return [toy_frame(kind, rng) for _ in range(count)]
    return [rng.integers(0, 256, (90, 160, 3), dtype=np.uint8) for _ in range(count)]


class ReviewWorld:
    """A database and a data directory holding flags and queued checks, and a config pointing at both."""

    def __init__(self, root: Path, database_url: str, watch: list[str] | None = None):
        self.root = root
        self.data_dir = root / "data"
        self.database_url = database_url
        self.watch = watch or WATCH
        self.store = Store(database_url)
        self.store.upgrade()
        self.store.upsert_categories({c: NAMES.get(c, c) for c in self.watch})
        self.retainer = Retainer(self.data_dir)
        self.config_path = write_config(root / "review.toml", {
            "storage": {"database_url": database_url, "data_dir": str(self.data_dir)},
            "categories": {"watch": self.watch, "chatting": CHATTING},
            "model": {"pretrained": "none"},
        })
        self.cfg = load_config(self.config_path, environ={})
        self._checks = 0

    def close(self) -> None:
        self.store.dispose()

    def check(self, login: str, *, declared: str, shows: str, user_id: str | None = None,
              declared_name: str | None = None, kind: int | None = None) -> CheckRecord:
        """Store one mismatching check of `login` and keep its frames for review."""
        self._checks += 1
        user_id = user_id or str(zlib.crc32(login.encode()) % 10**8)
        name = declared_name or NAMES.get(declared, declared)
        record = CheckRecord(user_id=user_id, user_login=login, display_name=login, declared_game_id=declared,
                             declared_game_name=name, stream_id=f"s-{user_id}", outcome="mismatch",
                             predicted_game_id=shows, predicted_label=shows, confidence=0.93,
                             scores={shows: 0.93, declared: 0.07}, model_id="m1", frames_decoded=4,
                             frames_expected=4, checked_at=T0 + timedelta(minutes=5 * self._checks))
        self.store.record(record, confirmations=2)
        stream = Stream(id=record.stream_id, user_id=user_id, user_login=login, user_name=login, game_id=declared,
                        game_name=name, viewer_count=5, thumbnail_url="", started_at="")
        kept = self.retainer.keep(frames(self._checks, kind=kind), Verdict("mismatch", shows, shows, 0.93), stream,
                                  model_id="m1", scores=record.scores, checked_at=record.checked_at)
        assert kept is not None and kept.area == "review"
        return record

    def flag(self, login: str, *, declared: str = CHATTING, shows: str = LOL, **kwargs) -> int:
        """Open a flag on `login` with two mismatching checks (confirmations = 2); return its id."""
        self.check(login, declared=declared, shows=shows, **kwargs)
        record = self.check(login, declared=declared, shows=shows, **kwargs)
        [flag] = [f for f in self.store.flags() if f["user_id"] == record.user_id]
        return flag["id"]

    def flag_row(self, flag_id: int) -> dict:
        return self.store.flag(flag_id)
