"""Evaluate a classifier on clips: accuracy at frame and clip level, per class, and calibration.

    ev = evaluate_model(classifier, data.test)
    ev.clip_accuracy, ev.frame_accuracy, ev.ece_before, ev.ece_after
    ev.to_json()                     # what goes into the model card's metrics
    ev.drift_reference()             # the card's drift_reference: what `twitchwatch drift` compares live checks with
    mcnemar_p(a_only, b_only)        # exact paired test between two models' per-clip correctness
    mcnemar_worse_p(a_only, b_only)  # its one-sided form: how surely a is worse than b
    consensus_nll(stacked_logits(classifier, clips), labels, temperature)   # differentiable in T

Clips are sampled and scored exactly as inference does (test-mode
`monitor.frames.sample_indices`, the classifier's own temperature); a clip's
prediction is TSN's consensus, the argmax of its frames' averaged softmax.
One pass computes the logits of each clip once (a frame the sampler picks
twice, as it does on clips shorter than K*n, is run once); every metric is
derived from them, so the scores at temperature 1 ("before") and at the
fitted temperature ("after") cost no second pass. Training validates every
epoch and fits its temperature with these same functions (`evaluate_model`,
`stacked_logits`, `consensus_nll`), so validation and test metrics are one
definition.

Calibration is the expected calibration error (ECE) at clip level: the
clips' confidences (the top consensus probability) in 15 equal-width bins
over [0, 1], the mean over bins of |accuracy - mean confidence| weighted by
the bin's share of clips. The temperature comes from validation
(trainer.train); ECE is measured on the clips evaluated here, usually the
frozen test set, so "after" is an honest estimate, not the fitted objective.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import torch
import torch.nn.functional as F

from monitor.classify import Classifier
from monitor.errors import DatasetError
from monitor.frames import sample_indices
from trainer.clip import Clip

ECE_BINS = 15
_NLL_FLOOR = 1e-12  # a zero probability costs 27.6 nats, not infinity


@dataclass
class ClipOutcome:
    """How one clip was scored: truth, prediction, confidence at T and at T = 1."""

    clip_id: str
    label: str
    predicted: str
    confidence: float  # top consensus probability with the model's temperature
    truth_probability: float
    predicted_uncalibrated: str
    confidence_uncalibrated: float  # the same at temperature 1
    truth_probability_uncalibrated: float
    frame_hits: int
    frames: int

    @property
    def correct(self) -> bool:
        return self.predicted == self.label


@dataclass
class Evaluation:
    """The outcomes of a classifier on a list of clips, and the metrics derived from them."""

    classes: list[str]
    temperature: float
    outcomes: list[ClipOutcome] = field(default_factory=list)

    @property
    def clips(self) -> int:
        return len(self.outcomes)

    @property
    def correct(self) -> int:
        """Return how many clips the consensus got right."""
        return sum(o.correct for o in self.outcomes)

    @property
    def clip_accuracy(self) -> float:
        return self.correct / self.clips

    @property
    def frame_accuracy(self) -> float:
        return sum(o.frame_hits for o in self.outcomes) / sum(o.frames for o in self.outcomes)

    @property
    def nll(self) -> float:
        """Return the mean clip-level negative log-likelihood at the model's temperature."""
        return _mean_nll([o.truth_probability for o in self.outcomes])

    @property
    def nll_before(self) -> float:
        return _mean_nll([o.truth_probability_uncalibrated for o in self.outcomes])

    @property
    def ece_before(self) -> float:
        return expected_calibration_error([o.confidence_uncalibrated for o in self.outcomes],
                                          [o.predicted_uncalibrated == o.label for o in self.outcomes])

    @property
    def ece_after(self) -> float:
        return expected_calibration_error([o.confidence for o in self.outcomes], [o.correct for o in self.outcomes])

    def confusion(self) -> list[list[int]]:
        """Return the clip confusion matrix: rows the true class, columns the predicted, in class order."""
        return confusion_matrix([o.label for o in self.outcomes], [o.predicted for o in self.outcomes], self.classes)

    def correctness(self) -> dict[str, bool]:
        """Return clip id -> whether the consensus was right (for paired tests)."""
        return {o.clip_id: o.correct for o in self.outcomes}

    def summary(self) -> dict:
        """Return accuracy at clip and frame level, NLL, per class and the confusion matrix as JSON values."""
        confusion = self.confusion()
        return {
            "clips": self.clips,
            "frames": sum(o.frames for o in self.outcomes),
            "clip_accuracy": self.clip_accuracy,
            "frame_accuracy": self.frame_accuracy,
            "nll": self.nll,
            "per_class": per_class_metrics(confusion, self.classes),
            "confusion": confusion,
            "classes": list(self.classes),
        }

    def to_json(self) -> dict:
        """Return the summary plus calibration (NLL and ECE at T = 1 and at T) and one row per clip."""
        return {
            **self.summary(),
            "nll_before": self.nll_before,
            "ece_before": self.ece_before,
            "ece_after": self.ece_after,
            "ece_bins": ECE_BINS,
            "temperature": self.temperature,
            "per_clip": [
                {"clip_id": o.clip_id, "label": o.label, "predicted": o.predicted,
                 "confidence": round(o.confidence, 6), "correct": o.correct}
                for o in self.outcomes
            ],
        }


    def drift_reference(self) -> dict:
        """Return, per true category, the predicted-class shares and mean confidence of these clips.

        The figures monitor.drift compares live checks with: each clip's
        prediction is its consensus argmax and its confidence the top
        consensus probability, at the model's temperature, as a live check's
        scores give them (the argmax and the max of `scores`).
        """
        per_category = {}
        for label in self.classes:
            mine = [o for o in self.outcomes if o.label == label]
            if not mine:
                continue
            per_category[label] = {
                "clips": len(mine),
                "predicted": {c: round(sum(o.predicted == c for o in mine) / len(mine), 6) for c in self.classes},
                "mean_confidence": round(sum(o.confidence for o in mine) / len(mine), 6),
            }
        return {"source": "test", "clips": self.clips, "classes": list(self.classes), "per_category": per_category}


def evaluate_model(classifier: Classifier, clips: Sequence[Clip]) -> Evaluation:
    """Score every clip as inference does and collect its outcome."""
    if not clips:
        raise DatasetError("no clips to evaluate on: the dataset's test set is empty")
    known = set(classifier.classes)
    for clip in clips:
        if clip.label not in known:
            raise DatasetError(f"clip {clip.clip_id} has label {clip.label!r}, which model "
                               f"{classifier.model_id} does not know ({', '.join(classifier.classes)})")
        if not clip.frames:
            raise DatasetError(f"clip {clip.clip_id} has no frames")
    evaluation = Evaluation(classes=list(classifier.classes), temperature=classifier.temperature)
    for clip in clips:
        evaluation.outcomes.append(_outcome(classifier, clip))
    return evaluation


def _outcome(classifier: Classifier, clip: Clip) -> ClipOutcome:
    logits = clip_logits(classifier, clip)
    truth = classifier.classes.index(clip.label)
    calibrated = torch.softmax(logits / classifier.temperature, dim=1).mean(dim=0)
    raw = torch.softmax(logits, dim=1).mean(dim=0)
    pick, pick_raw = int(calibrated.argmax()), int(raw.argmax())
    return ClipOutcome(
        clip_id=clip.clip_id, label=clip.label,
        predicted=classifier.classes[pick], confidence=float(calibrated[pick]),
        truth_probability=float(calibrated[truth]),
        predicted_uncalibrated=classifier.classes[pick_raw], confidence_uncalibrated=float(raw[pick_raw]),
        truth_probability_uncalibrated=float(raw[truth]),
        frame_hits=int((logits.argmax(dim=1) == truth).sum()), frames=len(logits),
    )


def clip_logits(classifier: Classifier, clip: Clip) -> torch.Tensor:
    """Return the (K*n, C) raw logits of a clip's test-mode sample, each distinct frame run once."""
    indices = sample_indices(len(clip.frames), classifier.segments, classifier.frames_per_segment, "test")
    distinct = sorted(set(indices))
    logits = classifier.logits([clip.frames[i] for i in distinct])
    row = {index: r for r, index in enumerate(distinct)}
    return logits[[row[i] for i in indices]]


def stacked_logits(classifier: Classifier, clips: Sequence[Clip]) -> torch.Tensor:
    """Return the (clips, K*n, C) raw logits of the clips' test-mode samples, one `clip_logits` each."""
    # Stacked outside inference mode: a normal tensor, which autograd may save when fitting T.
    return torch.stack([clip_logits(classifier, clip) for clip in clips])


def consensus_nll(logits: torch.Tensor, labels: torch.Tensor, temperature: torch.Tensor | float = 1.0) -> torch.Tensor:
    """Return the mean clip NLL of the averaged per-frame softmax(logits / T), differentiable in T.

    `logits` is (clips, frames, classes). It is `Evaluation.nll` as a tensor
    expression, the form that fitting a temperature needs.
    """
    probs = torch.softmax(logits / temperature, dim=2).mean(dim=1)
    return F.nll_loss(torch.log(probs.clamp_min(_NLL_FLOOR)), labels)


def expected_calibration_error(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = ECE_BINS
) -> float:
    """Return the ECE: sum over equal-width confidence bins of (share of samples) x |accuracy - confidence|.

    Bin b holds confidences in (b/bins, (b+1)/bins]; a confidence of exactly
    0 goes into the first bin. Empty input has no error to measure: ValueError.
    """
    if len(confidences) != len(correct):
        raise ValueError(f"{len(confidences)} confidences but {len(correct)} correctness values")
    if not confidences:
        raise ValueError("cannot measure calibration on no samples")
    if bins < 1:
        raise ValueError(f"bins must be positive, got {bins}")
    conf = np.asarray(confidences, dtype=np.float64)
    if ((conf < 0) | (conf > 1)).any():
        raise ValueError("confidences must lie in [0, 1]")
    hits = np.asarray(correct, dtype=np.float64)
    which = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            total += members.mean() * abs(hits[members].mean() - conf[members].mean())
    return float(total)


def confusion_matrix(labels: Sequence[str], predicted: Sequence[str], classes: Sequence[str]) -> list[list[int]]:
    """Count (true, predicted) pairs: rows the true class, columns the predicted, in `classes` order."""
    index = {c: i for i, c in enumerate(classes)}
    matrix = [[0] * len(classes) for _ in classes]
    for truth, guess in zip(labels, predicted, strict=True):
        matrix[index[truth]][index[guess]] += 1
    return matrix


def per_class_metrics(confusion: Sequence[Sequence[int]], classes: Sequence[str]) -> dict[str, dict]:
    """Return precision, recall and support per class from a confusion matrix (0.0 where undefined)."""
    out = {}
    for i, name in enumerate(classes):
        hits = confusion[i][i]
        predicted = sum(row[i] for row in confusion)
        support = sum(confusion[i])
        out[name] = {
            "precision": hits / predicted if predicted else 0.0,
            "recall": hits / support if support else 0.0,
            "support": support,
        }
    return out


def discordant_pairs(a: dict[str, bool], b: dict[str, bool]) -> tuple[int, int]:
    """Return (clips only a got right, clips only b got right); both must cover the same clips."""
    if a.keys() != b.keys():
        raise ValueError("a paired test needs both models scored on the same clips")
    a_only = sum(1 for clip, right in a.items() if right and not b[clip])
    b_only = sum(1 for clip, right in a.items() if not right and b[clip])
    return a_only, b_only


def mcnemar_p(a_only: int, b_only: int) -> float:
    """Return McNemar's exact two-sided p-value for the discordant pair counts.

    Under the null hypothesis (both models equally accurate) each of the
    n = a_only + b_only discordant clips is a fair coin: p = min(1, 2 P(X <=
    min(a_only, b_only))) for X ~ Binomial(n, 1/2). No discordant pair: p = 1.
    Computed in exact integers, so large n neither underflows nor rounds.
    """
    if a_only < 0 or b_only < 0:
        raise ValueError("discordant counts cannot be negative")
    n = a_only + b_only
    if n == 0:
        return 1.0
    term = tail = 1  # C(n, 0); each next binomial coefficient from the last, in exact integers
    for i in range(min(a_only, b_only)):
        term = term * (n - i) // (i + 1)
        tail += term
    return float(min(Fraction(1), Fraction(2 * tail, 2**n)))


def mcnemar_worse_p(a_only: int, b_only: int) -> float:
    """Return McNemar's exact one-sided p-value that model a is worse than model b.

    P(X <= a_only) for X ~ Binomial(a_only + b_only, 1/2): how likely a
    split of the discordant clips at least this bad for a is when both models
    are equally accurate. Small p: a is significantly worse. a_only >= b_only
    gives p >= 1/2. No discordant pair: p = 1.
    """
    if a_only < 0 or b_only < 0:
        raise ValueError("discordant counts cannot be negative")
    n = a_only + b_only
    if n == 0:
        return 1.0
    term = tail = 1
    for i in range(a_only):
        term = term * (n - i) // (i + 1)
        tail += term
    return float(Fraction(tail, 2**n))


def _mean_nll(truth_probabilities: Sequence[float]) -> float:
    return sum(-math.log(max(p, _NLL_FLOOR)) for p in truth_probabilities) / len(truth_probabilities)
