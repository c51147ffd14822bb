"""Time the Twitch stand-in: first (cold-cache) and cached start, and 12 s captures cold and warm.

    /work/venv/bin/python bench/bench_standin.py [--scenario default|small|world-b|...] [--thumbnails]

"Start" is lazy: the server is up at once and renders + encodes a segment the
first time someone asks for it. So a start is timed up to the moment the first
playlists and newest segment of a channel are served. A capture is what
monitor/capture.py does: real streamlink, the 360p variant, starting 6
segments back from the live edge, 12 s of video. Each run uses a fresh cache
directory (cold), then a second StandIn on the same directory (warm).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import av
import requests
from streamlink import Streamlink

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.sim import Scenario, StandIn, load_scenario  # noqa: E402
from monitor.sim.worlds import SCENARIO_NAMES  # noqa: E402


def first_segment(sim: StandIn, login: str) -> int:
    """Fetch what a player fetches first: multivariant, 360p playlist, newest segment; return bytes."""
    session = requests.Session()
    session.get(sim.stream_url.format(user_login=login)).raise_for_status()
    text = session.get(f"{sim.url}/live/{login}/360p/index.m3u8").text
    newest = [line for line in text.splitlines() if line.endswith(".ts")][-1]
    answer = session.get(f"{sim.url}/live/{login}/360p/{newest}")
    answer.raise_for_status()
    return len(answer.content)


def capture(sim: StandIn, login: str, seconds: float = 12.0) -> tuple[float, int, int]:
    """Capture like monitor/capture.py; return (wall seconds, bytes, decoded frames)."""
    started = time.perf_counter()
    session = Streamlink()
    session.set_option("hls-live-edge", 6)
    session.set_option("stream-segmented-duration", seconds)
    stream = session.streams(sim.stream_url.format(user_login=login))["360p"]
    with stream.open() as fd:
        data = b"".join(iter(lambda: fd.read(65536), b""))
    wall = time.perf_counter() - started
    with av.open(io.BytesIO(data)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    return wall, len(data), frames


def timed_start(scenario: Scenario, cache: Path, logins: list[str]) -> tuple[float, list[float]]:
    """Start a StandIn; return (seconds until serving, seconds until each login's first segment)."""
    t0 = time.perf_counter()
    sim = StandIn(scenario, cache_dir=cache).start()
    up = time.perf_counter() - t0
    firsts = []
    try:
        for login in logins:
            first_segment(sim, login)
            firsts.append(time.perf_counter() - t0)
    finally:
        sim.close()
    return up, firsts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=SCENARIO_NAMES, default="default")
    parser.add_argument("--thumbnails", action="store_true", help="also time a thumbnail of every live channel")
    args = parser.parse_args()
    scenario = load_scenario(args.scenario)
    game = next(c.login for c in scenario.channels if scenario.rom_for(c))
    chatting = next(c.login for c in scenario.channels if scenario.rom_for(c) is None)
    captured = next(c.login for c in reversed(scenario.channels) if scenario.rom_for(c) and c.login != game)
    print(f"scenario {args.scenario}: {len(scenario.categories)} categories, {len(scenario.channels)} channels")
    with tempfile.TemporaryDirectory(prefix="standin-bench-") as tmp:
        cache = Path(tmp)
        for label in ("first start (cold cache)", "cached start"):
            up, (t_game, t_chat) = timed_start(scenario, cache, [game, chatting])
            print(f"{label:26s} server up {up:6.3f} s | first playlist+segment: game channel {t_game:6.2f} s, "
                  f"then a Just Chatting channel {t_chat - t_game:6.2f} s more")
        for label in ("12 s capture, cold", "12 s capture, warm"):
            with StandIn(scenario, cache_dir=cache) as sim:
                wall, size, frames = capture(sim, captured)
            print(f"{label:26s} {wall:6.2f} s  ({size / 1e6:.2f} MB, {frames} frames decoded)")
        if args.thumbnails:
            for label in ("thumbnails of all, cold", "thumbnails of all, warm"):
                with StandIn(scenario, cache_dir=cache) as sim:
                    t0 = time.perf_counter()
                    for channel in scenario.channels:
                        url = f"{sim.url}/previews/live_user_{channel.login}-320x180.jpg"
                        requests.get(url).raise_for_status()
                    print(f"{label:26s} {time.perf_counter() - t0:6.2f} s for {len(scenario.channels)} channels")
        size = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())
        print(f"cache on disk after the runs: {size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
