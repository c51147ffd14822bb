"""Stream-layout composition of training clips: labels kept, everything inside the frame."""

from __future__ import annotations

import random

import numpy as np
import pytest

from trainer.clip import Clip
from trainer.layouts import CAM_SCALE, GAME_SCALE, POSTER_SCALE, StreamComposer, plan

CHAT = "509658"


def _clips() -> list[Clip]:
    rs = np.random.default_rng(0)
    game = [Clip(f"g{i}", "33214", f"gc{i}", [rs.integers(0, 255, (224, 224, 3), dtype=np.uint8) for _ in range(4)])
            for i in range(3)]
    chat = [Clip(f"c{i}", CHAT, f"cc{i}", [np.full((224, 224, 3), 40 * i + 30, np.uint8) for _ in range(4)])
            for i in range(3)]
    return game + chat


@pytest.mark.parametrize("kind", ["game", "chatting"])
def test_every_planned_box_lies_inside_the_frame(kind):
    for seed in range(400):
        rng = random.Random(seed)
        w, h = rng.choice([(224, 224), (160, 90), (37, 53)])
        layout = plan(kind, w, h, rng)
        for x0, y0, x1, y1 in layout.boxes():
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h, (seed, layout)


def test_a_game_stays_large_and_a_poster_stays_small():
    # the label rests on it: gameplay fills 40%+ of the width on streams, a poster in a room less than 30%
    for seed in range(300):
        game = plan("game", 224, 224, random.Random(seed))
        assert game.main[2] - game.main[0] >= round(224 * GAME_SCALE[0] * 0.75) >= 0.4 * 224
        for what, (x0, _, x1, _), _, _ in game.inserts:
            assert what == "cam" and x1 - x0 <= round(224 * CAM_SCALE[1])
        chat = plan("chatting", 224, 224, random.Random(seed))
        assert chat.main == (0, 0, 224, 224)
        for what, (x0, _, x1, _), _, _ in chat.inserts:
            if what == "poster":
                assert x1 - x0 <= round(224 * POSTER_SCALE[1]) < 0.3 * 224


def test_composed_frames_keep_size_and_type_and_one_layout_holds_for_the_whole_clip():
    clips = _clips()
    composer = StreamComposer(clips, CHAT, probability=1.0)
    frame = clips[0].frames[0]
    for seed in range(50):
        out = composer.compose([frame, frame, frame], "33214", random.Random(seed))
        assert len(out) == 3 and all(f.shape == frame.shape and f.dtype == np.uint8 for f in out)
        # the same picture in one layout gives the same composition (inserts may move with time)
        layout_only = StreamComposer(clips[:3], CHAT, probability=1.0).compose([frame, frame], "33214",
                                                                               random.Random(seed))
        assert np.array_equal(layout_only[0], layout_only[1])
    assert not np.array_equal(composer.compose([frame], "33214", random.Random(1))[0], frame)


def test_probability_zero_leaves_frames_as_stored():
    clips = _clips()
    frames = clips[3].frames
    out = StreamComposer(clips, CHAT, probability=0.0).compose(frames, CHAT, random.Random(0))
    assert all(a is b for a, b in zip(out, frames, strict=True))


def test_without_camera_clips_webcams_are_painted():
    clips = [c for c in _clips() if c.label != CHAT]
    composer = StreamComposer(clips, CHAT, probability=1.0)
    for seed in range(30):
        out = composer.compose(clips[0].frames[:2], "33214", random.Random(seed))
        assert out[0].shape == (224, 224, 3)


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="kind"):
        plan("music", 224, 224, random.Random(0))


def test_validation_clips_are_relaid_the_same_way_every_run():
    from trainer.train import relaid

    clips = _clips()
    composer = StreamComposer(clips, CHAT, probability=0.0)  # relaid ignores the training probability
    a, b = relaid(clips[0], composer), relaid(clips[0], composer)
    assert a.clip_id == "g0~relaid" and a.label == clips[0].label and a.channel == clips[0].channel
    assert all(np.array_equal(x, y) for x, y in zip(a.frames, b.frames, strict=True))
    assert not np.array_equal(a.frames[0], clips[0].frames[0])


def test_an_epoch_draws_every_class_about_equally_however_many_clips_each_has():
    from collections import Counter

    from trainer.train import balanced_order

    clips = [Clip(f"a{i}", "a", f"ch{i}", []) for i in range(90)] + [Clip("b0", "b", "chb", [])] * 1 + [
        Clip(f"c{i}", "c", f"cc{i}", []) for i in range(9)]
    order = balanced_order(clips, random.Random(0))
    assert len(order) == len(clips)
    assert sorted(Counter(c.label for c in order).values()) == [33, 33, 34]
    # within a class every clip is used before any repeats
    assert len({c.clip_id for c in order if c.label == "c"}) == 9
    assert len({c.clip_id for c in order if c.label == "a"}) >= 33


def test_a_balanced_set_is_just_shuffled():
    from trainer.train import balanced_order

    clips = [Clip(f"{label}{i}", label, f"ch{i}", []) for label in "ab" for i in range(5)]
    order = balanced_order(clips, random.Random(3))
    assert sorted(c.clip_id for c in order) == sorted(c.clip_id for c in clips)
    assert [c.clip_id for c in order] != [c.clip_id for c in clips]


def test_an_epoch_can_draw_a_fixed_number_of_clips_whatever_the_dataset_size():
    from collections import Counter

    from trainer.train import balanced_order

    clips = [Clip(f"{label}{i}", label, f"ch{i}", []) for label in "ab" for i in range(3)]
    order = balanced_order(clips, random.Random(0), 40)
    assert len(order) == 40 and Counter(c.label for c in order) == {"a": 20, "b": 20}


def test_new_layouts_ramp_in_after_the_first_epoch():
    from trainer.train import LAYOUT_RAMP_EPOCHS, layout_share

    assert layout_share(0.8, 1) == 0.0
    assert 0 < layout_share(0.8, 2) < 0.8
    assert layout_share(0.8, LAYOUT_RAMP_EPOCHS + 1) == layout_share(0.8, 30) == pytest.approx(0.8)
    assert layout_share(0.0, 5) == 0.0


def test_painted_camera_scenes_are_pictures_of_the_asked_size_the_same_for_a_seed_and_varied():
    from trainer.scenes import camera_scene

    for size in [(224, 224), (37, 53), (1, 1)]:
        picture = camera_scene(size, seed=5)
        assert picture.shape == (size[1], size[0], 3) and picture.dtype == np.uint8
    assert np.array_equal(camera_scene((64, 48), 11), camera_scene((64, 48), 11))
    pictures = [camera_scene((64, 48), seed).astype(np.int16) for seed in range(12)]
    assert all(np.abs(a - b).mean() > 5 for i, a in enumerate(pictures) for b in pictures[i + 1:])
    # some through a lens (blur and noise: many distinct colours), some drawn flat like a cartoon room
    colours = [len(np.unique(p.reshape(-1, 3), axis=0)) for p in pictures]
    assert any(n > 500 for n in colours) and any(n < 100 for n in colours)
    handed_out = camera_scene((64, 48), 11)
    handed_out[:] = 0  # scenes are cached: a caller's edit must never reach the next caller
    assert camera_scene((64, 48), 11).any()


def test_chatting_layouts_sometimes_show_a_painted_scene_instead_of_the_camera_and_keep_the_frame():
    from trainer.layouts import render
    from trainer.scenes import camera_scene

    frame = _clips()[4].frames[0]
    layouts = [plan("chatting", 224, 224, random.Random(seed)) for seed in range(100)]
    painted = [layout for layout in layouts if layout.scene is not None]
    assert 25 < len(painted) < 75
    bare = next(layout for layout in painted if not layout.inserts and not layout.panels)
    out = render(bare, frame, source=None)
    assert np.array_equal(out, camera_scene((224, 224), bare.scene)) and not np.array_equal(out, frame)
