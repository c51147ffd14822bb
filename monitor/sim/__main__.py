"""Run the stand-in on its own: python -m monitor.sim --port 8080 [--scenario small|world-b] [--cache-dir D].

Prints the URL it listens on as one line, then the twitchwatch config lines
that point at it ([twitch]: URLs, client id and secret; [categories]: the
scenario's), which `--write-config PATH` also writes to a file for
`twitchwatch config init --from PATH`; then serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
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
    parser.add_argument("--write-config", type=Path, default=None, metavar="PATH",
                        help="also write the config lines to PATH once serving (for twitchwatch config init --from)")
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
        lines = config_lines(sim)
        print(sim.url)
        print("# twitchwatch config for this stand-in: paste these lines into your twitchwatch.toml")
        print(lines, end="", flush=True)
        if args.write_config is not None:
            try:
                _write(args.write_config, lines)
            except OSError as exc:
                print(f"cannot write {args.write_config}: {exc.strerror or exc}", file=sys.stderr)
                return 1
        stop.wait()
    return 0


def config_lines(sim: StandIn) -> str:
    """Return the [twitch] and [categories] TOML lines that point twitchwatch at this stand-in."""
    scenario = sim.scenario
    lines = ["[twitch]"] + [f"{key} = {json.dumps(value)}" for key, value in sim.twitch_config().items()]
    lines += ["", "[categories]", f"watch = {json.dumps([c.id for c in scenario.categories])}"]
    chatting = [c.id for c in scenario.categories if c.kind == "chatting"]
    if chatting:
        lines.append(f"chatting = {json.dumps(chatting[0])}")
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str) -> None:
    """Write whole or not at all: a script waiting for the file never reads half of it."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
