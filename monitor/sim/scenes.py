"""Film a world's people in its rooms and streets: the camera scenes of a named world.

    cam = WorldCamera("B", person=11, room=12, width=1280, height=720)
    rgb = cam.frame(12)                    # (720, 1280, 3) uint8
    rgb, alpha = cam.keyed(12)             # the person alone, as a green-screened webcam

Rooms come in kinds (studio with foam panels, bedroom, living room, kitchen,
office, RGB gamer den) and outdoor IRL shots (street, park, beach, night
city) with a handheld shake. Backgrounds and people are drawn once; a frame
picks a noisy copy, lets the caller paint into it (a TV showing a game, a
video window) and blends the people in, so a frame costs a few ms.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from monitor.sim.camera import NOISE_BANK, _blend, _noisy
from monitor.sim.looks import world_rng
from monitor.sim.people import Person, person_layers

ROOMS = ("studio", "bedroom", "living", "kitchen", "office", "den")
OUTDOORS = ("street", "park", "beach", "night")
Painter = Callable[[np.ndarray, int], None]


class _Actor:
    """One person's layers and how they move."""

    def __init__(self, rng: np.random.Generator, person: Person, w: int, h: int, zoom: float, shift: float,
                 chair: bool, y: float, noise: np.ndarray):
        poses, self.mask, self.box = person_layers(person, w, h, zoom, shift, chair=chair, y=y)
        self.poses = [[_noisy(pose, noise, rng) for _ in range(2)] for pose in poses]
        self.sway = float(rng.uniform(0.004, 0.014))
        self.period = float(rng.uniform(3.5, 9.0))
        self.phase = float(rng.uniform(0, 2 * math.pi))
        self.talk = float(rng.uniform(0.3, 0.75))
        self.pose_seed = int(rng.integers(1 << 30))
        self.w, self.h = w, h

    def offset(self, index: int, fps: int) -> tuple[int, int]:
        t = index / fps
        dx = int(round(self.sway * self.w * math.sin(2 * math.pi * t / self.period + self.phase)))
        dy = int(round(0.5 * self.sway * self.h * math.sin(2 * math.pi * t / (self.period * 0.61))))
        return dx, dy

    def pose(self, index: int, fps: int) -> int:
        r = (index * 2654435761 + self.pose_seed) % 1000 / 1000.0
        if r < 0.03:
            return 2
        burst = math.sin(index / (fps * 1.7) + self.phase) > (0.5 - self.talk)
        return 1 if burst and r < 0.55 else 0

    def blend(self, out: np.ndarray, index: int, fps: int, dx: int = 0, dy: int = 0) -> None:
        ox, oy = self.offset(index, fps)
        _blend(out, self.poses[self.pose(index, fps)][index % 2], self.mask, self.box, ox + dx, oy + dy)


class WorldCamera:
    """A camera scene of a world: a background (room or outdoors), a streamer, maybe a crowd."""

    def __init__(self, world: str, person: int | None, room: int, width: int, height: int, zoom: float = 1.0,
                 shift: float = 0.0, fps: int = 10, outdoor: bool = False, crowd: tuple[int, ...] = (),
                 handheld: float = 0.0, extra_props: Painter | None = None, seated: bool = True,
                 tone: Callable[[np.ndarray], np.ndarray] | None = None):
        self.width, self.height, self.fps = width, height, fps
        rng = world_rng(world, room, "camera")
        self.margin = int(math.ceil(handheld)) + 1 if handheld else 0
        bw, bh = width + 2 * self.margin, height + 2 * self.margin
        kind_rng = world_rng(world, room, "room")
        if outdoor:
            background = _outdoor(kind_rng, bw, bh, str(kind_rng.choice(OUTDOORS)))
        else:
            background = _room(kind_rng, bw, bh, str(kind_rng.choice(ROOMS)), busy=bool(crowd))
        if extra_props is not None:
            extra_props(background, -1)
        if tone is not None:  # the channel's colour grade, applied once to every layer
            background = tone(background)
        noise = (rng.standard_normal((bh, bw, 1), dtype=np.float32) * float(rng.uniform(2, 5))).astype(np.int16)
        self._backgrounds = [_noisy(background, noise, rng) for _ in range(NOISE_BANK)]
        small = noise[:height, :width]
        self.crowd = [
            _Actor(rng, Person.draw(world_rng(world, c, "person")), width, height, zoom * float(rng.uniform(0.45, 0.65)),
                   float(rng.uniform(-0.42, 0.42)), False, float(rng.uniform(0.3, 0.4)), small)
            for c in crowd
        ]
        self.actor = None if person is None else _Actor(  # None: a shot with nobody in it
            rng, Person.draw(world_rng(world, person, "person")), width, height, zoom, shift,
            seated and not outdoor, 0.55 if outdoor else 0.42, small)
        self.actors = [*self.crowd] + ([self.actor] if self.actor else [])
        if tone is not None:
            for actor in self.actors:
                actor.poses = [[tone(p) for p in copies] for copies in actor.poses]
        self.handheld = handheld
        self.shake_seed = float(rng.uniform(0, 100))

    def frame(self, index: int, under: Painter | None = None) -> np.ndarray:
        """Return frame `index`; `under` paints into the background before the people step in front."""
        dx, dy = self._shake(index)
        m = self.margin
        bg = self._backgrounds[index % NOISE_BANK]
        out = bg[m + dy: m + dy + self.height, m + dx: m + dx + self.width].copy()
        if under is not None:
            under(out, index)
        for actor in self.actors:
            actor.blend(out, index, self.fps)
        return out

    def keyed(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the streamer alone: an RGB frame and its alpha (0-255), for a keyed webcam."""
        rgb = np.zeros((self.height, self.width, 3), np.uint8)
        alpha = np.zeros((self.height, self.width), np.uint8)
        a = self.actor
        assert a is not None, "a keyed camera films a person"
        ox, oy = a.offset(index, self.fps)
        layer = a.poses[a.pose(index, self.fps)][index % 2]
        white = np.full_like(layer, 255)
        _blend(rgb, layer, a.mask, a.box, ox, oy)
        alpha3 = np.zeros_like(rgb)
        _blend(alpha3, white, a.mask, a.box, ox, oy)
        alpha[:] = alpha3[..., 0]
        return rgb, alpha

    def _shake(self, index: int) -> tuple[int, int]:
        if not self.handheld:
            return 0, 0
        t = index / self.fps + self.shake_seed
        dx = self.handheld * (0.6 * math.sin(t * 2.1) + 0.4 * math.sin(t * 5.3 + 1))
        dy = self.handheld * (0.6 * math.sin(t * 1.7 + 2) + 0.4 * math.sin(t * 4.1))
        m = self.margin
        return int(np.clip(round(dx), -m, m)), int(np.clip(round(dy), -m, m))


def _colour(rng: np.random.Generator, sat: tuple[float, float], val: tuple[float, float]) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(float(rng.uniform(0, 1)), float(rng.uniform(*sat)), float(rng.uniform(*val)))
    return int(r * 255), int(g * 255), int(b * 255)


def _lit_wall(rng: np.random.Generator, w: int, h: int, base: tuple[int, int, int]) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    lx, ly = rng.uniform(0, 1) * w, rng.uniform(-0.3, 0.4) * h
    light = float(rng.uniform(1.0, 1.25)) - float(rng.uniform(0.3, 0.7)) * np.sqrt(((xx - lx) / w) ** 2 + ((yy - ly) / h) ** 2)
    blotch = np.asarray(Image.fromarray(rng.uniform(0.88, 1.12, (5, 9)).astype(np.float32)).resize((w, h), Image.BICUBIC))
    return np.clip(np.array(base, np.float32)[None, None] * (light * blotch)[..., None], 0, 255).astype(np.uint8)


def _room(rng: np.random.Generator, w: int, h: int, kind: str, busy: bool) -> np.ndarray:
    """Paint a room of a kind: walls, furniture, lights, then a depth-of-field blur."""
    dark = kind == "den"
    wall = _colour(rng, (0.05, 0.5), (0.08, 0.25) if dark else (0.35, 0.9))
    canvas = Image.fromarray(_lit_wall(rng, w, h, wall))
    d = ImageDraw.Draw(canvas)
    floor_y = rng.uniform(0.62, 0.82) * h
    if kind == "studio":  # acoustic foam panels and a neon sign
        foam = _colour(rng, (0.3, 0.9), (0.15, 0.5))
        cols, rows = int(rng.integers(4, 9)), int(rng.integers(2, 4))
        fx, fy = rng.uniform(0, 0.3) * w, rng.uniform(0.05, 0.2) * h
        size = w * rng.uniform(0.05, 0.08)
        for i in range(cols):
            for j in range(rows):
                x, y = fx + i * size * 1.1, fy + j * size * 1.1
                d.rectangle([x, y, x + size, y + size], fill=foam if (i + j) % 2 else tuple(int(v * 0.8) for v in foam))
        _neon(d, rng, w, h)
    elif kind == "bedroom":  # a bed, fairy lights, a window
        _window(d, rng, w, h)
        bed = _colour(rng, (0.2, 0.7), (0.4, 0.9))
        bx = rng.uniform(0, 0.5) * w
        d.rounded_rectangle([bx, floor_y - 0.12 * h, bx + 0.45 * w, floor_y + 0.1 * h], radius=int(0.02 * w), fill=bed)
        for k in range(int(rng.integers(12, 26))):
            x = (k + 0.5) / 26 * w
            y = 0.08 * h + 0.03 * h * math.sin(k * 0.9)
            d.ellipse([x - 4, y - 4, x + 4, y + 4], fill=(255, 230, 160))
    elif kind == "living":  # a sofa, a lamp, a big window
        _window(d, rng, w, h)
        sofa = _colour(rng, (0.2, 0.6), (0.3, 0.7))
        sx = rng.uniform(0, 0.5) * w
        d.rounded_rectangle([sx, floor_y - 0.2 * h, sx + 0.5 * w, floor_y + 0.05 * h], radius=int(0.03 * w), fill=sofa)
        lx = rng.uniform(0.05, 0.95) * w
        d.line([lx, floor_y, lx, floor_y - 0.45 * h], fill=(60, 60, 60), width=max(2, w // 300))
        d.polygon([(lx - 0.04 * w, floor_y - 0.45 * h), (lx + 0.04 * w, floor_y - 0.45 * h), (lx, floor_y - 0.55 * h)],
                  fill=(250, 235, 200))
    elif kind == "kitchen":  # cabinets, a fridge, tiles
        cab = _colour(rng, (0.05, 0.4), (0.5, 0.95))
        for i in range(int(rng.integers(3, 7))):
            x = i * 0.16 * w + rng.uniform(0, 0.02) * w
            d.rectangle([x, 0.05 * h, x + 0.14 * w, 0.3 * h], fill=cab, outline=(80, 80, 80), width=2)
        d.rectangle([0, floor_y - 0.25 * h, w, floor_y - 0.2 * h], fill=(200, 200, 200))
        fx = rng.choice([0.02, 0.8]) * w
        d.rectangle([fx, 0.1 * h, fx + 0.16 * w, floor_y], fill=(225, 228, 232), outline=(150, 150, 150), width=3)
    elif kind == "office":  # bookshelves and a desk lamp
        for _ in range(int(rng.integers(2, 4))):
            sx, sy = rng.uniform(0, 0.75) * w, rng.uniform(0.2, 0.55) * h
            _shelf(d, rng, sx, sy, rng.uniform(0.18, 0.3) * w, h)
        _window(d, rng, w, h)
    else:  # den: dark walls lit by RGB strips, a neon sign, shelves of figures
        _neon(d, rng, w, h)
        for _ in range(int(rng.integers(2, 5))):
            y = rng.uniform(0.05, 0.6) * h
            d.rectangle([0, y, w, y + 0.01 * h], fill=_colour(rng, (0.8, 1), (0.8, 1)))
        _shelf(d, rng, rng.uniform(0, 0.7) * w, rng.uniform(0.3, 0.5) * h, rng.uniform(0.2, 0.3) * w, h)
    if busy:  # more things on every surface
        for _ in range(int(rng.integers(6, 12))):
            x, y = rng.uniform(0, 1) * w, rng.uniform(0.05, 0.7) * h
            s = rng.uniform(0.02, 0.07) * w
            shape = d.ellipse if rng.random() < 0.5 else d.rectangle
            shape([x, y, x + s, y + s * rng.uniform(0.5, 1.5)], fill=_colour(rng, (0.3, 1), (0.3, 1)))
        for _ in range(2):
            _shelf(d, rng, rng.uniform(0, 0.8) * w, rng.uniform(0.25, 0.6) * h, rng.uniform(0.15, 0.25) * w, h)
    floor = _colour(rng, (0.0, 0.4), (0.08, 0.4))
    d.rectangle([0, floor_y, w, h], fill=floor)
    if rng.random() < 0.6:
        _plant(d, rng, rng.choice([0.04, 0.9]) * w, floor_y, w, h)
    blur = float(rng.uniform(0.8, 2.6)) * w / 1280
    return np.asarray(canvas.filter(ImageFilter.GaussianBlur(radius=max(0.6, blur)))).copy()


def _outdoor(rng: np.random.Generator, w: int, h: int, kind: str) -> np.ndarray:
    """Paint an outdoor IRL shot: sky, horizon, buildings or trees or sea."""
    night = kind == "night"
    top = np.array(_colour(rng, (0.3, 0.8), (0.05, 0.2)) if night else _colour(rng, (0.2, 0.7), (0.7, 1.0)), np.float32)
    bottom = np.array(_colour(rng, (0.1, 0.6), (0.1, 0.3)) if night else _colour(rng, (0.0, 0.3), (0.85, 1.0)), np.float32)
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    sky = np.broadcast_to(top * (1 - t) + bottom * t, (h, w, 3)).astype(np.uint8)
    canvas = Image.fromarray(np.ascontiguousarray(sky))
    d = ImageDraw.Draw(canvas)
    horizon = rng.uniform(0.45, 0.7) * h
    if kind in ("street", "night"):
        x = 0.0
        while x < w:
            bw, bh = rng.uniform(0.06, 0.16) * w, rng.uniform(0.15, 0.55) * h
            body = _colour(rng, (0.0, 0.3), (0.05, 0.2) if night else (0.35, 0.8))
            d.rectangle([x, horizon - bh, x + bw, horizon], fill=body)
            for wy in np.arange(horizon - bh + 8, horizon - 8, 0.04 * h):
                for wx in np.arange(x + 6, x + bw - 10, 0.025 * w):
                    if rng.random() < (0.5 if night else 0.8):
                        lit = (255, 220, 140) if night else (170, 190, 210)
                        d.rectangle([wx, wy, wx + 0.012 * w, wy + 0.018 * h], fill=lit)
            x += bw + rng.uniform(0, 0.02) * w
        d.rectangle([0, horizon, w, h], fill=(60, 60, 65) if not night else (25, 25, 30))
        for k in range(8):  # lane markings
            d.rectangle([k * w / 8, horizon + 0.25 * (h - horizon), k * w / 8 + w / 20, horizon + 0.27 * (h - horizon)],
                        fill=(220, 220, 200))
    elif kind == "park":
        d.rectangle([0, horizon, w, h], fill=_colour(rng, (0.4, 0.8), (0.3, 0.6)))
        for _ in range(int(rng.integers(5, 12))):
            x, r = rng.uniform(0, 1) * w, rng.uniform(0.04, 0.1) * w
            d.rectangle([x - 0.01 * w, horizon - r, x + 0.01 * w, horizon + 0.02 * h], fill=(90, 60, 40))
            d.ellipse([x - r, horizon - 2.4 * r, x + r, horizon - 0.6 * r], fill=(30, int(rng.uniform(90, 160)), 40))
    else:  # beach
        d.rectangle([0, horizon, w, horizon + 0.15 * h], fill=_colour(rng, (0.5, 0.9), (0.5, 0.8)))
        d.rectangle([0, horizon + 0.15 * h, w, h], fill=(230, 210, 160))
        sx, sr = rng.uniform(0.1, 0.9) * w, 0.05 * w
        d.ellipse([sx - sr, 0.12 * h - sr, sx + sr, 0.12 * h + sr], fill=(255, 245, 200))
    if night:
        for _ in range(int(rng.integers(4, 10))):  # street lights, blooming out of focus
            x, y, r = rng.uniform(0, 1) * w, rng.uniform(0.1, 0.6) * h, rng.uniform(0.01, 0.03) * w
            d.ellipse([x - r, y - r, x + r, y + r], fill=_colour(rng, (0.2, 0.8), (0.8, 1.0)))
    blur = float(rng.uniform(1.5, 4.0)) * w / 1280
    return np.asarray(canvas.filter(ImageFilter.GaussianBlur(radius=blur))).copy()


def _window(d: ImageDraw.ImageDraw, rng: np.random.Generator, w: int, h: int) -> None:
    x, y = rng.uniform(0.02, 0.7) * w, rng.uniform(0.05, 0.2) * h
    ww, wh = rng.uniform(0.15, 0.3) * w, rng.uniform(0.25, 0.45) * h
    sky = (235, 240, 250) if rng.random() < 0.6 else (40, 50, 90)
    d.rectangle([x, y, x + ww, y + wh], fill=sky, outline=(245, 245, 240), width=max(2, w // 160))
    d.line([x + ww / 2, y, x + ww / 2, y + wh], fill=(245, 245, 240), width=max(2, w // 200))


def _neon(d: ImageDraw.ImageDraw, rng: np.random.Generator, w: int, h: int) -> None:
    colour = _colour(rng, (0.7, 1), (0.9, 1))
    x, y = rng.uniform(0.05, 0.75) * w, rng.uniform(0.05, 0.3) * h
    s = rng.uniform(0.05, 0.1) * w
    shape = int(rng.integers(3))
    width = max(3, w // 200)
    if shape == 0:
        d.ellipse([x, y, x + s, y + s], outline=colour, width=width)
    elif shape == 1:
        d.polygon([(x, y + s), (x + s / 2, y), (x + s, y + s)], outline=colour, width=width)
    else:
        d.line([x, y, x + s, y + s * 0.3, x + s * 0.2, y + s * 0.7, x + s * 1.3, y + s], fill=colour, width=width)


def _shelf(d: ImageDraw.ImageDraw, rng: np.random.Generator, sx: float, sy: float, sw: float, h: int) -> None:
    d.rectangle([sx, sy, sx + sw, sy + h * 0.02], fill=_colour(rng, (0.2, 0.6), (0.2, 0.6)))
    bx = sx + 4
    while bx < sx + sw - 8:
        bw, bh = rng.uniform(0.008, 0.025) * sw * 5, rng.uniform(0.05, 0.11) * h
        d.rectangle([bx, sy - bh, bx + bw, sy], fill=_colour(rng, (0.3, 0.9), (0.3, 0.95)))
        bx += bw + 1 + rng.uniform(0, 6)


def _plant(d: ImageDraw.ImageDraw, rng: np.random.Generator, px: float, py: float, w: int, h: int) -> None:
    for _ in range(9):
        r = rng.uniform(0.02, 0.045) * w
        cx, cy = px + rng.uniform(-0.04, 0.04) * w, py - rng.uniform(0.05, 0.2) * h
        d.ellipse([cx - r, cy - r * 0.6, cx + r, cy + r * 0.6], fill=(40, int(rng.uniform(90, 150)), 50))
    d.rectangle([px - 0.03 * w, py - 0.05 * h, px + 0.03 * w, py + 0.02 * h], fill=(150, 90, 60))
