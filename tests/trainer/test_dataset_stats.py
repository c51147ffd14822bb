"""`twitchwatch dataset stats`: per category, clips, frames, sources and bytes of what training can use."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np

from monitor.frames import resize_frame
from monitor.helix import Stream
from monitor.jsonl import read_jsonl, rewrite_jsonl
from monitor.retain import Retainer
from monitor.verdict import Verdict
from tests.cli_helpers import run_cli, write_config
from trainer.dataset import DatasetStore
from trainer.dataset_stats import dataset_stats

LOL, FORTNITE = "21779", "33214"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _noise(seed: int, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for _ in range(count)]


def _stream(channel: str, category: str) -> Stream:
    return Stream(id=f"s{channel}", user_id=channel, user_login=f"chan{channel}", user_name=channel,
                  game_id=category, game_name="League of Legends" if category == LOL else "Fortnite",
                  viewer_count=1, thumbnail_url="", started_at="")


def _build(data_dir) -> None:
    """Three dataset clips (two LoL, one of them test; one Fortnite), three live LoL clips, one of them reviewed."""
    store = DatasetStore(data_dir)
    for n, (channel, category, frames) in enumerate([("901", LOL, 3), ("902", LOL, 2), ("903", FORTNITE, 4)]):
        store.commit_clip({"clip_id": f"c{channel}", "channel_id": channel, "channel_login": f"chan{channel}",
                           "category": category, "status": "ok", "frames": frames},
                          [resize_frame(f) for f in _noise(n, frames)], list(range(frames)))
    store.record_failure({"clip_id": "cbad", "channel_id": "909", "category": LOL, "status": "failed", "reason": "x"})
    retainer = Retainer(data_dir)
    for n, channel in enumerate(["904", "905", "902"]):  # 902 is a test channel: kept before the split was known
        retainer.keep(_noise(10 + n, 5), Verdict("agree", LOL, LOL, 0.9), _stream(channel, LOL), model_id="m1",
                      checked_at=T0 + timedelta(minutes=n))
    live = data_dir / "live" / "clips.jsonl"
    lines = read_jsonl(live)
    lines[1]["source"] = "reviewed"  # as a human review writes it
    rewrite_jsonl(live, lines)
    store.write_split({"channels": {"901": "train", "902": "test", "903": "train"}, "test_clips": ["c902"],
                       "test_hash": "h"})


def test_dataset_stats_counts_clips_frames_sources_and_bytes_per_category(tmp_path):
    data = tmp_path / "data"
    _build(data)
    cfg = write_config(tmp_path / "tw.toml", {"storage": {"data_dir": str(data)}})
    done = run_cli("dataset", "stats", "--json", "--config", str(cfg), timeout=120)
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout)
    by_id = {c["category"]: c for c in stats["categories"]}
    assert set(by_id) == {LOL, FORTNITE}
    lol, fortnite = by_id[LOL], by_id[FORTNITE]
    png = lambda sub: sum(p.stat().st_size for p in (data / sub).rglob("*.png"))  # noqa: E731
    live_bytes = sum(r["bytes"] for r in read_jsonl(data / "live" / "clips.jsonl"))
    assert lol["sources"] == {"clips": 2, "live": 2, "reviewed": 1}
    assert lol["clips"] == 5 and lol["frames"] == 3 + 2 + 5 * 3 and lol["test_clips"] == 1
    assert lol["excluded_live_clips"] == 1 and lol["name"] == "League of Legends"
    assert fortnite == {"category": FORTNITE, "name": None, "clips": 1, "frames": 4, "bytes": fortnite["bytes"],
                        "sources": {"clips": 1, "live": 0, "reviewed": 0}, "test_clips": 0,
                        "excluded_live_clips": 0, "other_game": False}
    assert lol["bytes"] + fortnite["bytes"] == png("dataset/frames") + live_bytes == png("dataset") + png("live")
    assert stats["total"]["clips"] == 6 and stats["total"]["sources"] == {"clips": 3, "live": 2, "reviewed": 1}

    text = run_cli("dataset", "stats", "--config", str(cfg), timeout=120)
    assert text.returncode == 0, text.stderr
    assert "21779 League of Legends" in text.stdout and "2/2/1" in text.stdout and "total" in text.stdout


def test_dataset_stats_of_an_empty_data_dir_says_what_to_do_and_json_goes_with_stats_only(tmp_path):
    cfg = write_config(tmp_path / "tw.toml", {"storage": {"data_dir": str(tmp_path / "none")}})
    done = run_cli("dataset", "stats", "--config", str(cfg), timeout=120)
    assert done.returncode == 0 and "dataset build" in done.stdout
    assert dataset_stats(tmp_path / "none").to_json() == {
        "categories": [], "total": {"clips": 0, "frames": 0, "bytes": 0, "test_clips": 0, "excluded_live_clips": 0,
                                    "sources": {"clips": 0, "live": 0, "reviewed": 0}}}
    wrong = run_cli("dataset", "build", "--json", "--config", str(cfg), timeout=120)
    assert wrong.returncode == 2 and "--json goes with stats" in wrong.stderr
    assert not (tmp_path / "none").exists()  # counting creates nothing
