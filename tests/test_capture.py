"""Real streamlink against the stand-in's live HLS: variant choice, wall-clock cap, decoding."""

from __future__ import annotations

import time

import pytest

from monitor.capture import capture_stream, choose_variant
from monitor.errors import CaptureError, OfflineError
from monitor.frames import decode_sampled, sample_indices
from monitor.sim import small_scenario


def _login(mislabeled: bool = False) -> str:
    scenario = small_scenario()
    return next(ch.login for ch in scenario.channels if scenario.truth(ch.login).mislabeled == mislabeled)


def _url(sim, login: str) -> str:
    return sim.twitch_config()["stream_url"].format(user_login=login)


def test_choose_variant_takes_the_smallest_at_least_224_tall():
    heights = {"160p": 160, "360p": 360, "720p60": 720, "best": 720, "worst": 160, "audio_only": None}
    assert choose_variant(heights) == ("360p", 360)
    assert choose_variant({"160p": 160, "180p": 180}) == ("180p", 180)  # none tall enough: the tallest
    with pytest.raises(CaptureError):
        choose_variant({"audio_only": None})


def test_capture_reads_the_360p_variant_and_decodes_to_k_times_n_frames(standin):
    login = _login()
    cap = capture_stream(_url(standin, login), seconds=8, timeout=60)
    assert cap.variant == "360p" and cap.height == 360
    assert not cap.capped
    assert standin.counters.bytes_served(login, "720p") == 0
    # Everything streamlink read came from the 360p segments the stand-in served.
    assert 0 < cap.size <= standin.counters.bytes_served(login, "360p")

    sampled = decode_sampled(cap.data, segments=4, frames_per_segment=2, mode="test")
    assert len(sampled.frames) == 8
    assert sampled.indices == sample_indices(sampled.total_frames, 4, 2, "test")
    # About 8 s of video at the scenario's frame rate (segments are 2 s).
    fps = small_scenario().fps
    assert 6 * fps <= sampled.total_frames <= 10 * fps
    assert sampled.frames[0].shape == (360, 640, 3)


def test_offline_channel_is_an_offline_error(standin):
    login = _login()
    standin.set_offline(login, True)
    with pytest.raises(OfflineError):
        capture_stream(_url(standin, login), seconds=4, timeout=20)


def test_a_capture_during_an_ad_break_ends_in_bounded_time(standin):
    login = _login()
    standin.set_ad_break(login, 60)
    started = time.monotonic()
    try:
        capture_stream(_url(standin, login), seconds=30, timeout=8)
    except CaptureError:
        pass  # nothing at all before the end: also a clean end
    assert time.monotonic() - started < 20  # not the 60 s of the ad


class _BlockingStream:
    """A stream whose reads block like streamlink's do while a channel shows an ad."""

    def __init__(self):
        import threading

        self.closed = threading.Event()
        self.sent = False

    def open(self):
        return self

    def read(self, size):
        if not self.sent:
            self.sent = True
            return b"x" * 100
        self.closed.wait()
        raise ValueError("read of closed file")

    def close(self):
        self.closed.set()


def test_wall_clock_cap_cuts_a_read_that_blocks():
    from monitor.capture import _read_capped

    stream = _BlockingStream()
    started = time.monotonic()
    data, capped = _read_capped(stream, timeout=1.0)
    assert capped and data == b"x" * 100
    assert stream.closed.is_set()
    assert time.monotonic() - started < 10
