"""Draw a channel's look in a named world: where everything sits and how it is styled, no pixels.

    look = game_look("B", seed=50_003)     # GameLook: family, game picture rect, webcam, chat, grade
    look.game.width >= 0.4 * WIDTH         # gameplay is always 40-100% of the frame width
    chatting_look("B", seed=50_010).kind   # "room", "poster", "screen", "busy", "outdoor", "reaction", ...

Every choice comes from a generator keyed by (world, seed, purpose), so two
world names share no layout, person, room or style, and one channel keeps one
look across its live loop and its clips. The layout families and scene kinds
are fixed names; what they draw (sizes, places, colours, people) is per world.
Rects are (x0, y0, x1, y1) in 1280x720 frame pixels, always inside the frame.
"""

from __future__ import annotations

import colorsys
import hashlib
from dataclasses import dataclass

import numpy as np

WIDTH, HEIGHT = 1280, 720
GAME_FAMILIES = ("overlay", "bigcam", "pip", "letterbox", "small", "sidebyside", "fullscreen", "framed")
# "reaction": a video window beside the streamer; "reaction_behind": the streamer keyed in front of it.
CHATTING_KINDS = ("room", "poster", "screen", "busy", "outdoor", "reaction", "reaction_behind")
MIN_GAME_WIDTH = 0.40  # gameplay shows the game at 40% of the frame width or more ...
MAX_PICTURE_WIDTH = 0.30  # ... a poster or screen in a Just Chatting scene at 30% or less
MAX_CAM_WIDTH = WIDTH // 3
# Source resolutions a streamer might send (upscaled back to 720p) and x264 CRF values. Like the
# open-set ROMs, each menu is split in alternate halves between worlds (world_half).
SOURCES = ((1280, 720), (1152, 648), (960, 540), (854, 480), (768, 432), (640, 360))
CRFS = (20, 21, 23, 24, 26, 27, 29, 30, 32, 33, 35, 36)


@dataclass(frozen=True)
class Rect:
    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def inside(self, width: int = WIDTH, height: int = HEIGHT) -> bool:
        """Return whether the rect is non-empty and within a width x height frame."""
        return 0 <= self.x0 < self.x1 <= width and 0 <= self.y0 < self.y1 <= height

    def grow(self, by: int) -> Rect:
        """Return the rect grown by `by` on every side, clipped to the frame."""
        return Rect(max(0, self.x0 - by), max(0, self.y0 - by), min(WIDTH, self.x1 + by), min(HEIGHT, self.y1 + by))


@dataclass(frozen=True)
class Grade:
    """A per-channel colour grade: RGB gains, gamma, contrast, lift and saturation."""

    gains: tuple[float, float, float]
    gamma: float
    contrast: float
    lift: float
    saturation: float

    def lut(self) -> list[int]:
        """Return the 768-entry lookup table PIL's Image.point applies (R, then G, then B)."""
        x = np.arange(256, dtype=np.float64) / 255.0
        out = []
        for gain in self.gains:
            y = np.clip(x * gain, 0, 1) ** self.gamma
            y = (y - 0.5) * self.contrast + 0.5
            y = self.lift / 255.0 + y * (1 - self.lift / 255.0)
            out += [int(v) for v in np.clip(np.round(y * 255), 0, 255)]
        return out


@dataclass(frozen=True)
class Style:
    """Colours and shapes of one overlay design."""

    accent: tuple[int, int, int]
    second: tuple[int, int, int]
    backdrop: tuple[int, int, int]
    pattern: str  # "gradient", "solid", "stripes", "dots", "grid", "blurred"
    border: int  # frame width around the game picture, px
    frame: str  # "solid", "double", "glow", "bezel", "window" (an emulator's title bar), "none"
    radius: int  # corner radius of panels and boxes
    font: int  # overlay text size
    smooth_scaling: bool


@dataclass(frozen=True)
class Cam:
    """A webcam box: where, what shape, and which person in which room it films."""

    rect: Rect
    shape: str  # "square", "rounded", "round", "cutout" (keyed person, no room)
    border: int
    person: int  # seed of the person in the world's pool
    room: int  # seed of the room behind them


@dataclass(frozen=True)
class Extras:
    """Overlay elements that come and go: chat, ticker, alerts, sub goal, title text."""

    chat: Rect | None
    chat_alpha: bool  # translucent chat over the picture
    ticker: Rect | None
    alert: Rect | None
    subgoal: Rect | None
    title: Rect | None
    chat_seed: int


@dataclass(frozen=True)
class Encode:
    """How the streamer's encoder degrades the picture: source size and CRF."""

    source: tuple[int, int]
    crf: int


@dataclass(frozen=True)
class GameLook:
    family: str
    game: Rect  # the game's own pixels: MIN_GAME_WIDTH of the frame or more
    box: Rect  # the game's window including letterbox/pillarbox bars
    inset: Rect | None  # picture-in-picture: a zoomed crop of the game
    crop: int  # pixels a capture card trims off each edge of the Atari screen
    cam: Cam | None
    extras: Extras
    style: Style
    grade: Grade
    encode: Encode


@dataclass(frozen=True)
class Picture:
    """A game image inside a Just Chatting scene: a poster (still) or a screen (moving)."""

    rect: Rect  # at most MAX_PICTURE_WIDTH of the frame
    moving: bool
    pick: int  # which ROM of the world's poster pool, and which moment


@dataclass(frozen=True)
class ChattingLook:
    kind: str
    person: int
    room: int
    crowd: tuple[int, ...]  # more people in a busy room
    zoom: float
    shift: float  # where the streamer sits, -0.25 (left) to 0.25 (right)
    picture: Picture | None
    reaction: Rect | None  # the window showing a non-game video
    reaction_behind: bool  # the streamer is keyed in front of it rather than beside it
    handheld: float  # camera shake of outdoor IRL, px
    extras: Extras
    style: Style
    grade: Grade
    encode: Encode


def world_rng(world: str, seed: int, purpose: str) -> np.random.Generator:
    """Return a generator keyed by (world, seed, purpose): distinct worlds never share one."""
    digest = hashlib.sha256(f"{world}\x00{seed}\x00{purpose}".encode()).digest()
    return np.random.default_rng(np.frombuffer(digest, np.uint32).tolist())


def world_half(world: str) -> int:
    """Return which half of a split menu a world takes: 0 for "A", 1 for "B", else a bit of its name's hash."""
    if world in ("A", "B"):
        return "AB".index(world)
    return hashlib.sha256(world.encode()).digest()[0] & 1


def scene_kind(world: str, seed: int, chatting: bool) -> str:
    """Return the layout family (a game channel) or scene kind (a camera scene) of a channel."""
    rng = world_rng(world, seed, "kind")
    kinds = CHATTING_KINDS if chatting else GAME_FAMILIES
    return kinds[int(rng.integers(len(kinds)))]


def game_look(world: str, seed: int) -> GameLook:
    """Lay out a game channel: the game picture, webcam, chat and overlay of its family."""
    family = scene_kind(world, seed, chatting=False)
    rng = world_rng(world, seed, "layout")
    style = _style(rng)
    box, game, cam_rect, inset, column = _game_geometry(rng, family)
    cam = None
    if cam_rect is not None:
        shape = "round" if cam_rect.width == cam_rect.height and rng.random() < 0.5 else str(
            rng.choice(["square", "rounded", "cutout", "rounded"]))
        cam = Cam(cam_rect, shape, int(rng.integers(0, 7)), _seed(rng), _seed(rng))
    # The frame's border, glow or title bar reaches beyond the box: keep panels clear of it too.
    framed = box.grow(2 * style.border + 30) if style.frame != "none" else box
    extras = _extras(rng, style, occupied=[framed] + ([cam_rect] if cam_rect else []), column=column,
                     overlay_ok=True, protected=[cam_rect] if cam_rect else [])
    crop = 0 if rng.random() < 0.6 else int(rng.integers(2, 12))
    return GameLook(family, game, box, inset, crop, cam, extras, style, _grade(world, seed), _encode(world, seed))


def chatting_look(world: str, seed: int) -> ChattingLook:
    """Compose a Just Chatting scene of its kind: who, where, and what picture or video is in it."""
    kind = scene_kind(world, seed, chatting=True)
    rng = world_rng(world, seed, "scene")
    style = _style(rng)
    crowd = tuple(_seed(rng) for _ in range(int(rng.integers(2, 5)))) if kind == "busy" else ()
    shift = float(rng.uniform(-0.25, 0.25))
    picture = reaction = None
    behind = False
    if kind in ("poster", "screen"):
        w = int(rng.uniform(0.14, MAX_PICTURE_WIDTH) * WIDTH)
        h = int(w * rng.uniform(0.7, 1.3)) if kind == "poster" else w * 3 // 4
        h = min(h, int(HEIGHT * 0.55))
        # Put the picture on the side of the room the streamer is not sitting on.
        side = rng.uniform(0.02, 0.3) if shift > 0 else rng.uniform(0.7, 0.98)
        x0 = int(np.clip(side * WIDTH - w / 2, 8, WIDTH - w - 8))
        y0 = int(rng.uniform(0.05, 0.3) * HEIGHT)
        picture = Picture(Rect(x0, y0, x0 + w, y0 + h), kind == "screen", _seed(rng))
    if kind.startswith("reaction"):
        behind = kind == "reaction_behind"
        if behind:
            w = int(rng.uniform(0.7, 1.0) * WIDTH)
        else:
            w = int(rng.uniform(0.5, 0.62) * WIDTH)
        h = min(HEIGHT - 20, w * 9 // 16)
        x0 = int(rng.uniform(0, 1) * (WIDTH - w)) if behind else (WIDTH - w - 20 if shift < 0 else 20)
        y0 = int(rng.uniform(0, 1) * (HEIGHT - h))
        reaction = Rect(x0, y0, x0 + w, y0 + h)
        shift = (-0.3 if x0 > WIDTH / 4 else 0.3) if not behind else float(rng.choice([-0.32, 0.32]))
    zoom = _zoom(rng, kind, behind)
    # Overlays may cover the room, never the streamer, nor the picture or video the scene is about.
    cx = WIDTH * (0.5 + shift)
    reach = 0.2 * WIDTH * zoom
    streamer = Rect(int(max(0, cx - reach)), int(0.08 * HEIGHT), int(min(WIDTH, cx + reach)), HEIGHT)
    occupied = [r for r in (picture.rect if picture else None, None if behind else reaction, streamer) if r is not None]
    extras = _extras(rng, style, occupied=occupied, column=None, overlay_ok=False)
    return ChattingLook(
        kind=kind, person=_seed(rng), room=_seed(rng), crowd=crowd, zoom=zoom, shift=shift,
        picture=picture, reaction=reaction, reaction_behind=behind,
        handheld=float(rng.uniform(4, 14)) if kind == "outdoor" else 0.0,
        extras=extras, style=style, grade=_grade(world, seed), encode=_encode(world, seed),
    )


def _zoom(rng: np.random.Generator, kind: str, behind: bool) -> float:
    """Return how close the camera is: selfie-close outdoors, small in front of a reaction video."""
    if kind == "outdoor":
        return float(rng.uniform(1.2, 1.6))
    return float(rng.uniform(0.6, 0.8) if behind else rng.uniform(0.85, 1.3))


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(1 << 31))


def _colour(rng: np.random.Generator, sat: tuple[float, float], val: tuple[float, float],
            hue: float | None = None) -> tuple[int, int, int]:
    h = float(rng.uniform(0, 1)) if hue is None else hue % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, rng.uniform(*sat), rng.uniform(*val))
    return int(r * 255), int(g * 255), int(b * 255)


def _style(rng: np.random.Generator) -> Style:
    hue = float(rng.uniform(0, 1))
    return Style(
        accent=_colour(rng, (0.5, 1.0), (0.7, 1.0), hue), second=_colour(rng, (0.4, 1.0), (0.5, 1.0), hue + 0.5),
        backdrop=_colour(rng, (0.2, 0.8), (0.05, 0.35), hue + rng.uniform(-0.1, 0.1)),
        pattern=str(rng.choice(["gradient", "solid", "stripes", "dots", "grid", "blurred"])),
        border=int(rng.integers(0, 14)), frame=str(rng.choice(["solid", "double", "glow", "bezel", "window", "none"])),
        radius=int(rng.integers(0, 24)), font=int(rng.integers(13, 21)), smooth_scaling=bool(rng.random() < 0.5),
    )


def _grade(world: str, seed: int) -> Grade:
    rng = world_rng(world, seed, "grade")
    warm = float(rng.uniform(-0.1, 0.1))
    return Grade(
        gains=(1 + warm + float(rng.uniform(-0.04, 0.04)), 1 + float(rng.uniform(-0.05, 0.05)),
               1 - warm + float(rng.uniform(-0.04, 0.04))),
        gamma=float(rng.uniform(0.82, 1.2)), contrast=float(rng.uniform(0.85, 1.18)),
        lift=float(rng.uniform(0, 18)), saturation=float(rng.uniform(0.7, 1.35)),
    )


def _encode(world: str, seed: int) -> Encode:
    rng = world_rng(world, seed, "encode")
    half = world_half(world)
    sources, crfs = SOURCES[half::2], CRFS[half::2]
    return Encode(source=sources[int(rng.choice(len(sources), p=[0.5, 0.3, 0.2]))], crf=int(rng.choice(crfs)))


def _place(rng: np.random.Generator, w: int, h: int, margin: int = 0) -> Rect:
    """Return a w x h rect anywhere inside the frame, `margin` from its edges where it fits."""
    mx, my = min(margin, (WIDTH - w) // 2), min(margin, (HEIGHT - h) // 2)
    x0 = int(rng.integers(mx, WIDTH - w - mx + 1))
    y0 = int(rng.integers(my, HEIGHT - h - my + 1))
    return Rect(x0, y0, x0 + w, y0 + h)


def _cam_size(rng: np.random.Generator, lo: float, hi: float) -> tuple[int, int]:
    w = int(rng.uniform(lo, hi) * WIDTH) // 2 * 2
    w = min(w, MAX_CAM_WIDTH)
    aspect = float(rng.choice([16 / 9, 4 / 3, 1.0]))
    return w, int(w / aspect) // 2 * 2


def _game_size(rng: np.random.Generator, lo: float, hi: float, wide: bool | None = None) -> tuple[int, int]:
    """Return a game picture size: lo..hi of the frame width, 4:3 or 16:9, never taller than the frame."""
    wide = bool(rng.random() < 0.5) if wide is None else wide
    aspect = 16 / 9 if wide else 4 / 3
    w = int(rng.uniform(lo, hi) * WIDTH)
    w = max(int(np.ceil(MIN_GAME_WIDTH * WIDTH)), min(w, WIDTH, int(HEIGHT * aspect)))
    return w, min(HEIGHT, int(round(w / aspect)))


def _corner_of(rng: np.random.Generator, outer: Rect, w: int, h: int, margin: int) -> Rect:
    """Return a w x h rect in a random corner inside `outer`."""
    left, top = rng.random() < 0.5, rng.random() < 0.5
    x0 = outer.x0 + margin if left else outer.x1 - margin - w
    y0 = outer.y0 + margin if top else outer.y1 - margin - h
    x0, y0 = int(np.clip(x0, 0, WIDTH - w)), int(np.clip(y0, 0, HEIGHT - h))
    return Rect(x0, y0, x0 + w, y0 + h)


def _game_geometry(rng: np.random.Generator, family: str) -> tuple[Rect, Rect, Rect | None, Rect | None, Rect | None]:
    """Return (box, game, cam, inset, free column) for a layout family."""
    inset = column = None
    if family in ("fullscreen", "pip"):
        w, h = _game_size(rng, 0.9, 1.0, wide=True) if family == "pip" else (WIDTH, HEIGHT)
        game = _place(rng, w, h)
        cw, ch = _cam_size(rng, 0.12, 0.22)
        cam = _corner_of(rng, game, cw, ch, int(rng.integers(8, 30)))
        if family == "pip":
            iw = int(rng.uniform(0.15, 0.24) * WIDTH)
            ih = int(iw * rng.uniform(0.56, 1.0))
            for _ in range(8):  # a corner the webcam does not take
                inset = _corner_of(rng, game, iw, ih, int(rng.integers(8, 30)))
                if not _overlap(inset, cam):
                    break
            else:
                inset = None
        return game, game, cam, inset, None
    if family == "letterbox":
        box = Rect(0, 0, WIDTH, HEIGHT)
        if rng.random() < 0.6:  # a 4:3 game pillarboxed in a 16:9 frame
            h = int(rng.uniform(0.9, 1.0) * HEIGHT)
            w = h * 4 // 3
        else:  # a cinematic letterbox: black bars above and below
            w = WIDTH
            h = int(WIDTH / rng.uniform(2.0, 2.4))
        x0, y0 = (WIDTH - w) // 2, (HEIGHT - h) // 2
        game = Rect(x0, y0, x0 + w, y0 + h)
        cw, ch = _cam_size(rng, 0.1, max(0.1, min(0.2, (WIDTH - w) / 2 / WIDTH - 0.01)))
        cam = _corner_of(rng, box, cw, ch, int(rng.integers(4, 16)))
        return box, game, cam, None, None
    if family == "bigcam":
        cw, ch = _cam_size(rng, 0.25, 1 / 3)
        gw, gh = _game_size(rng, 0.55, (WIDTH - cw - 36) / WIDTH)
        cam_left = rng.random() < 0.5
        gx = int(WIDTH - gw - int(rng.integers(8, 20))) if cam_left else int(rng.integers(8, 20))
        game = Rect(gx, (HEIGHT - gh) // 2, gx + gw, (HEIGHT - gh) // 2 + gh)
        cx = int(rng.integers(8, max(9, gx - cw - 8))) if cam_left else int(rng.integers(game.x1 + 8, WIDTH - cw - 7))
        cy = int(rng.integers(10, HEIGHT - ch - 10))
        cam = Rect(cx, cy, cx + cw, cy + ch)
        col_x0, col_x1 = (8, gx - 8) if cam_left else (game.x1 + 8, WIDTH - 8)
        column = Rect(col_x0, 10, col_x1, HEIGHT - 10)
        return game, game, cam, None, column
    if family == "sidebyside":
        gw, gh = _game_size(rng, 0.58, 0.72)
        left = rng.random() < 0.5
        gx = int(rng.integers(6, 24)) if left else WIDTH - gw - int(rng.integers(6, 24))
        gy = int(rng.integers(0, HEIGHT - gh + 1))
        game = Rect(gx, gy, gx + gw, gy + gh)
        col = Rect(game.x1 + 10, 10, WIDTH - 10, HEIGHT - 10) if left else Rect(10, 10, game.x0 - 10, HEIGHT - 10)
        cw = min(col.width, MAX_CAM_WIDTH) // 2 * 2
        ch = int(cw * rng.uniform(0.56, 0.8)) // 2 * 2
        cy = col.y0 if rng.random() < 0.6 else col.y1 - ch
        cam = Rect(col.x0, cy, col.x0 + cw, cy + ch)
        rest = Rect(col.x0, cam.y1 + 10, col.x1, col.y1) if cy == col.y0 else Rect(col.x0, col.y0, col.x1, cam.y0 - 10)
        return game, game, cam, None, rest
    # overlay, small, framed: a framed game anywhere, webcam and chat around it.
    lo, hi = {"small": (0.40, 0.50), "framed": (0.55, 0.8), "overlay": (0.6, 0.8)}[family]
    gw, gh = _game_size(rng, lo, hi)
    game = _place(rng, gw, gh, margin=int(rng.integers(0, 30)))
    if family == "small":
        cw, ch = _cam_size(rng, 0.22, 1 / 3)
    else:
        cw, ch = _cam_size(rng, 0.14, 0.26)
    over = rng.random() < 0.5  # the webcam over a corner of the game, as many overlays put it
    spot = None if over else _free_spot(rng, cw, ch, [game])
    if spot is None:  # over the game, but small enough to leave the game in view
        if cw > 0.3 * gw:
            cw, ch = int(0.3 * gw) // 2 * 2, int(0.3 * gw * ch / cw) // 2 * 2
        spot = _corner_of(rng, game, cw, ch, int(rng.integers(6, 24)))
    cam = spot
    if family == "framed" and rng.random() < 0.15:
        cam = None
    return game, game, cam, None, None


def _overlap(a: Rect | None, b: Rect | None, pad: int = 0) -> bool:
    if a is None or b is None:
        return False
    return a.x0 - pad < b.x1 and b.x0 - pad < a.x1 and a.y0 - pad < b.y1 and b.y0 - pad < a.y1


def _free_spot(rng: np.random.Generator, w: int, h: int, taken: list[Rect], tries: int = 24) -> Rect | None:
    """Return a w x h rect inside the frame that overlaps none of `taken`, or None."""
    if w > WIDTH or h > HEIGHT:
        return None
    for _ in range(tries):
        r = _place(rng, w, h, margin=6)
        if not any(_overlap(r, t, 6) for t in taken):
            return r
    return None


def _extras(rng: np.random.Generator, style: Style, occupied: list[Rect], column: Rect | None,
            overlay_ok: bool, protected: list[Rect] | None = None) -> Extras:
    """Place chat, ticker, alert, sub goal and title where they fit; any of them may be absent.

    With overlay_ok, chat that fits nowhere free may lie translucent over the picture, never over
    a `protected` rect (the webcam).
    """
    taken = [r for r in occupied if r is not None]
    chat = None
    chat_alpha = False
    if column is not None and column.width >= 180 and column.height >= 200 and rng.random() < 0.8:
        chat = column
    elif rng.random() < 0.6:
        cw = int(rng.integers(220, 330))
        ch = int(rng.integers(260, HEIGHT - 40))
        x0 = int(rng.integers(8, 30)) if rng.random() < 0.5 else WIDTH - cw - int(rng.integers(8, 30))
        y0 = int(rng.integers(10, HEIGHT - ch - 9))
        r = Rect(x0, y0, x0 + cw, y0 + ch)
        if not any(_overlap(r, t) for t in taken):
            chat = r
        elif overlay_ok and rng.random() < 0.5 and not any(_overlap(r, p) for p in protected or []):
            chat, chat_alpha = r, True  # translucent chat over the picture
    if chat is not None:
        taken.append(chat)
    ticker = None
    if rng.random() < 0.35:
        th = int(rng.integers(24, 38))
        y0 = 0 if rng.random() < 0.5 else HEIGHT - th
        ticker = Rect(0, y0, WIDTH, y0 + th)
    alert = _free_spot(rng, int(rng.integers(300, 460)), int(rng.integers(70, 120)), []) if rng.random() < 0.6 else None
    subgoal = None
    if rng.random() < 0.5:
        subgoal = _free_spot(rng, int(rng.integers(220, 380)), int(rng.integers(30, 46)), taken)
    title = None
    if rng.random() < 0.6:
        title = _free_spot(rng, int(rng.integers(260, 520)), style.font * 2 + 22, taken + [subgoal] if subgoal else taken)
    return Extras(chat, chat_alpha, ticker, alert, subgoal, title, _seed(rng))
