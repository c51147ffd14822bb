"""Verdict thresholds chosen on validation clips."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.thresholds import GRID, choose_thresholds, gameplay_threshold, min_confidence

CLASSES = ["21779", "33214", "509658"]


def test_a_model_right_whenever_it_is_sure_gets_the_lowest_threshold():
    probs = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.05, 0.05, 0.9]])
    assert min_confidence(probs, np.array([0, 1, 2])) == GRID[0]


def test_confident_errors_raise_the_threshold_above_them():
    # wrong at 0.7, right at 0.8 and above: the threshold must pass 0.7
    probs = np.array([[0.7, 0.2, 0.1], [0.8, 0.1, 0.1], [0.05, 0.9, 0.05], [0.05, 0.05, 0.9]])
    value = min_confidence(probs, np.array([1, 0, 1, 2]))
    assert 0.7 < value <= 0.8


def test_a_model_wrong_even_when_sure_gets_the_most_cautious_threshold():
    probs = np.array([[0.99, 0.005, 0.005]] * 3)
    assert min_confidence(probs, np.array([1, 1, 1])) == GRID[-1]


def test_the_gameplay_threshold_keeps_chatting_below_and_games_above_with_a_margin():
    gameplay = np.array([0.1, 0.3, 0.62, 0.9, 0.95, 0.99])
    is_game = np.array([False, False, False, True, True, True])
    value = gameplay_threshold(gameplay, is_game)
    assert 0.62 < value <= 0.9
    assert 0.7 <= value <= 0.8  # the middle of the values that separate them


def test_choose_thresholds_fills_the_card_and_leaves_gameplay_out_without_a_chatting_class():
    probs = np.array([[0.9, 0.05, 0.05], [0.1, 0.85, 0.05], [0.05, 0.1, 0.85]])
    card = choose_thresholds(probs, ["21779", "33214", "509658"], CLASSES, chatting="509658")
    assert card["min_confidence"] == GRID[0] and card["clips"] == 3 and card["chosen_on"] == "validation"
    assert GRID[0] <= card["gameplay"] <= GRID[-1]
    assert "gameplay" not in choose_thresholds(probs, ["21779", "33214", "509658"], CLASSES, chatting=None)


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="probabilities"):
        choose_thresholds(np.ones((2, 3)), ["21779"], CLASSES, chatting="509658")
