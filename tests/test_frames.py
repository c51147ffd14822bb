"""TSN sampling, one-pass sampled decoding of MPEG-TS, and the shared preprocessing."""

from __future__ import annotations

import io
import random

import av
import numpy as np
import pytest
import torch

from monitor.errors import DecodeError
from monitor.frames import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    INPUT_SIZE,
    decode_sampled,
    preprocess,
    resize_frame,
    sample_indices,
)

W, H = 128, 96


def painted(i: int) -> np.ndarray:
    """Return a frame whose 8 vertical stripes spell i in binary (robust to H.264 loss)."""
    img = np.zeros((H, W, 3), np.uint8)
    for bit in range(8):
        if i >> bit & 1:
            img[:, bit * W // 8 : (bit + 1) * W // 8] = 255
    return img


def number(frame: np.ndarray) -> int:
    """Read back the number painted by `painted`."""
    w = frame.shape[1]
    return sum(1 << b for b in range(8) if frame[:, b * w // 8 + 3 : (b + 1) * w // 8 - 3].mean() > 128)


def make_ts(frames: int, *, gop: int = 12, bframes: int = 2, start: int = 0) -> bytes:
    """Encode frames numbered start.. as H.264 in MPEG-TS, with B-frames (decode order != display order)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.codec_context.options = {"bf": str(bframes), "preset": "ultrafast", "sc_threshold": "0"}
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(painted(start + i), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


@pytest.fixture(scope="module")
def ts100() -> bytes:
    return make_ts(100)


# --- sample_indices -------------------------------------------------------------------------------


@pytest.mark.parametrize("total", [1, 2, 5, 17, 18, 19, 100, 1001])
@pytest.mark.parametrize(("k", "n"), [(1, 1), (3, 3), (6, 3), (12, 5)])
@pytest.mark.parametrize("mode", ["train", "test"])
def test_sampler_returns_k_times_n_sorted_indices_in_range(total, k, n, mode):
    idx = sample_indices(total, k, n, mode, random.Random(total))
    assert len(idx) == k * n
    assert idx == sorted(idx)
    assert all(0 <= i < total for i in idx)


@pytest.mark.parametrize(("total", "k", "n"), [(100, 6, 3), (37, 3, 3), (1000, 12, 5), (19, 6, 3)])
def test_train_indices_fall_inside_their_sub_blocks(total, k, n):
    blocks = k * n
    for seed in range(20):
        for m, i in enumerate(sample_indices(total, k, n, "train", random.Random(seed))):
            lo, hi = m * total / blocks, (m + 1) * total / blocks
            # frame i spans [i, i+1): it must overlap the sub-block
            assert i + 1 > lo and i < hi


def test_train_indices_cover_each_sub_block_at_random():
    rng = random.Random(0)
    draws = [sample_indices(100, 2, 1, "train", rng) for _ in range(1000)]
    assert {a for a, _ in draws} == set(range(50))
    assert {b for _, b in draws} == set(range(50, 100))


@pytest.mark.parametrize(("total", "k", "n"), [(100, 6, 3), (90, 3, 3), (37, 4, 2), (7, 6, 3)])
def test_test_indices_are_the_frames_at_sub_block_centres(total, k, n):
    blocks = k * n
    idx = sample_indices(total, k, n, "test")
    for m, i in enumerate(idx):
        centre = (m + 0.5) * total / blocks
        assert i <= centre < i + 1


def test_test_indices_are_symmetric_about_segment_centre():
    # 90 frames, 3 segments of 30, 3 sub-blocks of 10: centres 5, 15, 25 in the first segment
    assert sample_indices(90, 3, 3, "test") == [5, 15, 25, 35, 45, 55, 65, 75, 85]
    for seg in range(3):
        first, middle, last = sample_indices(90, 3, 3, "test")[seg * 3 : seg * 3 + 3]
        assert first + last == 2 * middle == 2 * (seg * 30 + 15)


def test_one_frame_per_segment_is_the_segment_centre():
    assert sample_indices(120, 6, 1, "test") == [10, 30, 50, 70, 90, 110]
    assert sample_indices(7, 1, 1, "test") == [3]


def test_short_clip_repeats_indices():
    assert sample_indices(2, 3, 2, "test") == [0, 0, 0, 1, 1, 1]
    idx = sample_indices(3, 6, 3, "train", random.Random(1))
    assert len(idx) == 18 and set(idx) <= {0, 1, 2} and idx == sorted(idx)


def test_train_sampling_is_deterministic_with_a_seeded_rng():
    a = sample_indices(500, 6, 3, "train", random.Random(42))
    b = sample_indices(500, 6, 3, "train", random.Random(42))
    c = sample_indices(500, 6, 3, "train", random.Random(43))
    assert a == b != c


@pytest.mark.parametrize("bad", [0, -5])
def test_sampler_rejects_empty_clips(bad):
    with pytest.raises(ValueError):
        sample_indices(bad, 2, 2)


def test_sampler_rejects_unknown_mode():
    with pytest.raises(ValueError):
        sample_indices(10, 2, 2, "val")


# --- decode_sampled -------------------------------------------------------------------------------


def test_decode_returns_the_sampled_frames_in_presentation_order(ts100):
    sampled = decode_sampled(ts100, 6, 3)
    assert sampled.total_frames == 100
    assert sampled.decode_errors == 0
    assert sampled.indices == sampled.requested == sample_indices(100, 6, 3, "test")
    assert [number(f) for f in sampled.frames] == sampled.indices
    assert all(f.shape == (H, W, 3) and f.dtype == np.uint8 for f in sampled.frames)


def test_decode_train_mode_follows_the_rng(ts100):
    sampled = decode_sampled(ts100, 4, 2, "train", random.Random(7))
    assert sampled.indices == sample_indices(100, 4, 2, "train", random.Random(7))
    assert [number(f) for f in sampled.frames] == sampled.indices


def test_decode_skips_frames_no_sample_needs(ts100):
    sampled = decode_sampled(ts100, 2, 1)
    assert [number(f) for f in sampled.frames] == [25, 75]
    # two frames sampled from two GOPs: the other GOPs are never decoded, nor what follows frame 75
    assert sampled.decoded < 40


def test_decode_reads_files_and_file_objects(tmp_path, ts100):
    path = tmp_path / "capture.ts"
    path.write_bytes(ts100)
    for source in (path, str(path), io.BytesIO(ts100)):
        sampled = decode_sampled(source, 3, 1)
        assert [number(f) for f in sampled.frames] == [16, 50, 83]


def test_decode_concatenated_segments_with_restarting_clocks():
    # Segments muxed one by one start their timestamps again; order must follow the bytes.
    data = b"".join(make_ts(20, gop=10, start=s * 20) for s in range(3))
    sampled = decode_sampled(data, 6, 1)
    assert sampled.total_frames == 60
    assert [number(f) for f in sampled.frames] == sampled.indices == [5, 15, 25, 35, 45, 55]


def test_decode_survives_corrupt_bytes_in_the_middle(ts100):
    data = bytearray(ts100)
    rng = random.Random(3)
    start = len(data) * 2 // 5
    for i in range(start, start + len(data) // 10):
        data[i] = rng.randrange(256)
    sampled = decode_sampled(bytes(data), 6, 3)
    assert sampled.decode_errors > 0
    assert 0 < len(sampled.frames) <= 18
    assert len(sampled.indices) == len(sampled.frames)
    # frames before the damage still come out right
    early = [(i, number(f)) for i, f in zip(sampled.indices, sampled.frames, strict=True) if i < 30]
    assert early and all(i == n for i, n in early)


@pytest.mark.parametrize(
    "data", [b"", b"hello world" * 100, bytes(random.Random(0).randrange(256) for _ in range(20000))]
)
def test_decode_garbage_raises_decode_error(data):
    with pytest.raises(DecodeError):
        decode_sampled(data, 6, 3)


def test_decode_without_video_stream_raises_decode_error():
    buf = io.BytesIO()
    with av.open(buf, "w", format="mpegts") as out:
        stream = out.add_stream("mp2", rate=48000)
        for i in range(20):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1152), np.int16), format="s16", layout="mono")
            frame.sample_rate, frame.pts = 48000, i * 1152
            for packet in stream.encode(frame):
                out.mux(packet)
    with pytest.raises(DecodeError, match="no video stream"):
        decode_sampled(buf.getvalue(), 2, 1)


def test_decode_missing_file_raises_decode_error(tmp_path):
    with pytest.raises(DecodeError, match="not found"):
        decode_sampled(tmp_path / "nope.ts", 2, 1)


# --- preprocess -----------------------------------------------------------------------------------


def test_preprocess_shape_dtype_and_imagenet_normalisation():
    frames = [np.full((H, W, 3), (255, 128, 0), np.uint8), np.full((360, 640, 3), 64, np.uint8)]
    batch = preprocess(frames)
    assert batch.shape == (2, 3, INPUT_SIZE, INPUT_SIZE) and batch.dtype == torch.float32
    for channel, value in enumerate((255, 128, 0)):
        expected = (value / 255 - IMAGENET_MEAN[channel]) / IMAGENET_STD[channel]
        assert torch.allclose(batch[0, channel], torch.tensor(expected), atol=1e-5)
    assert torch.allclose(batch[1, 0], torch.tensor((64 / 255 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]), atol=1e-5)


def test_preprocess_squashes_the_whole_frame_keeping_corners():
    frame = np.zeros((360, 640, 3), np.uint8)
    frame[:36, -64:] = 255  # a HUD box in the top-right corner
    batch = preprocess([frame])
    white = (1 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]
    assert batch[0, 0, 5, -5] == pytest.approx(white, abs=1e-3)
    assert batch[0, 0, -5, 5] < 0


def test_preprocess_rejects_non_rgb_uint8():
    with pytest.raises(ValueError):
        preprocess([np.zeros((10, 10), np.uint8)])
    with pytest.raises(ValueError):
        preprocess([np.zeros((10, 10, 3), np.float32)])
    assert preprocess([]).shape == (0, 3, INPUT_SIZE, INPUT_SIZE)


def test_capture_starting_mid_gop_counts_from_the_first_keyframe(ts100):
    # A capture can start anywhere in the stream; frames before the first keyframe cannot decode.
    packet = 188
    tail = ts100[(len(ts100) // 3) // packet * packet :]
    sampled = decode_sampled(tail, 3, 2)
    first = number(sampled.frames[0]) - sampled.indices[0]
    assert first % 12 == 0 and first > 0  # the stream's GOP is 12 frames
    assert sampled.total_frames == 100 - first
    assert len(sampled.frames) == 6
    assert [number(f) - first for f in sampled.frames] == sampled.indices


def test_resized_frames_preprocess_exactly_like_the_originals():
    # The dataset stores frames at 224x224; training on them must equal training on the originals.
    rng = np.random.default_rng(4)
    frames = [rng.integers(0, 255, (360, 640, 3), dtype=np.uint8), rng.integers(0, 255, (160, 284, 3), dtype=np.uint8)]
    small = [resize_frame(f) for f in frames]
    assert all(s.shape == (INPUT_SIZE, INPUT_SIZE, 3) and s.dtype == np.uint8 for s in small)
    assert torch.equal(preprocess(small), preprocess(frames))
