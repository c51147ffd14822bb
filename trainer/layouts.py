"""Lay training frames out the way streams are laid out, so a model learns the game, not one overlay.

    composer = StreamComposer(chatting="509658", clips=train_clips)
    frames = composer.compose(clip.frames[i] for i in picks, label=clip.label, rng=rng)

A stream's picture is a composition: the game scaled into some box of an
overlay, a webcam anywhere, a chat panel left or right, alerts and tickers;
a Just Chatting stream is a camera scene that may hold a poster or a screen
showing a game, or a big window of something the streamer reacts to. A
training set of a few dozen channels holds a few dozen such compositions,
and a model trained on them alone learns them (measured on the held-out
protocol, `bench/generalize.py`). So every training clip is laid out anew:

- gameplay: the whole stored frame (or a zoomed part of it) is pasted at
  55-100% of the width (4:3 or 16:9, sometimes bordered) on a new backdrop;
  then, each by chance, a webcam box up to a third of the width (a crop of a
  Just Chatting training frame or a painted face, square, rounded or round),
  a chat panel, a ticker or an alert box;
- Just Chatting: the camera reframed (zoomed), or by chance a camera scene
  painted from noise instead (`trainer.scenes`: a room or a street the
  training clips never showed), then by chance a poster or screen showing a
  game picture at 8-28% of the width, a big "reaction" window showing
  another camera scene, a chat panel, a ticker.

Webcams, too, are painted scenes as often as crops of training cameras.

The label never changes: the game stays at least 55% wide (streams show it
at 40% or more, never below the 30% that a poster in a room may take), a
poster stays below 28%. One layout is drawn per clip and applied to each of
its frames, as a stream keeps its layout; content still moves from frame to
frame. Frames keep their size, and everything is drawn inside them.
The pools (camera scenes, game pictures) come from the training clips only,
and the painted scenes from the layout's seed.
"""

from __future__ import annotations

import colorsys
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from trainer.clip import Clip
from trainer.scenes import camera_scene

GAME_SCALE = (0.55, 1.0)  # width of the pasted game picture, share of the frame width
POSTER_SCALE = (0.08, 0.28)  # a game picture on a poster or screen in a Just Chatting scene
CAM_SCALE = (0.12, 0.34)  # webcam box width, share of the frame width
REACTION_SCALE = (0.4, 0.65)
P_LAYOUT = 0.8  # the rest keep the stored composition (the world as captured is real too)
P_CAM, P_PANEL, P_TICKER, P_ALERT = 0.6, 0.35, 0.3, 0.2
P_POSTER, P_REACTION, P_REFRAME = 0.35, 0.15, 0.5
P_PAINTED = 0.5  # Just Chatting layouts on a painted scene; webcams painted (the rest: training cameras)

Box = tuple[int, int, int, int]  # x0, y0, x1, y1, pixels, end exclusive


@dataclass
class Layout:
    """Where each element of one composed picture goes (every box inside the frame)."""

    width: int
    height: int
    kind: str  # "game" or "chatting"
    main: Box  # where the clip's own picture goes
    crop: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)  # part of the frame shown there
    backdrop: tuple[tuple[int, int, int], tuple[int, int, int]] = ((0, 0, 0), (0, 0, 0))
    border: tuple[int, tuple[int, int, int]] | None = None  # width, colour around main
    inserts: list[tuple[str, Box, str, int]] = field(default_factory=list)  # what, box, shape, source
    panels: list[tuple[str, Box, tuple[int, int, int], int]] = field(default_factory=list)  # kind, box, colour, seed
    scene: int | None = None  # Just Chatting: the seed of a painted scene shown instead of the clip's camera

    def boxes(self) -> list[Box]:
        return [self.main] + [box for _, box, _, _ in self.inserts] + [box for _, box, _, _ in self.panels]


def plan(kind: str, width: int, height: int, rng: random.Random) -> Layout:
    """Draw one layout for a frame of this size: "game" (gameplay) or "chatting" (a camera scene)."""
    if kind == "game":
        layout = _plan_game(width, height, rng)
    elif kind == "chatting":
        layout = _plan_chatting(width, height, rng)
    else:
        raise ValueError(f"kind must be 'game' or 'chatting', got {kind!r}")
    if rng.random() < P_PANEL:
        pw = round(width * rng.uniform(0.15, 0.25))
        x0 = 0 if rng.random() < 0.5 else width - pw
        layout.panels.append(("chat", (x0, 0, x0 + pw, height), _colour(rng, 0.0, 0.25), rng.randrange(1 << 30)))
    if rng.random() < P_TICKER:
        th = max(3, round(height * rng.uniform(0.05, 0.1)))
        y0 = 0 if rng.random() < 0.5 else height - th
        layout.panels.append(("ticker", (0, y0, width, y0 + th), _colour(rng, 0.3, 0.9), rng.randrange(1 << 30)))
    if rng.random() < P_ALERT:
        aw, ah = round(width * rng.uniform(0.2, 0.35)), max(3, round(height * rng.uniform(0.08, 0.15)))
        layout.panels.append(("alert", _place(rng, aw, ah, width, height), _colour(rng, 0.5, 1.0),
                              rng.randrange(1 << 30)))
    return layout


def _plan_game(width: int, height: int, rng: random.Random) -> Layout:
    scale = rng.uniform(*GAME_SCALE)
    aspect = 0.75 if rng.random() < 0.4 else 1.0  # a 4:3 game pillarboxed in a 16:9 stream
    gw, gh = max(8, round(width * scale * aspect)), max(8, round(height * scale))
    crop = (0.0, 0.0, 1.0, 1.0)
    if rng.random() < 0.3:  # zoom: the game larger than in the stored composition
        side = rng.uniform(0.65, 1.0)
        cx, cy = rng.uniform(0, 1 - side), rng.uniform(0, 1 - side)
        crop = (cx, cy, cx + side, cy + side)
    layout = Layout(width, height, "game", _place(rng, gw, gh, width, height), crop,
                    backdrop=(_colour(rng, 0.05, 0.5), _colour(rng, 0.0, 0.35)))
    if rng.random() < 0.5:
        layout.border = (rng.randint(1, 4), _colour(rng, 0.4, 1.0))
    if rng.random() < P_CAM:
        cw = round(width * rng.uniform(*CAM_SCALE))
        # Stored frames squash 16:9 to a square: a 16:9 camera is square here, a square one 1.8x tall.
        ch = min(height, round(cw * rng.uniform(0.9, 1.8)))
        layout.inserts.append(("cam", _place(rng, cw, ch, width, height),
                               rng.choice(["square", "rounded", "round"]), rng.randrange(1 << 30)))
    return layout


def _plan_chatting(width: int, height: int, rng: random.Random) -> Layout:
    crop = (0.0, 0.0, 1.0, 1.0)
    if rng.random() < P_REFRAME:  # the camera framed closer
        side = rng.uniform(0.7, 1.0)
        cx, cy = rng.uniform(0, 1 - side), rng.uniform(0, 1 - side)
        crop = (cx, cy, cx + side, cy + side)
    layout = Layout(width, height, "chatting", (0, 0, width, height), crop)
    if rng.random() < P_PAINTED:
        layout.scene = rng.randrange(1 << 30)
    if rng.random() < P_REACTION:
        rw = round(width * rng.uniform(*REACTION_SCALE))
        layout.inserts.append(("reaction", _place(rng, rw, round(height * rw / width), width, height), "square",
                               rng.randrange(1 << 30)))
    if rng.random() < P_POSTER:
        pw = round(width * rng.uniform(*POSTER_SCALE))
        ph = min(height, round(pw * rng.uniform(0.8, 1.6)))
        layout.inserts.append(("poster", _place(rng, pw, ph, width, height), "square", rng.randrange(1 << 30)))
    return layout


class StreamComposer:
    """Compose training clips into new stream layouts, with camera and game pools from the training clips."""

    def __init__(self, clips: Sequence[Clip], chatting: str | None, *, probability: float = P_LAYOUT):
        self.chatting = chatting
        self.probability = probability
        self._cameras = [c for c in clips if c.label == chatting]
        self._games = [c for c in clips if c.label != chatting]

    def compose(self, frames: Iterable[np.ndarray], label: str, rng: random.Random, *,
                always: bool = False, probability: float | None = None) -> list[np.ndarray]:
        """Return the clip's frames laid out anew (one layout for all), or unchanged with 1 - probability.

        `probability` overrides the composer's own for this call (training ramps it up).
        """
        frames = list(frames)
        chance = self.probability if probability is None else probability
        if not frames or (not always and rng.random() >= chance):
            return frames
        h, w = frames[0].shape[:2]
        layout = plan("chatting" if label == self.chatting else "game", w, h, rng)
        return [render(layout, frame, self._source, position) for position, frame in enumerate(frames)]

    def _source(self, what: str, seed: int, position: int, size: tuple[int, int]) -> np.ndarray:
        """Return the picture for an insert: a camera crop, another camera scene, or a game picture."""
        rng = random.Random(seed)
        if what != "poster" and rng.random() < P_PAINTED:
            return camera_scene(size, seed, person=True, close=True) if what == "cam" else camera_scene(size, seed)
        pool = self._games if what == "poster" else self._cameras
        if not pool:
            return painted_face(size, rng) if what == "cam" else _noise_picture(size, rng)
        clip = pool[rng.randrange(len(pool))]
        frame = clip.frames[(rng.randrange(len(clip.frames)) + position) % len(clip.frames)]
        fh, fw = frame.shape[:2]
        if what == "cam":  # the person sits near the middle of a camera scene
            side = rng.uniform(0.45, 0.8)
            x0, y0 = rng.uniform(0.5 - side / 2 - 0.1, 0.5 - side / 2 + 0.1), rng.uniform(0.0, 1 - side)
            frame = frame[round(y0 * fh): round((y0 + side) * fh), max(0, round(x0 * fw)): round((x0 + side) * fw)]
        return _resized(frame, size)


def render(layout: Layout, frame: np.ndarray, source, position: int = 0) -> np.ndarray:
    """Draw one frame in a layout; `source(what, seed, position, (w, h))` supplies inserted pictures."""
    h, w = frame.shape[:2]
    if (w, h) != (layout.width, layout.height):
        raise ValueError(f"layout is for {layout.width}x{layout.height}, frame is {w}x{h}")
    cx0, cy0, cx1, cy1 = layout.crop
    shown = frame[round(cy0 * h): max(round(cy0 * h) + 1, round(cy1 * h)),
                  round(cx0 * w): max(round(cx0 * w) + 1, round(cx1 * w))]
    x0, y0, x1, y1 = layout.main
    if layout.kind == "chatting" and layout.scene is not None:
        out = camera_scene((w, h), layout.scene)
    elif layout.kind == "chatting":
        out = _resized(shown, (w, h))
    else:
        out = _gradient(layout.backdrop, w, h)
        if layout.border is not None:
            bw, colour = layout.border
            out[max(0, y0 - bw): min(h, y1 + bw), max(0, x0 - bw): min(w, x1 + bw)] = colour
        out[y0:y1, x0:x1] = _resized(shown, (x1 - x0, y1 - y0))
    for what, (bx0, by0, bx1, by1), shape, seed in layout.inserts:
        picture = source(what, seed, position, (bx1 - bx0, by1 - by0))
        _paste(out, picture, (bx0, by0, bx1, by1), shape, border=2 if what != "reaction" else 1)
    for kind, box, colour, seed in layout.panels:
        _panel(out, kind, box, colour, seed)
    return out


def painted_face(size: tuple[int, int], rng: random.Random) -> np.ndarray:
    """Paint a crude head and shoulders on a blurred room colour: a webcam when no camera clips exist."""
    w, h = size
    img = Image.new("RGB", (w, h), _colour(rng, 0.2, 0.8))
    draw = ImageDraw.Draw(img)
    skin = rng.choice([(255, 219, 172), (224, 172, 105), (198, 134, 66), (141, 85, 36)])
    cx, r = w * rng.uniform(0.35, 0.65), min(w, h) * rng.uniform(0.18, 0.3)
    draw.ellipse([cx - 2.2 * r, h * 0.55 + r, cx + 2.2 * r, h + 2 * r], fill=_colour(rng, 0.1, 0.8))
    draw.ellipse([cx - r * 0.85, h * 0.45 - r, cx + r * 0.85, h * 0.45 + r], fill=skin)
    draw.chord([cx - r, h * 0.45 - 1.15 * r, cx + r, h * 0.45 + 0.3 * r], 180, 360, fill=_colour(rng, 0.0, 0.4))
    return np.asarray(img)


def _noise_picture(size: tuple[int, int], rng: random.Random) -> np.ndarray:
    w, h = size
    small = np.random.default_rng(rng.randrange(1 << 30)).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return _resized(small, (w, h))


def _place(rng: random.Random, w: int, h: int, width: int, height: int) -> Box:
    """Return a box of (at most) w x h anywhere inside the frame."""
    w, h = max(1, min(w, width)), max(1, min(h, height))
    x0, y0 = rng.randint(0, width - w), rng.randint(0, height - h)
    return x0, y0, x0 + w, y0 + h


def _resized(picture: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    w, h = max(1, size[0]), max(1, size[1])
    if picture.shape[1] == w and picture.shape[0] == h:
        return picture.copy()
    return np.array(Image.fromarray(np.ascontiguousarray(picture)).resize((w, h), Image.BILINEAR))


def _paste(out: np.ndarray, picture: np.ndarray, box: Box, shape: str, border: int) -> None:
    x0, y0, x1, y1 = box
    target = out[y0:y1, x0:x1]
    if shape == "square":
        target[:border], target[-border:], target[:, :border], target[:, -border:] = 0, 0, 0, 0
        target[border:-border or None, border:-border or None] = picture[border:-border or None, border:-border or None]
        return
    mask = Image.new("L", (x1 - x0, y1 - y0), 0)
    radius = min(x1 - x0, y1 - y0) // (2 if shape == "round" else 5)
    ImageDraw.Draw(mask).rounded_rectangle([0, 0, x1 - x0 - 1, y1 - y0 - 1], radius=radius, fill=255)
    keep = np.asarray(mask)[..., None] > 127
    target[:] = np.where(keep, picture, target)


def _panel(out: np.ndarray, kind: str, box: Box, colour: tuple[int, int, int], seed: int) -> None:
    """Paint a chat panel, ticker or alert: a flat box with short coloured strokes standing for text."""
    x0, y0, x1, y1 = box
    rng = random.Random(seed)
    region = out[y0:y1, x0:x1]
    region[:] = (region.astype(np.uint16) + np.array(colour, np.uint16) * 3) // 4 if kind == "chat" else colour
    line = max(3, (y1 - y0) // 2) if kind != "chat" else rng.randint(4, 7)
    for top in range(1, y1 - y0 - 1, line):
        left = 1
        while left < x1 - x0 - 3:
            length = rng.randint(2, max(3, (x1 - x0) // 4))
            ink = _colour(rng, 0.7, 1.0) if rng.random() < 0.3 else (230, 230, 230)
            region[top: top + 1, left: min(x1 - x0 - 1, left + length)] = ink
            left += length + rng.randint(1, 4)
            if rng.random() < 0.3:
                break


def _gradient(colours: tuple[tuple[int, int, int], tuple[int, int, int]], w: int, h: int) -> np.ndarray:
    top, bottom = (np.array(c, np.float32) for c in colours)
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    return np.ascontiguousarray(np.broadcast_to((top * (1 - t) + bottom * t).astype(np.uint8), (h, w, 3)))


def _colour(rng: random.Random, low: float, high: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.2, 1.0), rng.uniform(low, high))
    return int(r * 255), int(g * 255), int(b * 255)
