"""Camera scenes painted from noise, so that "Just Chatting" means "not a game", not "one of these rooms".

    picture = camera_scene((224, 224), seed=7)            # RGB uint8, 224 x 224
    picture = camera_scene((96, 120), seed=7, person=False)

A training set holds the rooms of a few dozen Just Chatting channels, and a
model trained on them learns those rooms: on the held-out protocol
(`bench/generalize.py`) almost every Just Chatting clip of the unseen world
was taken for a game. Games on Twitch are drawn pictures (flat colours, hard
edges, a HUD); a camera's picture is the world seen through a lens (many
objects at every size, soft shading, defocus, sensor noise). Procedural
images with those statistics (the "dead leaves" model of occluding objects
of power-law sizes, blurred and noised) teach a network what natural images
look like without any photograph (Baradad et al., "Learning to See by
Looking at Noise", NeurIPS 2021). So the trainer paints such scenes, with a
person in front in most, as extra Just Chatting pictures and webcams.

Half the scenes are drawn flat instead (no blur, noise or lamp light, a
few large objects): a room may be a cartoon, as on the stand-in, or a
stylised overlay; a Just Chatting stream is not defined by its rendering.

Everything comes from the seed: the same seed paints the same scene; none
of it comes from the stand-in's own scene generator (`monitor.sim`), whose
looks the held-out worlds are drawn from.
"""

from __future__ import annotations

import colorsys
import functools
import random

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

P_FLAT = 0.5  # drawn flat, without lens blur, noise or lamp light: rooms of any rendering
SKIN = ((255, 219, 172), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36), (92, 56, 30))
P_PERSON = 0.8
P_HORIZON = 0.5  # a floor or the ground below a wall or the sky


def camera_scene(size: tuple[int, int], seed: int, *, person: bool | None = None, close: bool = False) -> np.ndarray:
    """Return a (h, w, 3) uint8 camera-like scene for `size` = (w, h).

    `person` None: by chance; `close`: the person fills the picture, as in a webcam box.
    """
    return _scene(max(1, size[0]), max(1, size[1]), seed, person, close).copy()


@functools.lru_cache(maxsize=256)  # a clip's frames share one scene: paint it once
def _scene(w: int, h: int, seed: int, person: bool | None, close: bool) -> np.ndarray:
    rng = random.Random(seed)
    palette = [_muted(rng) for _ in range(rng.randint(3, 6))]
    flat = rng.random() < P_FLAT
    img = Image.fromarray(_backdrop(w, h, palette, rng))
    draw = ImageDraw.Draw(img)
    _dead_leaves(draw, w, h, palette, rng, rng.randint(4, 25) if flat else rng.randint(30, 150))
    if person if person is not None else rng.random() < P_PERSON:
        _person(draw, w, h, rng, (0.25, 0.4) if close else (0.08, 0.26))
    if flat:
        return np.asarray(img)
    img = img.filter(ImageFilter.GaussianBlur(radius=rng.uniform(0.3, 2.0) * max(w, h) / 224))
    out = np.asarray(img, dtype=np.float32)
    out = _light(out, rng)
    noise = np.random.default_rng(seed).normal(0.0, rng.uniform(1.0, 8.0), out.shape)
    return np.clip(out + noise, 0, 255).astype(np.uint8)


def _muted(rng: random.Random) -> tuple[int, int, int]:
    """A colour of the kind rooms and streets are made of: mostly unsaturated, any brightness."""
    saturation = rng.uniform(0.0, 0.35) if rng.random() < 0.8 else rng.uniform(0.35, 0.9)
    r, g, b = colorsys.hsv_to_rgb(rng.random(), saturation, rng.uniform(0.15, 0.95))
    return int(r * 255), int(g * 255), int(b * 255)


def _backdrop(w: int, h: int, palette: list[tuple[int, int, int]], rng: random.Random) -> np.ndarray:
    """A wall, or a wall above a floor (the sky above the ground outdoors), each softly shaded."""
    top, bottom = np.array(rng.choice(palette), np.float32), np.array(rng.choice(palette), np.float32)
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    out = top * (1 - t) + bottom * t * 0.85 + top * t * 0.15
    if rng.random() < P_HORIZON:
        line = round(h * rng.uniform(0.45, 0.85))
        floor = np.array(rng.choice(palette), np.float32)
        out[line:] = floor * np.linspace(0.8, 1.1, h - line, dtype=np.float32)[:, None, None]
    return np.clip(np.broadcast_to(out, (h, w, 3)), 0, 255).astype(np.uint8)


def _dead_leaves(draw: ImageDraw.ImageDraw, w: int, h: int, palette: list[tuple[int, int, int]],
                 rng: random.Random, count: int) -> None:
    """Occluding objects, large to small (power-law sizes): furniture, shelves, windows, things on them."""
    side = max(w, h)
    for _ in range(count):
        size = side * 0.02 * (1 - rng.random()) ** -0.7  # Pareto: many small objects, a few large ones
        size = min(size, side * 0.6)
        ow, oh = size * rng.uniform(0.4, 2.0), size * rng.uniform(0.4, 2.0)
        x, y = rng.uniform(-ow / 2, w), rng.uniform(-oh / 2, h)
        base = rng.choice(palette)
        shade = rng.uniform(0.7, 1.25)
        colour = tuple(int(min(255, c * shade + rng.uniform(-12, 12))) for c in base)
        box = [x, y, x + ow, y + oh]
        if rng.random() < 0.6:
            draw.rectangle(box, fill=colour)
        else:
            draw.ellipse(box, fill=colour)


def _person(draw: ImageDraw.ImageDraw, w: int, h: int, rng: random.Random, radius: tuple[float, float]) -> None:
    """A head and shoulders in front of the camera; `radius`: the head's, share of the picture's short side."""
    r = min(w, h) * rng.uniform(*radius)
    cx, cy = w * rng.uniform(0.25, 0.75), h * rng.uniform(0.3, 0.65)
    shirt = _muted(random.Random(rng.random()))
    draw.rounded_rectangle([cx - 2.4 * r, cy + 0.9 * r, cx + 2.4 * r, h + r], radius=int(r), fill=shirt)
    draw.rectangle([cx - 0.35 * r, cy + 0.5 * r, cx + 0.35 * r, cy + 1.1 * r], fill=rng.choice(SKIN))
    skin = rng.choice(SKIN)
    draw.ellipse([cx - 0.8 * r, cy - r, cx + 0.8 * r, cy + r], fill=skin)
    hair = _muted(random.Random(rng.random()))
    draw.chord([cx - 0.9 * r, cy - 1.15 * r, cx + 0.9 * r, cy + 0.2 * r], 180, 360, fill=hair)
    if rng.random() < 0.5:  # headphones
        band = tuple(int(c * 0.4) for c in hair)
        draw.arc([cx - r, cy - 1.2 * r, cx + r, cy + 0.6 * r], 180, 360, fill=band, width=max(1, int(r / 6)))
        draw.ellipse([cx - 1.05 * r, cy - 0.25 * r, cx - 0.65 * r, cy + 0.35 * r], fill=band)
        draw.ellipse([cx + 0.65 * r, cy - 0.25 * r, cx + 1.05 * r, cy + 0.35 * r], fill=band)


def _light(out: np.ndarray, rng: random.Random) -> np.ndarray:
    """A lamp or window: brightness falling off from a point, and the lens's vignette."""
    h, w = out.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    lx, ly = rng.uniform(0, w), rng.uniform(0, h)
    distance = np.sqrt(((xs - lx) / max(w, 1)) ** 2 + ((ys - ly) / max(h, 1)) ** 2)
    light = rng.uniform(0.85, 1.15) + rng.uniform(0.0, 0.35) * (0.5 - distance)
    vignette = 1 - rng.uniform(0.0, 0.35) * (((xs - w / 2) / max(w, 1)) ** 2 + ((ys - h / 2) / max(h, 1)) ** 2) * 2
    return out * (light * vignette)[..., None]
