"""CPU seconds and frames decoded per sampled frame: decode-everything, the project's sampler, keyframes only.

    python bench/sampler.py [--seconds 12] [--repeat 3] [--json bench/results/sampler.json]

Stand-in video: a stand-in channel's pictures (monitor.sim) encoded with the
stand-in's x264 settings (baseline, no B-frames, one IDR per 2 s segment, as
Twitch's live segments) at 360p and 720p at the stand-in's 10 fps, and at
1080p60 (the same pictures, each shown 6 times), MPEG-TS. Variants, every
one ending in the sampled frames resized to the model's 224x224 (uint8, as
monitor.frames.resize_frame does):
- (a) report: decode every frame, convert and resize every frame, then pick;
- (b) sampler: monitor.frames.decode_sampled (plans from demuxed packets,
      decodes only up to each sampled frame's GOP position, converts only
      sampled frames), then resizes the kept ones;
- (c) keyframes: decode keyframes only (skip_frame NONKEY) and take, per TSN
      segment, the keyframes inside it; a segment spans one 2 s GOP at
      K=6 over 12 s, so it yields K frames, not K*n (the geometry this needs).
Timed round-robin in one run (the machine is noisy): read the ratios.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.frames import decode_sampled, resize_frame, sample_indices  # noqa: E402
from monitor.sim import small_scenario  # noqa: E402
from monitor.sim.compose import ChannelVideo  # noqa: E402
from monitor.sim.encode import ENCODER_OPTIONS  # noqa: E402

GEOMETRIES = (("360p", 640, 360, 10), ("720p", 1280, 720, 10), ("1080p60", 1920, 1080, 60))
SOURCE_FPS = 10
GOP_SECONDS = 2


def encode(pictures: list[np.ndarray], width: int, height: int, fps: int, seconds: int) -> bytes:
    """Encode `seconds` of the pictures (at SOURCE_FPS, repeated to reach `fps`) as the stand-in does."""
    buf = io.BytesIO()
    keyint = fps * GOP_SECONDS
    with av.open(buf, "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.options = {
            **ENCODER_OPTIONS, "x264-params": f"{ENCODER_OPTIONS['x264-params']}:keyint={keyint}:min-keyint={keyint}"}
        for i in range(seconds * fps):
            rgb = pictures[(i * SOURCE_FPS // fps) % len(pictures)]
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(width=width, height=height,
                                                                             format="yuv420p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buf.getvalue()


def report_way(data: bytes, k: int, n: int) -> tuple[int, int]:
    """(a): decode every frame, resize every frame, then pick the sampled ones."""
    with av.open(io.BytesIO(data)) as container:
        resized = [resize_frame(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    picked = [resized[i] for i in sample_indices(len(resized), k, n)]
    return len(resized), len(picked)


def sampler_way(data: bytes, k: int, n: int) -> tuple[int, int]:
    """(b): the project's sampler, then the kept frames resized."""
    sampled = decode_sampled(data, k, n)
    [resize_frame(f) for f in sampled.frames]
    return sampled.decoded, len(sampled.frames)


def keyframe_way(data: bytes, k: int, n: int) -> tuple[int, int]:
    """(c): keyframes only; each TSN segment takes the keyframes that fall inside it."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        packets = [p for p in container.demux(stream) if p.size]
        total = len(packets)
        first_key = next(i for i, p in enumerate(packets) if p.is_keyframe)
        keys = [i - first_key for i, p in enumerate(packets) if p.is_keyframe]
        total -= first_key
        wanted = set()
        for s in range(k):
            lo, hi = s * total // k, (s + 1) * total // k
            wanted.update(x for x in keys if lo <= x < hi)
        ctx = stream.codec_context
        ctx.skip_frame = "NONKEY"
        frames = []
        decoded = 0
        for p in packets[first_key:]:
            if not p.is_keyframe:
                continue
            for f in ctx.decode(p):
                decoded += 1
                frames.append(f.to_ndarray(format="rgb24"))
        for f in ctx.decode(None):
            decoded += 1
            frames.append(f.to_ndarray(format="rgb24"))
    kept = [frames[keys.index(x)] for x in sorted(wanted) if keys.index(x) < len(frames)]
    [resize_frame(f) for f in kept]
    return decoded, len(kept)


WAYS = {"a_report": report_way, "b_sampler": sampler_way, "c_keyframes": keyframe_way}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=12)
    parser.add_argument("--segments", type=int, default=6)
    parser.add_argument("--frames-per-segment", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, default=Path("bench/results/sampler.json"))
    args = parser.parse_args(argv)
    k, n = args.segments, args.frames_per_segment
    scenario = small_scenario()
    game = next(ch for ch in scenario.channels if scenario.rom_for(ch) is not None)
    video = ChannelVideo(scenario, game, "live", args.seconds * SOURCE_FPS)
    pictures = [video.picture(i) for i in range(args.seconds * SOURCE_FPS)]
    rows = []
    print(f"K={k} n={n}, {args.seconds} s captures of {game.login}, median CPU of {args.repeat} round-robin runs")
    print(f"{'video':>8} {'MB':>5} {'variant':>12} {'sampled':>7} {'decoded':>7} {'dec/sample':>10} "
          f"{'CPU ms':>8} {'ms/sample':>9} {'x less CPU':>10}")
    for name, width, height, fps in GEOMETRIES:
        data = encode(pictures, width, height, fps, args.seconds)
        cpu: dict[str, list[float]] = {w: [] for w in WAYS}
        counts = {}
        for _ in range(args.repeat):
            for way, fn in WAYS.items():
                started = time.process_time()
                counts[way] = fn(data, k, n)
                cpu[way].append(time.process_time() - started)
        base = statistics.median(cpu["a_report"])
        for way in WAYS:
            decoded, sampled = counts[way]
            median = statistics.median(cpu[way])
            row = {"video": name, "width": width, "height": height, "fps": fps, "bytes": len(data), "variant": way,
                   "sampled": sampled, "decoded": decoded, "decoded_per_sample": decoded / sampled,
                   "cpu_seconds": median, "cpu_per_sample": median / sampled, "cpu_ratio_vs_report": base / median,
                   "cpu_per_sample_ratio_vs_report": (base / counts["a_report"][1]) / (median / sampled)}
            rows.append(row)
            print(f"{name:>8} {len(data) / 1e6:5.2f} {way:>12} {sampled:7d} {decoded:7d} "
                  f"{decoded / sampled:10.1f} {median * 1000:8.1f} {median / sampled * 1000:9.2f} "
                  f"{base / median:10.1f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"segments": k, "frames_per_segment": n, "seconds": args.seconds,
                                     "rows": rows}, indent=1) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
