"""Augment raw stream frames for training, before `monitor.frames.preprocess`.

    rng = random.Random(0)
    frame = augment(frame, rng)     # RGB uint8 HxWx3 in, RGB uint8 H'xW'x3 out

What live streams vary in, and so what the model should not care about:
- Resolution and scale: the variant picked (160p..1080p) and the layout's
  zoom. A random crop that removes at most `max_cut` of each edge, then a
  random downscale, as a lower-bitrate variant would look.
- Colour: brightness, contrast and saturation of the camera, grading, filters.
- Compression: half the frames go through JPEG at quality 15-75, as streams
  at a low bitrate are blocky and smeared.
- Overlays: webcam boxes, alerts, panels and borders differ from channel to
  channel and cover parts of the picture. Half the frames get one random
  rectangle (2-25% of the frame) in one random colour, so no single region
  (a channel's webcam corner, say) can carry a class. It helps on datasets
  of many channels and hurts on tiny ones (docs/training-notes.md), so
  `train.erase_probability` sets it and the demo turns it off.

What it must keep: the HUD corners (minimap, scoreboard, webcam box) carry
most of the evidence, so crops are shallow, never centre crops. No
horizontal flip: HUD layouts and text are not mirror-symmetric, a flipped
frame is one no stream ever shows.
"""

from __future__ import annotations

import io
import random

import numpy as np
from PIL import Image

MAX_CUT = 0.08  # of each edge: corners move in but stay in frame
MIN_SCALE = 0.5  # smallest downscale, about a 720p frame shown as 360p
SCALE_PROBABILITY = 0.5
COLOR_JITTER = 0.25  # +-25% brightness, contrast, saturation
ERASE_PROBABILITY = 0.5
ERASE_MAX_AREA = 0.25
JPEG_PROBABILITY = 0.5
JPEG_QUALITY = (15, 75)  # blocky low-bitrate streams to clean ones
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def augment(frame: np.ndarray, rng: random.Random, erase_probability: float = ERASE_PROBABILITY) -> np.ndarray:
    """Return a randomly cropped, rescaled, colour-jittered and maybe erased copy of an RGB uint8 frame."""
    out = shallow_crop(frame, rng)
    if rng.random() < SCALE_PROBABILITY:
        out = downscale(out, rng.uniform(MIN_SCALE, 1.0))
    out = color_jitter(out, rng)
    if rng.random() < erase_probability:
        out = random_erase(out, rng)
    if rng.random() < JPEG_PROBABILITY:
        out = compress(out, rng.randint(*JPEG_QUALITY))
    return out


def compress(frame: np.ndarray, quality: int) -> np.ndarray:
    """Return the frame after a JPEG round trip at `quality`: the blocks and smear of a low bitrate."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame)).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def random_erase(frame: np.ndarray, rng: random.Random, max_area: float = ERASE_MAX_AREA) -> np.ndarray:
    """Cover a random rectangle (2% to max_area of the frame) with one random colour, as an overlay would."""
    h, w = frame.shape[:2]
    area = rng.uniform(0.02, max_area) * h * w
    aspect = rng.uniform(0.3, 3.3)
    eh, ew = min(h, max(1, round((area * aspect) ** 0.5))), min(w, max(1, round((area / aspect) ** 0.5)))
    top, left = rng.randint(0, h - eh), rng.randint(0, w - ew)
    out = frame.copy()
    out[top : top + eh, left : left + ew] = [rng.randint(0, 255) for _ in range(3)]
    return out


def shallow_crop(frame: np.ndarray, rng: random.Random, max_cut: float = MAX_CUT) -> np.ndarray:
    """Cut a random 0..max_cut fraction off each edge independently."""
    h, w = frame.shape[:2]
    top, bottom = (int(rng.uniform(0, max_cut) * h) for _ in range(2))
    left, right = (int(rng.uniform(0, max_cut) * w) for _ in range(2))
    return frame[top : h - bottom, left : w - right]


def downscale(frame: np.ndarray, scale: float) -> np.ndarray:
    """Shrink a frame by `scale` (antialiased), losing detail as a low-resolution variant does."""
    h, w = frame.shape[:2]
    size = (max(2, round(w * scale)), max(2, round(h * scale)))
    return np.asarray(Image.fromarray(np.ascontiguousarray(frame)).resize(size, Image.BILINEAR))


def color_jitter(frame: np.ndarray, rng: random.Random, strength: float = COLOR_JITTER) -> np.ndarray:
    """Scale brightness, contrast and saturation by random factors in [1-strength, 1+strength]."""
    brightness, contrast, saturation = (rng.uniform(1 - strength, 1 + strength) for _ in range(3))
    img = frame.astype(np.float32) * brightness
    grey = img @ _LUMA
    img = grey[..., None] + (img - grey[..., None]) * saturation
    img = (img - grey.mean()) * contrast + grey.mean()
    return np.clip(img, 0, 255).astype(np.uint8)
