"""Compare what the active model sees on live streams with what it saw on its test set: `twitchwatch drift`.

    report = drift_report(store, registry, hours=24)
    report.to_json()                 # what `twitchwatch drift --json` prints
    report.moved()                   # the declared categories whose figures moved, e.g. ["509658"]
    metrics.set_drift(report)        # the same figures as gauges, after every cycle

Live figures, per declared category, over the window's completed checks
(agree, mismatch, unsure) scored by the active model (observations whose
`model_id` is the active one: another model's scores are not its figures):

- the predicted-class histogram: the share of checks whose top class (the
  argmax of `scores`) is each of the model's classes;
- the mean confidence: the mean of the top class's probability.

They are the closed-set model's own outputs, not the verdict (whose labels
add "gameplay" and "" and whose confidence may be the gameplay
probability), because the reference is made the same way: the model card's
`drift_reference` (trainer.evaluate.Evaluation.drift_reference), written
when the model is trained, holds per true category of the frozen test clips
the predicted-class shares and the mean top consensus probability, at the
model's temperature, as live scores are.

A declared category is not its true one (the point of twitchwatch), so a
few mislabeled streams move its histogram a little; a figure "moved" when:

- histogram: the total-variation distance (half the L1 distance) between
  the live and the reference shares is at least TV_THRESHOLD (0.25: a
  quarter of the checks changed class, far more than the few mislabeled
  streams a category has);
- confidence: the live mean is at least CONFIDENCE_DROP (0.10) below the
  reference's (new scenes the model is unsure of, before it errs).

Neither is said on fewer than MIN_CHECKS checks, nor for a category the
model has no reference for (not one of its classes, or no test clips of
it); a card without `drift_reference` (a model trained before it existed)
is said once, clearly, and the live figures are still shown.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from monitor.errors import ModelError
from monitor.model_registry import ModelRegistry
from monitor.store import Store

TV_THRESHOLD = 0.25
CONFIDENCE_DROP = 0.10
MIN_CHECKS = 10
DEFAULT_HOURS = 24.0


@dataclass
class CategoryDrift:
    """One declared category's live figures beside its reference, and what moved."""

    category: str
    checks: int
    predicted: dict[str, float]  # model class -> share of the window's checks
    mean_confidence: float
    reference: Mapping | None = None  # {"clips", "predicted", "mean_confidence"} of the card, if any
    note: str | None = None
    name: str | None = None  # the category's Twitch name, where the daemon has stored it

    @property
    def tv_distance(self) -> float | None:
        if self.reference is None:
            return None
        theirs = self.reference.get("predicted", {})
        classes = set(self.predicted) | set(theirs)
        return 0.5 * sum(abs(self.predicted.get(c, 0.0) - float(theirs.get(c, 0.0))) for c in classes)

    @property
    def confidence_change(self) -> float | None:
        if self.reference is None:
            return None
        return self.mean_confidence - float(self.reference.get("mean_confidence", 0.0))

    def moved(self) -> list[str]:
        """Return which figures moved past their thresholds: "histogram", "confidence"."""
        if self.reference is None or self.checks < MIN_CHECKS:
            return []
        moved = []
        if self.tv_distance is not None and self.tv_distance >= TV_THRESHOLD:
            moved.append("histogram")
        if self.confidence_change is not None and -self.confidence_change >= CONFIDENCE_DROP:
            moved.append("confidence")
        return moved

    def to_json(self) -> dict:
        tv, change = self.tv_distance, self.confidence_change
        return {
            "category": self.category,
            "name": self.name,
            "checks": self.checks,
            "predicted": {c: round(v, 4) for c, v in self.predicted.items()},
            "mean_confidence": round(self.mean_confidence, 4),
            "reference": dict(self.reference) if self.reference is not None else None,
            "tv_distance": None if tv is None else round(tv, 4),
            "confidence_change": None if change is None else round(change, 4),
            "moved": self.moved(),
            "note": self.note,
        }


@dataclass
class DriftReport:
    """The window's figures per declared category against the active model's reference."""

    model_id: str | None
    since: datetime
    until: datetime
    classes: list[str] = field(default_factory=list)
    has_reference: bool = False
    note: str | None = None
    categories: list[CategoryDrift] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)  # category id -> Twitch name, for people

    def moved(self) -> list[str]:
        return [c.category for c in self.categories if c.moved()]

    def to_json(self) -> dict:
        return {
            "model_id": self.model_id,
            "since": _iso(self.since),
            "until": _iso(self.until),
            "window_hours": round((self.until - self.since).total_seconds() / 3600, 3),
            "classes": list(self.classes),
            "reference": self.has_reference,
            "note": self.note,
            "thresholds": {"tv_distance": TV_THRESHOLD, "confidence_drop": CONFIDENCE_DROP, "min_checks": MIN_CHECKS},
            "moved": self.moved(),
            "categories": [c.to_json() for c in self.categories],
        }

    def lines(self) -> list[str]:
        """Return what `twitchwatch drift` prints for people: one line per category, then what moved."""
        names = self.names
        out = [f"model {self.model_id or '-'}: checks since {_iso(self.since)}"]
        if self.note:
            out.append(self.note)
        for c in self.categories:
            top = sorted(c.predicted.items(), key=lambda kv: -kv[1])[:3]
            shares = ", ".join(f"{names.get(k, k)} {v:.0%}" for k, v in top)
            line = (f"{names.get(c.category, c.category)}: {c.checks} checks, predicted {shares}; "
                    f"mean confidence {c.mean_confidence:.2f}")
            if c.reference is not None:
                line += (f" (reference {float(c.reference.get('mean_confidence', 0)):.2f}, "
                         f"TV distance {c.tv_distance:.2f})")
            if c.moved():
                line += f": MOVED ({', '.join(c.moved())})"
            elif c.note:
                line += f": {c.note}"
            out.append(line)
        if not self.categories:
            out.append("no completed checks of this model in the window")
        moved = self.moved()
        out.append(f"moved: {', '.join(names.get(m, m) for m in moved)}" if moved else "nothing moved")
        return out


def live_figures(rows: Iterable[tuple[str, Mapping[str, float]]], classes: list[str]) -> dict[str, CategoryDrift]:
    """Turn (declared category, scores) pairs into each category's histogram and mean confidence."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    confidence: dict[str, float] = defaultdict(float)
    for declared, scores in rows:
        if not scores:
            continue
        top = max(scores, key=lambda k: scores[k])
        counts[declared][top] += 1
        confidence[declared] += float(scores[top])
    figures = {}
    for declared, by_class in counts.items():
        n = sum(by_class.values())
        shares = {c: by_class.get(c, 0) / n for c in classes}
        shares.update({c: k / n for c, k in by_class.items() if c not in shares})  # scores of another class set
        figures[declared] = CategoryDrift(declared, n, shares, confidence[declared] / n)
    return figures


def compare(figures: Mapping[str, CategoryDrift], card: Mapping) -> tuple[bool, str | None]:
    """Attach the card's reference to each category's figures; return whether the card has one, and a note."""
    reference = card.get("drift_reference")
    if not isinstance(reference, Mapping) or not isinstance(reference.get("per_category"), Mapping):
        for c in figures.values():
            c.note = "no reference"
        return False, (f"model {card.get('model_id') or card.get('id') or '?'} has no drift reference in its card "
                       "(trained before twitchwatch recorded one): live figures only; train or retrain a model "
                       "to get one")
    per_category = reference["per_category"]
    for c in figures.values():
        c.reference = per_category.get(c.category)
        if c.reference is None:
            c.note = "no reference: not one of the model's classes, or no test clips of it"
        elif c.checks < MIN_CHECKS:
            c.note = f"too few checks to judge (fewer than {MIN_CHECKS})"
    return True, None


def drift_report(store: Store, registry: ModelRegistry, *, hours: float = DEFAULT_HOURS,
                 now: datetime | None = None) -> DriftReport:
    """Return the active model's live figures over the last `hours` against its card's reference."""
    until = now or datetime.now(UTC)
    since = until - timedelta(hours=hours)
    model_id = registry.active_id()
    report = DriftReport(model_id=model_id, since=since, until=until)
    if model_id is None:
        report.note = "no active model: run `twitchwatch train`"
        return report
    try:
        card = registry.card(model_id)
    except ModelError as exc:
        report.note = f"the active model's card cannot be read: {exc}"
        return report
    report.classes = [str(c) for c in card.get("classes") or ()]
    figures = live_figures(store.scored_checks(model_id, since), report.classes)
    report.has_reference, report.note = compare(figures, card)
    report.names = store.category_names()
    for c in figures.values():
        c.name = report.names.get(c.category)
    report.categories = [figures[k] for k in sorted(figures)]
    return report


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
