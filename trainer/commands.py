"""The trainer's subcommands, registered into `twitchwatch` through an entry point.

monitor's CLI calls `register(command)` for every `twitchwatch.commands`
entry point; this keeps the import arrow pointing from trainer to monitor.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable

from monitor.config import Config
from monitor.errors import UsageError

Command = Callable[[str, str, Callable[[argparse.Namespace, Config], int]], argparse.ArgumentParser]


def register(command: Command) -> None:
    dataset = command("dataset", "build the training set from top channels' clips", _cmd_dataset)
    dataset.add_argument("action", choices=["build", "stats"],
                         help="build: fetch clips, extract frames, split (resumable); "
                              "stats: clips, frames, sources and bytes per category")
    dataset.add_argument("--json", action="store_true", help="with stats: print one JSON object")

    train = command("train", "train a classifier on the dataset, evaluate, register and activate it", _cmd_train)
    train.add_argument("--epochs", type=int, default=None, help="training epochs (default: train.epochs)")
    train.add_argument("--max-minutes", type=float, default=None, metavar="MINUTES",
                       help="the epochs' time budget (default: train.max_minutes); "
                            "fewer epochs are planned when they cannot all fit")
    train.add_argument("--json", action="store_true", help="print the result as one JSON object")

    experiment = command("experiment", "rerun the report's K/n settings on the frozen test clips, with paired tests",
                         _cmd_experiment)
    experiment.add_argument("--epochs", type=int, default=None, help="training epochs per setting (default: train.epochs)")
    experiment.add_argument("--max-minutes-per-setting", type=float, default=None, metavar="MINUTES",
                            help="stop each setting's training after this long (evaluation comes on top)")
    experiment.add_argument("--json", action="store_true", help="print the results as one JSON object")

    retrain = command("retrain", "train a challenger; promote it only if it passes the gate against the active model "
                                 "on the test set (retrain.*)", _cmd_retrain)
    retrain.add_argument("--epochs", type=int, default=None, help="training epochs (default: train.epochs)")
    retrain.add_argument("--json", action="store_true", help="print the result as one JSON object")

    models = command("models", "list registered models, or activate one (rollback)", _cmd_models)
    models.add_argument("action", nargs="?", choices=["list", "activate"], default="list")
    models.add_argument("model_id", nargs="?", help="with activate: the model to make active")
    models.add_argument("--json", action="store_true", help="print the list as JSON")

    demo = command("demo", "the whole loop on this machine against a local Twitch stand-in", _cmd_demo)
    demo.add_argument("--scenario", default="small",
                      help="stand-in scenario: small (3 categories, a few minutes), default (the report's 8 "
                           "categories, 85 channels: longer), or a JSON file")
    demo.add_argument("--workdir", default="twitchwatch-demo", help="where the demo's database, dataset and models go")
    demo.add_argument("--cycles", type=int, default=None, help="poll cycles to run (default: monitor.confirmations)")
    demo.add_argument("--epochs", type=int, default=None, help="training epochs (default: sized to the scenario)")


def _cmd_dataset(args: argparse.Namespace, cfg: Config) -> int:
    if args.action == "stats":
        from trainer.dataset_stats import dataset_stats

        stats = dataset_stats(cfg.data_path)
        print(json.dumps(stats.to_json(), indent=2) if args.json else stats.table())
        return 0
    if args.json:
        raise UsageError("twitchwatch dataset: --json goes with stats")
    _single_process_only("dataset")
    from monitor.helix import HelixClient
    from trainer.dataset import build_dataset

    report = build_dataset(cfg, HelixClient(cfg.twitch))
    print(report.table())
    return 0


def _cmd_train(args: argparse.Namespace, cfg: Config) -> int:
    from trainer.pipeline import train_and_register
    from trainer.train import TrainingSpec

    _check_epochs("train", args.epochs)
    if args.max_minutes is not None and args.max_minutes <= 0:
        raise UsageError("twitchwatch train: --max-minutes must be positive")
    say = _progress("train") if args.json else print
    max_seconds = args.max_minutes * 60 if args.max_minutes else None
    spec = TrainingSpec.from_config(cfg, epochs=args.epochs, max_seconds=max_seconds)
    result = train_and_register(cfg, spec, say=say)
    if args.json and result is not None:  # None: a rank of torchrun other than 0 (trainer/distributed.py)
        print(json.dumps(result, indent=2))
    return 0


def _cmd_experiment(args: argparse.Namespace, cfg: Config) -> int:
    _single_process_only("experiment")
    from trainer.experiment import run_experiment

    _check_epochs("experiment", args.epochs)
    minutes = args.max_minutes_per_setting
    if minutes is not None and not minutes > 0:
        raise UsageError("twitchwatch experiment: --max-minutes-per-setting must be positive")
    say = _progress("experiment") if args.json else print
    report = run_experiment(cfg, epochs=args.epochs, max_seconds_per_setting=minutes and minutes * 60, say=say)
    print(json.dumps(report.to_json(), indent=2) if args.json else report.table())
    return 0


def _cmd_retrain(args: argparse.Namespace, cfg: Config) -> int:
    _single_process_only("retrain")
    from trainer.retrain import retrain

    _check_epochs("retrain", args.epochs)
    say = _progress("retrain") if args.json else print
    result = retrain(cfg, epochs=args.epochs, say=say)
    if args.json:
        print(json.dumps(result, indent=2))
    return 0


def _check_epochs(name: str, epochs: int | None) -> None:
    if epochs is not None and epochs <= 0:
        raise UsageError(f"twitchwatch {name}: --epochs must be positive")


def _cmd_models(args: argparse.Namespace, cfg: Config) -> int:
    from monitor.model_registry import ModelRegistry

    registry = ModelRegistry(cfg.data_path)
    if args.action == "activate":
        if not args.model_id:
            raise UsageError("twitchwatch models activate: name the model id (see `twitchwatch models`)")
        registry.activate(args.model_id)
        print(f"active model: {args.model_id}")
        return 0
    cards = registry.list()
    if args.json:
        print(json.dumps(cards, indent=2))
        return 0
    if not cards:
        print(f"no models in {cfg.data_path / 'models'}: run `twitchwatch train`")
    for card in cards:
        acc = card.get("test_accuracy")
        print(f"{'*' if card.get('active') else ' '} {card.get('model_id', '?')}  {card.get('arch', '?')}  "
              f"test accuracy {'n/a' if acc is None else f'{acc:.1%}'}  classes {len(card.get('classes', []))}")
    return 0


def _cmd_demo(args: argparse.Namespace, cfg: Config) -> int:
    _single_process_only("demo")
    from trainer.demo import run_demo

    return run_demo(cfg, scenario=args.scenario, workdir=args.workdir, cycles=args.cycles, epochs=args.epochs)


def _single_process_only(command: str) -> None:
    from trainer.distributed import single_process_only  # imports torch: only for the commands that train

    single_process_only(command)


def _progress(command: str) -> Callable[[str], None]:
    """Return where --json sends progress: INFO log lines on stderr, in --log-format; stdout keeps only the JSON."""
    return logging.getLogger(f"trainer.{command}").info
