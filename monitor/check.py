"""Check one live stream end to end: capture, sample, classify, decide, store.

    result = check_stream(runtime.check_context, stream, classifier)
    result.outcome          # "agree" | "mismatch" | "unsure" | "offline" | "error"
    result.record           # the CheckRecord stored as an observation and printed by `check --json`

A check never raises for what Twitch makes normal (offline channel, capture
failure, corrupt video): it ends with an outcome and an observation row, so
one bad stream cannot break a cycle.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from monitor.capture import capture_stream
from monitor.check_context import CheckContext
from monitor.classify import Classifier
from monitor.errors import CaptureError, DecodeError, OfflineError
from monitor.frames import decode_sampled
from monitor.helix import Stream
from monitor.record import CheckRecord
from monitor.store import FlagEvent
from monitor.thumbnail import fetch_thumbnail, settles
from monitor.verdict import Outcome, Thresholds, Verdict, decide

log = logging.getLogger(__name__)


@dataclass
class CheckResult:
    """What one check found: its record, and what only this process uses (stream, verdict, variant, flag)."""

    stream: Stream
    record: CheckRecord
    verdict: Verdict | None = None
    variant: str | None = None  # the HLS variant captured, e.g. "360p"; "thumbnail" when the thumbnail settled it
    thumbnail_bytes: int = 0  # of the pre-screen's JPEG (also counted in record.bytes_downloaded)
    flag_event: FlagEvent | None = None

    @classmethod
    def of(cls, stream: Stream, outcome: str, **measured: Any) -> CheckResult:
        """Start the result of a check of `stream`: its record holds the stream and `measured`."""
        record = CheckRecord(
            user_id=stream.user_id, user_login=stream.user_login, display_name=stream.user_name,
            declared_game_id=stream.game_id, declared_game_name=stream.game_name, stream_id=stream.id,
            outcome=outcome, **measured,
        )
        return cls(stream=stream, record=record)

    @property
    def outcome(self) -> str:
        return self.record.outcome

    @property
    def mismatch(self) -> bool:
        return self.outcome == Outcome.MISMATCH

    def to_json(self, category_names: dict[str, str]) -> dict:
        """Return what `check --json` prints: the record, rounded, and the names and flag action beside it."""
        record = self.record
        predicted_id = record.predicted_game_id
        return {
            **record.to_json(rounded=True),
            "predicted_game_name": (category_names.get(predicted_id, predicted_id) if predicted_id
                                    else (record.predicted_label or None)),
            "mismatch": self.mismatch,
            "variant": self.variant,
            "flag": self.flag_event.action if self.flag_event else None,
        }


def check_stream(ctx: CheckContext, stream: Stream, classifier: Classifier) -> CheckResult:
    """Run one check of a live stream and record it; never raises for stream faults."""
    mon = ctx.monitor
    # The model's own K and n (its card's): the sampling its test accuracy was measured at.
    expected = classifier.segments * classifier.frames_per_segment
    result = CheckResult.of(stream, Outcome.ERROR, model_id=classifier.model_id, frames_expected=expected)
    record = result.record
    frames: list[np.ndarray] = []
    try:
        frames = _capture_and_classify(ctx, stream, classifier, result)
    except OfflineError as exc:
        record.outcome, record.error = Outcome.OFFLINE, str(exc)
    except (CaptureError, DecodeError) as exc:
        record.outcome, record.error = Outcome.ERROR, str(exc)
        log.warning("check %s: %s", stream.user_login, exc)
    record.checked_at = datetime.now(UTC)  # when the check ended: what flags' first_seen and last_seen show
    result.flag_event = ctx.store.record(record, confirmations=mon.confirmations)
    if result.verdict is not None and frames:
        # Only once the observation is committed; resizing and PNG encoding are CPU work. The clip
        # carries the observation's time: what ties a flag (first_seen..last_seen) to its clips for review.
        with ctx.cpu_slot():
            ctx.retainer.keep(frames, result.verdict, stream, model_id=record.model_id, scores=record.scores,
                              checked_at=record.checked_at)
    _count(ctx, result)
    return result


def _capture_and_classify(
    ctx: CheckContext, stream: Stream, classifier: Classifier, result: CheckResult
) -> list[np.ndarray]:
    """Fill in the record's timings, scores and verdict; return the sampled frames."""
    mon = ctx.monitor
    record = result.record
    if mon.thumbnail_prescreen and stream.thumbnail_url and _prescreen(ctx, stream, classifier, result):
        return []
    url = ctx.stream_url.format(user_login=stream.user_login)
    started = time.monotonic()
    cap = capture_stream(url, seconds=mon.capture_seconds, timeout=mon.capture_timeout_seconds)
    record.capture_seconds = time.monotonic() - started
    record.bytes_downloaded, result.variant = record.bytes_downloaded + cap.size, cap.variant
    with ctx.cpu_slot():
        started = time.monotonic()
        sampled = decode_sampled(cap.data, classifier.segments, classifier.frames_per_segment, "test")
        record.decode_seconds = time.monotonic() - started
        record.frames_decoded = len(sampled.frames)
        started = time.monotonic()
        clip = classifier.score(sampled.frames) if sampled.frames else None
        record.inference_seconds = time.monotonic() - started
    record.scores = dict(clip.scores) if clip else {}
    _decide(ctx, stream, classifier, result)
    return sampled.frames


def _prescreen(ctx: CheckContext, stream: Stream, classifier: Classifier, result: CheckResult) -> bool:
    """Score the stream's thumbnail; return True when its confident agreement settles the check.

    Otherwise the record is left for video (only the thumbnail's bytes and time stay in it).
    """
    record = result.record
    started = time.monotonic()
    try:
        frame, size = fetch_thumbnail(stream.thumbnail_url)
    except CaptureError as exc:
        log.debug("check %s: no thumbnail pre-screen (%s)", stream.user_login, exc)
        return False
    result.thumbnail_bytes = size
    record.bytes_downloaded += size
    with ctx.cpu_slot():
        clip = classifier.score([frame])
    verdict = decide(clip.scores, stream.game_id, chatting_id=ctx.chatting_id,
                     thresholds=Thresholds.from_card(classifier.card, min_confidence=ctx.monitor.min_confidence or None),
                     frames_decoded=1, frames_expected=1, min_frame_fraction=ctx.monitor.min_frame_fraction)
    record.inference_seconds = time.monotonic() - started
    if not settles(verdict, ctx.monitor.thumbnail_min_confidence):
        return False
    record.scores, record.frames_decoded, record.frames_expected = dict(clip.scores), 1, 1
    result.variant = "thumbnail"
    _decide(ctx, stream, classifier, result, verdict)
    return True


def _decide(ctx: CheckContext, stream: Stream, classifier: Classifier, result: CheckResult,
            verdict: Verdict | None = None) -> None:
    """Turn the record's scores into a verdict and copy it into the record."""
    mon = ctx.monitor
    record = result.record
    verdict = verdict or decide(
        record.scores,
        stream.game_id,
        chatting_id=ctx.chatting_id,
        thresholds=Thresholds.from_card(classifier.card, min_confidence=mon.min_confidence or None),
        frames_decoded=record.frames_decoded,
        frames_expected=record.frames_expected,
        min_frame_fraction=mon.min_frame_fraction,
    )
    result.verdict = verdict
    record.outcome = verdict.outcome
    record.predicted_game_id, record.predicted_label = verdict.predicted_game_id, verdict.predicted_label
    record.confidence = verdict.confidence


def _count(ctx: CheckContext, result: CheckResult) -> None:
    metrics = ctx.metrics
    record = result.record
    category = result.stream.game_id
    metrics.check_done(category, record.outcome)
    if record.capture_seconds:
        metrics.observe_stage("capture", record.capture_seconds)
    if record.decode_seconds:
        metrics.observe_stage("decode", record.decode_seconds)
    if record.inference_seconds:
        metrics.observe_stage("inference", record.inference_seconds)
    if record.bytes_downloaded - result.thumbnail_bytes:
        metrics.bytes_downloaded("video", record.bytes_downloaded - result.thumbnail_bytes)
    if result.thumbnail_bytes:
        metrics.bytes_downloaded("thumbnail", result.thumbnail_bytes)
    if result.flag_event:
        metrics.flag_event(result.flag_event.action, category, result.flag_event.reason)
    ctx.notify_flag(result.flag_event)
