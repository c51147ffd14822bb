"""Measure what matters to users: train on one stand-in world, judge streams of another it never saw.

    python bench/generalize.py --workdir /tmp/twgen                       # worlds A -> B, seed 0, defaults
    python bench/generalize.py --seeds 0,1,2 --epochs 8 --json gen.json   # 3 seeds, 8 epochs
    python bench/generalize.py --split holdout                            # one game never in training: open set
    python bench/generalize.py --train-scenario small --test-scenario small --epochs 2   # a quick smoke run

World A trains: `db upgrade`, `dataset build` and `train --json` run against a
stand-in serving A, as a user runs them. World B judges: its clips (labelled
by what they really show, not by what they declare) score the model clip by
clip, and two `run --once` cycles against a stand-in serving B's live
channels open the flags, which are compared with B's ground truth. A and B
share the categories and nothing visual (`monitor.sim.worlds`), so the
figures measure skill, not memory of a look.

Per seed it prints, and writes as JSON (`--json`):
- clip / frame accuracy and ECE (after the model's temperature) on B's clips
  of known categories, and the same on A's own frozen test clips for contrast;
- flag precision and recall against B's mislabeled live channels; the share
  of true flags that name what is really on screen ("right game"; for a game
  outside every category the right answer is "gameplay"); open-set channels
  caught; honest Just Chatting channels flagged; live checks whose prediction
  was right and how many came out unsure.
The summary row gives the mean and the spread (min..max) over seeds, next to
the goals of the generalization issue. Datasets are built once per work
directory and reused (the build resumes); every seed trains a new model.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from cli_helpers import write_config  # noqa: E402

from monitor.cli import main as twitchwatch  # noqa: E402
from monitor.model_registry import ModelRegistry  # noqa: E402
from monitor.sim import Scenario, StandIn, load_scenario  # noqa: E402
from monitor.sim.worlds import other_game_categories  # noqa: E402
from monitor.store import Store  # noqa: E402
from trainer.clip import Clip  # noqa: E402
from trainer.dataset import load_dataset  # noqa: E402
from trainer.evaluate import evaluate_model  # noqa: E402

SPLITS = {"worlds": ("world-a", "world-b"), "holdout": ("holdout-a", "holdout-b")}
# The generalization issue's "must show" goals: metric -> (goal, higher is better).
GOALS = {
    "clip_accuracy": (0.95, True),
    "flag_precision": (0.9, True),
    "flag_recall": (0.9, True),
    "right_game": (0.8, True),
    "open_set_caught": (1.0, True),
    "jc_false_flags": (0, False),
    "ece": (0.05, False),
}
COLUMNS = ("seed", "clip_accuracy", "frame_accuracy", "ece", "a_test_accuracy", "flag_precision",
           "flag_recall", "right_game", "open_set_caught", "jc_false_flags", "flags", "live_check_accuracy",
           "live_unsure", "train_seconds")


@dataclass
class World:
    """One stand-in world and the files a user would keep for it."""

    name: str
    scenario: Scenario
    sim: StandIn
    root: Path

    @property
    def watched(self) -> list[str]:
        """The categories a user of this world watches: all it lists but the unwatched other games."""
        others = {c.id for c in other_game_categories(self.scenario.world)}
        return [c.id for c in self.scenario.categories if c.id not in others]

    @property
    def chatting(self) -> str:
        return next(c.id for c in self.scenario.categories if c.kind == "chatting")

    def config(self, filename: str, *, database: str, data_dir: Path, **sections: dict) -> Path:
        """Write a config pointing at this world's stand-in; `sections` add or override keys."""
        per_category = max(sum(1 for ch in self.scenario.channels if ch.declared_game_id == c.id)
                           for c in self.scenario.categories)
        base = {
            "twitch": self.sim.twitch_config(),
            "categories": {"watch": self.watched, "chatting": self.chatting},
            "storage": {"database_url": f"sqlite:///{self.root / database}", "data_dir": str(data_dir)},
            "model": {"pretrained": "none"},
            "dataset": {"streamers_per_category": per_category, "clips_per_channel": 2},
            "monitor": {"streams_per_category": per_category, "capture_seconds": 8},
        }
        for section, values in sections.items():
            base.setdefault(section, {}).update(values)
        return write_config(self.root / filename, base)


def cli(argv: list[str]) -> str:
    """Run one twitchwatch command in this process; return its stdout, stop the bench if it fails."""
    out = io.StringIO()
    started = time.monotonic()
    with contextlib.redirect_stdout(out):
        code = twitchwatch(argv)
    print(f"== twitchwatch {' '.join(a for a in argv if not a.endswith('.toml'))}: exit {code}, "
          f"{time.monotonic() - started:.1f}s", file=sys.stderr, flush=True)
    if code != 0:
        sys.exit(f"twitchwatch {' '.join(argv)} failed with exit {code}")
    return out.getvalue()


def build_clips(world: World, data_dir: Path, database: str, dataset_options: dict | None = None) -> Path:
    """Build a world's clip dataset (resumes when already built); return its config."""
    cfg = world.config(f"{world.name}-clips.toml", database=database, data_dir=data_dir,
                       dataset=dataset_options or {})
    cli(["db", "upgrade", "--config", str(cfg)])
    cli(["dataset", "build", "--config", str(cfg)])
    return cfg


def truth_clips(world: World, data_dir: Path, classes: Sequence[str]) -> tuple[list[Clip], list[Clip]]:
    """Return the world's clips relabelled by what they show: (known categories, games outside them)."""
    data = load_dataset(data_dir)
    by_user = {ch.user_id: ch for ch in world.scenario.channels}
    known, unknown = [], []
    for clip in [*data.train, *data.test]:
        truth = world.scenario.truth(by_user[clip.channel].login)
        if truth.shown_game_id is None or truth.shown_game_id not in classes:
            unknown.append(clip)
        else:
            known.append(Clip(clip.clip_id, truth.shown_game_id, clip.channel, clip.frames))
    return known, unknown


def flag_metrics(world: World, flags: list[dict], observations: list[dict]) -> dict:
    """Compare flags and checks with the world's ground truth."""
    scenario = world.scenario
    live = [ch for ch in scenario.channels if ch.live]
    mislabeled = {ch.login for ch in live if scenario.truth(ch.login).mislabeled}
    open_set = {login for login in mislabeled if scenario.truth(login).shown_game_id is None}
    honest_jc = {ch.login for ch in live if ch.declared_game_id == world.chatting and ch.login not in mislabeled}
    flagged = {f["user_login"]: f for f in flags}
    true_flags = [f for login, f in flagged.items() if login in mislabeled]
    right = sum(1 for f in true_flags if f["predicted_game_id"] == scenario.truth(f["user_login"]).shown_game_id)
    completed = [o for o in observations if o["outcome"] in ("agree", "mismatch", "unsure")]
    right_checks = sum(1 for o in completed if _check_right(world, o))
    return {
        "flags": len(flagged),
        "true_flags": len(true_flags),
        "mislabeled": len(mislabeled),
        "flag_precision": len(true_flags) / len(flagged) if flagged else None,
        "flag_recall": len(true_flags) / len(mislabeled) if mislabeled else None,
        "right_game": right / len(true_flags) if true_flags else None,
        "open_set_caught": len(open_set & set(flagged)) / len(open_set) if open_set else None,
        "open_set_channels": len(open_set),
        "jc_false_flags": len(honest_jc & set(flagged)),
        "honest_jc_channels": len(honest_jc),
        "live_checks": len(completed),
        "live_check_accuracy": right_checks / len(completed) if completed else None,
        "live_unsure": sum(1 for o in completed if o["outcome"] == "unsure") / len(completed) if completed else None,
        "false_flags": sorted(login for login in flagged if login not in mislabeled),
        "missed": sorted(mislabeled - set(flagged)),
        "wrong_game": sorted(f["user_login"] for f in true_flags
                             if f["predicted_game_id"] != scenario.truth(f["user_login"]).shown_game_id),
    }


def _check_right(world: World, observation: dict) -> bool:
    """Whether one check named what is on screen: the category, or "gameplay" for an unknown game."""
    shown = world.scenario.truth(observation["user_login"]).shown_game_id
    if observation["outcome"] == "unsure":
        return False
    if shown is None:
        return observation["predicted_label"] == "gameplay"
    return observation["predicted_game_id"] == shown


def train_on(world: World, data_dir: Path, seed: int, epochs: int | None, max_minutes: float | None,
             train_options: dict | None = None) -> tuple[dict, float]:
    """Run `train --json` on a world's dataset with one seed; return its JSON and the wall seconds."""
    train_cfg = world.config(f"train-s{seed}.toml", database="a.db", data_dir=data_dir,
                             train={"seed": seed, **(train_options or {})})
    argv = ["train", "--json", "--config", str(train_cfg)]
    if max_minutes:
        argv[1:1] = ["--max-minutes", str(max_minutes)]
    if epochs:
        argv[1:1] = ["--epochs", str(epochs)]
    started = time.monotonic()
    trained = json.loads(cli(argv))
    return trained, time.monotonic() - started


def run_seed(seed: int, a: World, b: World, a_data: Path, b_clips: tuple[list[Clip], list[Clip]],
             epochs: int | None, max_minutes: float | None, train_options: dict | None = None) -> dict:
    """Train on A with one seed, score B's clips, run two cycles on B's live channels."""
    trained, train_seconds = train_on(a, a_data, seed, epochs, max_minutes, train_options)
    classifier = ModelRegistry(a_data).load(trained["model_id"])
    known, _unknown = b_clips
    held_out = evaluate_model(classifier, known)

    run_cfg = b.config(f"run-s{seed}.toml", database=f"run-s{seed}.db", data_dir=a_data,
                       retain={"enabled": False})
    (b.root / f"run-s{seed}.db").unlink(missing_ok=True)
    cli(["db", "upgrade", "--config", str(run_cfg)])
    cycles = [json.loads(cli(["run", "--once", "--json", "--config", str(run_cfg)])) for _ in range(2)]
    flags = json.loads(cli(["flags", "--json", "--all", "--config", str(run_cfg)]))
    with Store(f"sqlite:///{b.root / f'run-s{seed}.db'}") as store:
        observations = store.observations(limit=100_000)
    return {
        "seed": seed,
        "model_id": trained["model_id"],
        "clip_accuracy": held_out.clip_accuracy,
        "frame_accuracy": held_out.frame_accuracy,
        "ece": held_out.ece_after,
        "ece_before": held_out.ece_before,
        "b_clips": held_out.clips,
        "a_test_accuracy": trained["test_accuracy"],
        "train_accuracy": trained["train_accuracy"],
        "train_seconds": round(train_seconds, 1),
        "temperature": trained["temperature"],
        "cycles": cycles,
        "wrong_clips": sorted(f"{o.label}->{o.predicted}" for o in held_out.outcomes if not o.correct),
        **flag_metrics(b, flags, observations),
    }


def options(pairs: Sequence[str], flag: str = "--train-option") -> dict:
    """Parse KEY=VALUE pairs into config keys; values are read as JSON where they parse (numbers, bools)."""
    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            sys.exit(f"{flag} wants KEY=VALUE, got {pair!r}")
        try:
            parsed[key] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key] = value
    return parsed


def summarise(rows: list[dict]) -> dict:
    """Return metric -> {mean, min, max} over the seeds (metrics some seed lacks are left out)."""
    out = {}
    for key in COLUMNS[1:]:
        values = [r[key] for r in rows if r.get(key) is not None]
        if values:
            out[key] = {"mean": statistics.fmean(values), "min": min(values), "max": max(values)}
    return out


def table(rows: list[dict], summary: dict) -> str:
    def cell(value: object) -> str:
        if value is None:
            return "n/a"
        if isinstance(value, float):
            return f"{value:.3f}" if value < 10 else f"{value:.0f}"
        return str(value)

    lines = ["  ".join(f"{c:>14}" for c in COLUMNS)]
    lines += ["  ".join(f"{cell(r.get(c)):>14}" for c in COLUMNS) for r in rows]
    spread = [f"{'mean':>14}"] + [
        f"{cell(summary[c]['mean']) if c in summary else 'n/a':>14}" for c in COLUMNS[1:]]
    lines.append("  ".join(spread))
    lines.append("  ".join([f"{'min..max':>14}"] + [
        f"{cell(summary[c]['min']) + '..' + cell(summary[c]['max']) if c in summary else 'n/a':>14}"
        for c in COLUMNS[1:]]))
    goals = []
    for key, (goal, higher) in GOALS.items():
        if key in summary:
            worst = summary[key]["min"] if higher else summary[key]["max"]
            ok = worst >= goal if higher else worst <= goal
            goals.append(f"{key} {'>=' if higher else '<='} {goal}: {'met' if ok else 'NOT met'} (worst {cell(worst)})")
    return "\n".join(lines + ["goals (every seed):"] + ["  " + g for g in goals])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default="/tmp/twitchwatch-generalize")
    parser.add_argument("--split", choices=sorted(SPLITS), default="worlds")
    parser.add_argument("--train-scenario", help="overrides --split: a scenario name or JSON file")
    parser.add_argument("--test-scenario", help="overrides --split: a scenario name or JSON file")
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds")
    parser.add_argument("--epochs", type=int, help="default: train.epochs")
    parser.add_argument("--max-minutes", type=float, help="training time budget per seed (default: train.max_minutes)")
    parser.add_argument("--train-option", action="append", default=[], metavar="KEY=VALUE",
                        help="a [train] key for the training config, e.g. input_size=160 (repeatable)")
    parser.add_argument("--dataset-option", action="append", default=[], metavar="KEY=VALUE",
                        help="a [dataset] key for world A's build, e.g. other_games=0 (repeatable; use a "
                             "workdir of its own: a build resumes what the workdir holds)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--dataset-only", action="store_true", help="build both worlds' datasets and stop")
    args = parser.parse_args(argv)
    train_name, test_name = SPLITS[args.split]
    train_name, test_name = args.train_scenario or train_name, args.test_scenario or test_name
    seeds = [int(s) for s in args.seeds.split(",")]
    train_keys = options(args.train_option)
    dataset_keys = options(args.dataset_option, "--dataset-option")
    work = Path(args.workdir)
    (work / "A").mkdir(parents=True, exist_ok=True)
    (work / "B").mkdir(parents=True, exist_ok=True)
    with StandIn(load_scenario(train_name)) as sim_a, StandIn(load_scenario(test_name)) as sim_b:
        a = World("A", sim_a.scenario, sim_a, work / "A")
        b = World("B", sim_b.scenario, sim_b, work / "B")
        a_data, b_data = a.root / "data", b.root / "clipdata"
        build_clips(a, a_data, "a.db", dataset_keys)
        build_clips(b, b_data, "b-clips.db")
        classes = load_dataset(a_data).classes
        b_clips = truth_clips(b, b_data, classes)
        print(f"A ({train_name}): {len(a.scenario.channels)} channels; B ({test_name}): "
              f"{len(b.scenario.channels)} channels, {len(b_clips[0])} clips of known categories, "
              f"{len(b_clips[1])} of other games", flush=True)
        if args.dataset_only:
            return 0
        rows = []
        for seed in seeds:
            rows.append(run_seed(seed, a, b, a_data, b_clips, args.epochs, args.max_minutes,
                                 train_keys))
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "cycles"}), flush=True)
    summary = summarise(rows)
    print(f"trained on {train_name}, judged on {test_name}, epochs {args.epochs or 'default'}")
    print(table(rows, summary))
    if args.json:
        args.json.write_text(json.dumps({"train": train_name, "test": test_name, "epochs": args.epochs,
                                         "train_options": train_keys, "dataset_options": dataset_keys,
                                         "rows": rows, "summary": summary}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
