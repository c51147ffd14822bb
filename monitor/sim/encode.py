"""Encode a channel's frames into 2 s MPEG-TS H.264 segments, lazily, cached on disk.

    store = SegmentStore(scenario, cache_dir)
    ts = store.segment(channel, "live", "360p", 3)   # bytes of loop segment 3, timestamps from 6 s
    rgb = store.frame(channel, "live", 61)            # the picture a thumbnail shows

A segment is rendered and encoded the first time anyone asks for it and kept
under cache_dir/segments/<code>/<login>-<key>/, where code hashes the source of
every module that draws or encodes and key hashes the rest of what shapes its
bytes: the channel's content fields, the scenario's timing, the variant and
the encoder settings. Directories of other code versions are deleted once
they have been idle for a day. Segment k of a run starts with an IDR frame at PTS k * segment
length; the server moves timestamps when it serves a looped segment later.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image

from monitor.sim import camera, compose, game, looks, overlay, people, scenes, stage, transport, worlds
from monitor.sim.compose import ChannelVideo
from monitor.sim.scenario import Channel, Scenario

log = logging.getLogger(__name__)

TICKS = 90_000  # MPEG-TS clock


@dataclass(frozen=True)
class Variant:
    name: str
    width: int
    height: int
    bandwidth: int
    codecs: str


VARIANTS = {
    v.name: v for v in (
        Variant("160p", 284, 160, 230_000, "avc1.42C015"),
        Variant("360p", 640, 360, 630_000, "avc1.42C01E"),
        Variant("720p", 1280, 720, 2_500_000, "avc1.42C01F"),
    )
}
STILL = Variant("still", 1280, 720, 0, "")  # full-size JPEG frames behind thumbnails
# No B-frames and one IDR per segment: every segment decodes on its own, as Twitch's do.
ENCODER_OPTIONS = {
    "preset": "ultrafast", "tune": "zerolatency", "crf": "25", "profile": "baseline",
    "x264-params": "bframes=0:scenecut=0",
}
STALE_SECONDS = 86400
MAX_VIDEOS = 6  # channel renderers kept in memory (a live run's screens are ~50 MB)


def code_version() -> str:
    """Hash the source of every module that shapes a segment's bytes."""
    digest = hashlib.sha256(av.__version__.encode())
    for module in (camera, compose, game, looks, overlay, people, scenes, stage, transport, worlds):
        digest.update(Path(module.__file__).read_bytes())
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()[:16]


class SegmentStore:
    """Render, encode and cache segments; safe to call from many server threads."""

    def __init__(self, scenario: Scenario, cache_dir: Path, max_encoders: int | None = None):
        self.scenario = scenario
        self.cache_dir = Path(cache_dir)
        self.version = code_version()
        _prune_other_versions(self.cache_dir / "segments", keep=self.version)
        self._videos: OrderedDict[tuple[str, str], ChannelVideo] = OrderedDict()
        self._locks: dict[tuple, threading.Lock] = {}
        self._guard = threading.Lock()
        self._encoders = threading.Semaphore(max_encoders or os.cpu_count() or 2)

    def run_frames(self, run: str) -> int:
        """Return how many frames a run has: the live loop, or one clip."""
        segments = self.scenario.live_loop_segments if run == "live" else self.scenario.clip_segments
        return segments * self.scenario.frames_per_segment

    def segment(self, channel: Channel, run: str, variant: str, index: int) -> bytes:
        """Return loop/clip segment `index` of a channel run, encoding it if not cached."""
        path = self._path(channel, run, VARIANTS[variant], index)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        with self._lock(("segment", path)):
            if path.exists():
                return path.read_bytes()
            with self._encoders:
                data = self._encode(channel, run, VARIANTS[variant], index)
            _write_atomic(path, data)
            return data

    def frame(self, channel: Channel, run: str, index: int) -> np.ndarray:
        """Return frame `index` of a run as (720, 1280, 3) RGB."""
        return self._video(channel, run).frame(index)

    def still(self, channel: Channel, run: str, index: int, siblings: tuple[int, ...] = ()) -> bytes:
        """Return frame `index` of a run as a cached 1280x720 JPEG; on a miss also cache `siblings`.

        Rendering needs the channel's whole renderer in memory, so a miss pays for
        the other frames thumbnails will ask for later while it is there.
        """
        path = self._still_path(channel, run, index)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        with self._lock(("still", channel.login, run)):
            if path.exists():
                return path.read_bytes()
            wanted = b""
            for other in (index, *siblings):
                other_path = self._still_path(channel, run, other)
                if other == index or not other_path.exists():
                    buf = io.BytesIO()
                    Image.fromarray(self.frame(channel, run, other)).save(buf, "JPEG", quality=88)
                    _write_atomic(other_path, buf.getvalue())
                    wanted = wanted or buf.getvalue()
            return wanted

    def key(self, channel: Channel, run: str, variant: Variant) -> str:
        """Hash what shapes a run's segments in this variant."""
        s = self.scenario
        content = {
            "seed": channel.seed, "display_name": channel.display_name, "rom": s.rom_for(channel),
            "fps": s.fps, "segment_seconds": s.segment_seconds, "frames": self.run_frames(run), "run": run,
            "variant": [variant.width, variant.height], "encoder": self.encoder_options(channel), "code": self.version,
        }
        if s.world:  # a world's posters show any of its games and its overlays the title: both shape pictures
            content.update(world=s.world, posters=stage.poster_roms(s), title=channel.title)
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]

    def encoder_options(self, channel: Channel) -> dict[str, str]:
        """Return the x264 options of a channel: a named world's channels each have their own CRF."""
        if not self.scenario.world:
            return ENCODER_OPTIONS
        crf = stage.look_of(self.scenario, channel).encode.crf
        return {**ENCODER_OPTIONS, "crf": str(crf)}

    def _path(self, channel: Channel, run: str, variant: Variant, index: int) -> Path:
        key = self.key(channel, run, variant)
        return (self.cache_dir / "segments" / self.version / f"{channel.login}-{key}" / run / variant.name
                / f"{index:05d}.ts")

    def _still_path(self, channel: Channel, run: str, index: int) -> Path:
        return self._path(channel, run, STILL, index).with_suffix(".jpg")

    def _encode(self, channel: Channel, run: str, variant: Variant, index: int) -> bytes:
        video = self._video(channel, run)
        per = self.scenario.frames_per_segment
        buf = io.BytesIO()
        with av.open(buf, "w", format="mpegts") as container:
            stream = container.add_stream("libx264", rate=self.scenario.fps)
            stream.width, stream.height, stream.pix_fmt = variant.width, variant.height, "yuv420p"
            options = self.encoder_options(channel)
            stream.codec_context.options = {
                **options, "x264-params": f"{options['x264-params']}:keyint={per}:min-keyint={per}",
            }
            for i in range(per):
                rgb = av.VideoFrame.from_ndarray(video.picture(index * per + i), format="rgb24")
                if video.source is not None and video.source[1] < variant.height:
                    # Up from the streamer's own resolution, as frame() shows it; a variant no taller
                    # than the source is scaled straight down, which looks the same and costs half.
                    rgb = rgb.reformat(width=video.source[0], height=video.source[1], format="yuv420p")
                frame = rgb.reformat(width=variant.width, height=variant.height, format="yuv420p")
                frame.pts = index * per + i
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        return transport.pad_continuity(buf.getvalue())

    def _video(self, channel: Channel, run: str) -> ChannelVideo:
        key = (channel.login, run)
        with self._guard:
            if key in self._videos:
                self._videos.move_to_end(key)
                return self._videos[key]
        with self._lock(("video",) + key):
            with self._guard:
                if key in self._videos:
                    return self._videos[key]
            video = ChannelVideo(self.scenario, channel, run, self.run_frames(run), self.cache_dir)
            with self._guard:
                self._videos[key] = video
                while len(self._videos) > MAX_VIDEOS:
                    self._videos.popitem(last=False)
            return video

    @contextmanager
    def _lock(self, key: tuple) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            yield


def _prune_other_versions(root: Path, keep: str) -> None:
    """Delete segments that older code wrote and nobody has added to for a day: the cache stays bounded."""
    try:
        stale = [d for d in root.iterdir() if d.is_dir() and d.name != keep and time.time() - d.stat().st_mtime > STALE_SECONDS]
    except OSError:
        return
    for directory in stale:
        shutil.rmtree(directory, ignore_errors=True)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename; a cache that cannot be written only costs speed."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    except OSError as exc:
        log.warning("stand-in cache not writable (%s): serving without caching", exc)
        return
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("stand-in cache write failed (%s): serving without caching", exc)
    finally:
        Path(tmp).unlink(missing_ok=True)  # gone already after a successful rename
