"""Count the app tokens minted by `dataset build` + two `run --once` against short-lived tokens.

    .venv/bin/python bench/token_mints.py [--scenario small|default] [--token-ttl 60] [--runs 2]

A stand-in whose tokens live --token-ttl seconds (Twitch's live for weeks; 60 s
makes renewal happen within the run), a fresh data dir and SQLite database, an
untrained model activated (the count is about tokens, not accuracy), then the
real CLI in this process: `db upgrade`, `dataset build`, `run --once` x --runs.
Prints tokens minted (the stand-in's own count), Helix requests and 401s.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.sim import StandIn, load_scenario  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="small")
    parser.add_argument("--token-ttl", type=float, default=60.0)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args(argv)

    from monitor.cli import main as cli

    scenario = load_scenario(args.scenario)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, StandIn(
            scenario, cache_dir=args.cache_dir, token_ttl_seconds=args.token_ttl) as sim:
        root = Path(tmp)
        twitch = "\n".join(f"{k} = {json.dumps(v)}" for k, v in sim.twitch_config().items())
        watch = [c.id for c in scenario.categories]
        chatting = next(c.id for c in scenario.categories if c.kind == "chatting")
        config = root / "twitchwatch.toml"
        config.write_text(
            f"[twitch]\n{twitch}\n\n[categories]\nwatch = {json.dumps(watch)}\nchatting = {json.dumps(chatting)}\n\n"
            f"[storage]\ndatabase_url = \"sqlite:///{root / 'tw.db'}\"\ndata_dir = \"{root / 'data'}\"\n\n"
            "[model]\npretrained = \"none\"\n\n[monitor]\nmetrics_port = 0\n")

        def run(*command: str) -> None:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                code = cli([*command, "--config", str(config)])
            if code != 0:
                raise SystemExit(f"twitchwatch {' '.join(command)} exited {code}")
            print(f"  twitchwatch {' '.join(command)}: ok, {sim.counters.tokens_issued} tokens so far, "
                  f"{time.monotonic() - started:.0f}s", flush=True)

        run("db", "upgrade")
        run("dataset", "build")
        _activate_untrained(root / "data", watch)
        for _ in range(args.runs):
            run("run", "--once", "--json")
        helix = sim.counters.requests("/helix/")
        print(json.dumps({
            "scenario": args.scenario, "token_ttl_seconds": args.token_ttl,
            "wall_seconds": round(time.monotonic() - started, 1),
            "tokens_minted": sim.counters.tokens_issued, "helix_requests": helix,
            "helix_401": sim.counters.answers("/helix/", 401),
            "validate_requests": sim.counters.requests("/oauth2/validate"),
        }))
    return 0


def _activate_untrained(data_dir: Path, classes: list[str]) -> None:
    import torch

    from monitor.classify import build_model
    from monitor.model_registry import ModelRegistry
    from trainer.registry import save_model

    torch.manual_seed(0)
    model_id = save_model(data_dir, build_model("squeezenet1_1", len(classes), "none"),
                          {"classes": classes, "arch": "squeezenet1_1", "segments": 3, "frames_per_segment": 2})
    ModelRegistry(data_dir).activate(model_id)


if __name__ == "__main__":
    sys.exit(main())
