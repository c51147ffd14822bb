"""Build pairs of worlds that share nothing visual: train on one, test on the other.

    train, held_out = generalization_worlds()
    train.world, held_out.world           # ("A", "B")
    a, b = holdout_game_worlds("27471")   # a has no Minecraft at all; b streams it

Both worlds of a pair have the report's categories (scenario.REPORT_CATEGORIES)
but every visual choice of a channel comes from (world, channel.seed): layout,
overlay, webcam person, room, chat panel, grading, encode (monitor/sim/looks.py).
World A is for `dataset build` and training (honest channels only, 2 clips
each); world B is the held-out test: varied honest channels, the hard honest
Just Chatting cases and the mislabeled ones, every channel with 2 clips too.
Logins and user_ids are unique across both worlds of a pair.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from monitor.sim import looks
from monitor.sim.scenario import (
    JUST_CHATTING,
    REPORT_CATEGORIES,
    ROM_PREFIX,
    Category,
    Channel,
    Scenario,
    default_scenario,
    small_scenario,
)

# Atari ROMs outside every category, each checked to show a moving picture from its first
# second with game.play (tests/sim/test_sim_worlds.py). Worlds named "A" and "B" take
# alternate entries, so an open-set game of one never appears in the other.
OPEN_SET_ROMS = (
    "space_invaders", "boxing", "freeway", "frogger", "seaquest", "asterix", "beam_rider", "centipede",
    "demon_attack", "kangaroo", "montezuma_revenge", "mario_bros", "tennis", "bowling", "skiing",
    "fishing_derby", "galaxian", "phoenix", "frostbite", "hero", "atlantis", "chopper_command",
    "name_this_game", "yars_revenge",
)
WORLD_A, WORLD_B = "A", "B"
# Categories of the training world that nobody watches: four of its open-set ROMs as games of their
# own, as Twitch lists thousands besides the watched ones. `dataset build` takes their clips as
# examples of games the model must not name (dataset.other_games); B's open-set ROMs are the other half.
OTHER_GAMES_A = 4
OTHER_GAME_BASE_ID = 910_000
HONEST_A = 9  # honest channels per category in the training world
HONEST_B = 3  # honest channels per game category in the held-out world
# The held-out world's honest Just Chatting scenes: the hard cases come twice.
CHATTING_B = ("room", "poster", "screen", "busy", "outdoor", "reaction", "reaction_behind", "poster")
CHATTING_A = ("room", "poster", "screen", "busy", "outdoor", "reaction", "reaction_behind", "room", "busy")
# (declared, shows) of the held-out world's mislabeled channels; "open" is an open-set ROM.
MISLABELED_B = (
    (JUST_CHATTING, "33214"), (JUST_CHATTING, "32982"), (JUST_CHATTING, "21779"), (JUST_CHATTING, "18122"),
    (JUST_CHATTING, "open"), (JUST_CHATTING, "open"), (JUST_CHATTING, "open"),
    ("27471", "512804"), ("21779", "33214"), ("512804", "32982"),
)
_NAMES = {
    WORLD_A: (("amber", "brisk", "cinder", "dusty", "ember", "fuzzy", "gloomy", "hazy", "icy", "jolly", "kind",
               "lunar", "misty", "noble"),
              ("badger", "crane", "dingo", "egret", "finch", "gecko", "heron", "ibis", "jackal", "kiwi", "lynx",
               "marten")),
    WORLD_B: (("velvet", "turbo", "sunny", "rusty", "quiet", "proud", "orbit", "mighty", "lazy", "astro",
               "crimson", "dizzy", "electric", "feral"),
              ("walrus", "vulture", "toucan", "stoat", "shrike", "raccoon", "quokka", "puffin", "ocelot",
               "narwhal", "mongoose", "lemur")),
}
_SUFFIXES = ("", "tv", "_live", "gg", "_ttv", "plays", "x", "_", "irl", "hd")
_TITLES = (
    "chill stream, come hang out", "ranked grind until I win", "!discord !socials", "road to top 500",
    "first time playing, no spoilers", "late night vibes", "sub goal tonight", "viewer games later",
    "just vibing", "24h stream!!", "new setup who dis", "react andy", "IRL walk around town",
)


def world_open_set_roms(world: str) -> tuple[str, ...]:
    """Return the open-set ROMs a world may show: alternate halves of OPEN_SET_ROMS (looks.world_half)."""
    return OPEN_SET_ROMS[looks.world_half(world)::2]


def other_game_categories(world: str) -> tuple[Category, ...]:
    """Return the unwatched game categories a world lists: its first OTHER_GAMES_A open-set ROMs."""
    if world != WORLD_A:
        return ()
    return tuple(Category(str(OTHER_GAME_BASE_ID + i), rom.replace("_", " ").title(), "game", rom)
                 for i, rom in enumerate(world_open_set_roms(world)[:OTHER_GAMES_A]))


def generalization_worlds(seed: int = 0) -> tuple[Scenario, Scenario]:
    """Return (A, B): the same 8 categories, disjoint looks; A to train on, B held out."""
    return _pair(seed, held_out=None)


def holdout_game_worlds(held_out: str = "27471", seed: int = 0) -> tuple[Scenario, Scenario]:
    """Return (A, B) where A has no trace of category `held_out` and B streams it, honest and mislabeled."""
    game_ids = [c.id for c in REPORT_CATEGORIES if c.kind == "game"]
    if held_out not in game_ids:
        raise ValueError(f"held_out must be a game category of the report ({', '.join(game_ids)}), not {held_out!r}")
    return _pair(seed, held_out=held_out)


@dataclass
class _Builder:
    """Hand out logins, user_ids and seeds that are unique across both worlds of a pair."""

    seed: int
    used_logins: set[str]

    def __post_init__(self) -> None:
        self.rng = random.Random(f"worlds:{self.seed}")
        self.next_seed = {WORLD_A: 10_000 + self.seed * 100_000, WORLD_B: 50_000 + self.seed * 100_000}
        self.count = {WORLD_A: 0, WORLD_B: 0}

    def channel(self, world: str, declared: str, shows: str, viewers: int, scene: str) -> Channel:
        seed = self._seed_for(world, scene)
        index = self.count[world]
        self.count[world] += 1
        login = self._login(world)
        base = 52_000_000 if world == WORLD_A else 63_000_000
        display = login.replace("_", " ").title().replace(" ", "_") if self.rng.random() < 0.5 else login.capitalize()
        return Channel(
            login=login, user_id=str(base + self.seed * 1_000_000 + index * 7_919), display_name=display,
            declared_game_id=declared, shows=shows, viewer_count=viewers, seed=seed, clips=2,
            language="en", title=self.rng.choice(_TITLES),
        )

    def _seed_for(self, world: str, scene: str) -> int:
        """Take the next seed whose look is of this scene kind (a layout family or a camera scene)."""
        seed = self.next_seed[world]
        while looks.scene_kind(world, seed, chatting=scene in looks.CHATTING_KINDS) != scene:
            seed += 1
        self.next_seed[world] = seed + 1
        return seed

    def _login(self, world: str) -> str:
        first, second = _NAMES[world]
        while True:
            login = f"{self.rng.choice(first)}{self.rng.choice(second)}{self.rng.choice(_SUFFIXES)}"
            if self.rng.random() < 0.3:
                login += str(self.rng.randint(1, 99))
            if login not in self.used_logins:
                self.used_logins.add(login)
                return login


def _families(start: int) -> Iterator[str]:
    """Cycle through the game layout families, starting at a different one per category."""
    return itertools.islice(itertools.cycle(looks.GAME_FAMILIES), start, None)


def _viewers(rng: random.Random, rank: int) -> int:
    return int(60000 / (rank + 1) ** 1.3 * rng.uniform(0.85, 1.15)) + 400


def _pair(seed: int, held_out: str | None) -> tuple[Scenario, Scenario]:
    build = _Builder(seed, set())
    rng = random.Random(f"viewers:{seed}")
    kept = tuple(c for c in REPORT_CATEGORIES if c.id != held_out)
    a = [ch for i, cat in enumerate(kept) for ch in _honest(build, rng, WORLD_A, cat, HONEST_A, i, CHATTING_A)]
    b: list[Channel] = []
    for i, cat in enumerate(REPORT_CATEGORIES):
        extra = 2 if cat.id == held_out else 0
        b += _honest(build, rng, WORLD_B, cat, HONEST_B + extra, 3 * i + 1, CHATTING_B)
    open_roms = iter(world_open_set_roms(WORLD_B) * 2)
    mislabeled = list(MISLABELED_B) + ([(JUST_CHATTING, held_out)] * 2 if held_out else [])
    families = _families(5)
    for offset, (declared, shows) in enumerate(mislabeled):
        shown = ROM_PREFIX + next(open_roms) if shows == "open" else shows
        b.append(build.channel(WORLD_B, declared, shown, 150 + 40 * offset, next(families)))
    others = other_game_categories(WORLD_A)
    # Drawn last, so that every other channel of both worlds keeps the login, seed and viewers it always had.
    a += [ch for i, cat in enumerate(others) for ch in _honest(build, rng, WORLD_A, cat, 2, 2 * i, ())]
    return _scenario(WORLD_A, kept + others, a), _scenario(WORLD_B, REPORT_CATEGORIES, b)


def _honest(build: _Builder, rng: random.Random, world: str, category: Category, count: int, start: int,
            chatting: tuple[str, ...]) -> list[Channel]:
    """Return honest channels of a category: one per scene kind for Just Chatting, else `count` layouts."""
    if category.kind == "chatting":
        scenes = list(chatting)
    else:
        families = _families(start)
        scenes = [next(families) for _ in range(count)]
    return [build.channel(world, category.id, category.id, _viewers(rng, rank), scene)
            for rank, scene in enumerate(scenes)]


def _scenario(world: str, categories: tuple[Category, ...], channels: list[Channel]) -> Scenario:
    return Scenario(categories=categories, channels=tuple(channels), world=world)


SCENARIO_NAMES = ("default", "small", "world-a", "world-b", "holdout-a", "holdout-b")


def load_scenario(name: str) -> Scenario:
    """Return a scenario by name (one of SCENARIO_NAMES) or from a JSON file path.

    It lives here, not in scenario.py, because the named worlds build on
    scenario.py: one direction of import only.
    """
    if name == "default":
        return default_scenario()
    if name == "small":
        return small_scenario()
    if name in SCENARIO_NAMES:
        pair = generalization_worlds() if name.startswith("world-") else holdout_game_worlds()
        return pair[0] if name.endswith("-a") else pair[1]
    return Scenario.from_file(Path(name))
