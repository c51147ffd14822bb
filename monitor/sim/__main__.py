"""Run the stand-in on its own: python -m monitor.sim --port 8080 [--scenario small|world-b] [--cache-dir D].

Prints the URL it listens on as one line, then serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from monitor.sim.server import StandIn, default_cache_dir
from monitor.sim.worlds import load_scenario


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, serve until a signal, return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m monitor.sim", description="Run the local Twitch stand-in.")
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--scenario", default="default", help="default, small, world-a, world-b, holdout-a, holdout-b, or a scenario JSON file")
    parser.add_argument("--cache-dir", type=Path, default=None, help=f"segment cache (default {default_cache_dir()})")
    args = parser.parse_args(argv)
    try:
        scenario = load_scenario(args.scenario)
    except (OSError, ValueError) as exc:
        print(f"cannot load scenario {args.scenario}: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        sim = StandIn(scenario, cache_dir=args.cache_dir, port=args.port)
    except OSError as exc:
        print(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    with sim:
        print(sim.url, flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
