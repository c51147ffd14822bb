"""What joins training from checks: agreeing only, never a test channel, no near-duplicates, within caps."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from PIL import Image
from standin_runtime import constant_model_runtime

from monitor.check import check_stream
from monitor.config import load_config
from monitor.cycle import Runtime
from monitor.frames import resize_frame
from monitor.helix import Stream
from monitor.retain import Retainer, frame_hash, read_clips
from monitor.sim import small_scenario
from monitor.sim.encode import SegmentStore
from monitor.verdict import Verdict
from trainer.dataset import DatasetStore, load_dataset

LOL, CHATTING, FORTNITE = "21779", "509658", "33214"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _stream(channel: str, category: str = LOL) -> Stream:
    return Stream(id=f"s{channel}", user_id=channel, user_login=f"chan{channel}", user_name=channel,
                  game_id=category, game_name="?", viewer_count=10, thumbnail_url="", started_at="")


def _noise(seed: int, count: int = 2) -> list[np.ndarray]:
    # Noise: every frame novel, every clip about the same weight.
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for _ in range(count)]


def _agree(category: str) -> Verdict:
    return Verdict("agree", category, category, 0.9)


def _dataset(data_dir, channels: dict[str, tuple[str, str]]) -> None:
    """Build a dataset: channel -> (category, side); the split frozen as given."""
    store = DatasetStore(data_dir)
    for n, (channel, (category, _)) in enumerate(channels.items()):
        frames = [resize_frame(f) for f in _noise(700 + n, 3)]
        store.commit_clip({"clip_id": f"c{channel}", "channel_id": channel, "channel_login": f"chan{channel}",
                           "category": category, "status": "ok", "frames": 3}, frames, [0, 1, 2])
    split = {channel: side for channel, (_, side) in channels.items()}
    store.write_split({"channels": split, "test_clips": sorted(f"c{c}" for c, s in split.items() if s == "test"),
                       "test_hash": "h"})


def _live_clips(data_dir) -> list:
    return [c for c in load_dataset(data_dir, include_live=True).train if c.clip_id.startswith("live-")]


# -- checks through the daemon's check path, against the stand-in ---------------

def _runtime(standin, tmp_path, logits: dict[str, float]) -> Runtime:
    """A Runtime whose active model, a real SqueezeNet, gives these logits whatever it sees."""
    return constant_model_runtime(standin, tmp_path, logits)


def _check(rt: Runtime, login: str):
    stream = rt.helix.stream_of(login)
    assert stream is not None
    return check_stream(rt.check_context, stream, rt.classifier())


def _login(declared: str, mislabeled: bool = False, skip: int = 0) -> str:
    scenario = small_scenario()
    return [ch.login for ch in scenario.channels
            if ch.declared_game_id == declared and scenario.truth(ch.login).mislabeled == mislabeled][skip]


@pytest.fixture
def says_lol(small_standin, tmp_path):
    rt = _runtime(small_standin, tmp_path, {LOL: 8.0})
    yield rt
    rt.close()


def test_a_mismatching_check_never_enters_training(says_lol):
    data = says_lol.cfg.data_path
    _dataset(data, {"901": (LOL, "train"), "902": (LOL, "test"), "903": (FORTNITE, "train"),
                    "904": (FORTNITE, "test")})
    result = _check(says_lol, _login(CHATTING, mislabeled=True))
    assert result.outcome == "mismatch" and result.verdict.confidence > 0.99  # confident, and still no label
    assert read_clips(data, "live") == [] and len(read_clips(data, "review")) == 1
    assert _live_clips(data) == []


def test_an_unsure_check_never_enters_training(small_standin, tmp_path):
    # p(chatting) 0.5, each game 0.25: no class reaches 0.6, nor does the gameplay probability (0.5).
    rt = _runtime(small_standin, tmp_path, {CHATTING: float(np.log(2.0))})
    try:
        data = rt.cfg.data_path
        _dataset(data, {"901": (LOL, "train"), "902": (LOL, "test"), "903": (FORTNITE, "train"),
                        "904": (FORTNITE, "test")})
        for login in (_login(LOL), _login(CHATTING), _login(CHATTING, mislabeled=True)):
            assert _check(rt, login).outcome == "unsure"
        assert not (data / "live").exists() and not (data / "review").exists()
        assert _live_clips(data) == []
    finally:
        rt.close()


def test_a_test_set_channel_never_enters_training_even_when_it_agrees(says_lol):
    data = says_lol.cfg.data_path
    frozen, other = _login(LOL), _login(LOL, skip=1)
    frozen_id = says_lol.helix.stream_of(frozen).user_id
    _dataset(data, {frozen_id: (LOL, "test"), "901": (LOL, "train"), "903": (FORTNITE, "train"),
                    "904": (FORTNITE, "test")})
    assert _check(says_lol, frozen).outcome == "agree"
    assert read_clips(data, "live") == [] and says_lol.retainer.skipped == {"test_channel": 1}
    assert _check(says_lol, other).outcome == "agree"  # a channel outside the test set grows train
    [kept] = read_clips(data, "live")
    assert kept["channel_login"] == other
    assert [c.channel for c in _live_clips(data)] == [kept["channel_id"]]


def test_clips_of_a_channel_frozen_into_test_after_they_were_kept_stay_out_of_training(tmp_path):
    retainer = Retainer(tmp_path)
    # Kept before any split existed, one by the daemon and one as a human review writes it.
    retainer.keep(_noise(1), _agree(LOL), _stream("902"), model_id="m1", checked_at=T0)
    retainer.keep(_noise(2), _agree(LOL), _stream("905"), model_id="m1", checked_at=T0)
    with (tmp_path / "live" / "clips.jsonl").open("r+") as fh:
        lines = [json.loads(line) for line in fh]
        fh.seek(0)
        for line in lines:
            fh.write(json.dumps({**line, "channel_id": "903", "source": "reviewed"}
                                if line["channel_id"] == "905" else line) + "\n")
    _dataset(tmp_path, {"901": (LOL, "train"), "902": (LOL, "test"), "903": (FORTNITE, "test"),
                        "904": (FORTNITE, "train")})
    assert len(read_clips(tmp_path)) == 2
    data = load_dataset(tmp_path, include_live=True)
    assert not any(c.clip_id.startswith("live-") for c in data.train)
    assert {c.channel for c in data.train}.isdisjoint({c.channel for c in data.test})
    # And from now on the retainer itself keeps nothing more of them.
    assert retainer.keep(_noise(3), _agree(LOL), _stream("902"), model_id="m1") is None
    assert retainer.skipped == {"test_channel": 1}


# -- near-duplicates: a static scene stops growing, a changing one grows --------

def _scene_frames(cache, login: str, cycle: int, *, reencode: bool) -> list[np.ndarray]:
    """Six frames a check of the stand-in channel would decode at `cycle` (one second apart, a new spot each cycle)."""
    scenario = small_scenario()
    channel = next(ch for ch in scenario.channels if ch.login == login)
    frames = [cache.frame(channel, "live", cycle * 60 + i * 10) for i in range(6)]
    if reencode:  # what a fresh capture of the same picture looks like: the same scene, new compression noise
        frames = [_jpeg(f, quality=60 + 5 * cycle) for f in frames]
    return frames


def _jpeg(frame: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, "JPEG", quality=quality)
    return np.array(Image.open(buf).convert("RGB"))


def test_a_static_scene_checked_every_cycle_stops_growing_while_a_changing_one_grows(tmp_path):
    cache = SegmentStore(small_scenario(), tmp_path / "standin")
    retainer = Retainer(tmp_path / "data")
    static, changing = _login(CHATTING), "rapidwolf40"  # a camera scene; League of Legends gameplay
    kept: dict[str, list[int]] = {static: [], changing: []}
    for cycle in range(6):
        for login, category in ((static, CHATTING), (changing, LOL)):
            clip = retainer.keep(_scene_frames(cache, login, cycle, reencode=True), _agree(category),
                                 _stream(login, category), model_id="m1", checked_at=T0 + timedelta(minutes=cycle))
            kept[login].append(clip.frames if clip else 0)
    assert kept[static] == [6, 0, 0, 0, 0, 0]
    assert kept[changing][0] == 6 and sum(1 for n in kept[changing] if n) >= 4, kept[changing]
    assert retainer.skipped["duplicate"] == 5 + kept[changing].count(0)
    lines = read_clips(tmp_path / "data")
    assert sum(line["channel_id"] == static for line in lines) == 1
    # The hashes on the lines are the stored frames' own: a restarted daemon dedupes the same way.
    for line in lines:
        stored = [np.asarray(Image.open(tmp_path / "data" / "live" / line["dir"] / f"{i:03d}.png"))
                  for i in range(line["frames"])]
        assert line["phash"] == [f"{frame_hash(f):016x}" for f in stored]
    fresh = Retainer(tmp_path / "data")
    again = fresh.keep(_scene_frames(cache, static, 7, reencode=True), _agree(CHATTING), _stream(static, CHATTING),
                       model_id="m1")
    assert again is None and fresh.skipped == {"duplicate": 1}


def test_a_partly_new_clip_keeps_only_its_new_frames(tmp_path):
    retainer = Retainer(tmp_path)
    first = _noise(1, 4)
    retainer.keep(first, _agree(LOL), _stream("901"), model_id="m1", checked_at=T0)
    mixed = [first[0], *_noise(2, 3), first[2]]
    kept = retainer.keep(mixed, _agree(LOL), _stream("901"), model_id="m1", checked_at=T0 + timedelta(minutes=1))
    assert kept.frames == 3
    line = read_clips(tmp_path)[-1]
    assert line["duplicate_frames"] == 2 and line["frames"] == 3
    # Another channel showing the same picture is not a duplicate: the memory is per channel.
    assert retainer.keep(first, _agree(LOL), _stream("902"), model_id="m1").frames == 4


# -- the caps: per category, then the whole disk budget, oldest first ----------

def _one_clip_bytes(tmp_path) -> int:
    return Retainer(tmp_path / "probe").keep(_noise(0), _agree(LOL), _stream("900"), model_id="m1").bytes


def test_a_busy_category_cannot_exceed_its_share_and_loses_its_own_oldest_first(tmp_path):
    clip = _one_clip_bytes(tmp_path)
    retainer = Retainer(tmp_path, max_bytes=clip * 20, category_share=0.2)  # 4 clips a category
    area = retainer.area("live")
    assert area.category_max_bytes == clip * 4
    retainer.keep(_noise(50), _agree(FORTNITE), _stream("950", FORTNITE), model_id="m1", checked_at=T0)
    # League of Legends is busy: 12 checks, kept out of time order (minute 3 arrives first).
    minutes = [3, 1, 2, 7, 5, 4, 12, 6, 8, 10, 9, 11]
    for n, minute in enumerate(minutes):
        retainer.keep(_noise(100 + n), _agree(LOL), _stream(f"{100 + n}"), model_id="m1",
                      checked_at=T0 + timedelta(minutes=minute))
        lol = [r for r in read_clips(tmp_path) if r["category"] == LOL]
        assert sum(r["bytes"] for r in lol) <= area.category_max_bytes
        # Whoever is left are the newest League of Legends checks seen so far.
        seen = sorted(minutes[: n + 1])
        kept_minutes = sorted(int((datetime.fromisoformat(r["checked_at"]) - T0).total_seconds() // 60) for r in lol)
        assert kept_minutes == seen[len(seen) - len(kept_minutes):]
    # The quiet category lost nothing, though it is the oldest clip in the area.
    assert [r["channel_id"] for r in read_clips(tmp_path) if r["category"] == FORTNITE] == ["950"]
    assert area.usage() < area.max_bytes


def test_the_disk_budget_evicts_the_oldest_clips_of_any_category_first(tmp_path):
    clip = _one_clip_bytes(tmp_path)
    retainer = Retainer(tmp_path, max_bytes=int(clip * 5.5), category_share=0.5)  # 2.75 clips a category
    kept = []
    for n, (category, minute) in enumerate([(LOL, 1), (FORTNITE, 2), (CHATTING, 3), (LOL, 4), (FORTNITE, 5),
                                            (CHATTING, 6)]):
        kept.append(retainer.keep(_noise(200 + n), _agree(category), _stream(f"{200 + n}", category),
                                  model_id="m1", checked_at=T0 + timedelta(minutes=minute)))
    lines = read_clips(tmp_path)
    # Six clips overflow 5.5: the area drops to 90% of its budget by deleting minutes 1 and 2, the oldest.
    assert kept[-1].evicted == 2 and not kept[0].path.exists() and not kept[1].path.exists()
    assert sorted(line["checked_at"][14:16] for line in lines) == ["03", "04", "05", "06"]
    assert retainer.area("live").usage() <= retainer.area("live").max_bytes


def test_category_share_is_a_validated_config_key():
    from monitor.errors import ConfigError

    assert load_config(environ={}).retain.category_share == 0.25
    assert load_config(environ={"TWITCHWATCH_RETAIN__CATEGORY_SHARE": "0.5"}).retain.category_share == 0.5
    with pytest.raises(ConfigError, match="retain.category_share"):
        load_config(environ={}, overrides={"retain": {"category_share": 0.0}})


def test_an_unreadable_split_costs_the_retainer_nothing_and_a_rewritten_one_is_read_again(tmp_path):
    split = tmp_path / "dataset" / "split.json"
    split.parent.mkdir()
    split.write_text('{"channels": {"902": "te')  # cut short mid-write by hand
    retainer = Retainer(tmp_path)
    assert retainer.keep(_noise(1), _agree(LOL), _stream("902"), model_id="m1") is not None
    split.write_text(json.dumps({"channels": {"902": "test", "901": "train"}}))
    assert retainer.keep(_noise(2), _agree(LOL), _stream("902"), model_id="m1") is None
    assert retainer.keep(_noise(3), _agree(LOL), _stream("901"), model_id="m1") is not None
    assert retainer.skipped == {"test_channel": 1} and retainer.errors == {}
