"""The verdict and flag rules, pure: every outcome and every flag transition."""

from __future__ import annotations

import pytest

from monitor.verdict import (
    DEFAULT_THRESHOLDS,
    GAMEPLAY,
    ChannelState,
    Outcome,
    Thresholds,
    Transition,
    Verdict,
    decide,
    step,
)

CHAT, LOL, FORTNITE = "509658", "21779", "33214"
UNKNOWN_GAME = "516575"  # Valorant: a category the model was never trained on


def verdict(scores, declared, *, frames=18, expected=18, min_confidence=0.6, gameplay=None) -> Verdict:
    thresholds = Thresholds(min_confidence, min_confidence if gameplay is None else gameplay)
    return decide(scores, declared, chatting_id=CHAT, thresholds=thresholds,
                  frames_decoded=frames, frames_expected=expected, min_frame_fraction=0.5)


# -- decide: declared Just Chatting ---------------------------------------------


def test_chatting_declared_and_chatting_on_screen_agrees():
    assert verdict({CHAT: 0.9, LOL: 0.05, FORTNITE: 0.05}, CHAT) == Verdict("agree", CHAT, CHAT, 0.9)


def test_chatting_declared_showing_a_known_game_is_a_mismatch_naming_it():
    assert verdict({CHAT: 0.1, LOL: 0.8, FORTNITE: 0.1}, CHAT) == Verdict("mismatch", LOL, LOL, 0.8)


def test_chatting_declared_showing_an_unknown_game_is_a_gameplay_mismatch():
    # No single game is confident (the model never saw this game), but it is surely not chatting.
    v = verdict({CHAT: 0.15, LOL: 0.45, FORTNITE: 0.40}, CHAT)
    assert v.outcome == "mismatch"
    assert v.predicted_game_id is None and v.predicted_label == GAMEPLAY
    assert v.confidence == pytest.approx(0.85)


def test_a_confident_game_wins_over_gameplay():
    v = verdict({CHAT: 0.05, LOL: 0.9, FORTNITE: 0.05}, CHAT)
    assert v.predicted_label == LOL and v.confidence == pytest.approx(0.9)


def test_nothing_confident_is_unsure_with_no_prediction():
    v = verdict({CHAT: 0.5, LOL: 0.3, FORTNITE: 0.2}, CHAT)
    assert v == Verdict("unsure", None, "", 0.5)


def test_min_confidence_is_inclusive():
    assert verdict({CHAT: 0.4, LOL: 0.6}, CHAT).outcome == "mismatch"
    assert verdict({CHAT: 0.41, LOL: 0.59}, CHAT).outcome == "unsure"


# -- decide: declared a game the model knows ---------------------------------------


def test_game_declared_and_shown_agrees():
    assert verdict({CHAT: 0.05, LOL: 0.9, FORTNITE: 0.05}, LOL) == Verdict("agree", LOL, LOL, 0.9)


def test_game_declared_showing_another_known_game_is_a_mismatch():
    assert verdict({CHAT: 0.05, LOL: 0.1, FORTNITE: 0.85}, LOL).outcome == "mismatch"


def test_game_declared_showing_chatting_is_a_mismatch():
    assert verdict({CHAT: 0.8, LOL: 0.1, FORTNITE: 0.1}, LOL) == Verdict("mismatch", CHAT, CHAT, 0.8)


def test_game_declared_showing_some_uncertain_game_is_unsure():
    v = verdict({CHAT: 0.1, LOL: 0.5, FORTNITE: 0.4}, LOL)
    assert v.outcome == "unsure"
    assert v.predicted_label == GAMEPLAY and v.predicted_game_id is None


# -- decide: declared a category the model does not know (open set) --------------


def test_unknown_category_showing_gameplay_agrees():
    v = verdict({CHAT: 0.1, LOL: 0.5, FORTNITE: 0.4}, UNKNOWN_GAME)
    assert v.outcome == "agree" and v.predicted_label == GAMEPLAY


def test_unknown_category_showing_a_confident_known_game_is_unsure():
    # A closed-set model maps an unseen game onto a known one with high confidence: no evidence.
    assert verdict({CHAT: 0.02, LOL: 0.95, FORTNITE: 0.03}, UNKNOWN_GAME).outcome == "unsure"


def test_unknown_category_showing_chatting_is_unsure():
    assert verdict({CHAT: 0.9, LOL: 0.05, FORTNITE: 0.05}, UNKNOWN_GAME).outcome == "unsure"


def test_a_model_without_chatting_never_predicts_gameplay():
    # Without a chatting class "1 - p(chatting)" is always 1: it must not count as evidence.
    v = verdict({LOL: 0.5, FORTNITE: 0.5}, CHAT)
    assert v == Verdict("unsure", None, "", 0.5)
    assert verdict({LOL: 0.9, FORTNITE: 0.1}, CHAT).outcome == "unsure"  # chatting unknown to it
    assert verdict({LOL: 0.9, FORTNITE: 0.1}, LOL).outcome == "agree"


# -- decide: not enough to judge ------------------------------------------------------


def test_too_few_frames_is_unsure_whatever_the_scores():
    assert verdict({CHAT: 0.0, LOL: 1.0}, CHAT, frames=8, expected=18) == Verdict("unsure", None, "", 0.0)
    assert verdict({CHAT: 0.0, LOL: 1.0}, CHAT, frames=9, expected=18).outcome == "mismatch"


def test_no_scores_is_unsure():
    assert verdict({}, CHAT).outcome == "unsure"


# -- step: flag transitions -----------------------------------------------------------


def run(outcomes, declared=CHAT, confirmations=2, state=None):
    """Feed outcomes (or (outcome, declared) pairs) through step; return states and actions."""
    state = state or ChannelState()
    actions = []
    for item in outcomes:
        outcome, category = item if isinstance(item, tuple) else (item, declared)
        state, transition = step(state, outcome, category, confirmations=confirmations)
        actions.append(transition.action and f"{transition.action}:{transition.reason}".rstrip(":"))
    return state, actions


def test_one_mismatch_opens_nothing_and_two_open_a_flag():
    state, actions = run(["mismatch", "mismatch"])
    assert actions == [None, "open"]
    assert state == ChannelState(CHAT, 2, True)


def test_confirmations_sets_the_run_length():
    assert run(["mismatch"] * 3, confirmations=3)[1] == [None, None, "open"]
    assert run(["mismatch"], confirmations=1)[1] == ["open"]


def test_mismatches_extend_an_open_flag():
    state, actions = run(["mismatch"] * 4)
    assert actions == [None, "open", "extend", "extend"]
    assert state.mismatch_streak == 4 and state.flag_open


@pytest.mark.parametrize("neutral", ["unsure", "error"])
def test_unsure_and_error_neither_reset_nor_open_nor_close(neutral):
    assert run(["mismatch", neutral, "mismatch"])[1] == [None, None, "open"]
    state, actions = run(["mismatch", "mismatch", neutral, neutral])
    assert actions == [None, "open", None, None]
    assert state == ChannelState(CHAT, 2, True)


def test_agree_resets_the_streak():
    state, actions = run(["mismatch", "agree", "mismatch"])
    assert actions == [None, None, None]
    assert state.mismatch_streak == 1


def test_agree_closes_an_open_flag():
    state, actions = run(["mismatch", "mismatch", "agree"])
    assert actions == [None, "open", "close:agrees"]
    assert state == ChannelState(CHAT, 0, False)


def test_offline_closes_and_resets():
    state, actions = run(["mismatch", "mismatch", "offline", "mismatch"])
    assert actions == [None, "open", "close:offline", None]
    assert state == ChannelState(CHAT, 1, False)


def test_offline_without_a_flag_only_resets():
    state, actions = run(["mismatch", "offline"])
    assert actions == [None, None] and state.mismatch_streak == 0


def test_declaring_another_category_closes_and_restarts_the_streak_there():
    state, actions = run(["mismatch", "mismatch", ("mismatch", LOL), ("mismatch", LOL)])
    assert actions == [None, "open", "close:left_category", "open"]
    assert state == ChannelState(LOL, 2, True)


def test_a_streak_does_not_carry_over_to_another_category():
    state, actions = run(["mismatch", ("mismatch", LOL)])
    assert actions == [None, None] and state == ChannelState(LOL, 1, False)


@pytest.mark.parametrize("outcome", ["unsure", "error", "agree"])
def test_leaving_the_category_closes_whatever_the_outcome(outcome):
    state, actions = run(["mismatch", "mismatch", (outcome, LOL)])
    assert actions[-1] == "close:left_category"
    assert state == ChannelState(LOL, 0, False)


def test_a_check_without_a_declared_category_keeps_the_state():
    state, actions = run(["mismatch", "mismatch", ("error", None)])
    assert actions[-1] is None and state == ChannelState(CHAT, 2, True)


def test_with_one_confirmation_a_category_change_closes_first_and_opens_at_the_next_mismatch():
    _, actions = run(["mismatch", ("mismatch", LOL), ("mismatch", LOL)], confirmations=1)
    assert actions == ["open", "close:left_category", "open"]


def test_a_later_mismatch_run_opens_a_new_flag():
    _, actions = run(["mismatch", "mismatch", "agree", "mismatch", "mismatch"])
    assert actions == [None, "open", "close:agrees", None, "open"]


def test_open_set_gameplay_on_just_chatting_opens_a_flag():
    unknown_game = {CHAT: 0.1, LOL: 0.45, FORTNITE: 0.45}
    state = ChannelState()
    transitions = []
    for _ in range(2):
        v = verdict(unknown_game, CHAT)
        state, t = step(state, v.outcome, CHAT, confirmations=2)
        transitions.append(t)
    assert transitions == [Transition(None), Transition("open")]


def test_gameplay_on_a_declared_known_game_never_opens_a_flag():
    state = ChannelState()
    for _ in range(5):
        v = verdict({CHAT: 0.1, LOL: 0.45, FORTNITE: 0.45}, LOL)
        state, t = step(state, v.outcome, LOL, confirmations=2)
        assert t.action is None
    assert state == ChannelState(LOL, 0, False)


def test_unknown_outcomes_and_zero_confirmations_are_refused():
    with pytest.raises(ValueError, match="outcome"):
        step(ChannelState(), "maybe", CHAT, confirmations=2)
    with pytest.raises(ValueError, match="confirmations"):
        step(ChannelState(), "mismatch", CHAT, confirmations=0)


@pytest.mark.parametrize(("outcome", "expected"), [
    ("agree", (ChannelState(CHAT, 0, False), Transition("close", "agrees"))),
    ("mismatch", (ChannelState(CHAT, 3, True), Transition("extend"))),
    ("unsure", (ChannelState(CHAT, 2, True), Transition(None))),
    ("offline", (ChannelState(CHAT, 0, False), Transition("close", "offline"))),
    ("error", (ChannelState(CHAT, 2, True), Transition(None))),
])
def test_every_outcome_from_an_open_flag(outcome, expected):
    assert outcome in list(Outcome)
    assert step(ChannelState(CHAT, 2, True), outcome, CHAT, confirmations=2) == expected


# -- thresholds from the model card, and a known game named as that game ---------------


def test_a_known_game_on_a_chatting_stream_is_named_even_when_its_own_probability_falls_short():
    # 0.55 of LoL is below min_confidence, but LoL holds 0.55/0.8 of the gameplay probability
    v = verdict({CHAT: 0.2, LOL: 0.55, FORTNITE: 0.25}, CHAT)
    assert v.outcome == "mismatch" and v.predicted_game_id == LOL and v.predicted_label == LOL
    assert v.confidence == pytest.approx(0.8)


def test_a_game_named_only_by_its_share_does_not_accuse_a_game_stream_of_showing_another():
    v = verdict({CHAT: 0.2, LOL: 0.25, FORTNITE: 0.55}, LOL)
    assert v.outcome == "unsure" and v.predicted_game_id == FORTNITE


def test_a_game_named_by_its_share_agrees_with_the_declared_game_and_with_an_unknown_category():
    assert verdict({CHAT: 0.2, LOL: 0.55, FORTNITE: 0.25}, LOL).outcome == "agree"
    assert verdict({CHAT: 0.2, LOL: 0.55, FORTNITE: 0.25}, UNKNOWN_GAME).outcome == "agree"


def test_the_gameplay_threshold_is_its_own():
    scores = {CHAT: 0.3, LOL: 0.35, FORTNITE: 0.35}
    assert verdict(scores, CHAT, gameplay=0.75).outcome == "unsure"
    assert verdict(scores, CHAT, gameplay=0.7).outcome == "mismatch"


def test_thresholds_come_from_the_model_card():
    card = {"thresholds": {"min_confidence": 0.8, "gameplay": 0.9, "chosen_on": "validation"}}
    t = Thresholds.from_card(card)
    assert (t.min_confidence, t.gameplay, t.source) == (0.8, 0.9, "model card")
    scores = {CHAT: 0.15, LOL: 0.75, FORTNITE: 0.1}
    assert decide(scores, CHAT, chatting_id=CHAT, thresholds=t, frames_decoded=18, frames_expected=18,
                  min_frame_fraction=0.5).outcome == "unsure"  # 0.85 gameplay < 0.9, 0.75 LoL < 0.8
    assert decide(scores, CHAT, chatting_id=CHAT, thresholds=DEFAULT_THRESHOLDS, frames_decoded=18,
                  frames_expected=18, min_frame_fraction=0.5).outcome == "mismatch"


@pytest.mark.parametrize("card", [{}, {"thresholds": None}, {"thresholds": {"gameplay": 0.7}},
                                  {"thresholds": {"min_confidence": "high"}}, {"thresholds": {"min_confidence": 1.5}}])
def test_a_card_without_valid_thresholds_falls_back_to_the_documented_defaults(card):
    assert Thresholds.from_card(card) == DEFAULT_THRESHOLDS
    assert (DEFAULT_THRESHOLDS.min_confidence, DEFAULT_THRESHOLDS.gameplay) == (0.6, 0.6)


def test_the_config_min_confidence_overrides_the_card():
    t = Thresholds.from_card({"thresholds": {"min_confidence": 0.8, "gameplay": 0.9}}, min_confidence=0.7)
    assert (t.min_confidence, t.gameplay) == (0.7, 0.9) and "config" in t.source
