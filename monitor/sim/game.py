"""Play an Atari ROM shipped by ale-py and keep the screens: the stand-in's game footage.

    frames = game_frames("riverraid", seed=3, count=480, fps=10, cache_dir=Path("cache"))
    frames.shape   # (480, 210, 160, 3) uint8

A simple random policy (sticky actions, FIRE often so games start) keeps the
picture moving; the emulator runs at the Atari's 60 Hz and one screen is kept
per video frame. Runs are cached as zlib-compressed raw screens: playing
costs most of a second per channel, loading a tenth of that.
"""

from __future__ import annotations

import logging
import os
import tempfile
import zlib
from pathlib import Path

import numpy as np
from ale_py import Action, ALEInterface, LoggerMode, roms

log = logging.getLogger(__name__)

ATARI_HZ = 60
SCREEN_BYTES = 210 * 160 * 3
GAME_VERSION = 1  # bump when the policy changes: it is part of the cache key


def game_frames(rom: str, seed: int, count: int, fps: int, cache_dir: Path | None = None) -> np.ndarray:
    """Return `count` screens (count, 210, 160, 3) of `rom` played with `seed`, from cache if present."""
    path = None
    if cache_dir is not None:
        path = cache_dir / "games" / f"{rom}-s{seed}-n{count}-f{fps}-v{GAME_VERSION}.z"
        cached = _load(path, count)
        if cached is not None:
            return cached
    frames = play(rom, seed, count, fps)
    if path is not None:
        _save(path, frames)
    return frames


def play(rom: str, seed: int, count: int, fps: int) -> np.ndarray:
    """Run the emulator with a random sticky-action policy and keep one screen per video frame."""
    ALEInterface.setLoggerMode(LoggerMode.Error)
    ale = ALEInterface()
    ale.setInt("random_seed", seed % (1 << 31))
    ale.setFloat("repeat_action_probability", 0.0)
    ale.loadROM(roms.get_rom_path(rom))
    actions = list(ale.getMinimalActionSet())
    fire = [a for a in actions if "FIRE" in a.name] or actions
    rng = np.random.default_rng(seed)
    # Skip the attract-mode start so the first frame already shows play.
    for _ in range(int(rng.integers(30, 120))):
        ale.act(Action.FIRE if Action.FIRE in actions else actions[0])
    steps = max(1, ATARI_HZ // fps)
    out = np.empty((count, 210, 160, 3), np.uint8)
    action, hold = actions[0], 0
    for i in range(count):
        if hold <= 0:
            action = fire[int(rng.integers(len(fire)))] if rng.random() < 0.3 else actions[int(rng.integers(len(actions)))]
            hold = int(rng.integers(1, 6))
        hold -= 1
        for _ in range(steps):
            ale.act(action)
        if ale.game_over():
            ale.reset_game()
        out[i] = ale.getScreenRGB()
    return out


def _load(path: Path, count: int) -> np.ndarray | None:
    try:
        raw = zlib.decompress(path.read_bytes())
    except (OSError, zlib.error):
        return None
    if len(raw) != count * SCREEN_BYTES:
        return None
    return np.frombuffer(raw, np.uint8).reshape(count, 210, 160, 3)


def _save(path: Path, frames: np.ndarray) -> None:
    """Write atomically: several threads or processes may play the same run at once."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    except OSError as exc:
        log.warning("stand-in cache not writable (%s): game footage not cached", exc)
        return
    try:
        with os.fdopen(fd, "wb") as fh:
            # Level 3: a third of level 6's time for twice the size, and this is on a request's path.
            fh.write(zlib.compress(frames.tobytes(), 3))
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("stand-in cache write failed (%s): game footage not cached", exc)
    finally:
        Path(tmp).unlink(missing_ok=True)  # gone already after a successful rename
