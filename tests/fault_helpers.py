"""What the fault tests share: a stand-in with short-lived tokens, a Helix client on it, a movable clock."""

from __future__ import annotations

import time

from monitor.config import TwitchConfig
from monitor.helix import HelixClient


class Clock:
    """A wall clock that a test moves forward: `clock.advance(3600)` is an hour later for the client only."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def helix_client(sim, **kwargs) -> HelixClient:
    """Return a Helix client pointed at the stand-in (keyword arguments go to HelixClient)."""
    return HelixClient(TwitchConfig(**sim.twitch_config()), **kwargs)


def live_logins(sim, game_id: str) -> set[str]:
    """Return the logins the stand-in has live in a category, from its own world (not through Helix)."""
    return {ch.login for ch, state in sim.world.live_channels() if state.declared_game_id == game_id}
