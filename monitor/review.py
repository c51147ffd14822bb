"""Review by a human: the flags and queued checks awaiting a verdict, and what a verdict does.

    desk = ReviewDesk(cfg)
    desk.queue()                   # open flags without a verdict (newest first), then queued checks of no flag
    desk.review("3", "ok")         # flag 3: the declaration was right -> closed "rejected", frames to training
    desk.review("live-2026...", "21779")   # a queued check: it shows League of Legends -> training, so labelled
    desk.sheet("live-2026...")     # its contact sheet PNG, drawn on first use
    desk.close()

What a label means (`twitchwatch review ID --label LABEL`), against the
category the stream declared:

    LABEL                      the screen shows          verdict     frames go to training labelled
    a watched category != the declared one            confirmed   that category
    the declared category / ok  what it declares       rejected    the declared category
    gameplay                   a game outside the watched set  confirmed   "gameplay" (no class: it
                                                                         trains as "none of the known
                                                                         games", trainer.train)

A confirmed flag stays open (the stream still misleads; the flag rules close
it when the stream agrees, leaves or ends); a rejected one closes with reason
`rejected` and counts as a false positive (`twitchwatch_flags_rejected_total`),
and the channel's mismatch streak restarts.

Where the frames are: monitor.retain keeps each confident mismatch's frames in
`<data_dir>/review/` with the observation's own `checked_at`, so a flag's
clips are its channel's review clips of its declared category checked from
its `first_seen` to its `last_seen`. A review clip of no unreviewed open flag
is a queued check of its own (its id is its clip id). A verdict moves the
clips into `<data_dir>/live/` with the human label and `source: "reviewed"`
(a new clip id, `reviewed-...`), then takes them out of the review area, then
stores the verdict: a crash in between leaves nothing lost, and the same
review run again finishes the job (a clip already in live is not added twice).

Contact sheets are drawn lazily into `<data_dir>/review-sheets/<clip_id>.png`
(monitor.atomic_file.write_atomic) and deleted once their clip has left the
review area.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor.atomic_file import write_atomic
from monitor.config import Config
from monitor.contact_sheet import contact_sheet
from monitor.errors import ReviewError, UsageError
from monitor.helix import valid_login
from monitor.record import iso
from monitor.retain import ClipArea, load_frames, remove_clip
from monitor.store import ReviewRow, Store
from monitor.store.models import CONFIRMED, REJECTED
from monitor.verdict import GAMEPLAY

log = logging.getLogger(__name__)

OK = "ok"
SHEETS_DIR = "review-sheets"
REVIEWED_SOURCE = "reviewed"
CHANNEL_URL = "https://www.twitch.tv/{login}"
# monitor.retain's clip ids ("live-20260101T120000-0123456789ab"): also a file name here, so nothing else passes.
CLIP_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
FLAG_ID_RE = re.compile(r"[0-9]{1,12}")


def interpret_label(label: str, declared: str, watched: tuple[str, ...] | list[str]) -> tuple[str, str]:
    """Return (what the screen shows, "confirmed" | "rejected") for a human's label; UsageError if unknown."""
    if label == OK:
        return declared, REJECTED
    if label == GAMEPLAY:
        return GAMEPLAY, CONFIRMED
    if label in watched:
        return label, REJECTED if label == declared else CONFIRMED
    raise UsageError(f"twitchwatch review: --label {label[:40]!r} is not a watched category id, 'gameplay' "
                     f"or 'ok' (watched: {', '.join(watched)})")


def channel_url(login: str) -> str | None:
    """Return the Twitch page of a channel, None when the login is not one (it goes into a link)."""
    return CHANNEL_URL.format(login=login) if valid_login(login) else None


def clips_of_flag(flag: dict[str, Any], records: list[dict]) -> list[dict]:
    """Return the review clips a flag rests on: its channel's, of its declared category, first to last seen."""
    first, last = _time(flag["first_seen"]), _time(flag["last_seen"])
    return [r for r in records
            if r.get("channel_id") == flag["user_id"] and r.get("category") == flag["declared_game_id"]
            and first <= _time(r["checked_at"]) <= last]


@dataclass(frozen=True)
class ReviewResult:
    """What one verdict did."""

    target: str  # the flag id or the clip id reviewed
    kind: str  # "flag" | "check"
    verdict: str  # "confirmed" | "rejected"
    label: str  # what the screen shows: a category id or "gameplay"
    clips_moved: int  # clips now in training with the human label
    flag: dict[str, Any] | None  # the flag after the verdict, as `flags --json` shows it

    def to_json(self) -> dict[str, Any]:
        return {"id": self.target, "kind": self.kind, "verdict": self.verdict, "label": self.label,
                "clips_moved": self.clips_moved, "flag": self.flag}

    def line(self) -> str:
        what = f"flag {self.target}" if self.kind == "flag" else f"queued check {self.target}"
        closed = "; the flag is closed (rejected)" if self.flag and self.flag.get("close_reason") == "rejected" else ""
        return (f"{what}: {self.verdict} (shows {self.label}); {self.clips_moved} clip(s) moved into training "
                f"with that label{closed}")


class ReviewDesk:
    """The review queue of one data directory and database: list it, give verdicts, draw contact sheets."""

    def __init__(self, cfg: Config, store: Store | None = None):
        self.cfg = cfg
        self.data_dir = cfg.data_path
        self.store = store or Store(cfg.storage.database_url)
        self._own_store = store is None
        self.store.ensure_current()
        self.live = ClipArea(self.data_dir / "live", cfg.retain.max_bytes)
        self.pending = ClipArea(self.data_dir / "review", cfg.retain.review_max_bytes)
        self.sheets_dir = self.data_dir / SHEETS_DIR
        # One verdict at a time in this process (the web page's threads); the database settles other processes.
        self._lock = threading.Lock()

    def close(self) -> None:
        if self._own_store:
            self.store.dispose()

    # -- the queue -------------------------------------------------------------

    def queue(self) -> list[dict[str, Any]]:
        """Return what awaits a verdict: open flags (newest first), then queued checks (newest first)."""
        reviews = self.store.reviews()
        reviewed_flags = {r["flag_id"] for r in reviews if r["flag_id"] is not None}
        records = self.pending.records()
        names = self.store.category_names()
        items: list[dict[str, Any]] = []
        claimed: set[str] = set()
        for flag in self.store.flags():
            if flag["id"] in reviewed_flags:
                continue
            clips = sorted(clips_of_flag(flag, records), key=lambda r: r["checked_at"], reverse=True)
            claimed.update(r["clip_id"] for r in clips)
            shown = [self._clip_json(r, names) for r in clips]
            items.append({
                **flag, "kind": "flag", "id": str(flag["id"]), "channel_url": channel_url(flag["user_login"]),
                "contact_sheet": shown[0]["contact_sheet"] if shown else None, "clips": shown,
            })
        for record in reversed(records):
            if record["clip_id"] not in claimed:
                items.append({**self._clip_json(record, names), "kind": "check", "id": record["clip_id"]})
        self._prune_sheets({r["clip_id"] for r in records})
        return items

    def _clip_json(self, record: dict, names: dict[str, str]) -> dict[str, Any]:
        predicted = record.get("predicted_game_id")
        login = str(record.get("channel_login") or "")
        return {
            "clip_id": record["clip_id"], "user_login": login, "user_id": record.get("channel_id"),
            "channel_url": channel_url(login),
            "declared_game_id": record["category"],
            "declared_game_name": record.get("category_name") or names.get(record["category"], record["category"]),
            "predicted_game_id": predicted,
            "predicted_game_name": names.get(predicted, predicted) if predicted else GAMEPLAY,
            "predicted_label": record.get("predicted_label"),
            "confidence": record.get("confidence"), "checked_at": iso(_time(record["checked_at"])),
            "frames": record.get("frames"), "contact_sheet": self._sheet_or_none(record),
        }

    # -- contact sheets ----------------------------------------------------------

    def sheet(self, clip_id: str) -> Path:
        """Return the contact sheet of a queued clip, drawing it if needed; ReviewError if no such clip."""
        record = self._pending(clip_id)
        if record is None:
            raise ReviewError(f"no queued check {clip_id[:64]!r} in {self.pending.root}")
        return self._draw_sheet(record)

    def _sheet_or_none(self, record: dict) -> str | None:
        try:
            return str(self._draw_sheet(record))
        except OSError as exc:  # evicted meanwhile, or a full disk: the listing goes on
            log.warning("no contact sheet for %s: %s", record["clip_id"], exc)
            return None

    def _draw_sheet(self, record: dict) -> Path:
        clip_id = record["clip_id"]
        if not CLIP_ID_RE.fullmatch(clip_id):
            raise ReviewError(f"clip id {clip_id[:64]!r} cannot name a file")
        path = self.sheets_dir / f"{clip_id}.png"
        if path.exists():
            return path
        frames = load_frames(self.data_dir, record, "review")
        predicted = record.get("predicted_label") or "?"
        predicted = self.store.category_names().get(predicted, predicted)
        confidence = float(record.get("confidence") or 0.0)
        title = (f"{record.get('channel_login')} declares {record.get('category_name') or record['category']}; "
                 f"model sees {predicted} ({confidence:.0%}); {record['checked_at'][:19]}Z")
        self.sheets_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(path, contact_sheet(frames, title))
        return path

    def _prune_sheets(self, queued: set[str]) -> None:
        if not self.sheets_dir.is_dir():
            return
        for path in self.sheets_dir.glob("*.png"):
            if path.stem not in queued:
                path.unlink(missing_ok=True)

    # -- verdicts ------------------------------------------------------------------

    def review(self, target: str, label: str) -> ReviewResult:
        """Record a human verdict on a flag (its id) or a queued check (its clip id)."""
        target = target.strip()
        watched = list(self.cfg.categories.watch)
        label = label.strip().lower()
        if label not in (OK, GAMEPLAY) and label not in watched:
            interpret_label(label, "", watched)  # raises the one-line usage error
        with self._lock:
            if FLAG_ID_RE.fullmatch(target):
                return self._review_flag(int(target), label, watched)
            if CLIP_ID_RE.fullmatch(target):
                return self._review_check(target, label, watched)
        raise ReviewError(f"{target[:64]!r} is neither a flag id nor a queued check's id: `twitchwatch review` "
                          "lists them")

    def _review_flag(self, flag_id: int, label: str, watched: list[str]) -> ReviewResult:
        flag = self.store.flag(flag_id)
        if flag is None:
            raise ReviewError(f"no flag {flag_id}: `twitchwatch review` lists the flags and queued checks")
        done = next((r for r in self.store.reviews() if r["flag_id"] == flag_id), None)
        if done is not None:
            raise ReviewError(f"flag {flag_id} has a verdict already: {done['verdict']} as {done['label']} "
                              f"at {done['reviewed_at']}")
        shows, verdict = interpret_label(label, flag["declared_game_id"], watched)
        moved = sum(self._to_training(r, shows, verdict) for r in clips_of_flag(flag, self.pending.records()))
        # Files first, then the verdict: a failure above leaves the flag awaiting review, with the clips
        # not moved yet still queued, and the same review run again finishes the job.
        after = self.store.record_review(ReviewRow(
            channel_id=flag["user_id"], declared_game_id=flag["declared_game_id"], label=shows, verdict=verdict,
            clips=moved, flag_id=flag_id))
        return ReviewResult(str(flag_id), "flag", verdict, shows, moved, after)

    def _review_check(self, clip_id: str, label: str, watched: list[str]) -> ReviewResult:
        done = next((r for r in self.store.reviews() if r["clip_id"] == clip_id), None)
        if done is not None:
            raise ReviewError(f"queued check {clip_id} has a verdict already: {done['verdict']} as {done['label']}")
        record = self._pending(clip_id)
        if record is None:
            raise ReviewError(f"no queued check {clip_id!r} (evicted, or never kept): `twitchwatch review` lists "
                              "the flags and queued checks")
        shows, verdict = interpret_label(label, record["category"], watched)
        moved = self._to_training(record, shows, verdict)
        self.store.record_review(ReviewRow(
            channel_id=str(record.get("channel_id")), declared_game_id=record["category"], label=shows,
            verdict=verdict, clips=moved, clip_id=clip_id))
        return ReviewResult(clip_id, "check", verdict, shows, moved, None)

    def _pending(self, clip_id: str) -> dict | None:
        return next((r for r in self.pending.records() if r["clip_id"] == clip_id), None)

    def _to_training(self, record: dict, shows: str, verdict: str) -> int:
        """Copy one review clip into the live area under the human label, then take it out of review."""
        try:
            return self._move(record, shows, verdict)
        except OSError as exc:  # a full disk, a broken data directory: one line, and nothing recorded
            raise ReviewError(f"cannot move queued check {record['clip_id']} into {self.live.root} "
                              f"({type(exc).__name__}: {exc}); no verdict recorded: fix it and run the review "
                              "again") from None

    def _move(self, record: dict, shows: str, verdict: str) -> int:
        new_id = reviewed_clip_id(record["clip_id"])
        moved = 0
        if any(r["clip_id"] == new_id for r in self.live.records()):
            moved = 1  # a review interrupted after the copy: finish it
        else:
            try:
                frames = load_frames(self.data_dir, record, "review")
            except OSError as exc:
                log.warning("review clip %s is gone (%s): nothing to move", record["clip_id"], exc)
            else:
                kept = {k: v for k, v in record.items() if k not in ("frames", "bytes", "dir")}
                self.live.add({**kept, "clip_id": new_id, "category": shows, "declared_category": record["category"],
                               "source": REVIEWED_SOURCE, "review_verdict": verdict, "review_of": record["clip_id"],
                               "reviewed_at": datetime.now(UTC).isoformat(timespec="seconds")}, frames)
                moved = 1
        remove_clip(self.pending, record["clip_id"])
        (self.sheets_dir / f"{record['clip_id']}.png").unlink(missing_ok=True)
        return moved


def reviewed_clip_id(clip_id: str) -> str:
    """Return the live area's id of a reviewed clip: "live-X" becomes "reviewed-X"."""
    return f"{REVIEWED_SOURCE}-{clip_id.removeprefix('live-')}"


def _time(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
