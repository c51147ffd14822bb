"""Keep the frames of confident checks: agreeing ones grow the training set, mismatches await review.

    retainer = Retainer(cfg.data_path, max_bytes=2_000_000_000, review_max_bytes=500_000_000)
    kept = retainer.keep(sampled.frames, verdict, stream, model_id="20240101-...")
    kept.area                         # "live" (agree) or "review" (mismatch); None for any other outcome
    retainer.skipped                  # {"duplicate": 3, "test_channel": 1}: agreeing checks live/ did not keep
    read_clips(cfg.data_path)         # the live clips, one dict per clip, oldest first

Only the declaration is a label, and only where the model agrees with it
with at least the verdict's min_confidence (the model card's, or
`monitor.min_confidence` when set: what "agree" already means). A
mismatch may be a mislabeled stream or a model error: nobody knows which
until a person looks, so its frames go to the review area and never to
training. Unsure, offline and failed checks keep nothing.

Layout, one area per purpose under the data directory:

    <data_dir>/live/clips.jsonl                        one line per kept clip (the commit marker)
    <data_dir>/live/<category>/<clip_id>/NNN.png       frames at the model's input size
    <data_dir>/review/...                              the same for mismatches, with the predicted label

Frames are resized by `monitor.frames.resize_frame` (the dataset's and
inference's own resize) and written to `<area>/.tmp/` outside any lock;
then, under the area's lock, the directory is renamed into place, its line
appended, and, once the area is over its byte cap, the oldest clips (by
`checked_at`) deleted until it is back under 90% of the cap: their lines
go first (the jsonl is rewritten to a temp file and renamed over), then
their directories. The lock is an flock on
`<area>/.lock`, taken through a new open file each time, so it excludes
both the threads of one process and other processes sharing the data dir.
Directories without a line (a crash between rename and append, or between
rewrite and delete) are swept under the lock.

What joins the live area (training), on top of "agree":

- Not a frozen test channel. The dataset's test set is by channel
  (trainer.dataset), and `<data_dir>/dataset/split.json` names them; a
  check of one keeps nothing in live/ (`skipped["test_channel"]`), so no
  channel has frames on both sides. trainer.dataset skips them again when
  live clips join training, for clips kept before the split existed.
- Not a near-duplicate. Each frame's perceptual hash (imagehash's pHash,
  64 bits, of the 224x224 frame) is compared with the hashes of the
  channel's last RECENT_CLIPS kept clips; a frame within DUPLICATE_DISTANCE
  bits of one of them is dropped. The clip keeps its novel frames, in time
  order, when there are at least min(MIN_NOVEL_FRAMES, frames) of them,
  else nothing is kept (`skipped["duplicate"]`). Measured on the
  stand-in's frames: the same frame re-encoded differs by 0 bits, a camera
  scene over its whole 48 s loop by 0 to 2, gameplay frames 0.5 s apart by
  4 (median) and 5 s apart by 8, frames of two channels by 18 to 34. At 4,
  a static scene checked every cycle stops growing after its first clip
  while moving gameplay still grows. The review area keeps every frame: a
  person judges each flagged check.
- Within the caps. Each category's live clips may take at most
  `category_share` of `max_bytes` (the category's cap), so one busy
  category cannot swamp the rest; over it, that category's oldest clips go
  first, down to LOW_WATER of its cap. Then the whole area's cap
  (`max_bytes`, the disk budget) evicts the oldest clips of any category.
  Every clip in live/ counts, whatever its `source` ("live" when absent,
  "reviewed" for a human's label).

Retention never fails a check: `keep` logs and counts any error (`errors`,
and the `on_error` callback, given the area) and returns None.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import imagehash
import numpy as np
import scipy.fftpack  # noqa: F401  imagehash.phash imports it on first use: here, at start-up, not mid-check
from PIL import Image

from monitor.frames import resize_frame
from monitor.helix import Stream
from monitor.jsonl import append_jsonl, read_jsonl, rewrite_jsonl
from monitor.verdict import Verdict

log = logging.getLogger(__name__)

AREAS = ("live", "review")
AREA_OF_OUTCOME = {"agree": "live", "mismatch": "review"}
CLIPS_FILE = "clips.jsonl"
# A temporary clip directory older than this belongs to a process that died mid-write.
STALE_TMP_SECONDS = 3600.0
PNG_LEVEL = 1  # as the dataset: ~4 ms and ~40 kB per 224x224 frame; level 6 saves ~17% for 2.5x the time
# Over the cap, evict down to this fraction of it: the index is rewritten once per
# tenth of the cap, not on every clip (each rewrite costs ~100 ms at 1,000 clips).
LOW_WATER = 0.9
# Near-duplicates (see the module docstring for the measurements behind these).
DUPLICATE_DISTANCE = 4  # bits of 64 at or below which two frames' pHashes are the same scene
RECENT_CLIPS = 50  # a channel's kept clips its new frames are compared with (~900 hashes: ~2 ms a check)
MIN_NOVEL_FRAMES = 3  # fewer novel frames than this (or than the clip has) keep nothing
SPLIT_FILE = Path("dataset") / "split.json"  # trainer.dataset's frozen split, channel -> "train" | "test"


@dataclass(frozen=True)
class RetainedClip:
    """Where one kept clip went and what it weighs."""

    area: str  # "live" | "review"
    clip_id: str
    path: Path  # the clip's frame directory
    frames: int
    bytes: int
    evicted: int  # clips deleted from the area to make room


class Retainer:
    """Keep the frames of agreeing checks for training and of mismatching ones for review, within caps."""

    def __init__(
        self,
        data_dir: str | Path,
        *,
        enabled: bool = True,
        max_bytes: int = 2_000_000_000,
        review_max_bytes: int = 500_000_000,
        min_confidence: float = 0.0,
        category_share: float = 1.0,
        duplicate_distance: int = DUPLICATE_DISTANCE,
        on_error: Callable[[str], None] | None = None,
    ):
        if not 0 < category_share <= 1:
            raise ValueError(f"category_share must be in (0, 1], got {category_share!r}")
        self.data_dir = Path(data_dir)
        self.enabled = enabled
        # On top of the verdict's own threshold, which every agree and mismatch already passed.
        self.min_confidence = min_confidence
        self.duplicate_distance = duplicate_distance
        category_cap = None if category_share >= 1 else int(max_bytes * category_share)
        self._areas = {"live": ClipArea(self.data_dir / "live", max_bytes, category_max_bytes=category_cap),
                       "review": ClipArea(self.data_dir / "review", review_max_bytes)}
        self._split = FrozenSplit(self.data_dir / SPLIT_FILE)
        self._on_error = on_error
        self._errors: Counter[str] = Counter()
        self._skipped: Counter[str] = Counter()
        self._errors_lock = threading.Lock()

    @property
    def errors(self) -> dict[str, int]:
        """Return how many clips failed to be kept, by area."""
        with self._errors_lock:
            return dict(self._errors)

    @property
    def skipped(self) -> dict[str, int]:
        """Return how many agreeing checks kept nothing in live/, by reason ("duplicate", "test_channel")."""
        with self._errors_lock:
            return dict(self._skipped)

    def _skip(self, reason: str, stream: Stream) -> None:
        log.debug("not keeping frames of %s for training: %s", stream.user_login, reason)
        with self._errors_lock:
            self._skipped[reason] += 1

    def area(self, name: str) -> ClipArea:
        """Return one area ("live" or "review")."""
        return self._areas[name]

    def keep(
        self,
        frames: Sequence[np.ndarray],
        verdict: Verdict,
        stream: Stream,
        *,
        model_id: str | None,
        scores: Mapping[str, float] | None = None,
        checked_at: datetime | None = None,
    ) -> RetainedClip | None:
        """Store a checked clip's frames in the area its outcome calls for; never raises."""
        name = AREA_OF_OUTCOME.get(verdict.outcome)
        if not self.enabled or name is None or not frames or verdict.confidence < self.min_confidence:
            return None
        if not stream.game_id:  # no declared category, no label
            return None
        if name == "live" and self._split.is_test_channel(stream.user_id):
            self._skip("test_channel", stream)
            return None
        checked_at = checked_at or datetime.now(UTC)
        record = {
            "clip_id": f"live-{checked_at.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:12]}",
            "outcome": verdict.outcome,
            "channel_id": stream.user_id,
            "channel_login": stream.user_login,
            "stream_id": stream.id,
            "category": stream.game_id,  # the declared category: the label, where the model agrees
            "category_name": stream.game_name,
            "predicted_label": verdict.predicted_label,
            "predicted_game_id": verdict.predicted_game_id,
            "confidence": round(float(verdict.confidence), 6),
            "scores": {k: round(float(v), 6) for k, v in (scores or {}).items()},
            "model_id": model_id,
            "checked_at": checked_at.astimezone(UTC).isoformat(timespec="microseconds"),
        }
        try:
            resized = [resize_frame(f) for f in frames]
            if name == "live":
                resized = self._novel(resized, record, stream)
                if not resized:
                    self._skip("duplicate", stream)
                    return None
            return self._areas[name].add(record, resized)
        except Exception as exc:  # a full disk or a bad frame must not cost the check its verdict
            log.warning("keeping frames of %s in %s failed: %s: %s", stream.user_login, name,
                        type(exc).__name__, exc)
            with self._errors_lock:
                self._errors[name] += 1
            if self._on_error is not None:
                try:
                    self._on_error(name)
                except Exception:
                    log.exception("reporting a retention error failed")
            return None

    def _novel(self, frames: list[np.ndarray], record: dict, stream: Stream) -> list[np.ndarray]:
        """Return the frames unlike the channel's recent kept ones (adding their hashes to record), or []."""
        hashes = [frame_hash(f) for f in frames]
        recent = self._areas["live"].recent_hashes(stream.user_id, RECENT_CLIPS)
        novel = [i for i, h in enumerate(hashes)
                 if all((h ^ seen).bit_count() > self.duplicate_distance for seen in recent)]
        if len(novel) < min(MIN_NOVEL_FRAMES, len(frames)):
            return []
        record["phash"] = [f"{hashes[i]:016x}" for i in novel]
        record["duplicate_frames"] = len(frames) - len(novel)
        return [frames[i] for i in novel]


def frame_hash(frame: np.ndarray) -> int:
    """Return a frame's 64-bit perceptual hash (imagehash.phash) as an int: ~1 ms for a 224x224 frame."""
    return int(str(imagehash.phash(Image.fromarray(frame))), 16)


class FrozenSplit:
    """The dataset's frozen test channels, read from its split.json and re-read when the file changes."""

    def __init__(self, path: Path):
        self.path = path
        self._seen: tuple[int, int] | None = None
        self._test: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def is_test_channel(self, channel_id: str) -> bool:
        return channel_id in self.test_channels()

    def test_channels(self) -> frozenset[str]:
        """Return the channel ids in the test set; none while the dataset has no split yet."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return frozenset()
        except OSError as exc:  # keep() never raises; training checks the channels again when it loads
            log.warning("cannot read the dataset's split %s: %s", self.path, exc)
            return self._test
        with self._lock:
            if self._seen != (st.st_mtime_ns, st.st_size):
                try:
                    channels = json.loads(self.path.read_text()).get("channels", {})
                except (OSError, ValueError) as exc:
                    # Kept anyway: trainer.dataset checks every live clip's channel again when it loads them.
                    log.warning("cannot read the dataset's split %s: %s", self.path, exc)
                    return self._test
                self._test = frozenset(ch for ch, side in channels.items() if side == "test")
                self._seen = (st.st_mtime_ns, st.st_size)
            return self._test


class ClipArea:
    """One directory of kept clips with its jsonl index, lock and byte cap."""

    def __init__(self, root: str | Path, max_bytes: int, *, category_max_bytes: int | None = None):
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.category_max_bytes = category_max_bytes  # None: no cap per category
        self.clips_file = self.root / CLIPS_FILE
        self._tmp = self.root / ".tmp"
        self._swept = False

    def records(self) -> list[dict]:
        """Return the area's clip records in the order they were kept."""
        return read_jsonl(self.clips_file)

    def usage(self) -> int:
        """Return the bytes of frames the area's records account for."""
        return sum(int(r.get("bytes", 0)) for r in self.records())

    def recent_hashes(self, channel_id: str, clips: int) -> list[int]:
        """Return the frame hashes of a channel's last `clips` kept clips (read without the lock)."""
        mine = [r for r in self.records() if r.get("channel_id") == channel_id][-clips:]
        return [int(h, 16) for r in mine for h in r.get("phash", ())]

    def add(self, record: dict, frames: Sequence[np.ndarray]) -> RetainedClip:
        """Write frames (already at input size), commit their line, then evict the oldest over the cap."""
        clip_id, category = record["clip_id"], record["category"]
        _check_name(category)
        tmp = self._tmp / clip_id
        try:
            tmp.mkdir(parents=True)
            size = 0
            for position, frame in enumerate(frames):
                path = tmp / f"{position:03d}.png"
                Image.fromarray(frame).save(path, compress_level=PNG_LEVEL)
                size += path.stat().st_size
            record = {**record, "frames": len(frames), "bytes": size, "dir": f"{category}/{clip_id}"}
            final = self.root / category / clip_id
            with self.locked():
                if not self._swept:
                    self._sweep()
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, final)
                try:
                    append_jsonl(self.clips_file, [record])
                except BaseException:  # a full disk: no frames without their line
                    shutil.rmtree(final, ignore_errors=True)
                    raise
                evicted = self._evict()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return RetainedClip(area=self.root.name, clip_id=clip_id, path=final, frames=len(frames), bytes=size,
                            evicted=evicted)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the area's exclusive lock (threads and processes alike)."""
        self.root.mkdir(parents=True, exist_ok=True)
        # A fresh open file per holder: flock excludes other open files, even in this process.
        with open(self.root / ".lock", "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _evict(self) -> int:
        """Past a category's cap, then the area's, drop the oldest clips down to LOW_WATER of it; hold the lock."""
        records = self.records()
        gone: set[str] = set()
        if self.category_max_bytes is not None:
            by_category: dict[str, list[dict]] = defaultdict(list)
            for r in records:
                by_category[r["category"]].append(r)
            for clips in by_category.values():
                gone |= _oldest_over(clips, self.category_max_bytes)
        gone |= _oldest_over([r for r in records if r["clip_id"] not in gone], self.max_bytes)
        if not gone:
            return 0
        # Lines first: a crash now leaves directories without lines, which the sweep removes.
        rewrite_jsonl(self.clips_file, [r for r in records if r["clip_id"] not in gone])
        for r in records:
            if r["clip_id"] in gone:
                shutil.rmtree(self.root / r["dir"], ignore_errors=True)
        log.info("%s: deleted the %d oldest clips to stay within %d bytes", self.root, len(gone), self.max_bytes)
        # Clips other processes lost in a crash since; cheap enough at this rate.
        self._sweep()
        return len(gone)

    def _sweep(self) -> None:
        """Remove clip directories that have no line and temporary ones left by dead writers."""
        self._swept = True
        known = {r["dir"] for r in self.records()}
        for category_dir in self.root.iterdir():
            if not category_dir.is_dir() or category_dir == self._tmp:
                continue
            for clip_dir in category_dir.iterdir():
                if f"{category_dir.name}/{clip_dir.name}" not in known:
                    shutil.rmtree(clip_dir, ignore_errors=True)
        if self._tmp.is_dir():
            cutoff = time.time() - STALE_TMP_SECONDS
            for tmp in self._tmp.iterdir():
                with contextlib.suppress(FileNotFoundError):
                    if tmp.stat().st_mtime < cutoff:
                        shutil.rmtree(tmp, ignore_errors=True)


def _oldest_over(records: list[dict], cap: int) -> set[str]:
    """Return the ids of the oldest records to drop so that, once over `cap`, they fall to LOW_WATER of it."""
    total = sum(int(r["bytes"]) for r in records)
    if total <= cap:
        return set()
    target = int(cap * LOW_WATER)
    gone: set[str] = set()
    for r in sorted(records, key=lambda r: (r["checked_at"], r["clip_id"])):
        if total <= target:
            break
        gone.add(r["clip_id"])
        total -= int(r["bytes"])
    return gone


def read_clips(data_dir: str | Path, area: str = "live") -> list[dict]:
    """Return the kept clips of one area, as their jsonl lines, in the order they were kept."""
    if area not in AREAS:
        raise ValueError(f"unknown area {area!r}; expected one of {', '.join(AREAS)}")
    return read_jsonl(Path(data_dir) / area / CLIPS_FILE)


def load_frames(data_dir: str | Path, record: Mapping, area: str = "live") -> list[np.ndarray]:
    """Load a kept clip's frames (RGB uint8 224x224) in time order; FileNotFoundError if it was evicted."""
    clip_dir = Path(data_dir) / area / record["dir"]
    return [np.asarray(Image.open(clip_dir / f"{i:03d}.png").convert("RGB")) for i in range(int(record["frames"]))]


def _check_name(category: str) -> None:
    # The declared category names a directory: a Helix id is digits; refuse anything that could escape.
    if not category or category in (".", "..") or "/" in category or "\\" in category or category.startswith("."):
        raise ValueError(f"category id {category!r} cannot name a directory")


def remove_clip(area: ClipArea, clip_id: str) -> dict | None:
    """Take one clip out of an area (its line, then its frames); return its record, None if it is not there.

    For `twitchwatch review` (monitor/review.py), once a reviewed clip's frames are in the live area.
    """
    with area.locked():
        records = area.records()
        found = next((r for r in records if r["clip_id"] == clip_id), None)
        if found is None:
            return None
        # Line first, as eviction does: a crash now leaves a directory without a line, which the sweep removes.
        rewrite_jsonl(area.clips_file, [r for r in records if r["clip_id"] != clip_id])
        shutil.rmtree(area.root / found["dir"], ignore_errors=True)
        return found
