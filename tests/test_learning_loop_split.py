"""bench/learning_loop.py's split of world B: held-out channels never reach the daemon (the bench trains for minutes)."""

from __future__ import annotations

import importlib.util
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from monitor.config import TwitchConfig
from monitor.helix import HelixClient
from monitor.sim import StandIn, load_scenario
from monitor.sim.stage import look_of

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def loop():
    sys.path.insert(0, str(BENCH))  # learning_loop imports its neighbour generalize.py
    try:
        spec = importlib.util.spec_from_file_location("learning_loop", BENCH / "learning_loop.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCH))


@pytest.mark.parametrize("seed", [0, 1])
def test_world_b_splits_into_disjoint_halves_with_every_kind_on_both_sides(loop, seed):
    world = load_scenario("world-b")
    growth, held_out = loop.split_channels(world, seed)
    assert (growth, held_out) == loop.split_channels(world, seed)  # deterministic
    assert {c.login for c in growth}.isdisjoint(c.login for c in held_out)
    assert {c.user_id for c in growth}.isdisjoint(c.user_id for c in held_out)
    assert sorted(c.login for c in growth + held_out) == sorted(c.login for c in world.channels)
    kinds = defaultdict(lambda: [0, 0])
    for side, channels in enumerate((growth, held_out)):
        for channel in channels:
            truth = world.truth(channel.login)
            kinds[(truth.shown_game_id, truth.mislabeled)][side] += 1
    for kind, (grown, held) in kinds.items():
        if grown + held >= 2:
            assert grown and held, f"{kind} is on one side only"
    shown_held_out = {world.truth(c.login).shown_game_id for c in held_out}
    assert {c.id for c in world.categories} <= shown_held_out  # every category is scored after the loop


def test_the_growth_stand_in_lists_only_growth_channels_with_their_own_looks(loop, tmp_path):
    world = load_scenario("world-b")
    growth, held_out = loop.split_channels(world, 0)
    scenario = loop.growth_scenario(world, growth)
    for channel in growth:
        assert look_of(scenario, channel) == look_of(world, channel)  # the same channel on screen
    with StandIn(scenario, cache_dir=tmp_path) as sim:
        helix = HelixClient(TwitchConfig(**sim.twitch_config()))
        listed = {s.user_login for c in world.categories for s in helix.top_streams(c.id, 100)}
        assert helix.user(held_out[0].login) is None
    assert listed == {c.login for c in growth}
