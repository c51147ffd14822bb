"""Retrain: train a challenger on the grown dataset, promote it only if it passes the gate.

    result = retrain(cfg, epochs=8)          # the JSON `twitchwatch retrain --json` prints
    result["promoted"], result["gate"], result["reason"]

The champion is the active model. Both are scored on the dataset's frozen
test clips by trainer.evaluate, each with its own temperature, the way the
daemon scores streams. A champion evaluated on another test set (its card's
`test_hash` differs from the dataset's) is not comparable: retrain refuses
before training anything (DatasetError, exit 1).

The promotion rule (`promotion_decision`):
- no active model: the challenger is promoted;
- an active model that no longer loads: the challenger is promoted (the old
  one cannot serve anyway; the reason says so);
- otherwise every gate must pass:
  - `accuracy`: the challenger gets at least as many test clips right;
  - `recall`: no class's recall falls by more than `retrain.max_recall_drop`
    (one class must not pay for another's gain: a category the model stops
    recognising turns into false flags);
  - `paired_test`: McNemar's exact one-sided test on the clips only one of
    the two got right does not find the challenger worse at
    `retrain.significance`. With the accuracy gate passed the challenger has
    at least as many of those clips as the champion, so p >= 1/2 and this
    gate never refuses alone; it says whether a loss the accuracy gate
    refused is significant or may be noise, and it stays true to the rule if
    the accuracy gate is ever given a tolerance;
  - `no_churn`: on a tie in clips right, the clip-level NLL (at its own
    temperature: the confidence flags are opened on) must be lower by more
    than NLL_TOLERANCE, so that a retrain that reproduces the champion does
    not churn the registry.
  A refusal names every gate that refused, with its figures.
ECE is reported, never decisive: it is not a proper scoring rule (a model
that always states its average accuracy has ECE 0 whatever it predicts) and
is noisy on a few dozen clips in 15 bins.

The challenger is loaded back from the registry before anything is
switched; one whose weights do not load is never promoted (ModelError,
exit 1) and the active pointer stays as it was. Activation itself is
ModelRegistry.activate: load, then an atomic replace of the pointer. A
retrain killed at any point leaves the registry as it was plus, at most, a
challenger directory without card.json, which is neither listed nor loaded.
With `retrain.textfile` set the outcome goes to a Prometheus textfile
(trainer.retrain_textfile).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from monitor.classify import Classifier
from monitor.config import Config
from monitor.errors import DatasetError, ModelError
from monitor.model_registry import ModelRegistry
from trainer import retrain_textfile
from trainer.dataset import Dataset, load_dataset
from trainer.evaluate import Evaluation, discordant_pairs, evaluate_model, mcnemar_p, mcnemar_worse_p
from trainer.pipeline import train_model
from trainer.train import TrainingSpec

NLL_TOLERANCE = 1e-6  # nats: below this a "lower" NLL is float noise between equal models
RECALL_TOLERANCE = 1e-9  # a drop of exactly the margin is within it, whatever the float rounding
GATE_ORDER = ("accuracy", "recall", "paired_test", "no_churn")


@dataclass(frozen=True)
class GatePolicy:
    """The thresholds of the gate: `retrain.max_recall_drop` and `retrain.significance`."""

    max_recall_drop: float = 0.05
    significance: float = 0.05

    @classmethod
    def from_config(cls, cfg: Config) -> GatePolicy:
        return cls(max_recall_drop=cfg.retrain.max_recall_drop, significance=cfg.retrain.significance)


@dataclass(frozen=True)
class Standing:
    """What the promotion rule compares: clips right, clip-level NLL, per-class hits and per-clip correctness."""

    correct: int
    clips: int
    nll: float
    recall: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # class -> (clips right, clips)
    correctness: Mapping[str, bool] = field(default_factory=dict)  # clip id -> right

    @classmethod
    def of(cls, evaluation: Evaluation) -> Standing:
        confusion = evaluation.confusion()
        recall = {c: (confusion[i][i], sum(confusion[i])) for i, c in enumerate(evaluation.classes)}
        return cls(correct=evaluation.correct, clips=evaluation.clips, nll=evaluation.nll, recall=recall,
                   correctness=evaluation.correctness())

    def recall_of(self, category: str) -> float | None:
        hits, support = self.recall.get(category, (0, 0))
        return hits / support if support else None


@dataclass(frozen=True)
class Gate:
    """One gate's verdict and the figures it rests on."""

    name: str
    passed: bool
    detail: str

    def to_json(self) -> dict:
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


@dataclass(frozen=True)
class Decision:
    """The promotion rule's answer: promote or not, the gate that decided, and every gate's verdict.

    `gate` is the first gate that refused, "all_passed", or on the first two
    rules "no_champion" / "champion_unloadable".
    """

    promoted: bool
    gate: str
    reason: str
    gates: tuple[Gate, ...] = ()
    mcnemar_worse_p: float | None = None


@dataclass
class Comparison:
    """The outcome of champion against challenger on the frozen test clips."""

    promoted: bool
    reason: str
    challenger_id: str
    challenger: Evaluation | None
    champion_id: str | None
    champion: Evaluation | None
    mcnemar_p: float | None
    decision: Decision | None = None


def promotion_decision(champion: Standing | None, challenger: Standing,
                       policy: GatePolicy = GatePolicy()) -> Decision:
    """Apply the promotion rule (see the module docstring)."""
    if champion is None:
        return Decision(True, "no_champion", "no active model: the challenger is promoted")
    if champion.clips != challenger.clips:
        raise ValueError(f"champion scored on {champion.clips} clips, challenger on {challenger.clips}")
    worse_p = mcnemar_worse_p(*discordant_pairs(challenger.correctness, champion.correctness))
    gates = [_accuracy_gate(champion, challenger), _recall_gate(champion, challenger, policy),
             _paired_gate(worse_p, policy)]
    if challenger.correct == champion.correct:
        gates.append(_no_churn_gate(champion, challenger))
    refused = [g for g in gates if not g.passed]
    if refused:
        why = "; ".join(f"{g.name} gate: {g.detail}" for g in refused)
        return Decision(False, refused[0].name, f"not promoted by the {_names(refused)}: {why}; the champion stays",
                        tuple(gates), worse_p)
    return Decision(True, "all_passed", "promoted, every gate passed: " + "; ".join(g.detail for g in gates),
                    tuple(gates), worse_p)


def _accuracy_gate(champion: Standing, challenger: Standing) -> Gate:
    score = (f"challenger {challenger.correct}/{challenger.clips} test clips right "
             f"({challenger.correct / challenger.clips:.1%}), champion {champion.correct} "
             f"({champion.correct / champion.clips:.1%})")
    return Gate("accuracy", challenger.correct >= champion.correct, score)


def _recall_gate(champion: Standing, challenger: Standing, policy: GatePolicy) -> Gate:
    drops = []
    for category in sorted(champion.recall):
        before, after = champion.recall_of(category), challenger.recall_of(category)
        if before is None or after is None:
            continue  # no test clip of this class: nothing to lose
        drops.append((before - after, category, before, after))
    margin = f"retrain.max_recall_drop {policy.max_recall_drop:g}"
    failed = [d for d in drops if d[0] > policy.max_recall_drop + RECALL_TOLERANCE]
    if failed:
        return Gate("recall", False, ", ".join(f"recall of {c} dropped from {b:.2f} to {a:.2f}"
                                               for _, c, b, a in failed) + f", more than {margin}")
    if not drops:
        return Gate("recall", True, "no per-class figures to compare")
    worst = max(drops)
    return Gate("recall", True, f"no class's recall dropped by more than {margin} (largest change: {worst[1]} "
                                f"{worst[2]:.2f} to {worst[3]:.2f})")


def _paired_gate(worse_p: float, policy: GatePolicy) -> Gate:
    figures = f"McNemar one-sided p(challenger worse) = {worse_p:.3g}"
    if worse_p < policy.significance:
        return Gate("paired_test", False, f"{figures}, below retrain.significance {policy.significance:g}: "
                                          "significantly worse")
    return Gate("paired_test", True, f"{figures}, not below retrain.significance {policy.significance:g}")


def _no_churn_gate(champion: Standing, challenger: Standing) -> Gate:
    nll = f"NLL {challenger.nll:.4f} vs {champion.nll:.4f}"
    if challenger.nll < champion.nll - NLL_TOLERANCE:
        return Gate("no_churn", True, f"tie at {challenger.correct}/{challenger.clips} clips right, lower {nll}")
    return Gate("no_churn", False, f"tie at {challenger.correct}/{challenger.clips} clips right and {nll} not lower: "
                                   "a reproduction of the champion is not promoted, so the registry does not churn")


def _names(gates: list[Gate]) -> str:
    names = [f"{g.name} gate" for g in gates]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def check_comparable(champion_id: str, card: dict, data: Dataset) -> None:
    """Raise DatasetError unless the champion was tested on the dataset's frozen test set."""
    theirs = card.get("test_hash")
    if not theirs:
        raise DatasetError(
            f"the active model {champion_id} records no test set hash, so it cannot be compared with a "
            "challenger: run `twitchwatch train` to train and activate a model on this dataset")
    if theirs != data.test_hash:
        raise DatasetError(
            f"the active model {champion_id} was tested on test set {theirs[:12]}, the dataset's frozen test "
            f"set is {data.test_hash[:12]}: refusing to compare them; run `twitchwatch train` to train and "
            "activate a model on this test set, or `twitchwatch models activate ID` one that was")


def compare_and_promote(
    data_dir: str | Path,
    data: Dataset,
    challenger_id: str,
    *,
    challenger_eval: Evaluation | None = None,
    policy: GatePolicy = GatePolicy(),
    say: Callable[[str], None] = print,
) -> Comparison:
    """Score champion and challenger on the test clips; activate the challenger if the rule says so.

    `challenger_eval` (the evaluation made right after training) saves a
    second pass; the challenger is still loaded from disk, so a model whose
    saved weights do not load is refused (ModelError) and nothing changes.
    """
    registry = ModelRegistry(data_dir)
    champion_id = registry.active_id()
    try:
        challenger = registry.load(challenger_id)
    except ModelError as exc:
        raise ModelError(f"challenger {challenger_id} is not promoted, its saved model does not load ({exc}); "
                         f"the active model {champion_id or '(none)'} stays") from None
    champion, broken = _load_champion(registry, champion_id, data)
    if not data.test:
        if champion is not None:
            raise DatasetError("the dataset has no test clips: champion and challenger cannot be compared")
        registry.activate(challenger_id)
        why = f"the active model {champion_id} does not load ({broken})" if broken else "no active model"
        gate = "champion_unloadable" if broken else "no_champion"
        reason = f"{why} and no test clips: the challenger is promoted"
        return Comparison(True, reason, challenger_id, None, champion_id, None, None, Decision(True, gate, reason))
    challenger_eval = challenger_eval or evaluate_model(challenger, data.test)
    champion_eval = evaluate_model(champion, data.test) if champion is not None else None
    if broken:
        reason = f"the active model {champion_id} does not load ({broken}): the challenger is promoted"
        decision = Decision(True, "champion_unloadable", reason)
    else:
        standing = Standing.of(champion_eval) if champion_eval is not None else None
        decision = promotion_decision(standing, Standing.of(challenger_eval), policy)
    reason = decision.reason
    p = None
    if champion_eval is not None:
        p = mcnemar_p(*discordant_pairs(challenger_eval.correctness(), champion_eval.correctness()))
        reason += f" (McNemar two-sided p = {p:.3g})"
    if decision.promoted:
        registry.activate(challenger_id)
    say(f"retrain: {reason}; active model {registry.active_id()}")
    return Comparison(decision.promoted, reason, challenger_id, challenger_eval, champion_id, champion_eval, p,
                      decision)


def retrain(cfg: Config, *, epochs: int | None = None, say: Callable[[str], None] = print) -> dict:
    """Train a challenger on the grown dataset, compare it with the active model, maybe promote it.

    With `retrain.textfile` set, the outcome is written there whether the
    retrain finishes or raises.
    """
    started = time.time()
    try:
        result = _retrain(cfg, epochs=epochs, say=say)
    except BaseException:
        if cfg.retrain.textfile:
            retrain_textfile.record_failure(cfg.retrain.textfile, attempted=time.time())
        raise
    if cfg.retrain.textfile:
        retrain_textfile.record_success(
            cfg.retrain.textfile, started=started, finished=time.time(), test_accuracy=result["test_accuracy"],
            champion_accuracy=result["champion_test_accuracy"], promoted=result["promoted"])
    return result


def _retrain(cfg: Config, *, epochs: int | None, say: Callable[[str], None]) -> dict:
    data = load_grown_dataset(cfg.data_path)
    registry = ModelRegistry(cfg.data_path)
    champion_id = registry.active_id()
    if champion_id is not None:
        # Refuse before spending CPU on a challenger that could not be compared.
        _refuse_incomparable(registry, champion_id, data)
    policy = GatePolicy.from_config(cfg)
    trained = train_model(cfg.data_path, data, TrainingSpec.from_config(cfg, epochs=epochs), say=say)
    comparison = compare_and_promote(cfg.data_path, data, trained.model_id, challenger_eval=trained.test,
                                     policy=policy, say=say)
    champion = comparison.champion
    decision = comparison.decision
    return {
        **trained.summary(promoted=comparison.promoted),
        "champion_id": comparison.champion_id,
        "champion_test_accuracy": champion.clip_accuracy if champion else None,
        "champion_test_nll": champion.nll if champion else None,
        "champion_ece_after": champion.ece_after if champion else None,
        "mcnemar_p": comparison.mcnemar_p,
        "mcnemar_worse_p": decision.mcnemar_worse_p if decision else None,
        "reason": comparison.reason,
        "gate": decision.gate if decision else None,
        "gates": [g.to_json() for g in decision.gates] if decision else [],
        "per_class_recall": per_class_recall(comparison.challenger, champion),
        "max_recall_drop": policy.max_recall_drop,
        "significance": policy.significance,
        "active_id": registry.active_id(),
        # What the challenger learned from: the built clips, live checks, and human-labelled checks.
        "train_clips": len(data.train),
        "train_sources": dict(data.train_sources),
    }


def per_class_recall(challenger: Evaluation | None, champion: Evaluation | None) -> dict[str, dict]:
    """Return {class: {challenger, champion, support}} recall on the test clips (None where not measured)."""
    if challenger is None:
        return {}
    ours = Standing.of(challenger)
    theirs = Standing.of(champion) if champion is not None else None
    return {c: {"challenger": ours.recall_of(c), "champion": theirs.recall_of(c) if theirs else None,
                "support": ours.recall[c][1]} for c in challenger.classes}


def load_grown_dataset(data_dir: str | Path) -> Dataset:
    """Load the dataset with the frames kept from live checks, where this dataset version can."""
    if "include_live" in inspect.signature(load_dataset).parameters:
        return load_dataset(data_dir, include_live=True)
    return load_dataset(data_dir)


def _refuse_incomparable(registry: ModelRegistry, champion_id: str, data: Dataset) -> None:
    try:
        card = registry.card(champion_id)
    except ModelError:
        return  # an unreadable champion is replaced, not compared (compare_and_promote says so)
    check_comparable(champion_id, card, data)
    if not data.test:
        raise DatasetError("the dataset has no test clips: champion and challenger cannot be compared")


def _load_champion(registry: ModelRegistry, champion_id: str | None, data: Dataset) -> tuple[Classifier | None, str]:
    """Return (champion classifier or None, why it is unusable or "")."""
    if champion_id is None:
        return None, ""
    try:
        card = registry.card(champion_id)
    except ModelError as exc:
        return None, str(exc)
    check_comparable(champion_id, card, data)
    try:
        return registry.load(champion_id), ""
    except ModelError as exc:
        return None, str(exc)
