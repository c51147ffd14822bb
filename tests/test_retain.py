"""Frames kept from checks: agreeing ones for training, mismatches for review, within byte caps."""

from __future__ import annotations

import multiprocessing
import os
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from PIL import Image
from standin_runtime import constant_model_runtime

from monitor.check import check_stream
from monitor.frames import resize_frame
from monitor.helix import Stream
from monitor.retain import Retainer, read_clips
from monitor.sim import small_scenario
from monitor.verdict import Verdict
from trainer.dataset import DatasetStore, load_dataset

LOL, CHATTING, FORTNITE = "21779", "509658", "33214"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


# -- a real check against the stand-in ------------------------------------------

@pytest.fixture
def runtime(small_standin, tmp_path):
    """A Runtime whose active model, a real SqueezeNet, says League of Legends whatever it sees."""
    rt = constant_model_runtime(small_standin, tmp_path, {LOL: 8.0})
    yield rt
    rt.close()


def _login(declared: str, mislabeled: bool) -> str:
    scenario = small_scenario()
    return next(ch.login for ch in scenario.channels
                if ch.declared_game_id == declared and scenario.truth(ch.login).mislabeled == mislabeled)


def _check(rt, login):
    stream = rt.helix.stream_of(login)
    assert stream is not None
    return check_stream(rt.check_context, stream, rt.classifier())


def test_an_agreeing_check_keeps_its_frames_for_training_and_a_mismatch_for_review(runtime):
    data = runtime.cfg.data_path
    agree = _check(runtime, _login(LOL, mislabeled=False))
    assert agree.outcome == "agree"
    [line] = read_clips(data, "live")
    assert line["channel_login"] == agree.stream.user_login and line["channel_id"] == agree.stream.user_id
    assert line["category"] == LOL and line["outcome"] == "agree"
    assert line["model_id"] == agree.record.model_id and line["confidence"] == pytest.approx(agree.verdict.confidence)
    assert line["frames"] == agree.record.frames_decoded == 6
    files = sorted((data / "live" / line["dir"]).iterdir())
    assert [f.name for f in files] == [f"{i:03d}.png" for i in range(6)]
    assert line["bytes"] == sum(f.stat().st_size for f in files)
    assert Image.open(files[0]).size == (224, 224)

    mismatch = _check(runtime, _login(CHATTING, mislabeled=True))
    assert mismatch.outcome == "mismatch"
    [queued] = read_clips(data, "review")
    assert queued["category"] == CHATTING and queued["predicted_label"] == LOL
    assert len(list((data / "review" / queued["dir"]).glob("*.png"))) == 6
    assert len(read_clips(data, "live")) == 1  # the mismatch never reaches the training area


def test_a_check_whose_frames_cannot_be_kept_still_gets_its_verdict(runtime):
    data = runtime.cfg.data_path
    data.mkdir(parents=True, exist_ok=True)
    (data / "live").write_text("a file where the live area's directory should be")
    login = _login(LOL, mislabeled=False)
    result = _check(runtime, login)
    assert result.outcome == "agree" and result.record.error is None
    assert runtime.store.observations(login)[0]["outcome"] == "agree"
    assert runtime.retainer.errors == {"live": 1}


# -- the retainer on its own: outcomes, resize, caps, concurrency --------------

def _stream(n: int, category: str = LOL) -> Stream:
    return Stream(id=f"s{n}", user_id=f"{900 + n}", user_login=f"chan{n}", user_name=f"Chan{n}",
                  game_id=category, game_name="?", viewer_count=10, thumbnail_url="", started_at="")


def _frames(seed: int, count: int = 4) -> list[np.ndarray]:
    # Noise does not compress: every clip weighs about the same, ~150 kB a frame.
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (360, 640, 3), dtype=np.uint8) for _ in range(count)]


AGREE = Verdict("agree", LOL, LOL, 0.9)


def _keep(retainer, n, minutes, verdict=AGREE, category=LOL):
    return retainer.keep(_frames(n), verdict, _stream(n, category), model_id="m1",
                         checked_at=T0 + timedelta(minutes=minutes))


def test_frames_are_stored_exactly_as_the_shared_resize_makes_them(tmp_path):
    frames = _frames(1, count=2)
    kept = Retainer(tmp_path).keep(frames, AGREE, _stream(1), model_id="m1")
    stored = [np.asarray(Image.open(kept.path / f"{i:03d}.png")) for i in range(2)]
    for original, on_disk in zip(frames, stored, strict=True):
        assert np.array_equal(on_disk, resize_frame(original))


@pytest.mark.parametrize("outcome", ["unsure", "offline", "error"])
def test_no_frames_are_kept_without_an_agree_or_mismatch(tmp_path, outcome):
    retainer = Retainer(tmp_path)
    assert retainer.keep(_frames(1), Verdict(outcome, None, "", 0.4), _stream(1), model_id="m1") is None
    assert not (tmp_path / "live").exists() and not (tmp_path / "review").exists()


def test_a_retainer_threshold_above_the_verdicts_keeps_only_the_surest(tmp_path):
    retainer = Retainer(tmp_path, min_confidence=0.95)
    assert retainer.keep(_frames(1), AGREE, _stream(1), model_id="m1") is None
    assert retainer.keep(_frames(2), Verdict("agree", LOL, LOL, 0.97), _stream(2), model_id="m1") is not None
    assert len(read_clips(tmp_path)) == 1


def test_disabled_retention_keeps_nothing(tmp_path):
    assert Retainer(tmp_path, enabled=False).keep(_frames(1), AGREE, _stream(1), model_id="m1") is None
    assert not (tmp_path / "live").exists()


def test_over_the_cap_the_oldest_clips_by_check_time_go_first(tmp_path):
    probe = Retainer(tmp_path / "probe").keep(_frames(0), AGREE, _stream(0), model_id="m1")
    retainer = Retainer(tmp_path, max_bytes=int(probe.bytes * 3.5))  # room for 3 clips
    # Kept out of time order: the oldest check (minute 1) arrives second.
    kept = {n: _keep(retainer, n, minute) for n, minute in [(1, 5), (2, 1), (3, 9), (4, 7)]}
    lines = read_clips(tmp_path)
    assert [line["channel_login"] for line in lines] == ["chan1", "chan3", "chan4"]
    assert kept[4].evicted == 1 and not kept[2].path.exists()
    on_disk = {f"{p.parent.name}/{p.name}" for p in (tmp_path / "live").glob("*/live-*")}
    assert on_disk == {line["dir"] for line in lines}
    assert retainer.area("live").usage() <= retainer.area("live").max_bytes

    assert _keep(retainer, 5, 8).evicted == 1  # the next clip pushes out minute 5, the oldest left
    assert [line["channel_login"] for line in read_clips(tmp_path)] == ["chan3", "chan4", "chan5"]


def test_once_over_the_cap_eviction_makes_room_for_more_than_one_clip(tmp_path):
    probe = Retainer(tmp_path / "probe").keep(_frames(0, 1), AGREE, _stream(0), model_id="m1")
    retainer = Retainer(tmp_path, max_bytes=int(probe.bytes * 10.5))
    evicted = [retainer.keep(_frames(n, 1), AGREE, _stream(n), model_id="m1").evicted for n in range(13)]
    # The 11th clip overflows and the area drops to 90% of the cap (9 clips), so the 12th fits as it is.
    assert evicted == [0] * 10 + [2, 0, 2]


def test_an_unwritable_area_is_counted_and_reported_not_raised(tmp_path):
    (tmp_path / "review").write_text("not a directory")
    reported = []
    retainer = Retainer(tmp_path, on_error=reported.append)
    assert retainer.keep(_frames(1), Verdict("mismatch", FORTNITE, FORTNITE, 0.8), _stream(1), model_id="m1") is None
    assert _keep(retainer, 2, 2) is not None  # the other area still works
    assert reported == ["review"] and retainer.errors == {"review": 1}
    assert not any((tmp_path / "live" / ".tmp").iterdir())  # no half clip left behind


def test_review_queue_has_its_own_cap(tmp_path):
    probe = Retainer(tmp_path / "probe").keep(_frames(0), AGREE, _stream(0), model_id="m1")
    retainer = Retainer(tmp_path, max_bytes=probe.bytes * 10, review_max_bytes=int(probe.bytes * 1.5))
    mismatch = Verdict("mismatch", FORTNITE, FORTNITE, 0.8)
    for n in range(3):
        _keep(retainer, n, n, verdict=mismatch)
        _keep(retainer, 10 + n, n)
    assert [line["channel_login"] for line in read_clips(tmp_path, "review")] == ["chan2"]
    assert len(read_clips(tmp_path, "live")) == 3


def test_a_crash_leaves_nothing_that_survives_the_next_process(tmp_path):
    retainer = Retainer(tmp_path)
    kept = _keep(retainer, 1, 1)
    area = tmp_path / "live"
    # What crashes leave: a renamed directory without its line, a half-written
    # temporary directory of a dead process, and a line cut short mid-append.
    orphan = area / LOL / "live-orphan"
    orphan.mkdir()
    (orphan / "000.png").write_bytes(b"x")
    stale = area / ".tmp" / "live-dead"
    stale.mkdir(parents=True)
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    fresh = area / ".tmp" / "live-being-written"  # another process, right now
    fresh.mkdir()
    with (area / "clips.jsonl").open("a") as fh:
        fh.write('{"clip_id": "live-cut", "by')
    assert [line["clip_id"] for line in read_clips(tmp_path)] == [kept.clip_id]

    _keep(Retainer(tmp_path), 2, 2)
    assert not orphan.exists() and not stale.exists() and fresh.exists()
    assert kept.path.exists() and len(read_clips(tmp_path)) == 2


def test_threads_keeping_at_once_under_a_cap_lose_no_line(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    probe = Retainer(tmp_path / "probe").keep(_frames(0, 1), AGREE, _stream(0), model_id="m1")
    retainer = Retainer(tmp_path, max_bytes=int(probe.bytes * 4.5))
    with ThreadPoolExecutor(6) as pool:
        kept = list(pool.map(lambda n: retainer.keep(_frames(n, 1), AGREE, _stream(n), model_id="m1",
                                                     checked_at=T0 + timedelta(seconds=n)), range(24)))
    assert all(k is not None for k in kept)
    _assert_consistent(tmp_path, adds=24, evicted=sum(k.evicted for k in kept))
    # The survivors are the newest: eviction goes by check time, not by who got the lock first.
    assert {line["channel_login"] for line in read_clips(tmp_path)} == {f"chan{n}" for n in range(20, 24)}


def _keep_many(args):
    data_dir, first, count, cap = args
    retainer = Retainer(data_dir, max_bytes=cap)
    evicted = 0
    for n in range(first, first + count):
        kept = retainer.keep(_frames(n, 1), AGREE, _stream(n), model_id="m1")
        assert kept is not None
        evicted += kept.evicted
    return evicted


def test_processes_sharing_a_data_dir_keep_the_index_and_the_files_in_step(tmp_path):
    probe = Retainer(tmp_path / "probe").keep(_frames(0, 1), AGREE, _stream(0), model_id="m1")
    cap = int(probe.bytes * 3.5)
    with multiprocessing.get_context("fork").Pool(3) as pool:
        evicted = pool.map(_keep_many, [(tmp_path, i * 100, 12, cap) for i in range(3)])
    _assert_consistent(tmp_path, adds=36, evicted=sum(evicted))


def _assert_consistent(data_dir, adds, evicted):
    lines = read_clips(data_dir)
    on_disk = {f"{p.parent.name}/{p.name}" for p in (data_dir / "live").glob("*/live-*")}
    assert on_disk == {line["dir"] for line in lines}
    assert len(lines) + evicted == adds  # every clip is either listed or was deliberately evicted
    assert sum(line["bytes"] for line in lines) <= Retainer(data_dir).area("live").max_bytes


# -- the training set: live clips join train, never test -------------------------

def _dataset(tmp_path):
    """A built dataset: LoL and Fortnite, channel 901 in train, 902 (LoL) and 903 (Fortnite) in test."""
    store = DatasetStore(tmp_path)
    channels = {"901": LOL, "902": LOL, "903": FORTNITE, "904": FORTNITE}
    for n, (channel, category) in enumerate(channels.items()):
        frames = [resize_frame(f) for f in _frames(50 + n, 3)]
        store.commit_clip({"clip_id": f"c{channel}", "channel_id": channel, "channel_login": f"chan{channel}",
                           "category": category, "status": "ok", "frames": 3}, frames, [0, 1, 2])
    split = {"902": "test", "903": "test", "901": "train", "904": "train"}
    store.write_split({"channels": split, "test_clips": ["c902", "c903"], "test_hash": "h"})


def test_live_clips_join_train_only_and_never_from_a_test_channel(tmp_path):
    _dataset(tmp_path)
    before = load_dataset(tmp_path)
    retainer = Retainer(tmp_path)
    # _stream(n) is channel 900+n: 1 is a train channel, 2 a test channel, 7 a new one.
    _keep(retainer, 1, 1)
    _keep(retainer, 2, 2)
    _keep(retainer, 7, 3, verdict=Verdict("agree", FORTNITE, FORTNITE, 0.9), category=FORTNITE)
    _keep(retainer, 8, 4, verdict=Verdict("agree", None, "gameplay", 0.9), category="12345")  # not a class
    _keep(retainer, 9, 5, verdict=Verdict("mismatch", LOL, LOL, 0.9), category=FORTNITE)  # review only

    data = load_dataset(tmp_path, include_live=True)
    live = [c for c in data.train if c.clip_id.startswith("live-")]
    assert sorted((c.channel, c.label) for c in live) == [("901", LOL), ("907", FORTNITE)]
    assert all(len(c.frames) == 4 and c.frames[0].shape == (224, 224, 3) for c in live)
    assert [c.clip_id for c in data.test] == [c.clip_id for c in before.test]
    assert {c.channel for c in data.train}.isdisjoint({c.channel for c in data.test})
    assert data.dataset_hash != before.dataset_hash and data.test_hash == before.test_hash
    assert [c.clip_id for c in load_dataset(tmp_path).train] == [c.clip_id for c in before.train]


def test_a_live_clip_evicted_while_the_dataset_loads_is_skipped(tmp_path):
    _dataset(tmp_path)
    retainer = Retainer(tmp_path)
    gone = _keep(retainer, 1, 1)
    _keep(retainer, 4, 2)
    for png in gone.path.iterdir():  # as eviction leaves it between its rewrite and a reader's open
        png.unlink()
    live = [c for c in load_dataset(tmp_path, include_live=True).train if c.clip_id.startswith("live-")]
    assert [c.channel for c in live] == ["904"]
