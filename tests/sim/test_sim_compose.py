"""How frames are composed: the legacy look is pinned, world looks stay inside the frame."""

from __future__ import annotations

import hashlib

import pytest

from monitor.sim.compose import ChannelVideo
from monitor.sim.scenario import default_scenario

# sha256 (first 16 hex) of frames 0, 5 and 11 of 12-frame runs of default_scenario() channels, taken
# before worlds existed: the demo and the tests are tuned on exactly these pictures.
LEGACY_FRAMES = {
    ("mellowraven_live", "live"): "e722081984b08eda",
    ("mellowraven_live", "clip-1"): "c1591f266cc02d37",
    ("cosmicviperx", "live"): "eaed90752eb1d3ea",
    ("silentmoosegg", "clip-1"): "829d81ef4416a08c",
    ("silentottertv41", "live"): "f5c9b0e473a75df0",
    ("cosmicotter_60", "clip-1"): "a3e7de1da10b65d9",
    ("cosmicfox", "live"): "ded2f6becf52e624",
    ("wildwolf", "clip-1"): "f1abd6152bfc7cf0",
    ("jc_plays_retro", "live"): "577435e48781388b",
    ("minecraft_plays_fifa", "clip-1"): "2e7237c6eff2dd8a",
}


@pytest.mark.parametrize(("login", "run"), sorted(LEGACY_FRAMES))
def test_legacy_look_is_unchanged_without_a_world(login, run):
    scenario = default_scenario()
    video = ChannelVideo(scenario, scenario.channel(login), run, 12, None)
    digest = hashlib.sha256()
    for index in (0, 5, 11):
        digest.update(video.frame(index).tobytes())
    assert digest.hexdigest()[:16] == LEGACY_FRAMES[(login, run)]
