"""Video faults made to happen on the stand-in, through a whole check: ads, truncated, empty and very long
segments, too few frames, a stream with only `best`, no declared category; and no socket left open."""

from __future__ import annotations

import os
import time

import pytest
from test_check import make_runtime

from monitor.capture import capture_stream
from monitor.check import check_stream

LOGIN = "mellowraven_live"  # an honest League of Legends channel of the small scenario


def _runtime(standin, tmp_path, **monitor):
    monitor = {"segments": 3, "frames_per_segment": 2, "capture_seconds": 4, **monitor}
    return make_runtime(standin, tmp_path, monitor=monitor, card=(3, 2))


@pytest.fixture
def runtime(standin, tmp_path):
    rt = _runtime(standin, tmp_path)
    yield rt
    rt.close()


def _check(rt, login=LOGIN):
    stream = rt.helix.stream_of(login)
    assert stream is not None
    return check_stream(rt.check_context, stream, rt.classifier())


def _stored(rt, login=LOGIN):
    return [row["outcome"] for row in rt.store.observations(login)]


def test_an_ad_that_freezes_the_playlist_is_ended_by_the_wall_clock_cap(standin, tmp_path):
    rt = _runtime(standin, tmp_path, capture_seconds=30, capture_timeout_seconds=3.0)
    try:
        stream = rt.helix.stream_of(LOGIN)
        standin.set_ad_break(LOGIN, 120)
        # The live edge stops moving: 30 s asked, 20 s in the window, then a read that waits for the ad to end.
        started = time.monotonic()
        result = check_stream(rt.check_context, stream, rt.classifier())
        assert time.monotonic() - started < 10
        assert result.outcome in ("error", "agree", "mismatch", "unsure")
        assert result.flag_event is None or result.outcome == "mismatch"
        assert _stored(rt) == [result.outcome]
    finally:
        rt.close()


def test_truncated_segments_are_decoded_as_far_as_they_go(runtime, standin):
    standin.set_segment_fault(LOGIN, "truncated")
    result = _check(runtime)
    assert result.record.frames_decoded > 0
    assert abs(sum(result.record.scores.values()) - 1) < 1e-3
    assert _stored(runtime) == [result.outcome]


def test_fewer_frames_than_the_fraction_of_k_times_n_gives_no_verdict_and_no_flag(standin, tmp_path):
    rt = _runtime(standin, tmp_path, min_frame_fraction=0.9, confirmations=1)
    try:
        standin.set_corrupt(LOGIN, 0.9)
        standin.set_game(LOGIN, "509658")  # declares Just Chatting: a verdict could only be a mismatch
        result = _check(rt)
        assert result.record.frames_decoded < result.record.frames_expected
        assert result.outcome in ("unsure", "error")
        assert result.record.predicted_game_id is None
        assert result.flag_event is None and rt.store.flags() == []
        assert _stored(rt) == [result.outcome]
    finally:
        rt.close()


def test_zero_length_segments_are_an_error_without_a_verdict(runtime, standin):
    standin.set_segment_fault(LOGIN, "empty")
    result = _check(runtime)
    assert result.outcome == "error" and result.verdict is None
    assert "no video captured" in result.record.error
    assert _stored(runtime) == ["error"]


def test_very_long_segments_are_captured_and_sampled_like_short_ones(runtime, standin):
    standin.set_segment_fault(LOGIN, "long")
    started = time.monotonic()
    result = _check(runtime)
    assert time.monotonic() - started < 30
    assert result.record.frames_decoded == result.record.frames_expected == 6
    assert result.outcome in ("agree", "mismatch", "unsure")


def test_a_stream_that_offers_only_best_is_still_captured(runtime, standin):
    standin.set_single_variant(LOGIN)
    result = _check(runtime)
    assert result.variant not in ("360p", "720p", "160p")  # no named variant was offered
    assert result.record.frames_decoded == 6
    assert result.outcome in ("agree", "mismatch", "unsure")


def test_a_stream_declaring_no_category_or_an_unknown_one_never_opens_a_flag(standin, tmp_path):
    rt = _runtime(standin, tmp_path, confirmations=1)
    try:
        for declared in ("", "999999999"):
            standin.set_game(LOGIN, declared)
            result = _check(rt)
            assert result.outcome in ("agree", "unsure")  # nothing to disagree with
            assert result.flag_event is None
        assert rt.store.flags() == []
        assert len(_stored(rt)) == 2
    finally:
        rt.close()


def test_captures_leave_no_socket_open(standin):
    url = standin.stream_url.format(user_login=LOGIN)
    capture_stream(url, seconds=2, timeout=10)  # warm up: imports, the stand-in's cache
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        capture_stream(url, seconds=2, timeout=10)
    assert len(os.listdir("/proc/self/fd")) <= before + 1
