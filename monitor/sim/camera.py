"""Paint a photo-like webcam scene: a person in front of a room, gently moving.

    scene = CameraScene(seed=7, width=1280, height=720, zoom=1.0)
    rgb = scene.frame(12)          # (720, 1280, 3) uint8, frame 12 of the stream

Everything is procedural (numpy + PIL) and drawn once per scene; a frame only
shifts the person layer, picks a mouth/eye pose and one of a few copies with
sensor noise baked in, so a frame costs a few ms.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SKIN_TONES = ((255, 219, 172), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36), (92, 58, 30))
HAIR_COLOURS = ((20, 16, 14), (59, 36, 22), (120, 80, 40), (200, 160, 90), (150, 40, 30), (90, 90, 95))
NOISE_BANK = 4


class CameraScene:
    """A procedurally generated room with a person, rendered frame by frame."""

    def __init__(self, seed: int, width: int, height: int, zoom: float = 1.0, fps: int = 10):
        self.width, self.height, self.fps = width, height, fps
        rng = np.random.default_rng(seed)
        self._rng_params(rng)
        background = _room(rng, width, height)
        poses, self._mask, self._box = _person_layers(rng, width, height, zoom, self.shift_x)
        # Sensor noise is baked into a few copies of each layer: adding it per frame would cost more
        # than everything else a frame does.
        noise = (rng.standard_normal((height, width, 1), dtype=np.float32) * 3.5).astype(np.int16)
        self._backgrounds = [_noisy(background, noise, rng) for _ in range(NOISE_BANK)]
        self._poses = [[_noisy(pose, noise, rng) for _ in range(2)] for pose in poses]

    def _rng_params(self, rng: np.random.Generator) -> None:
        self.shift_x = float(rng.uniform(-0.18, 0.18))
        self.sway = float(rng.uniform(0.004, 0.012))
        self.period = float(rng.uniform(4.0, 9.0))
        self.phase = float(rng.uniform(0, 2 * math.pi))
        self.talk = float(rng.uniform(0.3, 0.7))
        self.pose_seed = int(rng.integers(1 << 30))

    def frame(self, index: int) -> np.ndarray:
        """Return frame `index` as an (height, width, 3) uint8 array."""
        t = index / self.fps
        dx = int(round(self.sway * self.width * math.sin(2 * math.pi * t / self.period + self.phase)))
        dy = int(round(0.5 * self.sway * self.height * math.sin(2 * math.pi * t / (self.period * 0.61))))
        out = self._backgrounds[index % NOISE_BANK].copy()
        _blend(out, self._poses[self._pose(index)][index % 2], self._mask, self._box, dx, dy)
        return out

    def _pose(self, index: int) -> int:
        """Return 0 (mouth shut), 1 (mouth open) or 2 (blink): talking comes in bursts."""
        r = (index * 2654435761 + self.pose_seed) % 1000 / 1000.0
        if r < 0.03:
            return 2
        burst = math.sin(index / (self.fps * 1.7) + self.phase) > (0.5 - self.talk)
        return 1 if burst and r < 0.55 else 0


def _noisy(img: np.ndarray, noise: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Add a randomly shifted view of one noise field: as good as fresh noise, much cheaper."""
    h, w = img.shape[:2]
    shifted = np.roll(noise, (int(rng.integers(h)), int(rng.integers(w))), axis=(0, 1))[:h, :w]
    return np.clip(img.astype(np.int16) + shifted, 0, 255).astype(np.uint8)


def _blend(out: np.ndarray, layer: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int],
           dx: int, dy: int) -> None:
    """Alpha-blend the person layer (cropped to box) into out, shifted by dx, dy."""
    x0, y0, x1, y1 = box
    h, w = out.shape[:2]
    tx0, ty0 = max(0, x0 + dx), max(0, y0 + dy)
    tx1, ty1 = min(w, x1 + dx), min(h, y1 + dy)
    if tx1 <= tx0 or ty1 <= ty0:
        return
    sx0, sy0 = tx0 - (x0 + dx), ty0 - (y0 + dy)
    src = layer[sy0: sy0 + ty1 - ty0, sx0: sx0 + tx1 - tx0].astype(np.uint16)
    alpha = mask[sy0: sy0 + ty1 - ty0, sx0: sx0 + tx1 - tx0].astype(np.uint16)[..., None]
    dst = out[ty0:ty1, tx0:tx1].astype(np.uint16)
    out[ty0:ty1, tx0:tx1] = ((src * alpha + dst * (255 - alpha)) >> 8).astype(np.uint8)


def _colour(rng: np.random.Generator, sat: tuple[float, float], val: tuple[float, float]) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(*sat), rng.uniform(*val))
    return int(r * 255), int(g * 255), int(b * 255)


def _room(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Paint a blurred room: lit wall, shelves of books, a window or poster, an LED strip, a plant."""
    wall = np.array(_colour(rng, (0.05, 0.45), (0.35, 0.85)), np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    lx, ly = rng.uniform(0.1, 0.9) * w, rng.uniform(-0.2, 0.3) * h
    light = 1.15 - 0.55 * np.sqrt(((xx - lx) / w) ** 2 + ((yy - ly) / h) ** 2)
    blotch = rng.uniform(0.9, 1.1, (6, 10)).astype(np.float32)
    blotch = np.asarray(Image.fromarray(blotch).resize((w, h), Image.BICUBIC))
    img = np.clip(wall[None, None, :] * (light * blotch)[..., None], 0, 255).astype(np.uint8)
    canvas = Image.fromarray(img)
    draw = ImageDraw.Draw(canvas)
    _furnish(draw, rng, w, h)
    canvas = canvas.filter(ImageFilter.GaussianBlur(radius=max(1.0, w / 420)))
    return np.asarray(canvas).copy()


def _furnish(draw: ImageDraw.ImageDraw, rng: np.random.Generator, w: int, h: int) -> None:
    if rng.random() < 0.5:  # a window with a bright sky
        x, y = rng.uniform(0.02, 0.6) * w, rng.uniform(0.05, 0.2) * h
        ww, wh = rng.uniform(0.2, 0.32) * w, rng.uniform(0.3, 0.45) * h
        draw.rectangle([x, y, x + ww, y + wh], fill=(235, 240, 250), outline=(250, 250, 245), width=max(2, w // 160))
        draw.line([x + ww / 2, y, x + ww / 2, y + wh], fill=(245, 245, 240), width=max(2, w // 200))
    else:  # a framed poster
        x, y = rng.uniform(0.05, 0.7) * w, rng.uniform(0.05, 0.25) * h
        pw, ph = rng.uniform(0.12, 0.2) * w, rng.uniform(0.25, 0.35) * h
        draw.rectangle([x, y, x + pw, y + ph], fill=_colour(rng, (0.4, 0.9), (0.3, 0.9)),
                       outline=(30, 30, 30), width=max(2, w // 220))
        draw.ellipse([x + pw * 0.2, y + ph * 0.2, x + pw * 0.8, y + ph * 0.6], fill=_colour(rng, (0.3, 1), (0.5, 1)))
    for _ in range(int(rng.integers(1, 3))):  # shelves of books
        sx, sy = rng.uniform(0.0, 0.75) * w, rng.uniform(0.3, 0.6) * h
        sw = rng.uniform(0.18, 0.3) * w
        draw.rectangle([sx, sy, sx + sw, sy + h * 0.02], fill=(110, 80, 55))
        bx = sx + 4
        while bx < sx + sw - 8:
            bw, bh = rng.uniform(0.008, 0.02) * w, rng.uniform(0.06, 0.11) * h
            draw.rectangle([bx, sy - bh, bx + bw, sy], fill=_colour(rng, (0.3, 0.8), (0.3, 0.9)))
            bx += bw + 1
    led = _colour(rng, (0.8, 1.0), (0.8, 1.0))  # streamers' LED strip
    ly = rng.uniform(0.65, 0.8) * h
    draw.rectangle([0, ly, w, ly + h * 0.015], fill=led)
    draw.rectangle([0, ly + h * 0.015, w, h], fill=_colour(rng, (0.0, 0.3), (0.1, 0.35)))
    if rng.random() < 0.6:  # a plant
        px, py = rng.choice([0.05, 0.85]) * w, ly
        for _ in range(9):
            r = rng.uniform(0.02, 0.045) * w
            cx, cy = px + rng.uniform(-0.04, 0.04) * w, py - rng.uniform(0.05, 0.2) * h
            draw.ellipse([cx - r, cy - r * 0.6, cx + r, cy + r * 0.6], fill=(40, int(rng.uniform(90, 150)), 50))
        draw.rectangle([px - 0.03 * w, py - 0.05 * h, px + 0.03 * w, py + 0.02 * h], fill=(150, 90, 60))


def _person_layers(rng: np.random.Generator, w: int, h: int, zoom: float,
                   shift_x: float) -> tuple[list[np.ndarray], np.ndarray, tuple[int, int, int, int]]:
    """Draw a person three times (mouth shut, open, eyes closed) and return layers, alpha mask, box."""
    skin = SKIN_TONES[int(rng.integers(len(SKIN_TONES)))]
    hair = HAIR_COLOURS[int(rng.integers(len(HAIR_COLOURS)))]
    shirt = _colour(rng, (0.2, 0.9), (0.15, 0.85))
    headphones = rng.random() < 0.6
    mic = rng.random() < 0.5
    chair = _colour(rng, (0.5, 1.0), (0.15, 0.5)) if rng.random() < 0.7 else None
    long_hair = rng.random() < 0.4
    scale = min(w, h * 16 / 9) / 1280 * zoom
    cx, head_r = w * (0.5 + shift_x), 95 * scale
    cy = h * 0.42 + (1 - zoom) * 0.1 * h
    gear = (headphones, mic, long_hair)
    alpha = Image.new("L", (w, h), 0)
    _draw_person(ImageDraw.Draw(alpha), 255, skin, hair, shirt, chair, gear, cx, cy, head_r, 0, h)
    x0, y0, x1, y1 = alpha.getbbox() or (0, 0, w, h)
    pad = int(max(4, w / 150))  # room for the blur to soften the outline
    box = (max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad))
    mask = np.asarray(alpha.crop(box).filter(ImageFilter.GaussianBlur(radius=max(1.0, w / 600))))
    layers = []
    for pose in range(3):
        img = Image.new("RGB", (w, h), (0, 0, 0))
        _draw_person(ImageDraw.Draw(img), None, skin, hair, shirt, chair, gear, cx, cy, head_r, pose, h)
        layers.append(np.asarray(img.crop(box).filter(ImageFilter.GaussianBlur(radius=max(0.6, w / 900)))))
    return layers, mask.copy(), box


def _draw_person(d: ImageDraw.ImageDraw, fill: int | None, skin: tuple, hair: tuple, shirt: tuple,
                 chair: tuple | None, gear: tuple[bool, bool, bool], cx: float, cy: float,
                 r: float, pose: int, h: int) -> None:
    """Draw one pose; with fill set, draw every shape in that value (the alpha mask)."""
    headphones, mic, long_hair = gear
    def c(colour: tuple) -> int | tuple:
        return fill if fill is not None else colour

    if chair is not None:
        d.rounded_rectangle([cx - 2.3 * r, cy - 1.6 * r, cx + 2.3 * r, h + r], radius=int(r * 0.8), fill=c(chair))
    if long_hair:
        d.rounded_rectangle([cx - 1.2 * r, cy - 0.9 * r, cx + 1.2 * r, cy + 2.0 * r], radius=int(r * 0.6), fill=c(hair))
    d.ellipse([cx - 3.2 * r, cy + 1.6 * r, cx + 3.2 * r, cy + 6.5 * r], fill=c(shirt))  # shoulders, torso
    d.rectangle([cx - 0.42 * r, cy + 0.7 * r, cx + 0.42 * r, cy + 1.9 * r], fill=c(_shade(skin, 0.85)))  # neck
    d.ellipse([cx - 0.85 * r, cy - 1.05 * r, cx + 0.85 * r, cy + 1.05 * r], fill=c(skin))  # face
    if fill is None:  # shading on one side of the face reads as a lit, rounded head
        d.chord([cx - 0.85 * r, cy - 1.05 * r, cx + 0.85 * r, cy + 1.05 * r], 300, 60, fill=_shade(skin, 0.9))
    d.chord([cx - 0.92 * r, cy - 1.2 * r, cx + 0.92 * r, cy + 0.4 * r], 180, 360, fill=c(hair))  # hair
    if headphones:
        dark = (25, 25, 28)
        d.arc([cx - 1.05 * r, cy - 1.35 * r, cx + 1.05 * r, cy + 0.6 * r], 180, 360, fill=c(dark), width=int(r * 0.18))
        for side in (-1, 1):
            x = cx + side * 0.95 * r
            d.rounded_rectangle([x - 0.22 * r, cy - 0.25 * r, x + 0.22 * r, cy + 0.45 * r], radius=int(r * 0.1), fill=c(dark))
    if mic:  # a boom-arm microphone in front of the chin
        d.line([cx + 2.6 * r, cy - 1.4 * r, cx + 1.5 * r, cy + 0.2 * r, cx + 0.75 * r, cy + 0.75 * r],
               fill=c((40, 40, 44)), width=max(2, int(r * 0.08)))
        d.rounded_rectangle([cx + 0.45 * r, cy + 0.55 * r, cx + 0.95 * r, cy + 1.25 * r], radius=int(r * 0.2),
                            fill=c((30, 30, 34)))
    if fill is not None:
        return
    eye_y = cy + 0.05 * r
    for side in (-1, 1):
        ex = cx + side * 0.33 * r
        if pose == 2:
            d.line([ex - 0.12 * r, eye_y, ex + 0.12 * r, eye_y], fill=(40, 30, 30), width=max(1, int(r * 0.05)))
        else:
            d.ellipse([ex - 0.12 * r, eye_y - 0.07 * r, ex + 0.12 * r, eye_y + 0.07 * r], fill=(245, 245, 245))
            d.ellipse([ex - 0.06 * r, eye_y - 0.06 * r, ex + 0.06 * r, eye_y + 0.06 * r], fill=(45, 35, 30))
    mouth_h = 0.16 * r if pose == 1 else 0.03 * r
    d.ellipse([cx - 0.25 * r, cy + 0.5 * r - mouth_h, cx + 0.25 * r, cy + 0.5 * r + mouth_h], fill=(120, 40, 45))


def _shade(colour: tuple, factor: float) -> tuple[int, int, int]:
    return tuple(int(v * factor) for v in colour)  # type: ignore[return-value]
