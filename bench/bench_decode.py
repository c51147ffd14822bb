"""Time monitor.frames.decode_sampled against decoding every frame to RGB.

    /work/venv/bin/python bench/bench_decode.py [--repeat 5]

The input is made here: 12 s of 640x360 video at 10 fps (120 frames), H.264
with B-frames and a 2 s GOP (as Twitch streams are), in MPEG-TS, with moving
textured content so the decoder has real work. The naive baseline is what a
straightforward implementation does: decode every frame, convert each to RGB,
then pick the sampled ones.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.frames import decode_sampled, sample_indices  # noqa: E402

SECONDS, FPS, WIDTH, HEIGHT = 12, 10, 640, 360


def make_capture() -> bytes:
    """Encode the synthetic capture: a scrolling texture with a moving box."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (HEIGHT, WIDTH * 2, 3), dtype=np.uint8)
    buf = io.BytesIO()
    with av.open(buf, "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.gop_size = 2 * FPS
        stream.codec_context.options = {"bf": "2", "preset": "veryfast", "crf": "23", "sc_threshold": "0"}
        for i in range(SECONDS * FPS):
            img = texture[:, i * 4 : i * 4 + WIDTH].copy()
            img[100:200, (i * 5) % 500 : (i * 5) % 500 + 100] = (255, 200, 0)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def naive(data: bytes, segments: int, frames_per_segment: int) -> list[np.ndarray]:
    """Decode every frame to RGB, then keep the sampled ones."""
    with av.open(io.BytesIO(data)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return [frames[i] for i in sample_indices(len(frames), segments, frames_per_segment, "test")]


def timed(fn, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    data = make_capture()
    print(f"capture: {SECONDS} s, {WIDTH}x{HEIGHT}, {FPS} fps, {len(data) / 1e6:.2f} MB MPEG-TS; "
          f"median of {args.repeat} runs")
    for k, n in ((6, 3), (3, 3), (12, 5), (2, 1)):
        sampled = decode_sampled(data, k, n)
        expected = naive(data, k, n)
        assert all(np.array_equal(a, b) for a, b in zip(sampled.frames, expected, strict=True)), "frames differ"
        t_sampled = timed(lambda k=k, n=n: decode_sampled(data, k, n), args.repeat)
        t_naive = timed(lambda k=k, n=n: naive(data, k, n), args.repeat)
        print(f"K={k:<2} n={n}: decode_sampled {t_sampled * 1000:7.1f} ms ({sampled.decoded:3d} frames decoded, "
              f"{len(sampled.frames):2d} to RGB)   naive {t_naive * 1000:7.1f} ms (120 decoded, 120 to RGB)   "
              f"ratio {t_naive / t_sampled:.2f}x")


if __name__ == "__main__":
    main()
