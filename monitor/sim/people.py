"""Draw the people of a world: streamers, their guests and the crowd of a busy room.

    person = Person.draw(world_rng("B", 7, "person"))
    poses, mask, box = person_layers(person, 1280, 720, zoom=1.0, shift_x=0.1)

A person is a handful of continuous parameters (skin, hair, face shape,
clothes, gear), so every world draws its own people: no two worlds share one.
person_layers draws three poses (mouth shut, mouth open, eyes closed) and the
alpha mask they share, cropped to the person's bounding box.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

HAIR_STYLES = ("short", "long", "bun", "spiky", "bald", "cap", "beanie", "ponytail", "curly")
# Dark to light skin: people draw a point on this ramp and a small tint of their own.
_SKIN_RAMP = np.array(((70, 45, 30), (120, 78, 48), (180, 125, 85), (225, 175, 135), (250, 218, 190)), np.float32)


@dataclass(frozen=True)
class Person:
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    hair_style: str
    shirt: tuple[int, int, int]
    shirt_trim: tuple[int, int, int]
    hoodie: bool
    face_aspect: float  # face height / width
    head: float  # head size, relative
    shoulders: float  # shoulder width, relative
    eyes: tuple[int, int, int]
    glasses: str  # "", "round", "square"
    beard: bool
    headset: str  # "", "over", "cat", "buds"
    headset_colour: tuple[int, int, int]
    mic: bool
    chair: tuple[int, int, int] | None

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Person:
        """Draw a person from a generator (one keyed by world and seed)."""
        t = float(rng.uniform(0, 1)) * (len(_SKIN_RAMP) - 1)
        lo = int(min(t, len(_SKIN_RAMP) - 2))
        skin = _SKIN_RAMP[lo] * (1 - (t - lo)) + _SKIN_RAMP[lo + 1] * (t - lo) + rng.uniform(-8, 8, 3)
        dyed = rng.random() < 0.15
        hair = _hsv(rng.uniform(0, 1), rng.uniform(0.5, 1), rng.uniform(0.5, 1)) if dyed else _hsv(
            rng.uniform(0.02, 0.12), rng.uniform(0.2, 0.8), rng.uniform(0.06, 0.75))
        return cls(
            skin=tuple(int(v) for v in np.clip(skin, 0, 255)),  # type: ignore[arg-type]
            hair=hair, hair_style=str(rng.choice(HAIR_STYLES)),
            shirt=_hsv(rng.uniform(0, 1), rng.uniform(0, 0.9), rng.uniform(0.1, 0.95)),
            shirt_trim=_hsv(rng.uniform(0, 1), rng.uniform(0.3, 1), rng.uniform(0.4, 1)),
            hoodie=bool(rng.random() < 0.35), face_aspect=float(rng.uniform(1.1, 1.4)),
            head=float(rng.uniform(0.85, 1.15)), shoulders=float(rng.uniform(0.85, 1.2)),
            eyes=_hsv(rng.uniform(0.05, 0.6), rng.uniform(0.3, 0.8), rng.uniform(0.15, 0.55)),
            glasses=str(rng.choice(["", "", "round", "square"])), beard=bool(rng.random() < 0.25),
            headset=str(rng.choice(["", "over", "over", "cat", "buds"])),
            headset_colour=_hsv(rng.uniform(0, 1), rng.uniform(0, 0.9), rng.uniform(0.1, 0.95)),
            mic=bool(rng.random() < 0.5),
            chair=_hsv(rng.uniform(0, 1), rng.uniform(0.4, 1), rng.uniform(0.15, 0.6)) if rng.random() < 0.6 else None,
        )


def person_layers(person: Person, w: int, h: int, zoom: float, shift_x: float, chair: bool = True,
                  y: float = 0.42) -> tuple[list[np.ndarray], np.ndarray, tuple[int, int, int, int]]:
    """Draw a person three times (mouth shut, open, eyes closed) in a w x h frame; return layers, mask, box."""
    scale = min(w, h * 16 / 9) / 1280 * zoom
    cx, r = w * (0.5 + shift_x), 92 * scale * person.head
    cy = h * y + (1 - zoom) * 0.1 * h
    alpha = Image.new("L", (w, h), 0)
    _draw(ImageDraw.Draw(alpha), person, 255, cx, cy, r, 0, h, chair)
    x0, y0, x1, y1 = alpha.getbbox() or (0, 0, w, h)
    pad = int(max(4, w / 150))
    box = (max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad))
    mask = np.asarray(alpha.crop(box).filter(ImageFilter.GaussianBlur(radius=max(1.0, w / 640)))).copy()
    layers = []
    for pose in range(3):
        img = Image.new("RGB", (w, h), (0, 0, 0))
        _draw(ImageDraw.Draw(img), person, None, cx, cy, r, pose, h, chair)
        layers.append(np.asarray(img.crop(box).filter(ImageFilter.GaussianBlur(radius=max(0.6, w / 1000)))).copy())
    return layers, mask, box


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(float(h) % 1.0, float(s), float(v))
    return int(r * 255), int(g * 255), int(b * 255)


def _shade(colour: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    return tuple(int(min(255, v * factor)) for v in colour)  # type: ignore[return-value]


def _draw(d: ImageDraw.ImageDraw, p: Person, fill: int | None, cx: float, cy: float, r: float, pose: int,
          h: int, chair: bool) -> None:
    """Draw one pose; with fill set, every shape in that value (the alpha mask)."""
    def c(colour: tuple[int, int, int]) -> int | tuple[int, int, int]:
        return fill if fill is not None else colour

    fw, fh = 0.85 * r, 0.85 * r * p.face_aspect
    if chair and p.chair is not None:
        d.rounded_rectangle([cx - 2.4 * r, cy - 1.7 * r, cx + 2.4 * r, h + r], radius=int(r * 0.7), fill=c(p.chair))
        if fill is None:  # racing stripes of a gaming chair
            for side in (-1, 1):
                x = cx + side * 1.7 * r
                d.rectangle([x - 0.18 * r, cy - 1.6 * r, x + 0.18 * r, h], fill=_shade(p.chair, 1.6))
    if p.hair_style in ("long", "ponytail", "curly"):
        wide = 1.45 if p.hair_style == "curly" else 1.15
        d.rounded_rectangle([cx - wide * r, cy - 0.9 * r, cx + wide * r, cy + (1.2 if p.hair_style == "curly" else 2.1) * r],
                            radius=int(r * 0.6), fill=c(p.hair))
    sw = 3.2 * r * p.shoulders
    d.ellipse([cx - sw, cy + 1.55 * r, cx + sw, cy + 6.6 * r], fill=c(p.shirt))
    if p.hoodie:
        d.ellipse([cx - 1.3 * r, cy + 0.8 * r, cx + 1.3 * r, cy + 2.2 * r], fill=c(_shade(p.shirt, 0.75)))
    d.rectangle([cx - 0.4 * r, cy + 0.6 * r, cx + 0.4 * r, cy + 1.9 * r], fill=c(_shade(p.skin, 0.85)))
    if fill is None:
        d.polygon([(cx - 0.45 * r, cy + 1.6 * r), (cx + 0.45 * r, cy + 1.6 * r), (cx, cy + 2.4 * r)],
                  fill=p.shirt_trim if not p.hoodie else _shade(p.skin, 0.85))
        if not p.hoodie:  # a logo on the shirt
            d.ellipse([cx + 0.9 * r, cy + 2.6 * r, cx + 1.5 * r, cy + 3.2 * r], fill=p.shirt_trim)
    d.ellipse([cx - fw, cy - fh, cx + fw, cy + fh], fill=c(p.skin))
    if fill is None:
        d.chord([cx - fw, cy - fh, cx + fw, cy + fh], 290, 70, fill=_shade(p.skin, 0.9))
        if p.beard:
            d.chord([cx - fw, cy - 0.2 * fh, cx + fw, cy + 1.05 * fh], 20, 160, fill=_shade(p.hair, 1.1))
    _hair(d, p, c, cx, cy, r, fw, fh)
    _gear(d, p, c, cx, cy, r, fw, fh)
    if fill is None:
        _face(d, p, cx, cy, r, fw, fh, pose)


def _hair(d: ImageDraw.ImageDraw, p: Person, c, cx: float, cy: float, r: float, fw: float, fh: float) -> None:
    style = p.hair_style
    if style == "bald":
        return
    if style == "cap":
        d.chord([cx - 1.05 * fw, cy - 1.15 * fh, cx + 1.05 * fw, cy + 0.2 * fh], 180, 360, fill=c(p.shirt_trim))
        d.rectangle([cx - 1.05 * fw, cy - 0.48 * fh, cx + 1.5 * fw, cy - 0.36 * fh], fill=c(_shade(p.shirt_trim, 0.7)))
        return
    if style == "beanie":
        d.chord([cx - 1.08 * fw, cy - 1.3 * fh, cx + 1.08 * fw, cy + 0.1 * fh], 180, 360, fill=c(p.headset_colour))
        d.rectangle([cx - 1.08 * fw, cy - 0.6 * fh, cx + 1.08 * fw, cy - 0.4 * fh], fill=c(_shade(p.headset_colour, 0.7)))
        return
    d.chord([cx - 1.08 * fw, cy - 1.2 * fh, cx + 1.08 * fw, cy + 0.35 * fh], 180, 360, fill=c(p.hair))
    if style == "bun":
        d.ellipse([cx - 0.45 * r, cy - fh - 0.7 * r, cx + 0.45 * r, cy - fh + 0.15 * r], fill=c(p.hair))
    elif style == "spiky":
        for k in range(-3, 4):
            x = cx + k * 0.28 * fw
            d.polygon([(x - 0.2 * r, cy - 0.85 * fh), (x + 0.2 * r, cy - 0.85 * fh), (x, cy - 1.45 * fh)], fill=c(p.hair))
    elif style == "ponytail":
        d.ellipse([cx + 0.8 * fw, cy - 0.6 * fh, cx + 1.6 * fw, cy + 0.9 * fh], fill=c(p.hair))
    elif style == "curly":
        for k in range(7):
            a = np.pi * (0.95 + k / 6 * 1.1)
            x, y = cx + 1.0 * fw * np.cos(a), cy - 0.2 * fh + 1.0 * fh * np.sin(a)
            d.ellipse([x - 0.35 * r, y - 0.35 * r, x + 0.35 * r, y + 0.35 * r], fill=c(p.hair))


def _gear(d: ImageDraw.ImageDraw, p: Person, c, cx: float, cy: float, r: float, fw: float, fh: float) -> None:
    colour = p.headset_colour
    if p.headset in ("over", "cat"):
        d.arc([cx - 1.2 * fw, cy - 1.3 * fh, cx + 1.2 * fw, cy + 0.5 * fh], 180, 360, fill=c(colour), width=max(2, int(r * 0.16)))
        for side in (-1, 1):
            x = cx + side * 1.1 * fw
            d.rounded_rectangle([x - 0.24 * r, cy - 0.3 * r, x + 0.24 * r, cy + 0.5 * r], radius=int(r * 0.1), fill=c(colour))
            if p.headset == "cat":
                x2 = cx + side * 0.6 * fw
                d.polygon([(x2 - 0.3 * r, cy - 1.05 * fh), (x2 + 0.3 * r, cy - 1.05 * fh), (x2, cy - 1.55 * fh)],
                          fill=c(_shade(colour, 1.4)))
    elif p.headset == "buds":
        for side in (-1, 1):
            x = cx + side * 1.02 * fw
            d.ellipse([x - 0.1 * r, cy - 0.05 * r, x + 0.1 * r, cy + 0.15 * r], fill=c((235, 235, 235)))
    if p.mic:
        d.line([cx + 2.7 * r, cy - 1.5 * r, cx + 1.6 * r, cy + 0.2 * r, cx + 0.8 * r, cy + 0.8 * r],
               fill=c((38, 38, 42)), width=max(2, int(r * 0.08)))
        d.rounded_rectangle([cx + 0.45 * r, cy + 0.55 * r, cx + 0.98 * r, cy + 1.3 * r], radius=int(r * 0.2),
                            fill=c((28, 28, 32)))


def _face(d: ImageDraw.ImageDraw, p: Person, cx: float, cy: float, r: float, fw: float, fh: float, pose: int) -> None:
    eye_y = cy + 0.02 * fh
    for side in (-1, 1):
        ex = cx + side * 0.38 * fw
        d.line([ex - 0.14 * r, eye_y - 0.2 * r, ex + 0.14 * r, eye_y - 0.23 * r], fill=_shade(p.hair, 0.8),
               width=max(1, int(r * 0.05)))
        if pose == 2:
            d.line([ex - 0.12 * r, eye_y, ex + 0.12 * r, eye_y], fill=(40, 30, 30), width=max(1, int(r * 0.05)))
        else:
            d.ellipse([ex - 0.12 * r, eye_y - 0.07 * r, ex + 0.12 * r, eye_y + 0.07 * r], fill=(245, 245, 245))
            d.ellipse([ex - 0.06 * r, eye_y - 0.06 * r, ex + 0.06 * r, eye_y + 0.06 * r], fill=p.eyes)
        if p.glasses == "round":
            d.ellipse([ex - 0.22 * r, eye_y - 0.18 * r, ex + 0.22 * r, eye_y + 0.18 * r], outline=(30, 30, 30),
                      width=max(1, int(r * 0.04)))
        elif p.glasses == "square":
            d.rectangle([ex - 0.24 * r, eye_y - 0.15 * r, ex + 0.24 * r, eye_y + 0.15 * r], outline=(20, 20, 20),
                        width=max(1, int(r * 0.05)))
    d.line([cx, eye_y + 0.05 * r, cx - 0.06 * r, eye_y + 0.3 * r], fill=_shade(p.skin, 0.75), width=max(1, int(r * 0.04)))
    mouth_h = 0.16 * r if pose == 1 else 0.03 * r
    my = cy + 0.52 * fh
    d.ellipse([cx - 0.25 * r, my - mouth_h, cx + 0.25 * r, my + mouth_h], fill=(120, 40, 45))
