"""The stand-in's scenarios: the report's categories, honest and mislabeled channels, JSON."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter

import pytest

from monitor.sim import Category, Channel, Scenario, default_scenario, small_scenario

REPORT = {
    "21779": "League of Legends", "509658": "Just Chatting", "33214": "Fortnite",
    "512710": "Call of Duty: Modern Warfare", "18122": "World of Warcraft", "32982": "Grand Theft Auto V",
    "27471": "Minecraft", "512804": "FIFA 20",
}


def test_default_scenario_has_the_reports_categories_each_a_distinct_rom():
    scenario = default_scenario()
    assert {c.id: c.name for c in scenario.categories} == REPORT
    games = [c for c in scenario.categories if c.kind == "game"]
    assert len(games) == 7 and len({c.rom for c in games}) == 7
    assert [c.id for c in scenario.categories if c.kind == "chatting"] == ["509658"]


def test_default_scenario_has_ten_honest_channels_per_category_with_clips():
    scenario = default_scenario()
    honest = [c for c in scenario.channels if not scenario.truth(c.login).mislabeled]
    per_category = Counter(c.declared_game_id for c in honest)
    assert set(per_category) == set(REPORT) and min(per_category.values()) >= 10
    assert all(c.clips >= 2 for c in honest)


def test_default_scenario_has_the_mislabeled_cases():
    scenario = default_scenario()
    truths = [scenario.truth(c.login) for c in scenario.channels]
    chatting_but_game = [t for t in truths if t.declared_game_id == "509658" and t.shown_game_id not in (None, "509658")]
    assert len(chatting_but_game) >= 2
    assert any(t.declared_game_id == "509658" and t.shown_game_id is None for t in truths)  # open set
    assert any(t.mislabeled and t.declared_game_id != "509658" and t.shown_game_id for t in truths)


def test_mislabeled_channels_rank_below_the_honest_ones_of_their_category():
    scenario = default_scenario()
    for channel in scenario.channels:
        if scenario.truth(channel.login).mislabeled:
            peers = [c.viewer_count for c in scenario.channels
                     if c.declared_game_id == channel.declared_game_id and not scenario.truth(c.login).mislabeled]
            assert channel.viewer_count < min(peers)


def test_small_scenario_shape():
    scenario = small_scenario()
    assert [c.id for c in scenario.categories] == ["21779", "509658", "33214"]
    mislabeled = [c for c in scenario.channels if scenario.truth(c.login).mislabeled]
    assert len(scenario.channels) == 10 and len(mislabeled) == 1
    (odd,) = mislabeled
    assert scenario.truth(odd.login) == ("509658", "33214", True)
    assert scenario.rom_for(odd) == scenario.category("33214").rom
    assert all(c.clips == 2 for c in scenario.channels)


def test_truth_of_an_open_set_channel_has_no_shown_category():
    scenario = default_scenario()
    retro = scenario.channel("jc_plays_retro")
    assert scenario.truth("jc_plays_retro") == ("509658", None, True)
    assert scenario.rom_for(retro) not in {c.rom for c in scenario.categories}


@pytest.mark.parametrize("make", [default_scenario, small_scenario])
def test_json_round_trip(tmp_path, make):
    scenario = make()
    path = tmp_path / "world.json"
    scenario.to_file(path)
    json.loads(path.read_text())  # plain JSON, editable by hand
    again = Scenario.from_file(path)
    assert again == scenario
    assert again.truth(scenario.channels[-1].login) == scenario.truth(scenario.channels[-1].login)


def test_scenario_rejects_unknown_roms_and_categories():
    lol = Category("21779", "League of Legends", "game", "ms_pacman")
    good = Channel("a", "1", "A", "21779", "21779", 10, 1)
    Scenario((lol,), (good,))
    with pytest.raises(ValueError, match="unknown ROM"):
        Scenario((dataclasses.replace(lol, rom="not_a_rom"),), (good,))
    with pytest.raises(ValueError, match="unknown category"):
        Scenario((lol,), (dataclasses.replace(good, shows="999"),))
    with pytest.raises(ValueError, match="unknown ROM"):
        Scenario((lol,), (dataclasses.replace(good, shows="rom:nope"),))
    with pytest.raises(ValueError, match="twice"):
        Scenario((lol,), (good, dataclasses.replace(good, user_id="2")))


def test_malformed_json_is_a_value_error(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"categories": [{"id": "1"}], "channels": []}))
    with pytest.raises(ValueError, match="malformed scenario"):
        Scenario.from_file(path)


def test_json_without_a_world_is_the_original_look_and_a_named_world_round_trips(tmp_path):
    data = small_scenario().to_dict()
    assert data.pop("world") == ""
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data))
    assert Scenario.from_file(path) == small_scenario()
    named = dataclasses.replace(small_scenario(), world="X")
    named.to_file(path)
    assert Scenario.from_file(path).world == "X" and Scenario.from_file(path) != small_scenario()
