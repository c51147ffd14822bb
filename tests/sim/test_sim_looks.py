"""Looks of a named world: geometry stays in the frame, gameplay is big, posters are small, worlds share nothing."""

from __future__ import annotations

import dataclasses

import pytest

from monitor.sim import looks, stage
from monitor.sim.looks import HEIGHT, MAX_CAM_WIDTH, WIDTH, Rect, chatting_look, game_look, world_rng
from monitor.sim.people import Person
from monitor.sim.worlds import generalization_worlds

FUZZ = range(400)


def _rects(look) -> list[Rect]:
    extras = [getattr(look.extras, f.name) for f in dataclasses.fields(look.extras)]
    own = [look.game, look.box, look.inset, look.cam.rect if look.cam else None] if isinstance(look, looks.GameLook) \
        else [look.picture.rect if look.picture else None, look.reaction]
    return [r for r in own + extras if isinstance(r, Rect)]


@pytest.mark.parametrize("world", ["A", "B", "some other world"])
def test_every_rect_of_every_look_is_inside_the_frame(world):
    for seed in FUZZ:
        for look in (game_look(world, seed), chatting_look(world, seed)):
            assert all(r.inside(WIDTH, HEIGHT) for r in _rects(look)), (world, seed, look)


@pytest.mark.parametrize("world", ["A", "B"])
def test_gameplay_is_40_to_100_percent_wide_and_webcams_at_most_a_third(world):
    games = [game_look(world, seed) for seed in FUZZ]
    assert {look.family for look in games} == set(looks.GAME_FAMILIES)
    assert all(0.4 * WIDTH <= look.game.width <= WIDTH and look.game.height <= HEIGHT for look in games)
    assert all(look.box.x0 <= look.game.x0 and look.game.x1 <= look.box.x1 for look in games)
    assert all(40 <= look.cam.rect.width <= MAX_CAM_WIDTH for look in games if look.cam is not None)


@pytest.mark.parametrize("world", ["A", "B"])
def test_game_pictures_in_just_chatting_scenes_are_at_most_30_percent_wide(world):
    scenes = [chatting_look(world, seed) for seed in FUZZ]
    assert {look.kind for look in scenes} == set(looks.CHATTING_KINDS)
    for look in scenes:
        assert (look.picture is not None) == (look.kind in ("poster", "screen"))
        assert look.picture is None or look.picture.rect.width <= 0.3 * WIDTH
        assert (look.reaction is not None) == look.kind.startswith("reaction")
        assert look.reaction_behind == (look.kind == "reaction_behind")


def test_world_b_channels_keep_posters_small_and_gameplay_big():
    _, b = generalization_worlds()
    posters = 0
    for channel in b.channels:
        if b.rom_for(channel) is None:
            look = chatting_look(b.world, channel.seed)
            if look.picture is not None:
                posters += 1
                assert look.picture.rect.width <= 0.3 * WIDTH
        else:
            assert game_look(b.world, channel.seed).game.width >= 0.4 * WIDTH
    assert posters >= 3


def _people(world: str, seeds: range) -> set[Person]:
    """Every person a world's channels film: streamers, crowds, webcams."""
    out = set()
    for seed in seeds:
        game, chat = game_look(world, seed), chatting_look(world, seed)
        ids = [chat.person, *chat.crowd] + ([game.cam.person] if game.cam else [])
        out |= {Person.draw(world_rng(world, i, "person")) for i in ids}
    return out


def test_two_worlds_share_no_person_room_layout_or_style():
    seeds = range(150)
    assert not _people("A", seeds) & _people("B", seeds)
    for field in ("game", "chatting"):
        make = game_look if field == "game" else chatting_look
        a = {dataclasses.replace(make("A", s), grade=None, encode=None) for s in seeds}
        b = {dataclasses.replace(make("B", s), grade=None, encode=None) for s in seeds}
        assert not a & b
        a_styles, b_styles = {x.style for x in a}, {x.style for x in b}
        assert not a_styles & b_styles
    rooms_a = {tuple(world_rng("A", chatting_look("A", s).room, "room").random(4)) for s in seeds}
    rooms_b = {tuple(world_rng("B", chatting_look("B", s).room, "room").random(4)) for s in seeds}
    assert not rooms_a & rooms_b
    grades = [{game_look(w, s).grade for s in seeds} for w in ("A", "B")]
    assert not grades[0] & grades[1]


def test_the_same_seed_looks_different_in_another_world_and_the_same_in_its_own():
    for seed in range(50):
        assert game_look("A", seed) == game_look("A", seed)
        assert game_look("A", seed) != game_look("B", seed)
        assert chatting_look("A", seed) != chatting_look("B", seed)


def test_channels_use_several_source_resolutions_and_crfs_which_no_two_worlds_share():
    worlds = generalization_worlds()
    encodes = [[stage.look_of(w, c).encode for c in w.channels] for w in worlds]
    for mine in encodes:
        assert len({e.source for e in mine}) == 3 and len({e.crf for e in mine}) >= 4
        assert all(e.source[1] >= 360 for e in mine)
    assert not {e.source for e in encodes[0]} & {e.source for e in encodes[1]}
    assert not {e.crf for e in encodes[0]} & {e.crf for e in encodes[1]}


def test_channels_of_a_world_all_look_different():
    for scenario in generalization_worlds():
        looks_ = [stage.look_of(scenario, c) for c in scenario.channels]
        assert len(set(looks_)) == len(looks_)
        people = [look.cam.person if isinstance(look, looks.GameLook) else look.person for look in looks_
                  if not isinstance(look, looks.GameLook) or look.cam]
        assert len(set(people)) == len(people)


def test_grade_lut_is_a_monotonic_table_of_768_bytes():
    lut = game_look("A", 3).grade.lut()
    assert len(lut) == 768 and all(0 <= v <= 255 for v in lut)
    for c in range(3):
        channel = lut[c * 256:(c + 1) * 256]
        assert channel == sorted(channel)
