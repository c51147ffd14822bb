"""Hold the stand-in's live state: who is live, what they declare, faults, clips, the clock.

    world = World(scenario, clock=time.time)
    world.live_edge("pixelfoxtv")        # newest media sequence number of that live channel
    world.set_ad_break("pixelfoxtv", 8)  # its playlist stops advancing for 8 s

Live time: a channel's newest segment number grows by one every segment length
of wall-clock time since the stand-in started, minus the time spent in ad
breaks, so the playlist freezes during a break and then resumes without a gap.
Every method is thread-safe.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from monitor.sim.scenario import Channel, Scenario

_CLIP_WORDS = (
    ("Brave", "Tiny", "Sleepy", "Lucky", "Crispy", "Fancy", "Shy", "Odd", "Happy", "Salty", "Glossy", "Noisy"),
    ("Purple", "Golden", "Frozen", "Spicy", "Hollow", "Swift", "Gentle", "Wild", "Silent", "Bright"),
    ("Otter", "Panda", "Falcon", "Walrus", "Badger", "Lemur", "Gecko", "Moose", "Heron", "Ferret"),
    ("Kappa", "PogChamp", "Kreygasm", "SeemsGood", "BibleThump", "ResidentSleeper", "LUL", "NotLikeThis"),
)


@dataclass(frozen=True)
class Clip:
    id: str
    login: str
    index: int  # which of the channel's clips: picks its footage
    game_id: str
    title: str
    view_count: int
    created_at: float
    creator_id: str
    creator_name: str
    is_featured: bool


@dataclass
class ChannelState:
    declared_game_id: str
    live: bool
    session: int = 0  # bumped each time the channel goes live again: a new stream id
    session_started: float = 0.0
    corrupt: float = 0.0
    ad_breaks: list[tuple[float, float]] = field(default_factory=list)


class World:
    """The mutable side of the stand-in, around an immutable Scenario."""

    def __init__(self, scenario: Scenario, clock: Callable[[], float]):
        self.scenario = scenario
        self.clock = clock
        self.started = clock()
        self._lock = threading.Lock()
        self._duplicate_pagination = False
        self._pagination_fault = ""
        self._state = {}
        for ch in scenario.channels:
            # Streams went live at staggered times before the stand-in started.
            started = self.started - 600 - (ch.seed * 7919) % (5 * 3600)
            self._state[ch.login] = ChannelState(ch.declared_game_id, ch.live, session_started=started)
        self.clips = {clip.id: clip for clip in _make_clips(scenario, self.started)}

    # -- reading --------------------------------------------------------------------------------
    def channel(self, login: str) -> Channel | None:
        return self.scenario.channel(login)

    def state(self, login: str) -> ChannelState:
        """Return a snapshot of a channel's state."""
        with self._lock:
            s = self._state[login]
            return replace(s, ad_breaks=list(s.ad_breaks))

    def live_channels(self) -> list[tuple[Channel, ChannelState]]:
        """Return every live channel with its state, in scenario order."""
        with self._lock:
            return [(ch, replace(self._state[ch.login])) for ch in self.scenario.channels
                    if self._state[ch.login].live]

    @property
    def duplicate_pagination(self) -> bool:
        with self._lock:
            return self._duplicate_pagination

    @property
    def pagination_fault(self) -> str:
        with self._lock:
            return self._pagination_fault

    def live_edge(self, login: str) -> int:
        """Return the newest media sequence number a live channel's playlist lists now."""
        s = self.scenario
        now = self.clock()
        with self._lock:
            breaks = list(self._state[login].ad_breaks)
        paused = sum(max(0.0, min(now, end) - start) for start, end in breaks if start < now)
        elapsed = max(0.0, now - self.started - paused)
        phase = self.scenario.channel(login).seed * 7 % s.live_loop_segments  # type: ignore[union-attr]
        return s.live_window_segments - 1 + phase + math.floor(elapsed / s.segment_seconds)

    def stream_id(self, login: str, state: ChannelState) -> str:
        seed = self.scenario.channel(login).seed  # type: ignore[union-attr]
        return str(40_000_000_000 + seed * 1000 + state.session)

    # -- faults ---------------------------------------------------------------------------------
    def set_offline(self, login: str, offline: bool) -> None:
        with self._lock:
            s = self._state[login]
            if s.live and offline:
                s.live = False
            elif not s.live and not offline:
                s.live, s.session, s.session_started = True, s.session + 1, self.clock()

    def set_corrupt(self, login: str, fraction: float) -> None:
        if not 0 <= fraction <= 1:
            raise ValueError("fraction must be between 0 and 1")
        with self._lock:
            self._state[login].corrupt = fraction

    def set_ad_break(self, login: str, seconds: float) -> None:
        now = self.clock()
        with self._lock:
            self._state[login].ad_breaks.append((now, now + seconds))

    def set_game(self, login: str, game_id: str) -> None:
        with self._lock:
            self._state[login].declared_game_id = game_id

    def set_duplicate_pagination(self, on: bool) -> None:
        with self._lock:
            self._duplicate_pagination = on

    def set_pagination_fault(self, kind: str) -> None:
        with self._lock:
            self._pagination_fault = kind


def iso(ts: float) -> str:
    """Format a unix time as Helix does: 2020-02-20T12:00:00Z."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _make_clips(scenario: Scenario, now: float) -> list[Clip]:
    rng = random.Random(20200220)
    clips = []
    for ch in scenario.channels:
        for index in range(ch.clips):
            words = "".join(rng.choice(part) for part in _CLIP_WORDS)
            tail = "".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
                           for _ in range(16))
            clips.append(Clip(
                id=f"{words}-{tail}", login=ch.login, index=index, game_id=ch.declared_game_id,
                title=f"{ch.display_name} {rng.choice(['insane play', 'what just happened', 'clutch', 'lol'])}",
                view_count=max(1, int(ch.viewer_count * rng.uniform(0.05, 0.6))),
                created_at=now - rng.uniform(0.5, 20) * 86400,
                creator_id=str(90_000_000 + rng.randrange(10**6)), creator_name=f"viewer{rng.randrange(10**4)}",
                is_featured=rng.random() < 0.2,
            ))
    return clips
