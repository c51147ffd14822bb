"""Evaluation: ECE on known inputs, McNemar on known tables, and agreement with how the daemon scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from monitor.classify import Classifier
from monitor.errors import DatasetError
from monitor.frames import sample_indices
from trainer.clip import Clip
from trainer.evaluate import (
    ECE_BINS,
    confusion_matrix,
    discordant_pairs,
    evaluate_model,
    expected_calibration_error,
    mcnemar_p,
    mcnemar_worse_p,
    per_class_metrics,
)

# -- expected calibration error ------------------------------------------------------------------


def test_ece_of_a_sure_model_right_half_the_time_is_one_half():
    assert expected_calibration_error([1.0] * 4, [True, True, False, False]) == pytest.approx(0.5)


def test_ece_is_zero_when_confidence_matches_accuracy():
    assert expected_calibration_error([0.8] * 10, [True] * 8 + [False] * 2) == pytest.approx(0.0, abs=1e-12)


def test_ece_weights_each_bin_by_its_share_of_samples():
    # bin of 0.95: accuracy 1, gap 0.05; bin of 0.55: accuracy 0.5, gap 0.05; each holds half
    ece = expected_calibration_error([0.95, 0.95, 0.55, 0.55], [True, True, True, False])
    assert ece == pytest.approx(0.05)
    # one clip of 0.3 wrong among three right at 0.9: 3/4 * 0.1 + 1/4 * 0.3
    assert expected_calibration_error([0.9, 0.9, 0.9, 0.3], [True] * 3 + [False]) == pytest.approx(0.15)


def test_ece_bins_are_closed_on_the_right_and_zero_joins_the_first():
    # With 5 bins, 0.2 shares the first bin with 0.0: mean confidence 0.1, accuracy 0.5.
    assert expected_calibration_error([0.0, 0.2], [True, False], bins=5) == pytest.approx(0.4)
    # 0.2000001 is in the second bin: 0.5 * |1 - 0| + 0.5 * |0 - 0.2000001|
    assert expected_calibration_error([0.0, 0.2000001], [True, False], bins=5) == pytest.approx(0.6, abs=1e-6)


def test_ece_uses_fifteen_bins_by_default():
    # 0.65 and 0.68 share the bin (0.6, 0.7] of width 1/10 but not a bin of width 1/15 (edge at 0.6667)
    conf, right = [0.65, 0.68], [False, True]
    assert ECE_BINS == 15
    assert expected_calibration_error(conf, right) == pytest.approx(0.5 * 0.65 + 0.5 * 0.32)
    assert expected_calibration_error(conf, right, bins=10) == pytest.approx(abs(0.5 - 0.665))


@pytest.mark.parametrize(("conf", "right"), [([], []), ([0.5], [True, False]), ([1.2], [True]), ([-0.1], [False])])
def test_ece_refuses_inputs_it_cannot_measure(conf, right):
    with pytest.raises(ValueError):
        expected_calibration_error(conf, right)


# -- McNemar -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a_only", "b_only", "p"),
    [
        (0, 0, 1.0),  # no discordant clip: no evidence either way
        (5, 0, 2 / 32),
        (0, 6, 2 / 64),
        (10, 2, 2 * (1 + 12 + 66) / 4096),  # 0.0386, the textbook value for 10 vs 2
        (2, 10, 2 * (1 + 12 + 66) / 4096),
        (3, 3, 1.0),  # 2 * P(X <= 3) exceeds 1 and is capped
        (1, 0, 1.0),
    ],
)
def test_mcnemar_exact_p_on_known_tables(a_only, b_only, p):
    assert mcnemar_p(a_only, b_only) == pytest.approx(p)


def test_mcnemar_stays_exact_for_large_tables():
    p = mcnemar_p(600, 400)  # chi-square 40: p about 2.5e-10; floats of 2**-1000 would underflow
    assert 1e-11 < p < 1e-9
    assert mcnemar_p(5000, 5000) == 1.0


def test_mcnemar_refuses_negative_counts():
    with pytest.raises(ValueError):
        mcnemar_p(-1, 3)


@pytest.mark.parametrize(
    ("a_only", "b_only", "p"),
    [
        (0, 0, 1.0),
        (0, 10, 1 / 1024),  # a lost every discordant clip: P(X <= 0), X ~ B(10, 1/2)
        (2, 8, 56 / 1024),  # 1 + 10 + 45 ways out of 1024
        (5, 5, 638 / 1024),  # even split: not worse
        (3, 0, 1.0),  # a won them all
    ],
)
def test_mcnemar_worse_is_the_one_sided_exact_tail(a_only, b_only, p):
    assert mcnemar_worse_p(a_only, b_only) == pytest.approx(p)
    if a_only < b_only:  # one tail of the two-sided test
        assert mcnemar_worse_p(a_only, b_only) == pytest.approx(mcnemar_p(a_only, b_only) / 2)


def test_mcnemar_worse_refuses_negative_counts():
    with pytest.raises(ValueError):
        mcnemar_worse_p(1, -3)


def test_discordant_pairs_count_clips_only_one_model_got_right():
    a = {"c1": True, "c2": True, "c3": False, "c4": False, "c5": True}
    b = {"c1": True, "c2": False, "c3": True, "c4": False, "c5": False}
    assert discordant_pairs(a, b) == (2, 1)
    with pytest.raises(ValueError, match="same clips"):
        discordant_pairs(a, {"c1": True})


# -- confusion and per-class -------------------------------------------------------------------


def test_confusion_and_precision_recall_from_labels():
    matrix = confusion_matrix(["a", "a", "b", "b", "c"], ["a", "b", "b", "b", "a"], ["a", "b", "c"])
    assert matrix == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    per = per_class_metrics(matrix, ["a", "b", "c"])
    assert per["a"] == {"precision": 0.5, "recall": 0.5, "support": 2}
    assert per["b"] == {"precision": pytest.approx(2 / 3), "recall": 1.0, "support": 2}
    assert per["c"] == {"precision": 0.0, "recall": 0.0, "support": 1}


# -- evaluating a classifier -------------------------------------------------------------------


class MeanColour(nn.Module):
    """A fixed 'model' whose logits are the mean of each (normalised) colour channel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)) * 4


def mixed_clip(clip_id: str, label: str, colours: list[tuple[int, int, int]]) -> Clip:
    return Clip(clip_id, label, "ch", [np.full((30, 40, 3), c, np.uint8) for c in colours])


RED, GREEN, BLUE, GREY = (220, 30, 30), (30, 220, 30), (30, 30, 220), (120, 120, 120)
CLIPS = [
    mixed_clip("1", "r", [RED] * 5),
    mixed_clip("2", "r", [RED, RED, GREY, BLUE, RED]),
    mixed_clip("3", "g", [GREEN, GREY, GREEN, BLUE, BLUE]),
    mixed_clip("4", "g", [BLUE] * 5),  # wrong at every level
    mixed_clip("5", "b", [BLUE, GREY, RED, BLUE, BLUE]),
]


def classifier(temperature: float) -> Classifier:
    # K*n = 6 > 5 frames: the sampler repeats a frame, which evaluation must count as often as scoring does
    return Classifier.from_model(MeanColour(), ["r", "g", "b"], temperature=temperature, segments=3,
                                 frames_per_segment=2)


def daemon_metrics(clf: Classifier, clips: list[Clip]) -> dict:
    """Score each clip's test-mode sample with Classifier.score, as the daemon does, and count the outcomes."""
    confusion = [[0] * len(clf.classes) for _ in clf.classes]
    frame_hits = frames = 0
    nll = 0.0
    for clip in clips:
        idx = sample_indices(len(clip.frames), clf.segments, clf.frames_per_segment, "test")
        scored = clf.score([clip.frames[i] for i in idx])
        truth = clf.classes.index(clip.label)
        confusion[truth][clf.classes.index(scored.top()[0])] += 1
        frame_hits += int((scored.frame_probs.argmax(axis=1) == truth).sum())
        frames += len(scored.frame_probs)
        nll -= math.log(scored.scores[clip.label])
    right = sum(confusion[i][i] for i in range(len(clf.classes)))
    return {"clips": len(clips), "frames": frames, "clip_accuracy": right / len(clips),
            "frame_accuracy": frame_hits / frames, "nll": nll / len(clips), "confusion": confusion}


@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_evaluation_agrees_with_how_the_daemon_scores(temperature):
    clf = classifier(temperature)
    ours = evaluate_model(clf, CLIPS).to_json()
    theirs = daemon_metrics(clf, CLIPS)
    for key in ("clips", "frames", "clip_accuracy", "frame_accuracy", "confusion"):
        assert ours[key] == theirs[key], key
    assert ours["nll"] == pytest.approx(theirs["nll"], rel=1e-5)
    assert ours["confusion"][1][2] >= 1  # the all-blue "g" clip is called "b"
    assert 0 < ours["clip_accuracy"] < 1 and 0 < ours["frame_accuracy"] < 1


def test_summary_counts_clips_and_frames_per_class():
    clf = Classifier.from_model(MeanColour(), ["r", "g", "b"], segments=2, frames_per_segment=2)
    clips = [mixed_clip("1", "r", [RED] * 5), mixed_clip("2", "r", [RED] * 5), mixed_clip("3", "g", [GREEN] * 5),
             mixed_clip("4", "g", [BLUE] * 5)]  # the last one is predicted "b"
    evaluation = evaluate_model(clf, clips)
    summary = evaluation.summary()
    assert summary["confusion"] == [[2, 0, 0], [0, 1, 1], [0, 0, 0]]
    assert summary["clip_accuracy"] == summary["frame_accuracy"] == 0.75
    assert summary["frames"] == 16
    assert summary["per_class"]["g"] == {"precision": 1.0, "recall": 0.5, "support": 2}
    assert summary["per_class"]["b"] == {"precision": 0.0, "recall": 0.0, "support": 0}
    # The summary is what the trainer keeps for validation; the full record adds calibration and clips.
    assert summary.keys() == {"clips", "frames", "clip_accuracy", "frame_accuracy", "nll", "per_class",
                              "confusion", "classes"}
    assert evaluation.to_json().items() >= summary.items()


def test_per_clip_confidence_is_the_daemons_confidence():
    clf = classifier(2.5)
    per_clip = evaluate_model(clf, CLIPS).to_json()["per_clip"]
    for clip, row in zip(CLIPS, per_clip, strict=True):
        idx = sample_indices(len(clip.frames), clf.segments, clf.frames_per_segment, "test")
        predicted, confidence = clf.score([clip.frames[i] for i in idx]).top()
        assert (row["clip_id"], row["predicted"]) == (clip.clip_id, predicted)
        assert row["confidence"] == pytest.approx(confidence, abs=1e-6)
        assert row["correct"] == (predicted == clip.label)


def test_calibration_before_and_after_differ_only_when_the_temperature_does():
    plain = evaluate_model(classifier(1.0), CLIPS)
    assert plain.ece_before == pytest.approx(plain.ece_after)
    assert plain.nll_before == pytest.approx(plain.nll)
    warm = evaluate_model(classifier(2.5), CLIPS)
    assert warm.ece_before == pytest.approx(plain.ece_after)  # "before" is the model at T = 1
    assert warm.nll_before == pytest.approx(plain.nll)
    assert warm.ece_after != pytest.approx(warm.ece_before)
    # on a clip whose frames all look alike, softening can only lower the top probability
    for hot, cold in zip(warm.outcomes, plain.outcomes, strict=True):
        if hot.clip_id in ("1", "4"):
            assert hot.confidence < cold.confidence


def test_evaluation_refuses_an_empty_test_set_and_unknown_labels():
    with pytest.raises(DatasetError, match="test set is empty"):
        evaluate_model(classifier(1.0), [])
    with pytest.raises(DatasetError, match="'x'"):
        evaluate_model(classifier(1.0), [mixed_clip("9", "x", [RED])])
