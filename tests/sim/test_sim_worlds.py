"""Pairs of worlds for the held-out protocol: what each world holds, and that they share nothing."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from ale_py import roms

from monitor.sim import looks, stage
from monitor.sim.game import game_frames
from monitor.sim.scenario import JUST_CHATTING, REPORT_CATEGORIES, ROM_PREFIX, Scenario
from monitor.sim.worlds import (
    OPEN_SET_ROMS,
    generalization_worlds,
    holdout_game_worlds,
    load_scenario,
    other_game_categories,
    world_open_set_roms,
)

GAMES = [c.id for c in REPORT_CATEGORIES if c.kind == "game"]


@pytest.fixture(scope="module")
def pair() -> tuple[Scenario, Scenario]:
    return generalization_worlds()


def _kind(scenario: Scenario, channel) -> str:
    return looks.scene_kind(scenario.world, channel.seed, chatting=scenario.rom_for(channel) is None)


def test_both_worlds_have_the_reports_categories_under_their_own_names(pair):
    a, b = pair
    assert (a.world, b.world) == ("A", "B")
    assert a.categories == REPORT_CATEGORIES + other_game_categories("A")
    assert b.categories == REPORT_CATEGORIES


def test_world_a_is_nine_honest_channels_per_category_with_two_clips_each(pair):
    a, _ = pair
    assert not any(a.truth(c.login).mislabeled for c in a.channels)
    others = {c.id for c in other_game_categories("A")}
    watched = [c for c in a.channels if c.declared_game_id not in others]
    assert Counter(c.declared_game_id for c in watched) == {c.id: 9 for c in REPORT_CATEGORIES}
    assert sum(c.clips for c in watched) == 144
    kinds = Counter(_kind(a, c) for c in a.channels)
    assert set(kinds) == set(looks.GAME_FAMILIES) | set(looks.CHATTING_KINDS)


def test_world_b_has_varied_honest_channels_the_hard_cases_and_the_mislabeled_ones(pair):
    _, b = pair
    assert 36 <= len(b.channels) <= 44 and all(c.clips == 2 and c.live for c in b.channels)
    honest = [c for c in b.channels if not b.truth(c.login).mislabeled]
    for game in GAMES:
        mine = [c for c in honest if c.shows == game]
        assert len(mine) >= 3 and len({_kind(b, c) for c in mine}) == len(mine)
    families = Counter(_kind(b, c) for c in honest if c.shows != JUST_CHATTING)
    assert all(families[f] >= 2 for f in ("bigcam", "pip", "letterbox", "small"))
    chatting = Counter(_kind(b, c) for c in honest if c.shows == JUST_CHATTING)
    assert sum(chatting.values()) >= 6 and set(chatting) == set(looks.CHATTING_KINDS)
    wrong = [b.truth(c.login) for c in b.channels if b.truth(c.login).mislabeled]
    assert sum(t.declared_game_id == JUST_CHATTING and t.shown_game_id in GAMES for t in wrong) >= 3
    assert sum(t.declared_game_id == JUST_CHATTING and t.shown_game_id is None for t in wrong) >= 2
    assert sum(t.declared_game_id in GAMES and t.shown_game_id in GAMES for t in wrong) >= 2


def test_logins_user_ids_and_seeds_never_repeat_within_or_across_a_pair(pair):
    for a, b in (pair, holdout_game_worlds()):
        both = a.channels + b.channels
        for key in ("login", "user_id", "seed"):
            assert len({getattr(c, key) for c in both}) == len(both), key


def test_holdout_world_a_has_no_trace_of_the_held_out_game_and_b_streams_it():
    for held_out in ("27471", "21779"):
        a, b = holdout_game_worlds(held_out)
        rom = next(c.rom for c in REPORT_CATEGORIES if c.id == held_out)
        assert a.category(held_out) is None and b.category(held_out) is not None
        assert not any(held_out in (c.declared_game_id, c.shows) for c in a.channels)
        assert rom not in stage.poster_roms(a) and not any(a.rom_for(c) == rom for c in a.channels)
        honest = [c for c in b.channels if c.shows == held_out and c.declared_game_id == held_out]
        hidden = [c for c in b.channels if c.shows == held_out and c.declared_game_id == JUST_CHATTING]
        assert len(honest) >= 3 and len(hidden) >= 2


def test_holdout_refuses_a_category_that_is_not_a_game():
    with pytest.raises(ValueError, match="held_out"):
        holdout_game_worlds(JUST_CHATTING)


def test_open_set_roms_are_real_roms_outside_every_category_split_between_a_and_b(pair):
    assert len(OPEN_SET_ROMS) >= 12 and len(set(OPEN_SET_ROMS)) == len(OPEN_SET_ROMS)
    assert set(OPEN_SET_ROMS) <= set(roms.get_all_rom_ids())
    assert not set(OPEN_SET_ROMS) & {c.rom for c in REPORT_CATEGORIES}
    assert not set(world_open_set_roms("A")) & set(world_open_set_roms("B"))
    for scenario in pair:
        shown = {c.shows[len(ROM_PREFIX):] for c in scenario.channels if c.shows.startswith(ROM_PREFIX)}
        assert shown <= set(world_open_set_roms(scenario.world))
        pool = set(stage.poster_roms(scenario)) - {c.rom for c in REPORT_CATEGORIES}
        assert pool == set(world_open_set_roms(scenario.world))


@pytest.mark.parametrize("rom", OPEN_SET_ROMS)
def test_every_open_set_rom_shows_a_moving_picture_from_the_start(rom, sim_cache):
    frames = game_frames(rom, 5, 20, 10, sim_cache).astype(np.int16)
    background = np.median(frames.reshape(20, -1, 3), axis=1)[:, None, :]
    content = (np.abs(frames.reshape(20, -1, 3) - background).sum(2) > 30).mean(1)
    assert (content > 0.01).all(), "some frames are blank"
    moving = np.abs(np.diff(frames, axis=0)).reshape(19, -1).max(1) > 0
    assert moving.mean() > 0.5


def test_load_scenario_knows_the_world_names():
    a, b = generalization_worlds()
    ha, hb = holdout_game_worlds()
    assert load_scenario("world-a") == a and load_scenario("world-b") == b
    assert load_scenario("holdout-a") == ha and load_scenario("holdout-b") == hb


def test_world_scenarios_round_trip_through_json(tmp_path, pair):
    for scenario in (*pair, *holdout_game_worlds()):
        path = tmp_path / f"{scenario.world}.json"
        scenario.to_file(path)
        assert Scenario.from_file(path) == scenario
        assert Scenario.from_file(path).world == scenario.world


def test_worlds_are_the_same_every_time_and_differ_by_seed():
    assert generalization_worlds() == generalization_worlds()
    other_a, other_b = generalization_worlds(seed=1)
    a, b = generalization_worlds()
    assert {c.seed for c in other_b.channels}.isdisjoint(c.seed for c in b.channels)
    assert {c.login for c in other_a.channels} != {c.login for c in a.channels}


def test_the_training_world_lists_unwatched_games_of_its_own_open_set_half_and_b_none(pair):
    a, b = pair
    others = other_game_categories(a.world)
    assert len(others) >= 3 and other_game_categories(b.world) == ()
    assert {c.rom for c in others} <= set(world_open_set_roms(a.world))
    assert all(a.category(c.id) == c for c in others) and not any(b.category(c.id) for c in others)
    for category in others:
        channels = [c for c in a.channels if c.declared_game_id == category.id]
        assert len(channels) >= 2 and all(c.shows == category.id for c in channels)
    # B's open-set channels show games A never lists, under any name.
    b_roms = {c.shows[len(ROM_PREFIX):] for c in b.channels if c.shows.startswith(ROM_PREFIX)}
    assert b_roms and not b_roms & {a.rom_for(c) for c in a.channels}
