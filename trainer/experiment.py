"""Rerun the report's experiment: three TSN settings on the same frozen test clips, paired tests between them.

    report = run_experiment(cfg, epochs=8, max_seconds_per_setting=1800)
    print(report.table())            # or report.to_json()

The report trained SqueezeNet 1.0 on clip frames at K=3/n=3, K=6/n=3 and
K=12/n=5 and measured 63%, 75% and 68% test accuracy with about 99% train
accuracy. Here each setting is trained by the same pipeline as `twitchwatch
train` (same validation split, seed and config), evaluated on the dataset's
frozen test clips, and saved in the registry without being activated.
Because all settings see the same test clips, they are compared pairwise
with McNemar's exact test on per-clip correctness: with ~80 test clips a
difference of 10 points can be noise, and the table says which are not.
The dataset is the clips dataset alone (no frames from live checks), as in
the report.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import combinations

from monitor.config import Config
from monitor.errors import DatasetError
from trainer.dataset import load_dataset
from trainer.evaluate import discordant_pairs, mcnemar_p
from trainer.pipeline import train_model
from trainer.train import TrainingSpec

REPORT_TRAIN_ACCURACY = 0.99  # "near 99%" for every setting


@dataclass(frozen=True)
class Setting:
    """One TSN sampling setting and the test accuracy the report measured for it."""

    segments: int
    frames_per_segment: int
    report_test_accuracy: float | None = None

    @property
    def label(self) -> str:
        return f"K={self.segments}/n={self.frames_per_segment}"


REPORT_SETTINGS = (Setting(3, 3, 0.63), Setting(6, 3, 0.75), Setting(12, 5, 0.68))


@dataclass
class ExperimentReport:
    """One row per setting and one paired test per pair of settings."""

    rows: list[dict] = field(default_factory=list)
    pairs: list[dict] = field(default_factory=list)
    test_clips: int = 0
    test_hash: str = ""

    def to_json(self) -> dict:
        return {"settings": self.rows, "mcnemar": self.pairs, "test_clips": self.test_clips,
                "test_hash": self.test_hash}

    def table(self) -> str:
        """Return the results as a plain-text table, the report's numbers beside ours."""
        head = ("setting", "train frame", "train clip", "test frame", "test clip", "95% interval",
                "report test", "report train", "epochs", "seconds", "model")
        rows = [head]
        for r in self.rows:
            lo, hi = r["test_accuracy_ci95"]
            rows.append((r["setting"], _pct(r["train_frame_accuracy"]), _pct(r["train_accuracy"]),
                         _pct(r["test_frame_accuracy"]), _pct(r["test_accuracy"]), f"{_pct(lo)}-{_pct(hi)}",
                         _pct(r["report_test_accuracy"]), f"~{_pct(r['report_train_accuracy'])}",
                         str(r["epochs_run"]), f"{r['train_seconds']:.0f}", r["model_id"]))
        widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
        lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows]
        lines.append(f"paired McNemar test (exact, two-sided) on the same {self.test_clips} frozen test clips "
                     f"(hash {self.test_hash[:12]}):")
        for p in self.pairs:
            lines.append(f"  {p['a']} vs {p['b']}: {p['a_only']} clips right only with {p['a']}, "
                         f"{p['b_only']} only with {p['b']}, p = {p['p_value']:.3g}"
                         + ("" if p["p_value"] < 0.05 else " (not significant at 5%)"))
        return "\n".join(lines)


def run_experiment(
    cfg: Config,
    *,
    epochs: int | None = None,
    max_seconds_per_setting: float | None = None,
    settings: Sequence[Setting] = REPORT_SETTINGS,
    say: Callable[[str], None] = print,
) -> ExperimentReport:
    """Train and evaluate every setting on the same frozen test clips; models are saved, not activated."""
    data = load_dataset(cfg.data_path)
    if not data.test:
        raise DatasetError("the dataset has no test clips: the experiment compares settings on the frozen "
                           "test set; rebuild it with more channels per category (`twitchwatch dataset build`)")
    report = ExperimentReport(test_clips=len(data.test), test_hash=data.test_hash)
    spec = TrainingSpec.from_config(cfg, epochs=epochs, max_seconds=max_seconds_per_setting)
    correctness: dict[str, dict[str, bool]] = {}
    for setting in settings:
        say(f"experiment: setting {setting.label}")
        trained = train_model(cfg.data_path, data,
                              spec.replace(segments=setting.segments, frames_per_segment=setting.frames_per_segment),
                              say=say)
        test = trained.test
        if test is None:  # cannot happen with test clips; keeps the types honest
            raise DatasetError(f"setting {setting.label} was not evaluated on the test clips")
        correctness[setting.label] = test.correctness()
        report.rows.append(_row(setting, trained.card, test.correct, test.clips))
    report.pairs = paired_tests(correctness)
    return report


def paired_tests(correctness: dict[str, dict[str, bool]]) -> list[dict]:
    """Run McNemar's exact test between every pair of settings' per-clip correctness."""
    out = []
    for a, b in combinations(correctness, 2):
        a_only, b_only = discordant_pairs(correctness[a], correctness[b])
        out.append({"a": a, "b": b, "a_only": a_only, "b_only": b_only, "p_value": mcnemar_p(a_only, b_only)})
    return out


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """Return the Wilson score interval of a proportion (95% by default): honest at 0%, 100% and small n."""
    if trials <= 0:
        raise ValueError("an interval needs at least one trial")
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def _row(setting: Setting, card: dict, correct: int, clips: int) -> dict:
    return {
        "setting": setting.label, "segments": setting.segments, "frames_per_segment": setting.frames_per_segment,
        "model_id": card["model_id"],
        "train_frame_accuracy": card["train_frame_accuracy"], "train_accuracy": card["train_accuracy"],
        "test_frame_accuracy": card["test_frame_accuracy"], "test_accuracy": card["test_accuracy"],
        "test_correct": correct, "test_clips": clips, "test_accuracy_ci95": list(wilson_interval(correct, clips)),
        "test_nll": card["test_nll"], "ece_before": card["ece_before"], "ece_after": card["ece_after"],
        "report_test_accuracy": setting.report_test_accuracy, "report_train_accuracy": REPORT_TRAIN_ACCURACY,
        "epochs_run": len(card.get("history", [])), "train_seconds": card["train_seconds"],
    }


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"
