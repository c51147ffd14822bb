"""The thumbnail pre-screen: the stand-in serves thumbnails; a confident agreement skips the capture, doubt does not."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from test_check import make_runtime
from torch import nn

from monitor.check import check_stream
from monitor.classify import Classifier
from monitor.sim import small_scenario
from monitor.thumbnail import fetch_thumbnail, thumbnail_url


class Sure(nn.Module):
    """A stand-in model: the same logits for every frame, `margin` in favour of one class."""

    def __init__(self, classes: int, index: int, margin: float):
        super().__init__()
        self.logits = torch.zeros(classes)
        self.logits[index] = margin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(x.shape[0], -1).clone()


@pytest.fixture
def runtime(small_standin, tmp_path):
    rt = make_runtime(small_standin, tmp_path, monitor={"thumbnail_prescreen": True, "thumbnail_min_confidence": 0.9},
                      card=(3, 1))
    yield rt
    rt.close()


def _honest(rt):
    scenario = small_scenario()
    channel = next(ch for ch in scenario.channels if not scenario.truth(ch.login).mislabeled)
    return rt.helix.stream_of(channel.login)


def _saying(rt, game_id: str, margin: float) -> Classifier:
    real = rt.classifier()
    return dataclasses.replace(real, model=Sure(len(real.classes), real.classes.index(game_id), margin),
                               serving_model=None, serving="fp32")


def test_the_stand_in_serves_a_thumbnail_of_the_channel(runtime):
    stream = _honest(runtime)
    assert "{width}x{height}" in stream.thumbnail_url
    frame, size = fetch_thumbnail(stream.thumbnail_url)
    assert frame.shape == (225, 400, 3) and frame.dtype == np.uint8 and 0 < size < 60_000
    assert frame.std() > 5  # a picture, not a blank
    assert thumbnail_url("x-{width}x{height}.jpg", 8, 6) == "x-8x6.jpg"


def test_a_confident_agreeing_thumbnail_settles_the_check_without_video(runtime):
    stream = _honest(runtime)
    result = check_stream(runtime.check_context, stream, _saying(runtime, stream.game_id, 8.0))
    assert result.outcome == "agree" and result.variant == "thumbnail"
    assert result.record.capture_seconds == 0 and result.record.bytes_downloaded == result.thumbnail_bytes > 0


def test_an_unsure_thumbnail_goes_on_to_video(runtime):
    stream = _honest(runtime)
    result = check_stream(runtime.check_context, stream, _saying(runtime, stream.game_id, 1.0))  # ~0.27 sure
    assert result.variant != "thumbnail" and result.record.capture_seconds > 0
    assert result.record.frames_decoded == 3 and result.record.bytes_downloaded > result.thumbnail_bytes > 0


def test_a_disagreeing_thumbnail_goes_on_to_video(runtime):
    stream = _honest(runtime)
    other = next(c for c in runtime.classifier().classes if c != stream.game_id and c != "509658")
    result = check_stream(runtime.check_context, stream, _saying(runtime, other, 8.0))
    assert result.variant != "thumbnail" and result.record.capture_seconds > 0
    assert result.outcome == "mismatch"
