"""Render the frames of a channel in a named world, from its look (monitor/sim/looks.py).

    video = world_video(scenario, channel, run="live", count=480, cache_dir=cache)
    video.frame(0)     # (720, 1280, 3) uint8, graded and at the channel's source resolution

A game channel composes its game picture, webcam, chat and overlay; a Just
Chatting channel films a world camera scene (room, busy room, outdoors) with
a poster or screen showing a game image, or a window playing a non-game
video. Every frame ends with the channel's colour grade and is scaled down to
its source resolution and back, as a streamer's encoder would send it.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from monitor.sim import overlay
from monitor.sim.game import game_frames
from monitor.sim.looks import (
    HEIGHT,
    WIDTH,
    ChattingLook,
    GameLook,
    Grade,
    Rect,
    chatting_look,
    game_look,
    world_rng,
)
from monitor.sim.scenario import Channel, Scenario
from monitor.sim.scenes import WorldCamera
from monitor.sim.worlds import world_open_set_roms

SCREEN_LOOP = 60  # frames a TV in a Just Chatting room loops


def poster_roms(scenario: Scenario) -> tuple[str, ...]:
    """Return the games a world's posters and screens may show: its categories' and its open-set ROMs."""
    open_set = world_open_set_roms(scenario.world)
    # An open-set ROM listed as a category of its own (worlds.other_game_categories) is counted once.
    games = sorted(c.rom for c in scenario.categories if c.kind == "game" and c.rom and c.rom not in open_set)
    return tuple(games) + open_set


class Tone:
    """A channel's colour grade as a function on RGB arrays; applied once to every source picture.

    Grading each source (overlay, game screen, webcam layers) rather than each
    composed frame gives the same picture, since composing only copies and
    blends, at a fraction of the cost.
    """

    def __init__(self, grade: Grade):
        self.lut = np.array(grade.lut(), np.uint8).reshape(3, 256)
        self.saturation = np.float32(grade.saturation)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        out = np.empty_like(rgb)
        for c in range(3):
            out[..., c] = self.lut[c][rgb[..., c]]
        if abs(self.saturation - 1) > 0.02:
            f = out.astype(np.float32)
            gray = (f @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
            out = np.clip(gray + self.saturation * (f - gray), 0, 255).astype(np.uint8)
        return out


def at_source(picture: np.ndarray, source: tuple[int, int]) -> np.ndarray:
    """Return a picture scaled down to the streamer's source size and back, as viewers receive it."""
    if source == (WIDTH, HEIGHT):
        return picture
    img = Image.fromarray(picture).resize(source, Image.BILINEAR)
    return np.array(img.resize((WIDTH, HEIGHT), Image.BILINEAR))


class WorldGameVideo:
    """A game channel of a world: the game picture laid out with webcam, chat and overlays."""

    def __init__(self, world: str, channel: Channel, look: GameLook, frames: np.ndarray, fps: int):
        self.look, self.frames, self.fps = look, frames, fps
        self.source = look.encode.source
        self.tone = tone = Tone(look.grade)
        rng = world_rng(world, channel.seed, "overlay")
        style, extras = look.style, look.extras
        base = overlay.backdrop(style, frames[0], rng)
        overlay.frame_box(base, look.box, style)
        if look.box != look.game:  # letterbox or pillarbox bars
            base[look.box.y0:look.box.y1, look.box.x0:look.box.x1] = 0
        if extras.subgoal is not None:
            overlay.subgoal(base, extras.subgoal, style, rng)
        if extras.title is not None:
            overlay.text_box(base, extras.title, style, [channel.display_name, channel.title or "live now"])
        self.cam = self.cam_mask = None
        if look.cam is not None:
            cam = look.cam
            overlay.cam_border(base, cam.rect, cam.shape, cam.border, style.accent, style.radius)
            self.cam = WorldCamera(world, cam.person, cam.room, cam.rect.width, cam.rect.height,
                                   zoom=float(rng.uniform(1.15, 1.6)), shift=float(rng.uniform(-0.12, 0.12)), fps=fps,
                                   seated=cam.shape != "cutout", tone=tone)
            self.cam_mask = overlay.shape_mask(cam.rect.width, cam.rect.height, cam.shape, style.radius)
        self.base = tone(base)
        self.resample = Image.BILINEAR if style.smooth_scaling else Image.NEAREST
        self.parts = [part for part in (
            overlay.Chat(style, extras.chat_seed, extras.chat, fps, extras.chat_alpha) if extras.chat else None,
            overlay.Ticker(style, extras.ticker, rng) if extras.ticker else None,
            overlay.Alert(style, extras.alert, rng, fps) if extras.alert else None,
        ) if part is not None]
        for part in self.parts:
            part.recolour(tone)
        if look.inset is not None:  # picture-in-picture: a zoomed corner of the game (a minimap, a radar)
            cw, ch = int(rng.integers(40, 80)), int(rng.integers(40, 80))
            self.crop = (int(rng.integers(0, 130 - cw)), int(rng.integers(0, 180 - ch)), cw, ch)  # inside any trim
            self.inset_border = tone(np.array([[look.style.second]], np.uint8))[0, 0]

    def picture(self, index: int) -> np.ndarray:
        """Return frame `index` at full size, before the source resolution is applied."""
        out = self.base.copy()
        g = self.look.game
        c = self.look.crop
        screen = Image.fromarray(self.tone(self.frames[index][c:210 - c, c:160 - c]))
        out[g.y0:g.y1, g.x0:g.x1] = np.asarray(screen.resize((g.width, g.height), self.resample))
        if self.look.inset is not None:
            r = self.look.inset
            x, y, w, h = self.crop
            zoomed = screen.crop((x, y, x + w, y + h)).resize((r.width - 6, r.height - 6), Image.NEAREST)
            out[r.y0:r.y1, r.x0:r.x1] = self.inset_border
            out[r.y0 + 3:r.y1 - 3, r.x0 + 3:r.x1 - 3] = np.asarray(zoomed)
        if self.cam is not None:
            cam = self.look.cam
            if cam.shape == "cutout":
                rgb, alpha = self.cam.keyed(index)
                overlay.paste(out, cam.rect, rgb, alpha)
            else:
                overlay.paste(out, cam.rect, self.cam.frame(index), self.cam_mask)
        for part in self.parts:
            part.draw(out, index)
        return out

    def frame(self, index: int) -> np.ndarray:
        return at_source(self.picture(index), self.source)


class _Reaction:
    """The non-game video a streamer reacts to: a talking head, a travel vlog, a nature shot or the news."""

    KINDS = ("talk", "travel", "nature", "news")

    def __init__(self, world: str, seed: int, rect: Rect, fps: int, tone: Tone):
        rng = world_rng(world, seed, "reaction")
        self.rect = rect
        self.kind = kind = self.KINDS[int(rng.integers(len(self.KINDS)))]
        inner_h = rect.height - 14
        outdoor = kind in ("travel", "nature")
        person = None if kind == "nature" else int(rng.integers(1 << 31))
        shake = float(rng.uniform(12, 24) if kind == "nature" else rng.uniform(2, 6)) if outdoor else 0.0
        self.camera = WorldCamera(world, person, int(rng.integers(1 << 31)), rect.width, inner_h,
                                  zoom=float(rng.uniform(0.9, 1.3)), shift=float(rng.uniform(-0.2, 0.2)), fps=fps,
                                  outdoor=outdoor, handheld=shake, tone=tone)
        bar = Image.new("RGB", (rect.width, 14), (15, 15, 15))
        d = ImageDraw.Draw(bar)
        d.rectangle([8, 5, rect.width - 8, 8], fill=(90, 90, 90))
        progress = float(rng.uniform(0.1, 0.8))
        d.rectangle([8, 5, 8 + int((rect.width - 16) * progress), 8], fill=(230, 30, 40))
        self.bar = tone(np.asarray(bar))
        self.band = None
        if kind == "news":  # a lower third and a LIVE badge over the anchor
            h = max(24, inner_h // 7)
            band = Image.new("RGB", (rect.width, h), tuple(int(v) for v in rng.integers(0, 160, 3)))
            d = ImageDraw.Draw(band)
            d.rectangle([0, 0, h * 2, h], fill=(200, 20, 30))
            d.text((6, h // 4), "LIVE", fill=(255, 255, 255), font=overlay.font(max(10, h // 2)))
            d.text((h * 2 + 10, h // 4), "BREAKING: local cat elected mayor", fill=(255, 255, 255),
                   font=overlay.font(max(10, h // 2)))
            self.band = tone(np.asarray(band))

    def draw(self, out: np.ndarray, index: int) -> None:
        r = self.rect
        out[r.y0:r.y1 - 14, r.x0:r.x1] = self.camera.frame(index)
        out[r.y1 - 14:r.y1, r.x0:r.x1] = self.bar
        if self.band is not None:
            h = self.band.shape[0]
            y = r.y1 - 14 - h - max(4, h // 3)
            out[y:y + h, r.x0:r.x1] = self.band


class WorldChattingVideo:
    """A Just Chatting channel of a world: a camera scene, maybe with a game picture or a video in it."""

    def __init__(self, scenario: Scenario, channel: Channel, look: ChattingLook, fps: int, cache_dir: Path | None,
                 offset: int = 0):
        world = scenario.world
        self.look, self.offset = look, offset
        self.source = look.encode.source
        self.tone = tone = Tone(look.grade)
        rng = world_rng(world, channel.seed, "overlay")
        self.screen = None
        bake = None
        picture = look.picture
        if picture is not None:
            roms = poster_roms(scenario)
            rom = roms[picture.pick % len(roms)]
            count = SCREEN_LOOP if picture.moving else 40
            shots = game_frames(rom, picture.pick % 100_000, count, fps, cache_dir)
            self.screen = shots if picture.moving else None
            still = shots[-1]

            def bake(background: np.ndarray, _index: int) -> None:
                _hang(background, picture.rect, still, moving=picture.moving)

        self.camera = WorldCamera(
            world, look.person, look.room, WIDTH, HEIGHT, zoom=look.zoom, shift=look.shift, fps=fps,
            outdoor=look.kind == "outdoor", crowd=look.crowd, handheld=look.handheld, extra_props=bake,
            seated=not look.reaction_behind, tone=tone)
        self.reaction = _Reaction(world, channel.seed, look.reaction, fps, tone) if look.reaction else None
        style, extras = look.style, look.extras
        self.parts = [part for part in (
            overlay.Chat(style, extras.chat_seed, extras.chat, fps, translucent=True) if extras.chat else None,
            overlay.Ticker(style, extras.ticker, rng) if extras.ticker else None,
            overlay.Alert(style, extras.alert, rng, fps) if extras.alert else None,
        ) if part is not None]
        for part in self.parts:
            part.recolour(tone)
        self.labels: list[tuple[Rect, np.ndarray]] = []
        for rect, draw in ((extras.title, "title"), (extras.subgoal, "subgoal")):
            if rect is None:
                continue
            patch = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
            if draw == "title":
                overlay.text_box(patch, rect, style, [channel.display_name, channel.title or "just chatting"])
            else:
                overlay.subgoal(patch, rect, style, rng)
            self.labels.append((rect, tone(patch[rect.y0:rect.y1, rect.x0:rect.x1])))

    def _under(self, out: np.ndarray, index: int) -> None:
        if self.screen is not None:
            r = self.look.picture.rect  # type: ignore[union-attr]
            shot = Image.fromarray(self.tone(self.screen[index % len(self.screen)]))
            out[r.y0 + 6:r.y1 - 6, r.x0 + 6:r.x1 - 6] = np.asarray(shot.resize((r.width - 12, r.height - 12), Image.BILINEAR))
        if self.reaction is not None and self.look.reaction_behind:
            self.reaction.draw(out, index)

    def picture(self, index: int) -> np.ndarray:
        """Return frame `index` at full size, before the source resolution is applied."""
        index += self.offset  # a clip is another moment of the same scene
        out = self.camera.frame(index, under=self._under)
        if self.reaction is not None and not self.look.reaction_behind:
            self.reaction.draw(out, index)
        for rect, patch in self.labels:
            overlay.paste(out, rect, patch)
        for part in self.parts:
            part.draw(out, index)
        return out

    def frame(self, index: int) -> np.ndarray:
        return at_source(self.picture(index), self.source)


def _hang(background: np.ndarray, rect: Rect, shot: np.ndarray, moving: bool) -> None:
    """Hang a poster (a framed still) or a screen (a bezel; its picture is painted per frame) on the wall."""
    canvas = Image.fromarray(background)
    d = ImageDraw.Draw(canvas)
    if moving:
        d.rounded_rectangle([rect.x0, rect.y0, rect.x1 - 1, rect.y1 - 1], radius=6, fill=(18, 18, 20))
        d.rectangle([(rect.x0 + rect.x1) // 2 - 14, rect.y1 - 1, (rect.x0 + rect.x1) // 2 + 14, rect.y1 + 10],
                    fill=(30, 30, 32))
    else:
        d.rectangle([rect.x0, rect.y0, rect.x1 - 1, rect.y1 - 1], fill=(235, 232, 225), outline=(30, 30, 30), width=4)
    inner = (rect.width - 12, rect.height - 12)
    canvas.paste(Image.fromarray(shot).resize(inner, Image.BILINEAR), (rect.x0 + 6, rect.y0 + 6))
    background[:] = np.asarray(canvas)


def world_video(scenario: Scenario, channel: Channel, run: str, count: int, cache_dir: Path | None):
    """Return the frame source of a channel in a named world (scenario.world is not "")."""
    rom = scenario.rom_for(channel)
    run_seed = channel.seed if run == "live" else zlib.crc32(f"{scenario.world}:{channel.seed}:{run}".encode())
    if rom is None:
        look = chatting_look(scenario.world, channel.seed)
        offset = 0 if run == "live" else run_seed % 100_000
        return WorldChattingVideo(scenario, channel, look, scenario.fps, cache_dir, offset)
    frames = game_frames(rom, run_seed, count, scenario.fps, cache_dir)
    return WorldGameVideo(scenario.world, channel, game_look(scenario.world, channel.seed), frames, scenario.fps)


def look_of(scenario: Scenario, channel: Channel) -> GameLook | ChattingLook:
    """Return the look a channel of a named world has."""
    if scenario.rom_for(channel) is None:
        return chatting_look(scenario.world, channel.seed)
    return game_look(scenario.world, channel.seed)
