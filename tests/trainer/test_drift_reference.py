"""The model card's drift reference: per true category of the test clips, predicted-class shares and mean confidence."""

from __future__ import annotations

from collections import Counter

import pytest
from toydata import CLASSES, toy_config, write_toy_dataset

from monitor.config import load_config
from monitor.model_registry import ModelRegistry
from trainer.evaluate import ClipOutcome, Evaluation

A, B, C = CLASSES


def _outcome(n: int, label: str, predicted: str, confidence: float) -> ClipOutcome:
    return ClipOutcome(clip_id=f"c{n}", label=label, predicted=predicted, confidence=confidence,
                       truth_probability=0.5, predicted_uncalibrated=label, confidence_uncalibrated=0.99,
                       truth_probability_uncalibrated=0.5, frame_hits=1, frames=2)


def test_the_reference_is_each_true_categorys_predicted_shares_and_mean_calibrated_confidence():
    ev = Evaluation(classes=list(CLASSES), temperature=1.5, outcomes=[
        _outcome(1, A, A, 0.9), _outcome(2, A, A, 0.7), _outcome(3, A, B, 0.5), _outcome(4, A, A, 0.9),
        _outcome(5, B, B, 0.8),
    ])
    reference = ev.drift_reference()
    assert reference["source"] == "test" and reference["clips"] == 5 and reference["classes"] == list(CLASSES)
    assert reference["per_category"] == {
        A: {"clips": 4, "predicted": {A: 0.75, B: 0.25, C: 0.0}, "mean_confidence": 0.75},
        B: {"clips": 1, "predicted": {A: 0.0, B: 1.0, C: 0.0}, "mean_confidence": 0.8},
    }  # C has no test clip: no reference for it, rather than one made of nothing


def test_a_trained_model_card_carries_the_reference_of_its_own_test_clips(tmp_path):
    from trainer.pipeline import train_and_register
    from trainer.train import TrainingSpec

    data_dir = tmp_path / "data"
    write_toy_dataset(data_dir)
    cfg = load_config(toy_config(tmp_path / "tw.toml", data_dir), environ={})
    result = train_and_register(cfg, TrainingSpec.from_config(cfg, epochs=1), say=lambda _: None)
    card = ModelRegistry(data_dir).card(result["model_id"])
    reference = card["drift_reference"]
    per_clip = card["metrics"]["test"]["per_clip"]
    assert reference["clips"] == len(per_clip) == card["counts"]["test"]
    for label, figures in reference["per_category"].items():
        mine = [c for c in per_clip if c["label"] == label]
        shares = Counter(c["predicted"] for c in mine)
        assert figures["clips"] == len(mine)
        assert figures["predicted"] == {c: pytest.approx(shares[c] / len(mine), abs=1e-6) for c in card["classes"]}
        assert figures["mean_confidence"] == pytest.approx(sum(c["confidence"] for c in mine) / len(mine), abs=1e-5)
