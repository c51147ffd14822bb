"""Describe the stand-in's world: categories, channels, what each one really shows.

    scenario = default_scenario()
    scenario.truth("jc_plays_fortnite")   # Truth('509658', '33214', True)
    scenario.to_file(Path("world.json")); Scenario.from_file(Path("world.json")) == scenario

`world` names the visual world the channels are drawn from: "" (the
original look, as default_scenario() and small_scenario() use) or a name
such as "A" or "B" (monitor/sim/worlds.py), whose looks no other name shares.
A channel declares a category (what Helix /streams reports) and shows one
(what its video carries): a category id, or "rom:<name>" for an Atari game
that belongs to no category (the open-set case). Everything a channel's video
looks like follows from its `shows` and `seed`, so the JSON stays short.
"""

from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

from ale_py import roms

ROM_PREFIX = "rom:"


@dataclass(frozen=True)
class Category:
    id: str
    name: str
    kind: Literal["game", "chatting"]
    rom: str | None = None


@dataclass(frozen=True)
class Channel:
    login: str
    user_id: str
    display_name: str
    declared_game_id: str
    shows: str  # a category id, or "rom:<name>" for a game outside every category
    viewer_count: int
    seed: int
    clips: int = 2
    language: str = "en"
    title: str = ""
    live: bool = True


class Truth(NamedTuple):
    declared_game_id: str
    shown_game_id: str | None  # None: a game outside every category
    mislabeled: bool


@dataclass(frozen=True)
class Scenario:
    categories: tuple[Category, ...]
    channels: tuple[Channel, ...]
    fps: int = 10
    segment_seconds: int = 2
    live_loop_segments: int = 24  # a live channel loops this many pre-encoded segments
    live_window_segments: int = 10  # segments listed in a live media playlist
    clip_segments: int = 5
    # "" keeps the original look; any other name draws every visual choice of every channel from
    # (world, channel.seed) and from pools no other world name shares (monitor/sim/worlds.py).
    world: str = ""
    _by_login: dict[str, Channel] = field(init=False, repr=False, compare=False)
    _by_category: dict[str, Category] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "categories", tuple(self.categories))
        object.__setattr__(self, "channels", tuple(self.channels))
        object.__setattr__(self, "_by_login", {c.login: c for c in self.channels})
        object.__setattr__(self, "_by_category", {c.id: c for c in self.categories})
        self._validate()

    @property
    def frames_per_segment(self) -> int:
        return self.fps * self.segment_seconds

    def category(self, category_id: str) -> Category | None:
        """Return the category with this id, or None."""
        return self._by_category.get(category_id)

    def channel(self, login: str) -> Channel | None:
        """Return the channel with this login, or None."""
        return self._by_login.get(login)

    def rom_for(self, channel: Channel) -> str | None:
        """Return the Atari ROM a channel's video shows, or None for a camera scene."""
        if channel.shows.startswith(ROM_PREFIX):
            return channel.shows[len(ROM_PREFIX):]
        category = self._by_category[channel.shows]
        return category.rom if category.kind == "game" else None

    def truth(self, login: str) -> Truth:
        """Return what a channel declares, what it shows (None: unknown game), and whether they differ."""
        channel = self._by_login[login]
        shown = None if channel.shows.startswith(ROM_PREFIX) else channel.shows
        return Truth(channel.declared_game_id, shown, shown != channel.declared_game_id)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict; from_dict reads it back."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        out["categories"] = [dataclasses.asdict(c) for c in self.categories]
        out["channels"] = [dataclasses.asdict(c) for c in self.channels]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scenario:
        """Build a Scenario from a dict shaped like to_dict's output."""
        data = dict(data)
        try:
            categories = tuple(Category(**c) for c in data.pop("categories"))
            channels = tuple(Channel(**c) for c in data.pop("channels"))
            return cls(categories=categories, channels=channels, **data)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed scenario: {exc}") from None

    @classmethod
    def from_file(cls, path: Path | str) -> Scenario:
        """Load a Scenario from a JSON file."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def to_file(self, path: Path | str) -> None:
        """Write the Scenario as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")

    def _validate(self) -> None:
        if len(self._by_login) != len(self.channels):
            raise ValueError("scenario lists a channel login twice")
        if len({c.user_id for c in self.channels}) != len(self.channels):
            raise ValueError("scenario lists a user_id twice")
        if len(self._by_category) != len(self.categories):
            raise ValueError("scenario lists a category id twice")
        if not isinstance(self.world, str):
            raise ValueError("scenario world must be a string")
        if self.fps <= 0 or self.segment_seconds <= 0 or self.clip_segments <= 0:
            raise ValueError("scenario fps, segment_seconds and clip_segments must be positive")
        if self.live_window_segments < 8 or self.live_loop_segments < self.live_window_segments:
            raise ValueError("scenario needs live_window_segments >= 8 and a loop at least that long")
        known = set(roms.get_all_rom_ids())
        for category in self.categories:
            if category.kind not in ("game", "chatting"):
                raise ValueError(f"category {category.id}: kind must be 'game' or 'chatting'")
            if category.kind == "game" and category.rom not in known:
                raise ValueError(f"category {category.id}: unknown ROM {category.rom!r}")
        for channel in self.channels:
            if channel.shows.startswith(ROM_PREFIX):
                if channel.shows[len(ROM_PREFIX):] not in known:
                    raise ValueError(f"channel {channel.login}: unknown ROM in {channel.shows!r}")
            elif channel.shows not in self._by_category:
                raise ValueError(f"channel {channel.login}: shows unknown category {channel.shows!r}")


# The report's eight categories; each game is stood in for by a visually distinct Atari ROM.
REPORT_CATEGORIES = (
    Category("21779", "League of Legends", "game", "ms_pacman"),
    Category("509658", "Just Chatting", "chatting", None),
    Category("33214", "Fortnite", "game", "riverraid"),
    Category("512710", "Call of Duty: Modern Warfare", "game", "battle_zone"),
    Category("18122", "World of Warcraft", "game", "pitfall"),
    Category("32982", "Grand Theft Auto V", "game", "enduro"),
    Category("27471", "Minecraft", "game", "qbert"),
    Category("512804", "FIFA 20", "game", "ice_hockey"),
)
JUST_CHATTING = "509658"
OPEN_SET_ROM = "space_invaders"

_NAME_PARTS = (
    ("pixel", "night", "lucky", "silent", "cosmic", "frosty", "rapid", "mellow", "neon", "salty", "golden", "wild"),
    ("fox", "owl", "raven", "tiger", "panda", "wolf", "otter", "viper", "moose", "koala", "yeti", "hawk"),
    ("", "tv", "_live", "gg", "_ttv", "plays", "x", "_"),
)
_TITLES = (
    "chill stream, come hang out", "ranked grind until I win", "!discord !socials", "road to top 500",
    "first time playing, no spoilers", "late night vibes", "sub goal tonight", "viewer games later",
)


def default_scenario() -> Scenario:
    """Return the report's 8 categories, 10 honest channels each, and 5 mislabeled channels."""
    honest = [cat for cat in REPORT_CATEGORIES for _ in range(10)]
    mislabeled = [
        ("jc_plays_fortnite", JUST_CHATTING, "33214"),
        ("jc_plays_gta", JUST_CHATTING, "32982"),
        ("jc_plays_league", JUST_CHATTING, "21779"),
        ("jc_plays_retro", JUST_CHATTING, ROM_PREFIX + OPEN_SET_ROM),
        ("minecraft_plays_fifa", "27471", "512804"),
    ]
    return Scenario(categories=REPORT_CATEGORIES, channels=tuple(_channels(honest, mislabeled, 10)))


def small_scenario() -> Scenario:
    """Return 3 categories (LoL, Just Chatting, Fortnite), 3 honest channels each, 1 mislabeled."""
    categories = tuple(c for c in REPORT_CATEGORIES if c.id in ("21779", JUST_CHATTING, "33214"))
    honest = [cat for cat in categories for _ in range(3)]
    mislabeled = [("jc_plays_fortnite", JUST_CHATTING, "33214")]
    return Scenario(categories=categories, channels=tuple(_channels(honest, mislabeled, 3)))


def _channels(honest: list[Category], mislabeled: list[tuple[str, str, str]], per_category: int) -> list[Channel]:
    """Generate deterministic channels; mislabeled ones rank below every honest one of their category."""
    rng = random.Random(20200220)
    used: set[str] = set()
    out = []
    rank_in_category: dict[str, int] = {}
    for index, category in enumerate(honest):
        rank = rank_in_category.get(category.id, 0)
        rank_in_category[category.id] = rank + 1
        login = _login(rng, used)
        # Viewer counts fall off steeply with rank, as on Twitch.
        viewers = int(60000 / (rank + 1) ** 1.3 * rng.uniform(0.85, 1.15)) + 400
        out.append(_channel(login, index, category.id, category.id, viewers, rng))
    for offset, (login, declared, shows) in enumerate(mislabeled):
        used.add(login)
        out.append(_channel(login, len(honest) + offset, declared, shows, 150 + 40 * offset, rng))
    return out


def _channel(login: str, index: int, declared: str, shows: str, viewers: int, rng: random.Random) -> Channel:
    display = login.replace("_", " ").title().replace(" ", "_") if rng.random() < 0.5 else login.capitalize()
    return Channel(
        login=login, user_id=str(41_000_000 + index * 7_919), display_name=display,
        declared_game_id=declared, shows=shows, viewer_count=viewers, seed=1000 + index, clips=2,
        language="en", title=rng.choice(_TITLES),
    )


def _login(rng: random.Random, used: set[str]) -> str:
    while True:
        first, second, suffix = (rng.choice(part) for part in _NAME_PARTS)
        login = f"{first}{second}{suffix}"
        if rng.random() < 0.3:
            login += str(rng.randint(1, 99))
        if login not in used:
            used.add(login)
            return login
