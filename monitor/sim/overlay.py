"""Paint a world's stream overlays: backdrops, frames, chat, tickers, alerts, sub goals, text.

    base = backdrop(style, first_screen)           # (720, 1280, 3): what shows behind everything
    frame_box(base, look.box, style)               # a border, glow or bezel around the game
    chat = Chat(style, seed, rect, fps); chat.draw(out, index)
    Ticker(style, rect, text).draw(out, index); Alert(style, rect, seed).draw(out, index)

Static parts are painted once into the base picture; moving parts keep a
pre-rendered strip or patch and copy a window of it per frame.
"""

from __future__ import annotations

import colorsys
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from monitor.sim.looks import HEIGHT, WIDTH, Rect, Style

_CHAT_WORDS = ("gg", "lol", "pog", "nice", "what", "no way", "KEKW", "clip it", "LUL", "so close", "W", "L",
               "hi chat", "first", "omg", "that was insane", "monkaS", "let's go", "rip", "ez", "how", "based",
               "PepeLaugh", "true", " o7", "catJAM", "hello from brazil", "is this live", "Pog", "xD", "lmao")
_ALERTS = ("just subscribed!", "followed!", "cheered 500 bits!", "is raiding with 42 viewers!", "gifted 5 subs!",
           "donated $10!", "resubscribed for 7 months!")
_TICKERS = ("!discord  !youtube  !twitter", "next stream: friday 8pm", "merch out now, link in bio",
            "thanks for the follows!", "sub goal: new camera", "be kind in chat", "powered by coffee")


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def backdrop(style: Style, screen: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """Paint the overlay's background: a gradient, pattern, or the game blurred beyond recognition."""
    back = np.array(style.backdrop, np.float32)
    if style.pattern == "blurred" and screen is not None:
        small = Image.fromarray(screen).resize((64, 36), Image.BILINEAR).filter(ImageFilter.GaussianBlur(6))
        img = np.asarray(small.resize((WIDTH, HEIGHT), Image.BILINEAR)).astype(np.float32)
        return (img * 0.35 + back * 0.65).astype(np.uint8)
    t = np.linspace(0, 1, HEIGHT, dtype=np.float32)[:, None, None]
    if style.pattern == "solid":
        img = np.broadcast_to(back, (HEIGHT, WIDTH, 3)).copy()
    else:
        img = np.broadcast_to(back * (1 - t) + np.array(style.accent, np.float32) * 0.3 * t, (HEIGHT, WIDTH, 3)).copy()
    canvas = Image.fromarray(img.astype(np.uint8))
    d = ImageDraw.Draw(canvas)
    line = tuple(int(min(255, v * 1.35 + 12)) for v in style.backdrop)
    step = int(rng.integers(24, 70))
    if style.pattern == "stripes":
        for x in range(-HEIGHT, WIDTH, step):
            d.line([x, HEIGHT, x + HEIGHT, 0], fill=line, width=max(2, step // 4))
    elif style.pattern == "dots":
        for y in range(step // 2, HEIGHT, step):
            for x in range(step // 2, WIDTH, step):
                d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=line)
    elif style.pattern == "grid":
        for x in range(0, WIDTH, step):
            d.line([x, 0, x, HEIGHT], fill=line, width=1)
        for y in range(0, HEIGHT, step):
            d.line([0, y, WIDTH, y], fill=line, width=1)
    return np.asarray(canvas).copy()


def frame_box(base: np.ndarray, box: Rect, style: Style) -> None:
    """Draw the game window's frame into the base, outside `box` (the game covers the inside)."""
    if style.frame == "none" or style.border == 0:
        return
    canvas = Image.fromarray(base)
    d = ImageDraw.Draw(canvas)
    b = style.border
    outer = [box.x0 - b, box.y0 - b, box.x1 + b - 1, box.y1 + b - 1]
    if style.frame == "solid":
        d.rounded_rectangle(outer, radius=style.radius, fill=style.accent)
    elif style.frame == "double":
        d.rectangle(outer, fill=style.accent)
        d.rectangle([box.x0 - b // 2, box.y0 - b // 2, box.x1 + b // 2, box.y1 + b // 2], fill=style.second)
    elif style.frame == "glow":
        for k in range(b * 2, 0, -1):
            t = k / (b * 2)
            colour = tuple(int(a * (1 - t) + c * t) for a, c in zip(style.accent, style.backdrop, strict=True))
            d.rounded_rectangle([box.x0 - k, box.y0 - k, box.x1 + k, box.y1 + k], radius=style.radius + k, fill=colour)
    elif style.frame == "window":  # an emulator window: thin border, title bar, close buttons
        bar = 22 + style.font // 2
        d.rectangle([box.x0 - 3, box.y0 - bar, box.x1 + 2, box.y1 + 2], fill=(225, 225, 228))
        d.rectangle([box.x0 - 3, box.y0 - bar, box.x1 + 2, box.y0 - 1], fill=style.second)
        d.text((box.x0 + 8, box.y0 - bar + 4), "Stella - ROM.bin", fill=(255, 255, 255), font=font(style.font - 2))
        for k, colour in enumerate(((230, 80, 70), (240, 190, 60), (90, 200, 90))):
            x = box.x1 - 18 - 20 * k
            d.ellipse([x, box.y0 - bar + 5, x + 12, box.y0 - bar + 17], fill=colour)
    else:  # bezel: a monitor around the game
        d.rounded_rectangle([box.x0 - b - 6, box.y0 - b - 6, box.x1 + b + 6, box.y1 + b + 18], radius=10, fill=(28, 28, 32))
        d.ellipse([(box.x0 + box.x1) / 2 - 3, box.y1 + b + 4, (box.x0 + box.x1) / 2 + 3, box.y1 + b + 10], fill=style.accent)
    base[:] = np.asarray(canvas)


def text_box(base: np.ndarray, rect: Rect, style: Style, lines: list[str]) -> None:
    """Draw a panel with a few lines of text (title, name, socials) into the base."""
    panel = Image.new("RGB", (rect.width, rect.height), style.backdrop)
    d = ImageDraw.Draw(panel)
    d.rounded_rectangle([0, 0, rect.width - 1, rect.height - 1], radius=min(style.radius, rect.height // 2),
                        fill=tuple(int(v * 0.6) for v in style.accent), outline=style.accent, width=2)
    y = 5
    for k, text in enumerate(lines):
        size = style.font + (4 if k == 0 else 0)
        d.text((10, y), text, fill=(255, 255, 255) if k == 0 else (225, 225, 230), font=font(size))
        y += size + 4
    base[rect.y0:rect.y1, rect.x0:rect.x1] = np.asarray(panel)


def subgoal(base: np.ndarray, rect: Rect, style: Style, rng: np.random.Generator) -> None:
    """Draw a sub-goal progress bar into the base."""
    have, goal = int(rng.integers(1, 90)), int(rng.choice([50, 100, 250]))
    have = min(have, goal)
    panel = Image.new("RGB", (rect.width, rect.height), (20, 20, 24))
    d = ImageDraw.Draw(panel)
    d.rectangle([0, 0, int(rect.width * have / goal), rect.height], fill=style.accent)
    d.text((8, rect.height // 2 - style.font // 2 - 2), f"SUB GOAL {have}/{goal}", fill=(255, 255, 255),
           font=font(style.font))
    base[rect.y0:rect.y1, rect.x0:rect.x1] = np.asarray(panel)


def shape_mask(w: int, h: int, shape: str, radius: int) -> np.ndarray | None:
    """Return a 0-255 mask for a round or rounded box of w x h, or None for a plain rectangle."""
    if shape not in ("round", "rounded"):
        return None
    mask = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(mask)
    if shape == "round":
        d.ellipse([0, 0, w - 1, h - 1], fill=255)
    else:
        d.rounded_rectangle([0, 0, w - 1, h - 1], radius=max(6, radius), fill=255)
    return np.asarray(mask).copy()


def cam_border(base: np.ndarray, rect: Rect, shape: str, width: int, colour: tuple[int, int, int], radius: int) -> None:
    """Draw the outline a webcam box sits in."""
    if width == 0 or shape == "cutout":
        return
    canvas = Image.fromarray(base)
    d = ImageDraw.Draw(canvas)
    outer = [rect.x0 - width, rect.y0 - width, rect.x1 + width - 1, rect.y1 + width - 1]
    if shape == "round":
        d.ellipse(outer, fill=colour)
    else:
        d.rounded_rectangle(outer, radius=max(6, radius) + width if shape == "rounded" else 0, fill=colour)
    base[:] = np.asarray(canvas)


def paste(out: np.ndarray, rect: Rect, picture: np.ndarray, mask: np.ndarray | None = None) -> None:
    """Copy a picture (rect-sized) into out, through a 0-255 mask if given; clipped to the frame."""
    x0, y0 = max(0, rect.x0), max(0, rect.y0)
    x1, y1 = min(out.shape[1], rect.x1), min(out.shape[0], rect.y1)
    if x1 <= x0 or y1 <= y0:
        return
    src = picture[y0 - rect.y0: y1 - rect.y0, x0 - rect.x0: x1 - rect.x0]
    if mask is None:
        out[y0:y1, x0:x1] = src
        return
    m = mask[y0 - rect.y0: y1 - rect.y0, x0 - rect.x0: x1 - rect.x0].astype(np.uint16)[..., None]
    dst = out[y0:y1, x0:x1]
    dst[:] = ((src.astype(np.uint16) * m + dst.astype(np.uint16) * (255 - m) + 127) // 255).astype(np.uint8)


class Chat:
    """A scrolling chat panel in a world's style, windowed per frame from a tall strip."""

    def __init__(self, style: Style, seed: int, rect: Rect, fps: int, translucent: bool = False):
        rng = np.random.default_rng([seed, 11])
        self.rect, self.translucent = rect, translucent
        self.line = style.font + int(rng.integers(6, 12))
        dark = rng.random() < 0.75
        bg = tuple(int(v) for v in rng.integers(14, 40, 3)) if dark else tuple(int(v) for v in rng.integers(225, 250, 3))
        text = (220, 220, 225) if dark else (30, 30, 35)
        header = int(rng.integers(0, 2)) * (self.line + 6)
        self.header = header
        visible = max(1, (rect.height - header) // self.line)
        lines = visible + 100
        strip = Image.new("RGB", (rect.width, lines * self.line), bg)
        d = ImageDraw.Draw(strip)
        f = font(style.font)
        for i in range(lines):
            x, y = 6.0, i * self.line + 3
            if rng.random() < 0.3:  # a badge before the name
                d.rectangle([x, y + 2, x + style.font - 2, y + style.font], fill=tuple(int(v) for v in rng.integers(60, 255, 3)))
                x += style.font + 2
            name = "".join(rng.choice(list("abcdefghijklmnoprstuvwxyz0123456789_"), int(rng.integers(4, 12))))
            hue = float(rng.uniform(0, 1))
            colour = tuple(int(v * 255) for v in colorsys.hsv_to_rgb(hue, 0.7, 1.0 if dark else 0.6))
            d.text((x, y), name + ":", fill=colour, font=f)
            x += d.textlength(name + ":", font=f) + 5
            d.text((x, y), " ".join(rng.choice(_CHAT_WORDS, int(rng.integers(1, 5)))), fill=text, font=f)
        self.strip = np.asarray(strip)
        self.visible, self.lines = visible, lines
        self.every = max(1, int(fps * rng.uniform(0.4, 2.0)))
        if header:
            bar = Image.new("RGB", (rect.width, header), style.accent)
            ImageDraw.Draw(bar).text((8, 4), "STREAM CHAT", fill=(255, 255, 255), font=font(style.font))
            self.bar = np.asarray(bar)

    def recolour(self, tone: Callable[[np.ndarray], np.ndarray]) -> None:
        """Apply the channel's colour grade to the pre-rendered strip."""
        self.strip = tone(self.strip)
        if self.header:
            self.bar = tone(self.bar)

    def draw(self, out: np.ndarray, index: int) -> None:
        r = self.rect
        first = (index // self.every) % (self.lines - self.visible)
        window = self.strip[first * self.line: (first + self.visible) * self.line]
        y0 = r.y0 + self.header
        target = out[y0: y0 + window.shape[0], r.x0:r.x1]
        window = window[: target.shape[0]]
        if self.translucent:
            target[:] = ((target.astype(np.uint16) + window.astype(np.uint16) * 3) >> 2).astype(np.uint8)
        else:
            target[:] = window
        if self.header:
            out[r.y0: r.y0 + self.header, r.x0:r.x1] = self.bar


class Ticker:
    """A scrolling text bar."""

    def __init__(self, style: Style, rect: Rect, rng: np.random.Generator):
        self.rect = rect
        text = "   |   ".join(rng.choice(_TICKERS, 4, replace=False))
        f = font(max(12, rect.height - 12))
        probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        length = int(probe.textlength(text + "   |   ", font=f)) + 1
        strip = Image.new("RGB", (length + rect.width, rect.height), tuple(int(v * 0.5) for v in style.accent))
        d = ImageDraw.Draw(strip)
        for x in range(0, length + rect.width, length):
            d.text((x + 4, 4), text + "   |   ", fill=(255, 255, 255), font=f)
        self.strip, self.length = np.asarray(strip), length
        self.speed = int(rng.integers(4, 14))

    def recolour(self, tone: Callable[[np.ndarray], np.ndarray]) -> None:
        self.strip = tone(self.strip)

    def draw(self, out: np.ndarray, index: int) -> None:
        r = self.rect
        x = (index * self.speed) % self.length
        out[r.y0:r.y1, r.x0:r.x1] = self.strip[:, x: x + r.width]


class Alert:
    """A pop-up ("X just subscribed!") that shows for a few seconds, now and then."""

    def __init__(self, style: Style, rect: Rect, rng: np.random.Generator, fps: int):
        self.rect = rect
        patch = Image.new("RGB", (rect.width, rect.height), style.accent)
        d = ImageDraw.Draw(patch)
        d.rectangle([3, 3, rect.width - 4, rect.height - 4], outline=style.second, width=3)
        who = "".join(rng.choice(list("abcdefghijklmnoprstuvwxyz"), int(rng.integers(5, 10))))
        d.text((16, rect.height // 2 - 16), who, fill=(255, 255, 255), font=font(22))
        d.text((16, rect.height // 2 + 8), str(rng.choice(_ALERTS)), fill=(250, 250, 250), font=font(16))
        self.patch = np.asarray(patch)
        self.period = int(rng.integers(8, 20)) * fps
        self.shown = int(rng.integers(2, 5)) * fps
        self.phase = int(rng.integers(0, self.period))

    def recolour(self, tone: Callable[[np.ndarray], np.ndarray]) -> None:
        self.patch = tone(self.patch)

    def draw(self, out: np.ndarray, index: int) -> None:
        if (index + self.phase) % self.period < self.shown:
            paste(out, self.rect, self.patch)
