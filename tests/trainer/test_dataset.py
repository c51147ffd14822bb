"""`dataset build` against the stand-in: split by channel, frozen test set, resume, faults."""

from __future__ import annotations

import json

import pytest

from monitor.config import load_config
from monitor.errors import DatasetError
from monitor.helix import HelixClient
from monitor.sim import small_scenario
from monitor.verdict import GAMEPLAY
from trainer.dataset import DatasetStore, build_dataset, load_dataset

LOL, CHAT, FORTNITE = "21779", "509658", "33214"


def _config(sim, tmp_path, streamers: int = 2, clips: int = 1, watch: tuple[str, ...] = (LOL, CHAT, FORTNITE),
            other_games: int = 4):
    return load_config(environ={}, overrides={
        "twitch": sim.twitch_config(),
        "categories": {"watch": list(watch), "chatting": CHAT},
        "storage": {"database_url": f"sqlite:///{tmp_path / 'tw.db'}", "data_dir": str(tmp_path / "data")},
        "dataset": {"streamers_per_category": streamers, "clips_per_channel": clips, "test_fraction": 0.5,
                    "other_games": other_games},
    })


def _build(cfg, lines=None):
    return build_dataset(cfg, HelixClient(cfg.twitch), say=(lines.append if lines is not None else lambda _: None))


def _split_channels(cfg) -> dict[str, str]:
    return DatasetStore(cfg.data_path).split()["channels"]


def test_no_channel_has_frames_on_both_sides_of_the_split(standin, tmp_path):
    cfg = _config(standin, tmp_path)
    report = _build(cfg)
    data = load_dataset(cfg.data_path)
    train_channels = {c.channel for c in data.train}
    test_channels = {c.channel for c in data.test}
    assert train_channels and test_channels
    assert not train_channels & test_channels
    # Stratified: every category has a test channel and a train channel.
    assert {c.label for c in data.test} == {c.label for c in data.train} == {LOL, CHAT, FORTNITE}
    assert report.test_clips == len(data.test)
    # The manifest names every stored frame with its checksum.
    rows = DatasetStore(cfg.data_path).manifest()
    assert len(rows) == sum(len(c.frames) for c in data.train + data.test)
    assert all(len(r["sha256"]) == 64 and (cfg.data_path / "dataset" / r["file"]).exists() for r in rows)


def test_a_rebuild_adds_clips_without_touching_the_frozen_test_set(standin, tmp_path):
    cfg = _config(standin, tmp_path)
    _build(cfg)
    before = load_dataset(cfg.data_path)
    split_before = _split_channels(cfg)

    grown = _config(standin, tmp_path, streamers=3, clips=2)
    lines: list[str] = []
    report = _build(grown, lines)
    after = load_dataset(grown.data_path)
    assert sorted(c.clip_id for c in after.test) == sorted(c.clip_id for c in before.test)
    assert after.test_hash == before.test_hash
    assert len(after.train) > len(before.train)
    # Old assignments stand; new channels only ever join train.
    split_after = _split_channels(grown)
    assert all(split_after[ch] == side for ch, side in split_before.items())
    assert all(split_after[ch] == "train" for ch in set(split_after) - set(split_before))
    # Finished clips were kept, not fetched again.
    assert sum(c.clips_kept for c in report.categories) == len(before.train) + len(before.test)


def test_an_interrupted_clip_is_redone_and_a_finished_one_kept(standin, tmp_path):
    cfg = _config(standin, tmp_path)
    _build(cfg)
    store = DatasetStore(cfg.data_path)
    records = store.clip_records()
    # A crash after the frames were renamed into place but before the clip's line was written:
    victim = next(iter(records.values()))
    kept = [r for r in records.values() if r["clip_id"] != victim["clip_id"]]
    store.clips_file.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))
    half = store.frames_dir / victim["category"] / ".tmp-halfwritten"
    half.mkdir(parents=True)
    (half / "000.png").write_bytes(b"partial")

    report = _build(cfg)
    assert not half.exists()
    assert sum(c.clips_new for c in report.categories) == 1
    assert sum(c.clips_kept for c in report.categories) == len(kept)
    assert store.clip_records()[victim["clip_id"]]["status"] == "ok"


def test_a_clip_that_cannot_decode_is_recorded_and_skipped(standin, tmp_path):
    scenario = small_scenario()
    broken = next(ch.login for ch in scenario.channels if ch.declared_game_id == LOL)
    standin.set_corrupt(broken, 1.0)
    cfg = _config(standin, tmp_path, streamers=3)
    lines: list[str] = []
    _build(cfg, lines)
    records = DatasetStore(cfg.data_path).clip_records().values()
    failed = [r for r in records if r["status"] == "failed"]
    assert failed and all(r["channel_login"] == broken for r in failed)
    assert any("skipped" in line and broken in line for line in lines)
    # Nothing half-written: no frames directory for a failed clip.
    for r in failed:
        assert not (cfg.data_path / "dataset" / "frames" / LOL / r["clip_id"]).exists()
    data = load_dataset(cfg.data_path)
    assert broken not in {c.channel for c in data.train + data.test}


def test_an_empty_category_is_reported_and_skipped(standin, tmp_path):
    scenario = small_scenario()
    for ch in scenario.channels:
        if ch.declared_game_id == FORTNITE:
            standin.set_offline(ch.login, True)
    lines: list[str] = []
    report = _build(_config(standin, tmp_path), lines)
    fortnite = next(c for c in report.categories if c.category == FORTNITE)
    assert fortnite.channels == 0 and "no live channels" in fortnite.note
    assert any("no live channels" in line for line in lines)
    assert {c.label for c in load_dataset(tmp_path / "data").train} == {LOL, CHAT}


def test_load_without_a_build_says_which_command_to_run(tmp_path):
    with pytest.raises(DatasetError, match="twitchwatch dataset build"):
        load_dataset(tmp_path / "nothing")


def test_a_dataset_with_one_class_is_refused(standin, tmp_path):
    cfg = load_config(environ={}, overrides={
        "twitch": standin.twitch_config(),
        "categories": {"watch": [LOL], "chatting": CHAT},
        "storage": {"data_dir": str(tmp_path / "data")},
        "dataset": {"streamers_per_category": 2, "clips_per_channel": 1, "test_fraction": 0.5},
    })
    _build(cfg)
    with pytest.raises(DatasetError, match="at least two categories"):
        load_dataset(cfg.data_path)


def test_a_second_build_of_the_same_directory_is_refused_while_one_runs(standin, tmp_path):
    cfg = _config(standin, tmp_path)
    _build(cfg)
    store = DatasetStore(cfg.data_path)
    files_before = {p.relative_to(store.frames_dir) for p in store.frames_dir.rglob("*.png")}
    # A build in progress has a clip half-written in its temporary directory.
    half = store.frames_dir / CHAT / ".tmp-in-progress"
    half.mkdir(parents=True)
    (half / "000.png").write_bytes(b"being written")
    with store.building():
        with pytest.raises(DatasetError, match=r"another `twitchwatch dataset build` \(pid \d+\) is writing"):
            _build(cfg)
        assert (half / "000.png").exists()  # the running build's clip was left alone
    assert {p.relative_to(store.frames_dir) for p in store.frames_dir.rglob("*.png")} == (
        files_before | {(half / "000.png").relative_to(store.frames_dir)})
    _build(cfg)  # once it is done, the next build runs (and clears the leftover)
    assert not half.exists()


def test_clips_of_an_unwatched_game_train_as_gameplay_and_never_enter_the_test_set(standin, tmp_path):
    # Watching LoL and Just Chatting, Fortnite is a game nobody here watches: an example of "some other game".
    cfg = _config(standin, tmp_path, watch=(LOL, CHAT), other_games=4)
    report = _build(cfg)
    other = [c for c in report.categories if c.category == FORTNITE]
    assert len(other) == 1 and other[0].clips_new == 2 and "gameplay" in other[0].note
    assert [c.category for c in report.categories] == [LOL, CHAT, FORTNITE]  # no more games to take
    data = load_dataset(cfg.data_path)
    assert data.classes == [LOL, CHAT]
    gameplay = [c for c in data.train if c.label == GAMEPLAY]
    assert len(gameplay) == 2 and data.train_sources["other_game"] == 2
    assert all(c.label != GAMEPLAY for c in data.test)
    fortnite_channels = {c.channel for c in gameplay}
    assert {_split_channels(cfg)[ch] for ch in fortnite_channels} == {"train"}


def test_other_games_off_takes_only_the_watched_categories(standin, tmp_path):
    cfg = _config(standin, tmp_path, watch=(LOL, CHAT), other_games=0)
    report = _build(cfg)
    assert [c.category for c in report.categories] == [LOL, CHAT]
    assert all(c.label != GAMEPLAY for c in load_dataset(cfg.data_path).train)
