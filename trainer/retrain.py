"""Retrain: train a challenger on the grown dataset, promote it only if it beats the champion.

    result = retrain(cfg, epochs=8)          # the JSON `twitchwatch retrain --json` prints
    result["promoted"], result["reason"]

The champion is the active model. Both are scored on the dataset's frozen
test clips by trainer.evaluate, each with its own temperature, the way the
daemon scores streams. A champion evaluated on another test set (its card's
`test_hash` differs from the dataset's) is not comparable: retrain refuses
before training anything (DatasetError, exit 1).

The promotion rule (`promotion_decision`):
- no active model: the challenger is promoted;
- an active model that no longer loads: the challenger is promoted (the old
  one cannot serve anyway; the reason says so);
- otherwise the challenger must get strictly more test clips right; on a tie
  in clips right, its clip-level NLL (at its own temperature: the confidence
  flags are opened on) must be lower by more than NLL_TOLERANCE, so that a
  retrain that reproduces the champion does not churn the registry.
ECE is reported, never decisive: it is not a proper scoring rule (a model
that always states its average accuracy has ECE 0 whatever it predicts) and
is noisy on a few dozen clips in 15 bins. McNemar's exact p between the two
is reported too but does not gate promotion: on ~80 test clips the few-point
gains of a retrain seldom reach significance, and a strict improvement on the
frozen set is the rule this command documents.

The challenger is loaded back from the registry before anything is
switched; one whose weights do not load is never promoted (ModelError,
exit 1) and the active pointer stays as it was. Activation itself is
ModelRegistry.activate: load, then an atomic replace of the pointer.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from monitor.classify import Classifier
from monitor.config import Config
from monitor.errors import DatasetError, ModelError
from monitor.model_registry import ModelRegistry
from trainer.dataset import Dataset, load_dataset
from trainer.evaluate import Evaluation, discordant_pairs, evaluate_model, mcnemar_p
from trainer.pipeline import train_model
from trainer.train import TrainingSpec

NLL_TOLERANCE = 1e-6  # nats: below this a "lower" NLL is float noise between equal models


@dataclass(frozen=True)
class Standing:
    """What the promotion rule compares: clips right out of clips, and the clip-level NLL."""

    correct: int
    clips: int
    nll: float

    @classmethod
    def of(cls, evaluation: Evaluation) -> Standing:
        return cls(correct=evaluation.correct, clips=evaluation.clips, nll=evaluation.nll)


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


def promotion_decision(champion: Standing | None, challenger: Standing) -> tuple[bool, str]:
    """Apply the promotion rule; return (promote, one-line reason)."""
    if champion is None:
        return True, "no active model: the challenger is promoted"
    if champion.clips != challenger.clips:
        raise ValueError(f"champion scored on {champion.clips} clips, challenger on {challenger.clips}")
    score = f"challenger {challenger.correct}/{challenger.clips} test clips right, champion {champion.correct}"
    if challenger.correct > champion.correct:
        return True, f"{score}: promoted"
    if challenger.correct < champion.correct:
        return False, f"{score}: the champion stays"
    nll = f"NLL {challenger.nll:.4f} vs {champion.nll:.4f}"
    if challenger.nll < champion.nll - NLL_TOLERANCE:
        return True, f"{score} (tie), lower {nll}: promoted"
    return False, f"{score} (tie), {nll} not lower: the champion stays"


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
        return Comparison(True, f"{why} and no test clips: the challenger is promoted",
                          challenger_id, None, champion_id, None, None)
    challenger_eval = challenger_eval or evaluate_model(challenger, data.test)
    champion_eval = evaluate_model(champion, data.test) if champion is not None else None
    if broken:
        promote, reason = True, f"the active model {champion_id} does not load ({broken}): the challenger is promoted"
    else:
        standing = Standing.of(champion_eval) if champion_eval is not None else None
        promote, reason = promotion_decision(standing, Standing.of(challenger_eval))
    p = None
    if champion_eval is not None:
        p = mcnemar_p(*discordant_pairs(challenger_eval.correctness(), champion_eval.correctness()))
        reason += f" (McNemar p = {p:.3g})"
    if promote:
        registry.activate(challenger_id)
    say(f"retrain: {reason}; active model {registry.active_id()}")
    return Comparison(promote, reason, challenger_id, challenger_eval, champion_id, champion_eval, p)


def retrain(cfg: Config, *, epochs: int | None = None, say: Callable[[str], None] = print) -> dict:
    """Train a challenger on the grown dataset, compare it with the active model, maybe promote it."""
    data = load_grown_dataset(cfg.data_path)
    registry = ModelRegistry(cfg.data_path)
    champion_id = registry.active_id()
    if champion_id is not None:
        # Refuse before spending CPU on a challenger that could not be compared.
        _refuse_incomparable(registry, champion_id, data)
    trained = train_model(cfg.data_path, data, TrainingSpec.from_config(cfg, epochs=epochs), say=say)
    comparison = compare_and_promote(cfg.data_path, data, trained.model_id, challenger_eval=trained.test, say=say)
    champion = comparison.champion
    return {
        **trained.summary(promoted=comparison.promoted),
        "champion_id": comparison.champion_id,
        "champion_test_accuracy": champion.clip_accuracy if champion else None,
        "champion_test_nll": champion.nll if champion else None,
        "champion_ece_after": champion.ece_after if champion else None,
        "mcnemar_p": comparison.mcnemar_p,
        "reason": comparison.reason,
        "active_id": registry.active_id(),
        # What the challenger learned from: the built clips, live checks, and human-labelled checks.
        "train_clips": len(data.train),
        "train_sources": dict(data.train_sources),
    }


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
