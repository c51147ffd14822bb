"""Sample frames the way Temporal Segment Networks do, decode them, preprocess them.

    idx = sample_indices(120, segments=6, frames_per_segment=3)        # 18 indices
    sampled = decode_sampled(capture.data, 6, 3)                      # RGB frames at those indices
    batch = preprocess(sampled.frames)                                # (18, 3, 224, 224) float32

Training and inference share this module: the same sampler (train mode draws
at random inside each sub-block, test mode takes the centres) and the same
`preprocess`, so the model never sees frames prepared differently from the
ones it is scored on.

Decoding is planned before it starts. One demux pass over the packets (no
decoding) counts the frames and orders them by presentation time; container
metadata and seeks are not trusted (MPEG-TS has neither a frame count nor
accurate seeks). Then only the packets that a sampled frame needs are decoded:
non-reference frames that are not sampled are skipped by the decoder, whole
GOPs holding no sampled frame are not fed at all, decoding stops after the
last sampled frame, and only sampled frames are converted to RGB.
"""

from __future__ import annotations

import io
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
import torch
from torchvision.transforms.v2 import functional as tvf

from monitor.errors import DecodeError

log = logging.getLogger(__name__)

INPUT_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Recorded in every model card so a model states how its inputs were made.
PREPROCESSING = {
    "input_size": INPUT_SIZE,
    "resize": "whole frame squashed to 224x224, bilinear, antialiased (no crop: HUD corners stay)",
    "color": "RGB",
    "mean": list(IMAGENET_MEAN),
    "std": list(IMAGENET_STD),
}
MODES = ("train", "test")


def preprocessing(size: int = INPUT_SIZE) -> dict:
    """Return the card's `preprocessing` record for a model fed size x size inputs."""
    if size == INPUT_SIZE:
        return PREPROCESSING
    return {**PREPROCESSING, "input_size": size,
            "resize": f"{PREPROCESSING['resize']}, then to {size}x{size} (bilinear, antialiased)"}


def sample_indices(
    total_frames: int,
    segments: int,
    frames_per_segment: int,
    mode: str = "test",
    rng: random.Random | None = None,
) -> list[int]:
    """Return segments*frames_per_segment non-decreasing frame indices in [0, total_frames).

    The clip is cut into `segments` equal segments and each segment into
    `frames_per_segment` equal sub-blocks, so K*n equal sub-blocks overall.
    Test mode takes the frame holding each sub-block's centre; train mode a
    uniformly random frame of each sub-block. Short clips repeat indices.
    """
    if total_frames <= 0:
        raise ValueError(f"total_frames must be positive, got {total_frames}")
    if segments <= 0 or frames_per_segment <= 0:
        raise ValueError(f"segments and frames_per_segment must be positive, got {segments}, {frames_per_segment}")
    if mode not in MODES:
        raise ValueError(f"mode must be 'train' or 'test', got {mode!r}")
    blocks = segments * frames_per_segment
    if mode == "test":
        # Frame i spans [i, i+1): the centre (m + 1/2) * T / B lies in frame floor of it.
        return [((2 * m + 1) * total_frames) // (2 * blocks) for m in range(blocks)]
    rng = rng or random.Random()
    out = []
    for m in range(blocks):
        lo = m * total_frames // blocks
        hi = max((m + 1) * total_frames // blocks, lo + 1)  # a clip shorter than K*n: one frame per block
        out.append(rng.randrange(lo, hi))
    return out


@dataclass
class SampledFrames:
    """The sampled frames of one video and what decoding them cost."""

    frames: list[np.ndarray]  # RGB uint8 HxWx3 at the video's native size, in index order
    indices: list[int]  # index of each returned frame (parallel to frames), presentation order
    total_frames: int  # frames in the video, counted from its first keyframe (earlier ones cannot decode)
    decode_errors: int  # packets/frames that failed to decode or came out corrupt
    requested: list[int] = field(default_factory=list)  # the K*n indices asked for
    decoded: int = 0  # frames the decoder actually produced (the cost)


@dataclass
class _Packet:
    packet: av.Packet
    index: int = -1  # presentation index
    gop: int = 0


def decode_sampled(
    source: str | Path | bytes | BinaryIO,
    segments: int,
    frames_per_segment: int,
    mode: str = "test",
    rng: random.Random | None = None,
) -> SampledFrames:
    """Decode the TSN-sampled frames of a video (MPEG-TS bytes, a path, or a file object).

    Frames are counted from demuxed packets, starting at the first keyframe.
    `decode_errors` counts frames lost to corruption (holes in the frame
    clock), packets the decoder rejected and frames it had to conceal; the
    rest still decode. A sampled frame that cannot be produced is left out,
    so `len(frames)` may be below K*n: the caller decides if enough remain.
    Raises DecodeError when there is no video stream or nothing decodable.
    """
    container = _open(source)
    try:
        if not container.streams.video:
            raise DecodeError(f"no video stream in {_describe(source)}")
        stream = container.streams.video[0]
        packets, demux_errors = _demux(container, stream)
        if not packets:
            raise DecodeError(f"no video frames in {_describe(source)}")
        requested = sample_indices(len(packets), segments, frames_per_segment, mode, rng)
        images, errors, decoded = _decode(stream, packets, set(requested))
    finally:
        container.close()
    if not images:
        raise DecodeError(f"nothing decodable in {_describe(source)} ({errors + demux_errors} decode errors)")
    kept = [i for i in requested if i in images]
    return SampledFrames(
        frames=[images[i] for i in kept],
        indices=kept,
        total_frames=len(packets),
        decode_errors=errors + demux_errors,
        requested=requested,
        decoded=decoded,
    )


def preprocess(frames: Sequence[np.ndarray], size: int = INPUT_SIZE) -> torch.Tensor:
    """Turn RGB uint8 HxWx3 frames into the model's (N, 3, size, size) float32 input.

    Each whole frame is resized (bilinear, antialiased, to uint8) to 224x224
    and normalised with the ImageNet mean and std. A model trained at another
    `size` (its card's `input_size`) gets the 224x224 frame resized again to
    size x size: datasets and kept live frames are stored at 224, so every
    frame, stored or just decoded, takes the same two steps. Augmentations belong
    before this call, on the raw frames. The tensor is laid out channels-last
    in memory (same shape and values): CPU convolutions run about twice as
    fast on it, and the frames arrive that way from HxWx3 arrays anyway.
    """
    if not frames:
        return torch.empty((0, 3, size, size), dtype=torch.float32)
    out = torch.empty((len(frames), 3, size, size), dtype=torch.float32).contiguous(
        memory_format=torch.channels_last
    )
    # Frames of one video share a size: resize them as one batch.
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, frame in enumerate(frames):
        _check_frame(frame, i)
        by_shape.setdefault(frame.shape, []).append(i)
    for positions in by_shape.values():
        batch = torch.from_numpy(np.stack([frames[i] for i in positions])).permute(0, 3, 1, 2)
        resized = _resize(batch)
        if size != INPUT_SIZE:
            resized = tvf.resize(resized, [size, size], antialias=True)
        out[positions] = resized.float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return out.sub_(mean).div_(std)


def resize_frame(frame: np.ndarray) -> np.ndarray:
    """Return the frame resized to 224x224 RGB uint8 exactly as `preprocess` resizes it.

    For storing dataset frames small: preprocess(resize_frame(f)) equals
    preprocess(f) bit for bit, so stored frames cannot skew training.
    """
    _check_frame(frame, 0)
    batch = torch.from_numpy(np.ascontiguousarray(frame)[None]).permute(0, 3, 1, 2)
    return _resize(batch)[0].permute(1, 2, 0).contiguous().numpy()


def _resize(batch: torch.Tensor) -> torch.Tensor:
    """Resize an (N, 3, H, W) uint8 batch to the input size: bilinear, antialiased, uint8 out."""
    return tvf.resize(batch, [INPUT_SIZE, INPUT_SIZE], antialias=True)


def _check_frame(frame: np.ndarray, position: int) -> None:
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame {position} must be RGB uint8 HxWx3, got {frame.dtype} {frame.shape}")


def _open(source: str | Path | bytes | BinaryIO) -> av.container.InputContainer:
    try:
        if isinstance(source, (bytes, bytearray, memoryview)):
            if not len(source):
                raise DecodeError("no video data: the capture is empty")
            return av.open(io.BytesIO(bytes(source)), mode="r")
        if isinstance(source, (str, Path)):
            return av.open(str(source), mode="r")
        return av.open(source, mode="r")
    except av.error.FileNotFoundError:
        raise DecodeError(f"video file not found: {source}") from None
    except (av.error.FFmpegError, ValueError) as exc:
        raise DecodeError(f"cannot read {_describe(source)} as video: {exc}") from None


def _describe(source: object) -> str:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"the {len(source)}-byte capture"
    return str(getattr(source, "name", source))


def _demux(container: av.container.InputContainer, stream: av.VideoStream) -> tuple[list[_Packet], int]:
    """Read every video packet (no decoding), order them; return them and the frames lost."""
    packets: list[_Packet] = []
    errors = 0
    try:
        for packet in container.demux(stream):
            if packet.size:
                packets.append(_Packet(packet))
    except av.error.FFmpegError as exc:
        # Keep what came before: a damaged tail should not cost the whole capture.
        log.debug("demux stopped early: %s", exc)
        errors += 1
    first_key = next((i for i, p in enumerate(packets) if p.packet.is_keyframe), 0)
    # Frames before the first keyframe reference pictures the capture does not hold.
    packets = packets[first_key:]
    errors += _order(packets)
    return packets, errors


def _order(packets: list[_Packet]) -> int:
    """Set presentation indices and GOP numbers from timestamps, in place; return frames lost.

    Decode order differs from presentation order when there are B-frames.
    Timestamps that go back at a keyframe (concatenated segments that restart
    their clock, or the 33-bit MPEG-TS wrap) start a new run; runs follow
    each other. Without timestamps, decode order is taken as presentation order.
    """
    run = gop = 0
    run_max: int | None = None
    keys: list[tuple[int, int, int]] = []
    have_pts = all(p.packet.pts is not None for p in packets)
    for pos, p in enumerate(packets):
        pts = p.packet.pts if have_pts else pos
        if p.packet.is_keyframe and pos:
            gop += 1
            if run_max is not None and pts <= run_max:
                run, run_max = run + 1, None
        run_max = pts if run_max is None else max(run_max, pts)
        p.gop = gop
        keys.append((run, pts, pos))
    keys.sort()
    for index, (_, _, pos) in enumerate(keys):
        packets[pos].index = index
    return _lost_frames(keys) if have_pts else 0


def _lost_frames(keys: list[tuple[int, int, int]]) -> int:
    """Count frames missing from the timestamp sequence (their packets did not survive demuxing).

    The demuxer drops a damaged packet without a trace and flags intact ones
    at segment joins, so holes in the frame clock are the honest measure.
    """
    steps = [b[1] - a[1] for a, b in zip(keys, keys[1:], strict=False) if a[0] == b[0] and b[1] > a[1]]
    if not steps:
        return 0
    frame = sorted(steps)[len(steps) // 2]
    return sum(round(step / frame) - 1 for step in steps if step > 1.5 * frame)


def _decode(
    stream: av.VideoStream, packets: list[_Packet], wanted: set[int]
) -> tuple[dict[int, np.ndarray], int, int]:
    """Decode just enough packets to produce the wanted frames; return {index: rgb}, errors, decoded."""
    ctx = stream.codec_context
    ctx.copy_opaque = True  # each frame carries its packet's presentation index back out
    feed = _packets_to_feed(packets, wanted)
    images: dict[int, np.ndarray] = {}
    errors = decoded = 0
    for p in feed:
        p.packet.opaque = p.index
        # Non-reference frames nobody asked for need not be decoded at all.
        ctx.skip_frame = "DEFAULT" if p.index in wanted else "NONREF"
        try:
            frames = ctx.decode(p.packet)
        except av.error.FFmpegError as exc:
            log.debug("packet %d does not decode: %s", p.index, exc)
            errors += 1
            continue
        decoded, errors = _collect(frames, wanted, images, decoded, errors)
    try:
        ctx.skip_frame = "DEFAULT"
        decoded, errors = _collect(ctx.decode(None), wanted, images, decoded, errors)
    except av.error.FFmpegError as exc:
        log.debug("decoder flush failed: %s", exc)
        errors += 1
    return images, errors, decoded


def _packets_to_feed(packets: list[_Packet], wanted: set[int]) -> list[_Packet]:
    """Return the packets, in decode order, that the wanted frames depend on."""
    last = max((pos for pos, p in enumerate(packets) if p.index in wanted), default=-1)
    needed_gops = {p.gop for p in packets if p.index in wanted}
    key_index: dict[int, int] = {}
    for p in packets:
        key_index.setdefault(p.gop, p.index)
    # An open GOP's leading frames (shown before its keyframe) reference the GOP before it.
    for p in packets:
        if p.index in wanted and p.index < key_index[p.gop]:
            needed_gops.add(p.gop - 1)
    return [p for p in packets[: last + 1] if p.gop in needed_gops]


def _collect(
    frames: list[av.VideoFrame], wanted: set[int], images: dict[int, np.ndarray], decoded: int, errors: int
) -> tuple[int, int]:
    """Convert the wanted frames to RGB; return the updated decoded and error counts."""
    for frame in frames:
        decoded += 1
        # Concealed frames (a reference was lost) are still mostly right: keep them, count them.
        errors += frame.is_corrupt
        index = frame.opaque
        if index in wanted and index not in images:
            images[index] = frame.to_ndarray(format="rgb24")
    return decoded, errors
