"""Build the training set from Twitch clips: the report's Get_clip, Extract_Frame and Split_train_test.

    report = build_dataset(cfg, HelixClient(cfg.twitch))
    data = load_dataset(cfg.data_path)       # data.train, data.test: lists of trainer.clip.Clip
    grown = load_dataset(cfg.data_path, include_live=True)   # + clips kept from live checks, in train only

Layout under `<data_dir>/dataset/`:

    clips.jsonl     one line per finished clip (the commit marker): ok or failed, and why
    manifest.jsonl  one line per stored frame: clip, channel, category, index, file, sha256
    split.json      channel -> "train" | "test"; the test part is frozen once written
    frames/<category>/<clip_id>/<position>.png   frames at the model's input size

A clip's frames are written to a temporary directory and renamed into place
before its lines are appended, so an interrupted build leaves no half clip
and the next run resumes after the last finished one. One build at a time
per directory (a lock on `dataset/.build.lock`): a second one would clear the
first's unfinished clips as leftovers of a crash while it writes them. Each clip keeps
`dataset.frames_per_clip` candidate frames spread evenly over it (the
sampler's test mode with one frame per segment); training draws its K x n
frames from them with the same sampler in train mode.

Games nobody watches: after the watched categories, the build takes clips of
the `dataset.other_games` most watched game categories outside
categories.watch (Get Top Games; a category without an IGDB id, such as Just
Chatting or Music, is no game). Their clips.jsonl lines say `other_game`;
they load as GAMEPLAY clips ("some game, none of the classes"), always in
train, and teach the model not to name a known game for an unknown one.

The split is by channel (no channel's frames on both sides), stratified by
category and fixed by `dataset.seed`; channels that appear in later builds
go to train, so the test clips stay the same and models stay comparable.

Live clips (`<data_dir>/live/`, monitor.retain) join train only, never a
test channel's: the retainer reads split.json's test channels and keeps
nothing of them for training, and `_live_clips` skips them again, for the
clips kept before the split existed and for those a human review writes
(`source: "reviewed"`). Channel ids are Helix user ids on both sides, so a
live clip collides with the test set exactly when its `channel_id` is a
test channel of split.json.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import random
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from PIL import Image

from monitor.atomic_file import write_atomic
from monitor.capture import capture_stream
from monitor.config import Config
from monitor.errors import CaptureError, DatasetError, DecodeError, HelixError
from monitor.frames import decode_sampled, resize_frame
from monitor.helix import CLIP_ID_RE, Game, HelixClient, Stream
from monitor.jsonl import append_jsonl, read_jsonl
from monitor.retain import load_frames, read_clips
from monitor.verdict import GAMEPLAY
from trainer.clip import Clip

log = logging.getLogger(__name__)

FRAMES_PER_CLIP = 48
CLIP_CAPTURE_SECONDS = 120.0  # longer than any clip: a clip is read to its end


@dataclass
class CategoryReport:
    category: str
    name: str
    channels: int = 0
    clips_new: int = 0
    clips_kept: int = 0
    clips_failed: int = 0
    frames: int = 0
    note: str = ""


@dataclass
class BuildReport:
    categories: list[CategoryReport] = field(default_factory=list)
    seconds: float = 0.0
    train_clips: int = 0
    test_clips: int = 0
    test_hash: str = ""

    def table(self) -> str:
        rows = [("category", "channels", "new", "kept", "failed", "frames", "note")]
        for c in self.categories:
            rows.append((f"{c.name} ({c.category})", str(c.channels), str(c.clips_new), str(c.clips_kept),
                         str(c.clips_failed), str(c.frames), c.note))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        lines.append(f"train clips {self.train_clips}, test clips {self.test_clips} (frozen, hash {self.test_hash[:12]}),"
                     f" {self.seconds:.1f}s")
        return "\n".join(lines)


@dataclass
class Dataset:
    train: list[Clip]
    test: list[Clip]
    classes: list[str]
    test_hash: str
    dataset_hash: str
    # Train clips by where they come from: "clip" (the built dataset), "other_game" (clips of
    # unwatched games, labelled GAMEPLAY), "live" (agreeing checks), "reviewed" (checks a human
    # labelled, `twitchwatch review`; "gameplay" ones train as GAMEPLAY too).
    train_sources: dict[str, int] = field(default_factory=dict)


class DatasetStore:
    """The files of one dataset directory: read, append, resume."""

    def __init__(self, data_dir: str | Path):
        self.root = Path(data_dir) / "dataset"
        self.frames_dir = self.root / "frames"
        self.clips_file = self.root / "clips.jsonl"
        self.manifest_file = self.root / "manifest.jsonl"
        self.split_file = self.root / "split.json"

    @contextlib.contextmanager
    def building(self) -> Iterator[None]:
        """Hold the directory's build lock for the block; raise DatasetError if another build holds it."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".build.lock", "a+", encoding="utf-8") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.seek(0)
                holder = lock.read().strip() or "another process"
                raise DatasetError(
                    f"another `twitchwatch dataset build` (pid {holder}) is writing {self.root}: "
                    "wait for it to finish, then run this one again (it resumes)") from None
            lock.truncate(0)
            lock.write(str(os.getpid()))
            lock.flush()
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def clip_records(self) -> dict[str, dict]:
        return {r["clip_id"]: r for r in read_jsonl(self.clips_file)}

    def manifest(self) -> list[dict]:
        return read_jsonl(self.manifest_file)

    def split(self) -> dict:
        if not self.split_file.exists():
            return {}
        return json.loads(self.split_file.read_text())

    def remove_unfinished(self, finished: set[str]) -> None:
        """Delete frame directories of clips that never got their clips.jsonl line."""
        if not self.frames_dir.exists():
            return
        for category_dir in self.frames_dir.iterdir():
            for clip_dir in category_dir.iterdir():
                if clip_dir.name not in finished or clip_dir.name.startswith(".tmp-"):
                    shutil.rmtree(clip_dir, ignore_errors=True)

    def commit_clip(self, record: dict, frames: list[np.ndarray], frame_indices: list[int]) -> list[dict]:
        """Store a clip's frames and its lines atomically enough to resume after a crash."""
        if not CLIP_ID_RE.fullmatch(str(record["clip_id"])) or not str(record["category"]).isdigit():
            # Both come from outside (Helix) and name directories: nothing may leave frames_dir.
            raise DatasetError(f"refusing to store clip {str(record['clip_id'])[:40]!r} of category "
                               f"{str(record['category'])[:40]!r}: not a Twitch clip id and category id")
        final = self.frames_dir / record["category"] / record["clip_id"]
        tmp = final.parent / f".tmp-{record['clip_id']}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        rows = []
        for position, (frame, index) in enumerate(zip(frames, frame_indices, strict=True)):
            name = f"{position:03d}.png"
            Image.fromarray(frame).save(tmp / name, compress_level=1)
            rows.append({
                "clip_id": record["clip_id"], "channel_id": record["channel_id"],
                "channel_login": record["channel_login"], "category": record["category"],
                "position": position, "frame_index": index, "source": "clip",
                "file": f"frames/{record['category']}/{record['clip_id']}/{name}",
                "sha256": hashlib.sha256(frame.tobytes()).hexdigest(),
            })
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        append_jsonl(self.manifest_file, rows)
        append_jsonl(self.clips_file, [record])
        return rows

    def record_failure(self, record: dict) -> None:
        append_jsonl(self.clips_file, [record])

    def write_split(self, split: dict) -> None:
        write_atomic(self.split_file, json.dumps(split, indent=1, sort_keys=True).encode())


def build_dataset(cfg: Config, helix: HelixClient, *, say: Callable[[str], None] = print) -> BuildReport:
    """Fetch top channels' clips per watched category, store their frames, freeze the split."""
    store = DatasetStore(cfg.data_path)
    with store.building():
        return _build(cfg, helix, store, say)


def _build(cfg: Config, helix: HelixClient, store: DatasetStore, say: Callable[[str], None]) -> BuildReport:
    started = time.monotonic()
    records = store.clip_records()
    store.remove_unfinished({cid for cid, r in records.items() if r["status"] == "ok"})
    names = helix.game_names(list(cfg.categories.watch))
    report = BuildReport()
    for category in cfg.categories.watch:
        cat = CategoryReport(category, names.get(category, "?"))
        report.categories.append(cat)
        if category not in names:
            cat.note = "unknown to Twitch: skipped"
            say(f"[{category}] unknown category: skipped")
            continue
        _build_category(cfg, helix, store, records, cat, say)
    for other in _other_games(cfg, helix, say):
        cat = CategoryReport(other.id, other.name, note="other game: trains as gameplay")
        report.categories.append(cat)
        _build_category(cfg, helix, store, records, cat, say, other_game=True)
    split = _update_split(cfg, store)
    report.train_clips = sum(1 for r in store.clip_records().values()
                             if r["status"] == "ok" and split["channels"].get(r["channel_id"]) == "train")
    report.test_clips = len(split["test_clips"])
    report.test_hash = split["test_hash"]
    report.seconds = time.monotonic() - started
    return report


def _other_games(cfg: Config, helix: HelixClient, say: Callable[[str], None]) -> list[Game]:
    """Return the `dataset.other_games` most watched game categories that nobody watches here."""
    wanted = cfg.dataset.other_games
    if not wanted:
        return []
    skip = set(cfg.categories.watch) | {cfg.categories.chatting}
    try:
        # Non-games and watched ones come off the top, so ask for a margin of them.
        top = helix.top_games(wanted + len(skip) + 20)
    except HelixError as exc:
        say(f"[other games] top categories listing failed: {exc}")
        return []
    return [g for g in top if g.is_game and g.id not in skip][:wanted]


def _build_category(cfg: Config, helix: HelixClient, store: DatasetStore, records: dict[str, dict],
                    cat: CategoryReport, say: Callable[[str], None], *, other_game: bool = False) -> None:
    ds = cfg.dataset
    try:
        streams = helix.top_streams(cat.category, ds.streamers_per_category)
    except HelixError as exc:
        cat.note = f"listing failed: {exc}"
        say(f"[{cat.name}] listing failed: {exc}")
        return
    cat.channels = len(streams)
    if not streams:
        cat.note = "no live channels: skipped"
        say(f"[{cat.name}] no live channels: skipped")
        return
    say(f"[{cat.name}] {len(streams)} channels")
    # Helix ends a window one week after started_at unless ended_at is given.
    now = datetime.now(UTC)
    window = ((now - timedelta(days=ds.clip_window_days)).strftime("%Y-%m-%dT%H:%M:%SZ"),
              now.strftime("%Y-%m-%dT%H:%M:%SZ"))
    for stream in streams:
        for clip in _top_clips(helix, stream, cat.category, ds.clips_per_channel, window, say):
            previous = records.get(clip["id"])
            if previous and previous["status"] == "ok":
                cat.clips_kept += 1
                cat.frames += previous["frames"]
                continue
            record = _fetch_clip(cfg, store, stream, clip, cat.category, other_game=other_game)
            records[clip["id"]] = record
            if record["status"] == "ok":
                cat.clips_new += 1
                cat.frames += record["frames"]
                say(f"[{cat.name}] {stream.user_login} clip {clip['id']}: {record['frames']} frames")
            else:
                cat.clips_failed += 1
                say(f"[{cat.name}] {stream.user_login} clip {clip['id']}: skipped ({record['reason']})")


def _top_clips(helix: HelixClient, stream: Stream, category: str, wanted: int, window: tuple[str, str],
               say: Callable[[str], None]) -> list[dict]:
    try:
        clips = helix.clips(stream.user_id, limit=max(wanted * 4, 20), started_at=window[0], ended_at=window[1])
    except HelixError as exc:
        say(f"  {stream.user_login}: clips listing failed: {exc}")
        return []
    # Only clips made while the channel was in this category carry its label.
    in_category = [c for c in clips if str(c.get("game_id")) == category]
    in_category.sort(key=lambda c: -int(c.get("view_count", 0)))
    return in_category[:wanted]


def _fetch_clip(cfg: Config, store: DatasetStore, stream: Stream, clip: dict, category: str, *,
                other_game: bool = False) -> dict:
    record = {
        "clip_id": str(clip["id"]), "channel_id": stream.user_id, "channel_login": stream.user_login,
        "category": category, "url": clip.get("url"), "created_at": clip.get("created_at"),
        "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if other_game:
        record["other_game"] = True
    try:
        cap = capture_stream(clip["url"], seconds=CLIP_CAPTURE_SECONDS, timeout=cfg.monitor.capture_timeout_seconds)
        sampled = decode_sampled(cap.data, FRAMES_PER_CLIP, 1, "test")
    except (CaptureError, DecodeError) as exc:
        store.record_failure({**record, "status": "failed", "reason": str(exc)})
        return {**record, "status": "failed", "reason": str(exc)}
    if len(sampled.frames) < FRAMES_PER_CLIP // 2:
        reason = f"only {len(sampled.frames)} of {FRAMES_PER_CLIP} frames decoded"
        store.record_failure({**record, "status": "failed", "reason": reason})
        return {**record, "status": "failed", "reason": reason}
    frames = [resize_frame(f) for f in sampled.frames]
    indices = sampled.indices[: len(frames)]
    record.update(status="ok", frames=len(frames), total_frames=sampled.total_frames, bytes=cap.size,
                  variant=cap.variant)
    store.commit_clip(record, frames, indices)
    return record


def _update_split(cfg: Config, store: DatasetStore) -> dict:
    """Assign channels to train/test; freeze the test part the first time.

    Other games' channels always train: they have no class for the test set to score."""
    ok = [r for r in store.clip_records().values() if r["status"] == "ok"]
    others = [r for r in ok if r.get("other_game")]
    ok = [r for r in ok if not r.get("other_game")]
    split = store.split()
    if not split:
        split = {"seed": cfg.dataset.seed, "test_fraction": cfg.dataset.test_fraction,
                 "channels": _stratified_split(ok, cfg.dataset.test_fraction, cfg.dataset.seed)}
        test_clips = sorted(r["clip_id"] for r in ok if split["channels"][r["channel_id"]] == "test")
        split["test_clips"] = test_clips
        split["test_hash"] = _test_hash(store, set(test_clips))
        split["frozen_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        if not test_clips:
            # Freezing an empty test set would keep it empty for good: wait for more channels.
            return split
    else:
        for r in ok:
            # New channels never enter the frozen test set.
            split["channels"].setdefault(r["channel_id"], "train")
    for r in others:
        split["channels"].setdefault(r["channel_id"], "train")
    store.write_split(split)
    return split


def _stratified_split(clips: list[dict], test_fraction: float, seed: int) -> dict[str, str]:
    """Per category, put round(fraction x channels) of its channels (at least one) in test."""
    by_category: dict[str, set[str]] = defaultdict(set)
    for r in clips:
        by_category[r["category"]].add(r["channel_id"])
    assignment: dict[str, str] = {}
    rng = random.Random(seed)
    for category in sorted(by_category):
        # A channel clipped in two categories is assigned once, where first seen.
        channels = sorted(c for c in by_category[category] if c not in assignment)
        rng.shuffle(channels)
        n_test = max(1, round(test_fraction * len(channels))) if len(channels) >= 2 else 0
        for i, channel in enumerate(channels):
            assignment[channel] = "test" if i < n_test else "train"
    return assignment


def _test_hash(store: DatasetStore, test_clips: set[str]) -> str:
    digest = hashlib.sha256()
    for row in sorted(store.manifest(), key=lambda r: (r["clip_id"], r["position"])):
        if row["clip_id"] in test_clips:
            digest.update(f"{row['clip_id']}:{row['position']}:{row['sha256']}\n".encode())
    return digest.hexdigest()


def load_dataset(data_dir: str | Path, classes: list[str] | None = None, *, include_live: bool = False,
                 frames_for: Collection[str] | None = None) -> Dataset:
    """Load the built dataset's frames into memory as train and test clips (plus live clips in train).

    With `frames_for`, only those clips' frames are read; every other clip
    comes with no frames (its metadata only): a rank of trainer.distributed
    reads its shard.
    """
    store = DatasetStore(data_dir)
    split = store.split()
    if not store.clips_file.exists():
        raise DatasetError(f"no dataset in {store.root}: run `twitchwatch dataset build` first")
    if not split:
        raise DatasetError(f"the dataset in {store.root} has no test set yet (a category needs clips of at "
                           "least 2 channels): run `twitchwatch dataset build` again when more channels are live")
    frames_by_clip: dict[str, list[dict]] = defaultdict(list)
    for row in store.manifest():
        frames_by_clip[row["clip_id"]].append(row)
    records = [r for r in store.clip_records().values() if r["status"] == "ok" and r["clip_id"] in frames_by_clip]
    found = sorted({r["category"] for r in records if not r.get("other_game")})
    classes = classes or found
    if len(found) < 2:
        raise DatasetError(f"the dataset in {store.root} has {len(found)} class(es) ({', '.join(found) or 'none'}): "
                           "a classifier needs at least two categories with clips")
    train: list[Clip] = []
    test: list[Clip] = []
    test_clips = set(split["test_clips"])
    test_channels = {ch for ch, side in split["channels"].items() if side == "test"}
    other_games = 0
    for r in sorted(records, key=lambda r: r["clip_id"]):
        if r.get("other_game"):
            if r["channel_id"] in test_channels:
                continue  # no channel has frames on both sides
            label = GAMEPLAY
            other_games += 1
        elif r["category"] in classes:
            label = r["category"]
        else:
            continue
        rows = sorted(frames_by_clip[r["clip_id"]], key=lambda row: row["position"])
        if frames_for is not None and r["clip_id"] not in frames_for:
            rows = []
        frames = [np.asarray(Image.open(store.root / row["file"]).convert("RGB")) for row in rows]
        clip = Clip(clip_id=r["clip_id"], label=label, channel=r["channel_id"], frames=frames)
        (test if r["clip_id"] in test_clips else train).append(clip)
    digest = hashlib.sha256(store.manifest_file.read_bytes())
    sources: Counter = Counter({"clip": len(train) - other_games})
    if other_games:
        sources["other_game"] = other_games
    if include_live:
        for record in _live_clips(data_dir, split, classes, train):
            digest.update(json.dumps(record, sort_keys=True).encode() + b"\n")
            sources[record.get("source", "live")] += 1
    return Dataset(train=train, test=test, classes=list(classes), test_hash=split["test_hash"],
                   dataset_hash=digest.hexdigest(), train_sources=dict(sources))


def _live_clips(data_dir: str | Path, split: dict, classes: list[str], train: list[Clip]) -> list[dict]:
    """Append the retained live clips (monitor.retain) to train; return the records used.

    Only train: the frozen test set stays the clips it was. A live clip of a
    test channel is skipped, whatever its source (kept by the daemon before
    the split existed, or labelled in review), so no channel has frames on
    both sides; one of a category outside `classes` too. A clip evicted
    while loading is skipped. A clip may hold fewer frames than its check
    decoded (monitor.retain drops near-duplicates); the sampler repeats
    frames of a short clip as it does for short dataset clips.
    """
    test_channels = {ch for ch, side in split["channels"].items() if side == "test"}
    used = []
    skipped: Counter = Counter()
    for record in read_clips(data_dir, "live"):
        if record["channel_id"] in test_channels:
            skipped["test channel"] += 1
            continue
        if record["category"] not in classes and record["category"] != GAMEPLAY:
            skipped["category not a class"] += 1
            continue
        try:
            frames = load_frames(data_dir, record, "live")
        except OSError:
            skipped["evicted"] += 1
            continue
        train.append(Clip(clip_id=record["clip_id"], label=record["category"], channel=record["channel_id"],
                          frames=frames))
        used.append(record)
    if skipped:
        log.info("live clips skipped: %s", ", ".join(f"{n} {why}" for why, n in sorted(skipped.items())))
    return used
