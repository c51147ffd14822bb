"""Check one live stream end to end: capture, sample, classify, decide, store.

    result = check_stream(runtime, stream, classifier)
    result.outcome          # "agree" | "mismatch" | "unsure" | "offline" | "error"

A check never raises for what Twitch makes normal (offline channel, capture
failure, corrupt video): it ends with an outcome and an observation row, so
one bad stream cannot break a cycle.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from monitor.capture import capture_stream
from monitor.classify import Classifier
from monitor.errors import CaptureError, DecodeError, OfflineError
from monitor.frames import decode_sampled
from monitor.helix import Stream
from monitor.store import FlagEvent, ObservationIn
from monitor.verdict import Thresholds, Verdict, decide

if TYPE_CHECKING:
    from monitor.cycle import Runtime

log = logging.getLogger(__name__)


@dataclass
class CheckResult:
    """What one check found, in the shape `check --json` prints."""

    stream: Stream
    outcome: str
    verdict: Verdict | None = None
    scores: dict[str, float] = field(default_factory=dict)
    model_id: str | None = None
    frames_decoded: int = 0
    frames_expected: int = 0
    capture_seconds: float = 0.0
    decode_seconds: float = 0.0
    inference_seconds: float = 0.0
    bytes_downloaded: int = 0
    variant: str | None = None
    error: str | None = None
    flag_event: FlagEvent | None = None

    @property
    def mismatch(self) -> bool:
        return self.outcome == "mismatch"

    def to_json(self, category_names: dict[str, str]) -> dict:
        verdict = self.verdict
        predicted_id = verdict.predicted_game_id if verdict else None
        label = verdict.predicted_label if verdict else ""
        return {
            "user_login": self.stream.user_login,
            "user_id": self.stream.user_id,
            "declared_game_id": self.stream.game_id,
            "declared_game_name": self.stream.game_name,
            "predicted_game_id": predicted_id,
            "predicted_game_name": category_names.get(predicted_id, predicted_id) if predicted_id else (label or None),
            "confidence": round(verdict.confidence, 4) if verdict else None,
            "mismatch": self.mismatch,
            "outcome": self.outcome,
            "scores": {k: round(v, 4) for k, v in self.scores.items()},
            "model_id": self.model_id,
            "frames_decoded": self.frames_decoded,
            "frames_expected": self.frames_expected,
            "variant": self.variant,
            "capture_seconds": round(self.capture_seconds, 3),
            "decode_seconds": round(self.decode_seconds, 3),
            "inference_seconds": round(self.inference_seconds, 3),
            "bytes_downloaded": self.bytes_downloaded,
            "error": self.error,
            "flag": self.flag_event.action if self.flag_event else None,
        }


def check_stream(rt: Runtime, stream: Stream, classifier: Classifier) -> CheckResult:
    """Run one check of a live stream and record it; never raises for stream faults."""
    mon = rt.cfg.monitor
    expected = mon.segments * mon.frames_per_segment
    result = CheckResult(stream=stream, outcome="error", model_id=classifier.model_id, frames_expected=expected)
    frames: list[np.ndarray] = []
    try:
        frames = _capture_and_classify(rt, stream, classifier, result)
    except OfflineError as exc:
        result.outcome, result.error = "offline", str(exc)
    except (CaptureError, DecodeError) as exc:
        result.outcome, result.error = "error", str(exc)
        log.warning("check %s: %s", stream.user_login, exc)
    result.flag_event = rt.store.record(_observation(result), confirmations=mon.confirmations)
    if result.verdict is not None and frames:
        # Only once the observation is committed; resizing and PNG encoding are CPU work.
        with rt.cpu_slot():
            rt.retainer.keep(frames, result.verdict, stream, model_id=result.model_id, scores=result.scores)
    _count(rt, result)
    return result


def _capture_and_classify(
    rt: Runtime, stream: Stream, classifier: Classifier, result: CheckResult
) -> list[np.ndarray]:
    """Fill in the result's timings, scores and verdict; return the sampled frames."""
    mon = rt.cfg.monitor
    url = rt.cfg.twitch.stream_url.format(user_login=stream.user_login)
    started = time.monotonic()
    cap = capture_stream(url, seconds=mon.capture_seconds, timeout=mon.capture_timeout_seconds)
    result.capture_seconds = time.monotonic() - started
    result.bytes_downloaded, result.variant = cap.size, cap.variant
    with rt.cpu_slot():
        started = time.monotonic()
        sampled = decode_sampled(cap.data, mon.segments, mon.frames_per_segment, "test")
        result.decode_seconds = time.monotonic() - started
        result.frames_decoded = len(sampled.frames)
        started = time.monotonic()
        clip = classifier.score(sampled.frames) if sampled.frames else None
        result.inference_seconds = time.monotonic() - started
    result.scores = dict(clip.scores) if clip else {}
    result.verdict = decide(
        result.scores,
        stream.game_id,
        chatting_id=rt.cfg.categories.chatting,
        thresholds=Thresholds.from_card(classifier.card, min_confidence=mon.min_confidence or None),
        frames_decoded=result.frames_decoded,
        frames_expected=result.frames_expected,
        min_frame_fraction=mon.min_frame_fraction,
    )
    result.outcome = result.verdict.outcome
    return sampled.frames


def _observation(result: CheckResult) -> ObservationIn:
    verdict = result.verdict
    stream = result.stream
    return ObservationIn(
        user_id=stream.user_id,
        user_login=stream.user_login,
        display_name=stream.user_name,
        declared_game_id=stream.game_id,
        declared_game_name=stream.game_name,
        stream_id=stream.id,
        outcome=result.outcome,
        predicted_game_id=verdict.predicted_game_id if verdict else None,
        predicted_label=verdict.predicted_label if verdict else "",
        confidence=verdict.confidence if verdict else None,
        scores=result.scores,
        model_id=result.model_id,
        frames_decoded=result.frames_decoded,
        frames_expected=result.frames_expected,
        capture_seconds=result.capture_seconds,
        decode_seconds=result.decode_seconds,
        inference_seconds=result.inference_seconds,
        bytes_downloaded=result.bytes_downloaded,
        error=result.error,
    )


def _count(rt: Runtime, result: CheckResult) -> None:
    metrics = rt.metrics
    category = result.stream.game_id
    metrics.check_done(category, result.outcome)
    if result.capture_seconds:
        metrics.observe_stage("capture", result.capture_seconds)
    if result.decode_seconds:
        metrics.observe_stage("decode", result.decode_seconds)
    if result.inference_seconds:
        metrics.observe_stage("inference", result.inference_seconds)
    if result.bytes_downloaded:
        metrics.bytes_downloaded("video", result.bytes_downloaded)
    if result.flag_event:
        metrics.flag_event(result.flag_event.action, category, result.flag_event.reason)
    rt.notify_flag(result.flag_event)
