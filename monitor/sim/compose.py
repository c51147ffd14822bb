"""Lay a channel's picture out like a Twitch stream, one 1280x720 RGB frame at a time.

    video = ChannelVideo(scenario, channel, run="live", count=480, cache_dir=cache)
    rgb = video.frame(0)    # (720, 1280, 3) uint8

A game channel shows its ROM's screen over most of the frame, a webcam box in
a corner and sometimes a chat panel; a Just Chatting channel is a full-frame
camera scene. The layout (corner, box size, panel, colours) follows from the
channel's seed, so channels differ while a category's game stays the same ROM.
A scenario with a named world composes its channels in monitor/sim/stage.py
instead, from looks of that world alone.
"""

from __future__ import annotations

import colorsys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from monitor.sim import stage
from monitor.sim.camera import CameraScene
from monitor.sim.game import game_frames
from monitor.sim.scenario import Channel, Scenario

WIDTH, HEIGHT = 1280, 720
COMPOSE_VERSION = 1  # bump with any change to how frames look: it is part of the cache key
_CHAT_WORDS = ("gg", "lol", "pog", "nice", "what", "no way", "KEKW", "clip it", "LUL", "so close", "W", "L",
               "hi chat", "first", "omg", "that was insane", "monkaS", "let's go", "rip", "ez", "how")


@dataclass(frozen=True)
class Look:
    """A channel's overlay design; every field follows from the channel seed."""

    full_frame_game: bool  # game stretched over the whole frame rather than framed at 4:3
    panel: bool  # a chat panel on the right
    corner: str  # where the webcam sits: "tl", "tr", "bl", "br"
    cam_width: int
    accent: tuple[int, int, int]
    backdrop: tuple[int, int, int]
    smooth_scaling: bool
    zoom: float  # camera framing of a Just Chatting scene

    @classmethod
    def for_seed(cls, seed: int) -> Look:
        """Draw a look from the seed."""
        rng = np.random.default_rng([seed, 7])
        hue = float(rng.uniform(0, 1))
        accent = tuple(int(v * 255) for v in colorsys.hsv_to_rgb(hue, rng.uniform(0.6, 1), rng.uniform(0.7, 1)))
        backdrop = tuple(int(v * 255) for v in colorsys.hsv_to_rgb(hue, rng.uniform(0.3, 0.7), rng.uniform(0.08, 0.3)))
        full = bool(rng.random() < 0.35)
        return cls(
            full_frame_game=full, panel=bool(not full and rng.random() < 0.55),
            corner=str(rng.choice(["tl", "tr", "bl", "br"])), cam_width=int(rng.integers(220, 380)) // 2 * 2,
            accent=accent, backdrop=backdrop,  # type: ignore[arg-type]
            smooth_scaling=bool(rng.random() < 0.4), zoom=float(rng.uniform(0.9, 1.35)),
        )


class ChannelVideo:
    """Frames of one run of a channel: its live loop ("live") or one of its clips ("clip-N")."""

    def __init__(self, scenario: Scenario, channel: Channel, run: str, count: int, cache_dir: Path | None = None):
        self.count = count
        self.source: tuple[int, int] | None = None  # the streamer's own resolution, if not 1280x720
        if scenario.world:  # a named world has looks of its own (monitor/sim/stage.py)
            self._world = stage.world_video(scenario, channel, run, count, cache_dir)
            self._layout = self._world
            if self._world.source != (WIDTH, HEIGHT):
                self.source = self._world.source
            return
        self.look = Look.for_seed(channel.seed)
        rom = scenario.rom_for(channel)
        run_seed = channel.seed if run == "live" else zlib.crc32(f"{channel.seed}:{run}".encode())
        if rom is None:
            self._layout: _Layout = _ChattingLayout(self.look, channel, scenario.fps)
        else:
            frames = game_frames(rom, run_seed, count, scenario.fps, cache_dir)
            self._layout = _GameLayout(self.look, channel, scenario.fps, frames)

    def frame(self, index: int) -> np.ndarray:
        """Return frame `index` (taken modulo the run length) as (720, 1280, 3) uint8."""
        return self._layout.frame(index % self.count)

    def picture(self, index: int) -> np.ndarray:
        """Return frame `index` before it is scaled through `source`: what the encoder scales itself."""
        if self.source is None:
            return self.frame(index)
        return self._world.picture(index % self.count)


class _Layout:
    def frame(self, index: int) -> np.ndarray:
        raise NotImplementedError


class _GameLayout(_Layout):
    def __init__(self, look: Look, channel: Channel, fps: int, frames: np.ndarray):
        self.frames = frames
        if look.full_frame_game:
            self.game_box = (0, 0, WIDTH, HEIGHT)
        else:
            gh = int(HEIGHT * 0.9)
            gw = gh * 4 // 3
            room = WIDTH - (300 if look.panel else 0)
            x0 = max(10, (room - gw) // 2)
            self.game_box = (x0, (HEIGHT - gh) // 2, x0 + gw, (HEIGHT - gh) // 2 + gh)
        x0, y0, x1, y1 = self.game_box
        self.resample = Image.BILINEAR if look.smooth_scaling else Image.NEAREST
        self.base = _backdrop(look)
        self.chat = _ChatPanel(channel.seed, fps, (WIDTH - 290, 20, WIDTH - 10, HEIGHT - 20)) if look.panel else None
        cam_h = look.cam_width * 9 // 16
        self.cam = CameraScene(channel.seed, look.cam_width, cam_h, zoom=1.25, fps=fps)
        self.cam_at = _corner(look.corner, look.cam_width, cam_h, self.game_box)
        self.accent = np.array(look.accent, np.uint8)

    def frame(self, index: int) -> np.ndarray:
        out = self.base.copy()
        x0, y0, x1, y1 = self.game_box
        screen = Image.fromarray(self.frames[index])
        out[y0:y1, x0:x1] = np.asarray(screen.resize((x1 - x0, y1 - y0), self.resample))
        if self.chat is not None:
            self.chat.draw(out, index)
        cx, cy = self.cam_at
        cam = self.cam.frame(index)
        h, w = cam.shape[:2]
        out[cy - 3: cy + h + 3, cx - 3: cx + w + 3] = self.accent
        out[cy: cy + h, cx: cx + w] = cam
        return out


class _ChattingLayout(_Layout):
    def __init__(self, look: Look, channel: Channel, fps: int):
        self.scene = CameraScene(channel.seed, WIDTH, HEIGHT, zoom=look.zoom, fps=fps)
        self.chat = _ChatPanel(channel.seed, fps, (WIDTH - 300, 60, WIDTH - 20, HEIGHT - 90)) if look.panel else None
        banner = Image.new("RGB", (420, 44), look.accent)
        ImageDraw.Draw(banner).text((14, 10), channel.display_name, fill=(255, 255, 255), font=_font(22))
        self.banner = np.asarray(banner)

    def frame(self, index: int) -> np.ndarray:
        out = self.scene.frame(index)
        if self.chat is not None:
            self.chat.draw(out, index, alpha=True)
        out[HEIGHT - 70: HEIGHT - 26, 30:450] = self.banner
        return out


class _ChatPanel:
    """A scrolling column of chat lines, drawn once as a tall strip and windowed per frame."""

    LINE = 22

    def __init__(self, seed: int, fps: int, box: tuple[int, int, int, int]):
        self.box, self.fps = box, fps
        rng = np.random.default_rng([seed, 11])
        x0, y0, x1, y1 = box
        visible = (y1 - y0) // self.LINE
        lines = visible + 120
        strip = Image.new("RGB", (x1 - x0, lines * self.LINE), (24, 24, 28))
        draw = ImageDraw.Draw(strip)
        font = _font(14)
        for i in range(lines):
            name = "".join(rng.choice(list("abcdefghijklmnoprstuvwxyz"), int(rng.integers(4, 11))))
            colour = tuple(int(v * 255) for v in colorsys.hsv_to_rgb(rng.uniform(0, 1), 0.7, 1.0))
            words = " ".join(rng.choice(_CHAT_WORDS, int(rng.integers(1, 4))))
            draw.text((8, i * self.LINE + 3), name + ":", fill=colour, font=font)
            draw.text((14 + draw.textlength(name + ":", font=font), i * self.LINE + 3), words,
                      fill=(220, 220, 225), font=font)
        self.strip = np.asarray(strip)
        self.visible = visible
        self.lines = lines
        self.every = max(1, int(fps * rng.uniform(0.6, 2.0)))  # frames between messages

    def draw(self, out: np.ndarray, index: int, alpha: bool = False) -> None:
        x0, y0, x1, y1 = self.box
        first = (index // self.every) % (self.lines - self.visible)
        window = self.strip[first * self.LINE: (first + self.visible) * self.LINE]
        target = out[y0: y0 + window.shape[0], x0:x1]
        if alpha:  # a translucent overlay over a camera scene
            target[:] = ((target.astype(np.uint16) + window.astype(np.uint16) * 3) >> 2).astype(np.uint8)
        else:
            target[:] = window


def _backdrop(look: Look) -> np.ndarray:
    """Paint the overlay behind a framed game: a vertical gradient of the channel colours."""
    top = np.array(look.backdrop, np.float32)
    bottom = np.array(look.accent, np.float32) * 0.35
    t = np.linspace(0, 1, HEIGHT, dtype=np.float32)[:, None, None]
    grad = (top * (1 - t) + bottom * t).astype(np.uint8)
    return np.ascontiguousarray(np.broadcast_to(grad, (HEIGHT, WIDTH, 3)))


def _corner(corner: str, w: int, h: int, game_box: tuple[int, int, int, int]) -> tuple[int, int]:
    """Place the webcam inside a corner of the game picture, as overlays do."""
    x0, y0, x1, y1 = game_box
    margin = 14
    x = x0 + margin if corner[1] == "l" else x1 - margin - w
    y = y0 + margin if corner[0] == "t" else y1 - margin - h
    return max(3, min(WIDTH - w - 3, x)), max(3, min(HEIGHT - h - 3, y))


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)
