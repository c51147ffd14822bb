"""Capture a few seconds of a live stream (or a clip) with streamlink.

    cap = capture_stream("https://www.twitch.tv/somechannel", seconds=12, timeout=45)
    cap.data    # MPEG-TS bytes of the smallest variant at least 224 px tall

Two things make this more than `streams()["worst"]`: the variant is the
smallest one that still holds the model's 224 px input (less to download and
decode), and the read has a hard wall-clock cap, because a live read blocks
for as long as the channel shows no new segments (ad breaks, stalls).
Starting `seconds` back from the live edge lets the whole capture come from
segments already in the playlist, so a check does not wait in real time.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from dataclasses import dataclass

from streamlink import Streamlink
from streamlink.exceptions import NoPluginError, PluginError, StreamError

from monitor.errors import CaptureError, OfflineError

log = logging.getLogger(__name__)

MIN_HEIGHT = 224
READ_CHUNK = 64 * 1024
SEGMENT_SECONDS_GUESS = 2.0  # Twitch's live segments; only sets how far back to start
# Variant names streamlink adds as aliases or that carry no video.
_SKIP_NAMES = {"best", "worst", "audio_only", "audio"}
_HEIGHT_IN_NAME = re.compile(r"^(\d{3,4})p")


@dataclass(frozen=True)
class Capture:
    """The captured bytes and how they were obtained."""

    data: bytes
    variant: str
    height: int | None
    wall_seconds: float
    capped: bool  # the wall-clock cap cut the read short

    @property
    def size(self) -> int:
        return len(self.data)


def capture_stream(url: str, *, seconds: float, timeout: float, min_height: int = MIN_HEIGHT) -> Capture:
    """Capture about `seconds` of video from `url` within `timeout` wall-clock seconds."""
    started = time.monotonic()
    session = _session(seconds)
    try:
        streams = _list_streams(session, url)
        heights = {name: _height(name, stream) for name, stream in streams.items()}
        variant, height = choose_variant(heights, min_height)
        log.debug("capture %s: variant %s (%s px)", url, variant, height)
        remaining = timeout - (time.monotonic() - started)
        data, capped = _read_capped(streams[variant], max(remaining, 1.0))
    finally:
        # Each session pools its own connections: one left open per check is a socket leaked per check.
        session.http.close()
    if not data:
        reason = "the wall-clock cap cut it (ad break or stall?)" if capped else "the stream ended at once"
        raise CaptureError(f"no video captured from {url} in {timeout:.0f}s: {reason}")
    return Capture(data, variant, height, time.monotonic() - started, capped)


def choose_variant(heights: dict[str, int | None], min_height: int = MIN_HEIGHT) -> tuple[str, int | None]:
    """Pick the smallest variant at least `min_height` tall (else the tallest one)."""
    usable = {name: h for name, h in heights.items() if name not in _SKIP_NAMES and h}
    if not usable:
        named = [name for name in heights if name not in _SKIP_NAMES]
        if not named:
            raise CaptureError("the stream offers no video variant")
        return named[0], None
    tall_enough = {name: h for name, h in usable.items() if h >= min_height}
    if tall_enough:
        name = min(tall_enough, key=lambda n: (tall_enough[n], n))
    else:
        name = max(usable, key=lambda n: (usable[n], n))
    return name, usable[name]


def _session(seconds: float) -> Streamlink:
    session = Streamlink()
    segments_back = max(1, math.ceil(seconds / SEGMENT_SECONDS_GUESS))
    session.set_option("hls-live-edge", segments_back)
    session.set_option("stream-segmented-duration", float(seconds))
    session.set_option("hls-playlist-reload-attempts", 2)
    session.set_option("stream-segment-attempts", 2)
    return session


def _list_streams(session: Streamlink, url: str) -> dict:
    try:
        streams = session.streams(url)
    except NoPluginError:
        raise CaptureError(f"streamlink has no plugin for {url}") from None
    except (PluginError, StreamError, OSError) as exc:
        if "404" in str(exc):
            raise OfflineError(f"{url} is offline (404)") from None
        raise CaptureError(f"streamlink could not open {url}: {exc}") from None
    if not streams:
        raise OfflineError(f"{url} is offline (no streams)")
    return streams


def _height(name: str, stream: object) -> int | None:
    match = _HEIGHT_IN_NAME.match(name)
    if match:
        return int(match.group(1))
    multivariant = getattr(stream, "multivariant", None)
    for playlist in getattr(multivariant, "playlists", []) or []:
        if playlist.uri == getattr(stream, "url", None) and playlist.stream_info.resolution:
            return playlist.stream_info.resolution.height or None
    return None


def _read_capped(stream: object, timeout: float) -> tuple[bytes, bool]:
    """Read the stream to its end, or until `timeout`; return (bytes, capped)."""
    chunks: list[bytes] = []
    failure: list[BaseException] = []
    try:
        fd = stream.open()  # type: ignore[attr-defined]
    except (StreamError, OSError) as exc:
        if "404" in str(exc):
            raise OfflineError(f"stream went offline before capture ({exc})") from None
        raise CaptureError(f"cannot open the stream: {exc}") from None

    def reader() -> None:
        try:
            while True:
                chunk = fd.read(READ_CHUNK)
                if not chunk:
                    return
                chunks.append(chunk)
        except (OSError, ValueError, StreamError) as exc:  # ValueError: read after close
            failure.append(exc)

    thread = threading.Thread(target=reader, name="capture-read", daemon=True)
    thread.start()
    thread.join(timeout)
    capped = thread.is_alive()
    fd.close()  # unblocks the reader; streamlink's worker threads stop with it
    thread.join(5.0)
    if failure and not chunks and not capped:
        raise CaptureError(f"reading the stream failed: {failure[0]}")
    return b"".join(chunks), capped
