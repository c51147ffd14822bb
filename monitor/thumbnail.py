"""Pre-screen a live stream on its Helix thumbnail: a few kB of JPEG instead of seconds of video.

    frame, size = fetch_thumbnail(stream.thumbnail_url)          # RGB uint8, JPEG bytes downloaded
    clip = classifier.score([frame])
    settles(verdict, min_confidence=0.9)                         # True: no video needed

Only a confident agreement settles a check: a thumbnail that disagrees with
the declared category, or is not sure, sends the check on to video, so a
mismatch is never decided, and never missed, on a thumbnail alone.
"""

from __future__ import annotations

import io

import numpy as np
import requests
from PIL import Image

from monitor.errors import CaptureError
from monitor.verdict import Outcome, Verdict

WIDTH, HEIGHT = 400, 225  # the smallest 16:9 size at least the model's 224 px tall
TIMEOUT_SECONDS = 10.0


def thumbnail_url(template: str, width: int = WIDTH, height: int = HEIGHT) -> str:
    """Fill Helix's {width}x{height} placeholders."""
    return template.replace("{width}", str(width)).replace("{height}", str(height))


def fetch_thumbnail(template: str, *, session: requests.Session | None = None,
                    timeout: float = TIMEOUT_SECONDS) -> tuple[np.ndarray, int]:
    """Download and decode a stream's thumbnail; return the RGB frame and the bytes downloaded."""
    url = thumbnail_url(template)
    try:
        response = (session or requests).get(url, timeout=timeout)
    except requests.RequestException as exc:
        raise CaptureError(f"thumbnail {url} could not be fetched: {exc}") from None
    if response.status_code != 200:
        raise CaptureError(f"thumbnail {url} answered HTTP {response.status_code}")
    return decode_jpeg(response.content), len(response.content)


def decode_jpeg(data: bytes) -> np.ndarray:
    """Decode JPEG bytes to RGB uint8 HxWx3."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise CaptureError(f"thumbnail is not a readable image: {exc}") from None


def settles(verdict: Verdict, min_confidence: float) -> bool:
    """Whether a thumbnail's verdict is enough: an agreement at least `min_confidence` sure."""
    return verdict.outcome == Outcome.AGREE and verdict.confidence is not None and verdict.confidence >= min_confidence
