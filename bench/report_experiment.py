"""Reproduce the report's experiment on the stand-in's default scenario, end to end.

    python bench/report_experiment.py --workdir /tmp/twitchwatch-report [--epochs N] [--minutes-per-setting 30]

Starts the stand-in (8 categories, 10+ channels each, 2 clips per channel),
then runs the real commands in this process: `db upgrade`, `dataset build`,
`train --json`, `experiment --json`; prints each one's wall time. A second
run reuses the dataset (the build resumes) unless --fresh.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from cli_helpers import write_config  # noqa: E402

from monitor.cli import main as twitchwatch  # noqa: E402
from monitor.sim import StandIn, default_scenario  # noqa: E402


def timed(label: str, argv: list[str]) -> float:
    started = time.monotonic()
    code = twitchwatch(argv)
    seconds = time.monotonic() - started
    print(f"== {label}: exit {code}, {seconds:.1f}s", flush=True)
    if code != 0:
        sys.exit(code)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", default="/tmp/twitchwatch-report")
    parser.add_argument("--epochs", type=int, default=None, help="default: train.epochs")
    parser.add_argument("--minutes-per-setting", type=float, default=30.0)
    parser.add_argument("--train-minutes", type=float, default=30.0)
    parser.add_argument("--skip-train", action="store_true", help="only the experiment (its K=6/n=3 row is `train`)")
    parser.add_argument("--fresh", action="store_true", help="delete the work directory first")
    parser.add_argument("--skip-experiment", action="store_true")
    parser.add_argument("--dataset-only", action="store_true", help="stop after the dataset build")
    args = parser.parse_args()
    work = Path(args.workdir)
    if args.fresh:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    scenario = default_scenario()
    with StandIn(scenario) as sim:
        cfg = write_config(work / "twitchwatch.toml", {
            "twitch": sim.twitch_config(),
            "categories": {"watch": [c.id for c in scenario.categories], "chatting": "509658"},
            "storage": {"database_url": f"sqlite:///{work / 'tw.db'}", "data_dir": str(work / "data")},
            "model": {"pretrained": "none"},
            "dataset": {"streamers_per_category": 10, "clips_per_channel": 2},
        })
        common = ["--config", str(cfg)]
        times = {"db upgrade": timed("db upgrade", ["db", "upgrade", *common])}
        times["dataset build"] = timed("dataset build", ["dataset", "build", *common])
        if args.dataset_only:
            print(json.dumps({k: round(v, 1) for k, v in times.items()}))
            return
        epochs = ["--epochs", str(args.epochs)] if args.epochs else []
        if not args.skip_train:
            times["train"] = timed("train", ["train", "--json", *epochs, "--max-minutes", str(args.train_minutes),
                                             *common])
        if not args.skip_experiment:
            times["experiment"] = timed("experiment", [
                "experiment", *epochs, "--max-minutes-per-setting", str(args.minutes_per_setting), *common])
    print(json.dumps({k: round(v, 1) for k, v in times.items()}))


if __name__ == "__main__":
    main()
