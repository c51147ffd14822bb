"""Count what the training set holds, per category: `twitchwatch dataset stats [--json]`.

    stats = dataset_stats(cfg.data_path)
    stats.to_json()    # {"categories": [{"category": "21779", "clips": 12, ...}], "total": {...}}
    print(stats.table())

Three sources feed it: "clips", the Twitch clips `dataset build` stored
(under `<data_dir>/dataset/`), and the live area (`<data_dir>/live/`,
monitor.retain), whose lines are "live" when kept from an agreeing check
(no `source` field, or `source: "live"`) and "reviewed" when a person
labelled them (`source: "reviewed"`). A live line with any other source is
counted under that name. `bytes` is what the frames weigh on disk: the PNG
files of the dataset's clips, the `bytes` of each live line. `test_clips`
are the dataset clips frozen in the test set (part of `clips`); live
clips of test-set channels, which training skips, are counted apart in
`excluded_live_clips`. Categories nobody watches whose clips `dataset build`
took as examples of other games (dataset.other_games) say `other_game`: they
train as "gameplay", never as a class.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from monitor.retain import read_clips
from trainer.dataset import DatasetStore

SOURCES = ("clips", "live", "reviewed")


@dataclass
class CategoryStats:
    """What one category holds, all sources together, and how many clips came from each."""

    category: str
    name: str | None = None
    clips: int = 0
    frames: int = 0
    bytes: int = 0
    test_clips: int = 0
    excluded_live_clips: int = 0
    sources: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SOURCES, 0))
    other_game: bool = False  # an unwatched game (dataset.other_games): its clips train as "gameplay"

    def add(self, source: str, frames: int, size: int) -> None:
        self.clips += 1
        self.frames += frames
        self.bytes += size
        self.sources[source] = self.sources.get(source, 0) + 1

    def to_json(self) -> dict:
        return {"category": self.category, "name": self.name, "clips": self.clips, "frames": self.frames,
                "bytes": self.bytes, "sources": dict(self.sources), "test_clips": self.test_clips,
                "excluded_live_clips": self.excluded_live_clips, "other_game": self.other_game}


@dataclass
class DatasetStats:
    categories: list[CategoryStats]

    def total(self) -> CategoryStats:
        total = CategoryStats("total")
        for c in self.categories:
            total.clips += c.clips
            total.frames += c.frames
            total.bytes += c.bytes
            total.test_clips += c.test_clips
            total.excluded_live_clips += c.excluded_live_clips
            for source, n in c.sources.items():
                total.sources[source] = total.sources.get(source, 0) + n
        return total

    def to_json(self) -> dict:
        total = self.total().to_json()
        del total["category"], total["name"], total["other_game"]
        return {"categories": [c.to_json() for c in self.categories], "total": total}

    def table(self) -> str:
        """Return one line per category and a total line, for people."""
        if not self.categories:
            return "no clips yet: run `twitchwatch dataset build` (the daemon adds live clips as it checks)"
        head = (f"{'category':<28} {'clips':>6} {'frames':>7} {'MB':>8}  "
                f"{'clips/live/reviewed':<19} {'test':>5} {'excluded':>8}")
        rows = [head]
        for c in [*self.categories, self.total()]:
            label = c.category if c.name is None else f"{c.category} {c.name}"
            label = f"{label[:17]} (gameplay)" if c.other_game else label
            sources = "/".join(str(c.sources.get(s, 0)) for s in SOURCES)
            rows.append(f"{label[:28]:<28} {c.clips:>6} {c.frames:>7} {c.bytes / 1e6:>8.1f}  {sources:<19} "
                        f"{c.test_clips:>5} {c.excluded_live_clips:>8}")
        return "\n".join(rows)


def dataset_stats(data_dir: str | Path) -> DatasetStats:
    """Count clips, frames, bytes and sources per category of the dataset and the live area."""
    data_dir = Path(data_dir)
    store = DatasetStore(data_dir)
    by_category: dict[str, CategoryStats] = {}

    def of(category: str) -> CategoryStats:
        return by_category.setdefault(category, CategoryStats(category))

    split = store.split()
    test_clips = set(split.get("test_clips", ()))
    test_channels = {ch for ch, side in split.get("channels", {}).items() if side == "test"}
    files: dict[str, list[str]] = defaultdict(list)
    for row in store.manifest():
        files[row["clip_id"]].append(row["file"])
    for record in store.clip_records().values():
        if record.get("status") != "ok" or record["clip_id"] not in files:
            continue
        stats = of(record["category"])
        stats.other_game = stats.other_game or bool(record.get("other_game"))
        stats.add("clips", len(files[record["clip_id"]]), sum(_size(store.root / f) for f in files[record["clip_id"]]))
        stats.test_clips += record["clip_id"] in test_clips
    for record in read_clips(data_dir, "live"):
        stats = of(record["category"])
        stats.name = stats.name or record.get("category_name") or None
        stats.add(str(record.get("source") or "live"), int(record.get("frames", 0)), int(record.get("bytes", 0)))
        stats.excluded_live_clips += record.get("channel_id") in test_channels
    return DatasetStats(sorted(by_category.values(), key=lambda c: c.category))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:  # a frame deleted by hand: counted as nothing rather than failing the count
        return 0
