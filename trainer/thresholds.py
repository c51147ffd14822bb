"""Choose the verdict's two thresholds on validation clips, for the model card.

    thresholds = choose_thresholds(probabilities, labels, classes, chatting="509658")
    card["thresholds"] = thresholds     # {"min_confidence": 0.7, "gameplay": 0.65, ...}

The daemon (`monitor.verdict.Thresholds.from_card`) names a category only
when its calibrated consensus probability reaches `min_confidence`, and
says "some game is on screen" when 1 - p(chatting) reaches `gameplay`.
Both depend on the model: how sure it is when right, how sure when wrong.
So both are chosen here, on the validation clips (whole channels that
training never saw, laid out anew), with the probabilities the daemon will
see (the fitted temperature applied), instead of one number for every model.

- `min_confidence`: the lowest value of the grid at which the validation
  clips predicted at least that surely are right at least TARGET_PRECISION
  of the time; the top of the grid when no value gets there (a cautious
  model: more "unsure", fewer confident errors).
- `gameplay`: the grid value that best separates Just Chatting clips (which
  must stay below it) from gameplay clips (which must reach it), by
  balanced accuracy; among equally good values the middle one, which keeps
  the widest margin on both sides. Without a chatting class: not chosen.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

GRID = tuple(round(0.5 + 0.025 * i, 3) for i in range(19))  # 0.5 .. 0.95
TARGET_PRECISION = 0.97


def choose_thresholds(
    probabilities: np.ndarray, labels: Sequence[str], classes: Sequence[str], chatting: str | None
) -> dict:
    """Return the card's thresholds from (clips, classes) calibrated consensus probabilities."""
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.ndim != 2 or probs.shape != (len(labels), len(classes)) or not len(labels):
        raise ValueError(f"probabilities must be (clips, classes) = ({len(labels)}, {len(classes)}), "
                         f"got {probs.shape}")
    truth = np.array([list(classes).index(label) for label in labels])
    out: dict = {"min_confidence": min_confidence(probs, truth), "chosen_on": "validation",
                 "clips": len(labels), "target_precision": TARGET_PRECISION}
    if chatting in classes:
        out["gameplay"] = gameplay_threshold(1.0 - probs[:, list(classes).index(chatting)],
                                             truth != list(classes).index(chatting))
    return out


def min_confidence(probs: np.ndarray, truth: np.ndarray) -> float:
    """Return the lowest grid value at which confident validation predictions reach the target precision."""
    top = probs.max(axis=1)
    right = probs.argmax(axis=1) == truth
    for value in GRID:
        sure = top >= value
        if sure.any() and right[sure].mean() >= TARGET_PRECISION:
            return value
    return GRID[-1]


def gameplay_threshold(gameplay: np.ndarray, is_game: np.ndarray) -> float:
    """Return the grid value that best splits chatting (below) from gameplay (at or above)."""
    gameplay, is_game = np.asarray(gameplay), np.asarray(is_game, dtype=bool)
    if is_game.all() or not is_game.any():
        return GRID[0] if not is_game.any() else GRID[-1]
    scores = [((gameplay[is_game] >= v).mean() + (gameplay[~is_game] < v).mean()) / 2 for v in GRID]
    best = max(scores)
    tied = [v for v, s in zip(GRID, scores, strict=True) if s >= best - 1e-12]
    return tied[len(tied) // 2]
