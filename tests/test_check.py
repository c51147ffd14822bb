"""One check in-process: faults that happen between listing and verdict, and the model's own sampling."""

from __future__ import annotations

import pytest
import torch

from monitor.check import check_stream
from monitor.config import load_config
from monitor.cycle import Runtime
from monitor.sim import small_scenario
from monitor.store import Store


def make_runtime(standin, tmp_path, *, monitor: dict, card: tuple[int, int]) -> Runtime:
    """Return a Runtime on the stand-in whose active model, untrained, was registered at K, n = card."""
    from monitor.classify import build_model
    from monitor.model_registry import ModelRegistry
    from trainer.registry import save_model

    torch.set_num_threads(1)
    scenario = small_scenario()
    classes = [c.id for c in scenario.categories]
    cfg = load_config(environ={}, overrides={
        "twitch": standin.twitch_config(),
        "categories": {"watch": classes, "chatting": "509658"},
        "monitor": {"capture_seconds": 6, "capture_timeout_seconds": 30.0, **monitor},
        "storage": {"database_url": f"sqlite:///{tmp_path / 'tw.db'}", "data_dir": str(tmp_path / "data")},
        "model": {"pretrained": "none"},
    })
    Store(cfg.storage.database_url).upgrade()
    # An untrained model: these tests pin the fault paths and the sampling, not accuracy.
    segments, frames_per_segment = card
    model_id = save_model(cfg.data_path, build_model("squeezenet1_1", len(classes), "none"),
                          {"classes": classes, "arch": "squeezenet1_1", "segments": segments,
                           "frames_per_segment": frames_per_segment})
    ModelRegistry(cfg.data_path).activate(model_id)
    return Runtime(cfg)


@pytest.fixture
def runtime(standin, tmp_path):
    rt = make_runtime(standin, tmp_path, monitor={"segments": 3, "frames_per_segment": 2}, card=(3, 2))
    yield rt
    rt.close()


def _stream(rt, login):
    stream = rt.helix.stream_of(login)
    assert stream is not None
    return stream


def _honest_login():
    scenario = small_scenario()
    return next(ch.login for ch in scenario.channels if not scenario.truth(ch.login).mislabeled)


def test_a_check_stores_one_observation_with_scores(runtime):
    result = check_stream(runtime.check_context, _stream(runtime, _honest_login()), runtime.classifier())
    assert result.outcome in ("agree", "mismatch", "unsure")
    assert result.record.frames_decoded == 6
    assert abs(sum(result.record.scores.values()) - 1) < 1e-3
    rows = runtime.store.observations(_honest_login())
    assert len(rows) == 1 and rows[0]["outcome"] == result.outcome


def test_channel_offline_between_listing_and_capture_gives_no_verdict(runtime, standin):
    login = _honest_login()
    stream = _stream(runtime, login)
    standin.set_offline(login, True)
    result = check_stream(runtime.check_context, stream, runtime.classifier())
    assert result.outcome == "offline" and result.verdict is None
    assert result.flag_event is None
    assert runtime.store.observations(login)[0]["outcome"] == "offline"


def test_fully_corrupt_video_is_an_error_not_a_crash(runtime, standin):
    login = _honest_login()
    standin.set_corrupt(login, 1.0)
    result = check_stream(runtime.check_context, _stream(runtime, login), runtime.classifier())
    assert result.outcome in ("error", "unsure")
    assert result.flag_event is None


def test_partly_corrupt_video_still_classifies_what_decodes(runtime, standin):
    login = _honest_login()
    standin.set_corrupt(login, 0.05)
    result = check_stream(runtime.check_context, _stream(runtime, login), runtime.classifier())
    assert result.record.frames_decoded > 0
    assert result.record.scores


def test_a_model_is_served_at_its_cards_k_and_n_whatever_the_config_says(standin, tmp_path):
    # An `experiment` model registered at K=3/n=3, activated under a config that trains at K=12/n=5.
    rt = make_runtime(standin, tmp_path, monitor={"segments": 12, "frames_per_segment": 5}, card=(3, 3))
    try:
        result = check_stream(rt.check_context, _stream(rt, _honest_login()), rt.classifier())
        assert (result.record.frames_expected, result.record.frames_decoded) == (9, 9)
        assert rt.store.observations()[0]["frames_expected"] == 9
    finally:
        rt.close()
