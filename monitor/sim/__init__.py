"""The local Twitch stand-in: Helix, OAuth, live HLS channels and clips of real Atari footage.

    from monitor.sim import StandIn, small_scenario
    with StandIn(small_scenario(), cache_dir=Path("/tmp/standin")) as sim:
        cfg = replace(cfg, twitch=sim.twitch_config())
        sim.set_offline("pixelfoxtv", True)

Held-out worlds for measuring generalisation (monitor/sim/worlds.py):

    train_world, test_world = generalization_worlds()   # Scenario(world="A"), Scenario(world="B")

Only Twitch is stood in for: streamlink, PyAV and the Helix client run for
real against it. See monitor/sim/server.py for the faults, monitor/sim/routes.py for the URLs.
"""

from __future__ import annotations

from monitor.sim.scenario import (
    Category,
    Channel,
    Scenario,
    Truth,
    default_scenario,
    small_scenario,
)
from monitor.sim.server import Counters, StandIn, default_cache_dir
from monitor.sim.worlds import OPEN_SET_ROMS, generalization_worlds, holdout_game_worlds, load_scenario

__all__ = [
    "OPEN_SET_ROMS", "Category", "Channel", "Counters", "Scenario", "StandIn", "Truth", "default_cache_dir",
    "default_scenario", "generalization_worlds", "holdout_game_worlds", "load_scenario", "small_scenario",
]
