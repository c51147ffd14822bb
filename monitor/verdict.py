"""Decide what one check found, and how it moves a channel's flag: pure rules, no I/O.

    t = Thresholds.from_card(classifier.card)      # chosen on validation at training time
    v = decide(scores, "509658", chatting_id="509658", thresholds=t,
               frames_decoded=18, frames_expected=18, min_frame_fraction=0.5)
    v.outcome                       # "mismatch"
    state, tr = step(ChannelState(), v.outcome, "509658", confirmations=2)
    tr.action                       # None: one mismatch is not a flag yet

Prediction (`decide`), from `scores`, the averaged per-frame softmax keyed by
category id. The model is closed-set: it only knows its classes. To catch the
main case, a "Just Chatting" stream playing ANY game, the rules are open-set:
gameplay probability = 1 - p(chatting), whatever game it is.

Two thresholds rule it, both from the model card (`trainer.thresholds`
chooses them on validation channels), else DEFAULT_THRESHOLDS:
`min_confidence` for naming a class, `gameplay` for "some game is on screen".

1. Too few frames (frames_decoded < min_frame_fraction * frames_expected) or
   no scores: unsure, no prediction.
2. The top class is a game with p >= min_confidence: that game, surely.
3. Else, where the model knows chatting, gameplay probability >= gameplay:
   some game is on screen, confidence = the gameplay probability. It is
   named as the most probable game when that game holds at least
   min_confidence of the gameplay probability (a known game is that game,
   not "gameplay"), but not surely: its own probability fell short. Else
   "gameplay" (predicted_game_id None). Without a chatting class every
   probability is a game's and "1 - p(chatting)" would always be 1.
4. Else p(chatting) >= min_confidence: chatting.
5. Else unsure, label "", confidence = the best probability that fell short.

Outcome, by what the stream declares:

- chatting (and the model knows chatting): agree if chatting is predicted;
  mismatch for a game or "gameplay".
- a game G the model knows: agree if G; mismatch for another known game
  named surely, or for chatting; "gameplay", or another game named only by
  its share of the gameplay probability, is unsure (some game, but which one
  is not settled enough to accuse a stream of showing another).
- a category the model does not know (not in `scores`), for example a game
  it was never trained on, or "Just Chatting" for a games-only model:
  agree on "gameplay" (the screen shows a game, and that is all the model
  can tell about an unknown game; these frames may then label that game in
  the training set); unsure on a known game, because a closed-set softmax
  maps an unknown game onto the nearest known one with high confidence, so
  "Valorant shows Call of Duty" is a guess, not evidence; unsure on
  chatting, because the unknown category may be a non-game one (Music, Art)
  where a camera scene is expected, and a game streamer's camera-only break
  is no deception either. Nothing about an unknown category can open a flag.

Flag rules (`step`), per channel, per declared category:

- "mismatch" adds one to the streak; the flag opens when the streak reaches
  `confirmations`; while it is open each further mismatch "extend"s it.
- "agree" resets the streak and closes an open flag ("agrees").
- "unsure" and "error" change nothing: they neither open, close nor reset.
- "offline" resets the streak and closes an open flag ("offline").
- A check that declares another category than the state's closes an open
  flag ("left_category") whatever its outcome, and the streak restarts in
  the new category, counting this check. One check makes one transition, so
  with confirmations == 1 a mismatch that also changed category closes the
  old flag and the new one opens at the next mismatch.
- After a close, a new mismatch run opens a new flag.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum


class Outcome(StrEnum):
    """What one check found: the values of the observations' outcome column and of the metrics' label.

    A StrEnum: each member equals its string ("agree" == Outcome.AGREE).
    """

    AGREE = "agree"
    MISMATCH = "mismatch"
    UNSURE = "unsure"
    OFFLINE = "offline"  # the channel was not live at capture: no verdict
    ERROR = "error"  # capture or decoding failed, or the check was abandoned: no verdict

    @property
    def completed(self) -> bool:
        """Return whether the check reached a verdict (agree, mismatch or unsure)."""
        return self in (Outcome.AGREE, Outcome.MISMATCH, Outcome.UNSURE)

    @classmethod
    def parse(cls, value: str) -> Outcome:
        """Return the outcome named by value; ValueError listing the outcomes for any other."""
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"unknown outcome {value!r}; expected one of {', '.join(cls)}") from None

GAMEPLAY = "gameplay"  # predicted label for gameplay of a game the model does not know
CLOSE_REASONS = ("agrees", "left_category", "offline")


@dataclass(frozen=True)
class Verdict:
    outcome: str  # "agree" | "mismatch" | "unsure"
    predicted_game_id: str | None  # a watched category id; None for unknown-game gameplay or no prediction
    predicted_label: str  # a category id, or "gameplay"; "" when unsure with no prediction
    confidence: float  # 0..1


@dataclass(frozen=True)
class Thresholds:
    """When a probability counts: `min_confidence` names a class, `gameplay` says some game is on screen."""

    min_confidence: float = 0.6
    gameplay: float = 0.6
    source: str = "defaults"

    def __post_init__(self) -> None:
        for name in ("min_confidence", "gameplay"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 < value <= 1.0):
                raise ValueError(f"threshold {name} must be in (0, 1], got {value!r}")

    @classmethod
    def from_card(cls, card: Mapping, *, min_confidence: float | None = None) -> Thresholds:
        """Return the card's thresholds; a card without (valid) ones gets DEFAULT_THRESHOLDS.

        `min_confidence`, when given (the config's monitor.min_confidence), overrides the card's.
        """
        chosen = card.get("thresholds") if isinstance(card, Mapping) else None
        try:
            if isinstance(chosen, Mapping) and "min_confidence" in chosen:
                found = cls(float(chosen["min_confidence"]),
                            float(chosen.get("gameplay", chosen["min_confidence"])), "model card")
            else:
                found = DEFAULT_THRESHOLDS
        except (TypeError, ValueError):
            found = DEFAULT_THRESHOLDS
        if min_confidence is not None:
            found = replace(found, min_confidence=min_confidence, source=f"{found.source}, min_confidence from config")
        return found


DEFAULT_THRESHOLDS = Thresholds()


@dataclass(frozen=True)
class Prediction:
    label: str  # a category id, "gameplay", or "" when unsure
    confidence: float
    sure: bool = True  # False: a game named by its share of the gameplay probability, not its own


def decide(
    scores: Mapping[str, float],
    declared_game_id: str,
    *,
    chatting_id: str,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    frames_decoded: int,
    frames_expected: int,
    min_frame_fraction: float,
) -> Verdict:
    """Return the verdict of one check from its class probabilities and declared category."""
    if not scores or frames_decoded < min_frame_fraction * frames_expected:
        return Verdict("unsure", None, "", 0.0)
    found = predict(scores, chatting_id=chatting_id, thresholds=thresholds)
    if not found.label:
        return Verdict("unsure", None, "", found.confidence)
    outcome = _outcome(found, declared_game_id, known=declared_game_id in scores, chatting_id=chatting_id)
    predicted_id = None if found.label == GAMEPLAY else found.label
    return Verdict(outcome, predicted_id, found.label, found.confidence)


def predict(scores: Mapping[str, float], *, chatting_id: str, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> Prediction:
    """Return what is on screen: a category id, "gameplay", or "" with the best probability when unsure."""
    top = max(scores, key=lambda k: scores[k])
    p_top = float(scores[top])
    if top != chatting_id and p_top >= thresholds.min_confidence:
        return Prediction(top, p_top)
    if chatting_id not in scores:
        return Prediction("", p_top)
    p_chat = float(scores[chatting_id])
    gameplay = 1.0 - p_chat
    if gameplay >= thresholds.gameplay:
        game = max((k for k in scores if k != chatting_id), key=lambda k: scores[k])
        if float(scores[game]) >= thresholds.min_confidence * gameplay:
            return Prediction(game, gameplay, sure=False)
        return Prediction(GAMEPLAY, gameplay)
    if p_chat >= thresholds.min_confidence:
        return Prediction(chatting_id, p_chat)
    return Prediction("", max(p_top, gameplay))


def _outcome(found: Prediction, declared: str, *, known: bool, chatting_id: str) -> str:
    label = found.label
    if not known:
        # Gameplay evidence agrees with an unknown game; a known game named surely is a closed-set guess.
        return "agree" if label == GAMEPLAY or (label != chatting_id and not found.sure) else "unsure"
    if declared == chatting_id:
        return "agree" if label == chatting_id else "mismatch"
    if label == declared:
        return "agree"
    if label == GAMEPLAY or not found.sure:
        return "unsure"
    return "mismatch"


@dataclass(frozen=True)
class ChannelState:
    declared_game_id: str | None = None
    mismatch_streak: int = 0  # consecutive mismatching checks in this declared category (unsure checks skipped)
    flag_open: bool = False


@dataclass(frozen=True)
class Transition:
    action: str | None  # "open" | "extend" | "close" | None
    reason: str = ""  # for close: "agrees" | "left_category" | "offline"


NO_CHANGE = Transition(None)


def step(
    state: ChannelState, outcome: str, declared_game_id: str | None, *, confirmations: int
) -> tuple[ChannelState, Transition]:
    """Apply one check's outcome to a channel's state; return the new state and the flag transition."""
    Outcome.parse(outcome)
    if confirmations < 1:
        raise ValueError(f"confirmations must be at least 1, got {confirmations}")
    if outcome == "offline":
        closing = Transition("close", "offline") if state.flag_open else NO_CHANGE
        return ChannelState(declared_game_id or state.declared_game_id), closing
    if declared_game_id is not None and declared_game_id != state.declared_game_id:
        return _enter_category(state, outcome, declared_game_id, confirmations)
    if outcome == "mismatch":
        streak = state.mismatch_streak + 1
        if state.flag_open:
            return ChannelState(state.declared_game_id, streak, True), Transition("extend")
        if streak >= confirmations:
            return ChannelState(state.declared_game_id, streak, True), Transition("open")
        return ChannelState(state.declared_game_id, streak, False), NO_CHANGE
    if outcome == "agree":
        closing = Transition("close", "agrees") if state.flag_open else NO_CHANGE
        return ChannelState(state.declared_game_id), closing
    return state, NO_CHANGE  # unsure, error


def _enter_category(
    state: ChannelState, outcome: str, declared_game_id: str, confirmations: int
) -> tuple[ChannelState, Transition]:
    streak = 1 if outcome == "mismatch" else 0
    if state.flag_open:
        return ChannelState(declared_game_id, streak), Transition("close", "left_category")
    if streak >= confirmations:
        return ChannelState(declared_game_id, streak, True), Transition("open")
    return ChannelState(declared_game_id, streak), NO_CHANGE
