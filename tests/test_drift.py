"""Drift: the last day's predicted classes and confidence per declared category against the test-set reference."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import torch
from cli_helpers import run_cli, write_config
from dbfixtures import database_url, postgres_schema_url, postgres_url  # noqa: F401

from monitor.config import load_config
from monitor.cycle import Runtime, refresh_drift
from monitor.drift import CONFIDENCE_DROP, MIN_CHECKS, TV_THRESHOLD, drift_report
from monitor.metrics import Metrics
from monitor.model_registry import ModelRegistry
from monitor.record import CheckRecord
from monitor.store import Store

LOL, CHATTING, FORTNITE, UNKNOWN = "21779", "509658", "33214", "516575"
CLASSES = [LOL, CHATTING, FORTNITE]
NOW = datetime.now(UTC)
REFERENCE = {
    "source": "test", "clips": 9, "classes": CLASSES,
    "per_category": {
        LOL: {"clips": 3, "predicted": {LOL: 1.0, CHATTING: 0.0, FORTNITE: 0.0}, "mean_confidence": 0.9},
        CHATTING: {"clips": 3, "predicted": {LOL: 0.0, CHATTING: 1.0, FORTNITE: 0.0}, "mean_confidence": 0.9},
        FORTNITE: {"clips": 3, "predicted": {LOL: 0.0, CHATTING: 0.0, FORTNITE: 1.0}, "mean_confidence": 0.85},
    },
}


def _register(data_dir, reference: dict | None) -> str:
    from monitor.classify import build_model
    from trainer.registry import save_model

    torch.set_num_threads(1)
    card = {"classes": CLASSES, "arch": "squeezenet1_1", "segments": 2, "frames_per_segment": 1}
    if reference is not None:
        card["drift_reference"] = reference
    model_id = save_model(data_dir, build_model("squeezenet1_1", len(CLASSES), "none"), card)
    ModelRegistry(data_dir).activate(model_id)
    return model_id


def _scores(top: str, p: float) -> dict[str, float]:
    rest = (1 - p) / (len(CLASSES) - 1)
    return {c: (p if c == top else rest) for c in CLASSES}


def _record(store: Store, n: int, declared: str, scores: dict, model_id: str, *, outcome: str = "agree",
            hours_ago: float = 1.0) -> None:
    store.record(CheckRecord(f"{n}", f"chan{n}", f"Chan{n}", declared, "?", f"s{n}", outcome, scores=scores,
                             model_id=model_id, checked_at=NOW - timedelta(hours=hours_ago)), confirmations=2)


def _day_of_checks(store: Store, model_id: str) -> None:
    """League of Legends as on the test set; Just Chatting half gameplay; Fortnite unsure of itself; plus noise."""
    n = 0
    for i in range(12):
        _record(store, n := n + 1, LOL, _scores(LOL, 0.9), model_id)
        _record(store, n := n + 1, CHATTING, _scores(LOL if i % 2 else CHATTING, 0.9), model_id,
                outcome="mismatch" if i % 2 else "agree")
        _record(store, n := n + 1, FORTNITE, _scores(FORTNITE, 0.6), model_id, outcome="unsure")
    for _ in range(3):  # a category the model does not know, and too few checks of it anyway
        _record(store, n := n + 1, UNKNOWN, _scores(LOL, 0.8), model_id, outcome="unsure")
    # None of these count: too old, another model's, no verdict.
    for _ in range(20):
        _record(store, n := n + 1, LOL, _scores(FORTNITE, 0.3), model_id, hours_ago=30)
        _record(store, n := n + 1, LOL, _scores(FORTNITE, 0.3), "another-model")
        _record(store, n := n + 1, LOL, _scores(FORTNITE, 0.3), model_id, outcome="error")


def test_drift_names_the_categories_whose_histogram_or_confidence_moved(tmp_path, database_url):  # noqa: F811
    store = Store(database_url)
    store.upgrade()
    store.upsert_categories({LOL: "League of Legends", CHATTING: "Just Chatting"})
    model_id = _register(tmp_path, REFERENCE)
    _day_of_checks(store, model_id)
    lines = drift_report(store, ModelRegistry(tmp_path), hours=24).lines()
    assert any(line.startswith("Just Chatting: 12 checks, predicted") and "MOVED (histogram)" in line
               for line in lines), lines
    assert lines[-1] == "moved: 33214, Just Chatting"  # by id; a category the daemon never named shows its id
    report = drift_report(store, ModelRegistry(tmp_path), hours=24).to_json()
    store.dispose()
    assert report["model_id"] == model_id and report["reference"] is True and report["note"] is None
    by_id = {c["category"]: c for c in report["categories"]}
    assert set(by_id) == {LOL, CHATTING, FORTNITE, UNKNOWN}
    lol, chatting, fortnite, unknown = (by_id[c] for c in (LOL, CHATTING, FORTNITE, UNKNOWN))
    assert lol["name"] == "League of Legends" and fortnite["name"] is None
    assert lol["checks"] == 12 and lol["predicted"] == {LOL: 1.0, CHATTING: 0.0, FORTNITE: 0.0}
    assert lol["mean_confidence"] == pytest.approx(0.9) and lol["tv_distance"] == 0 and lol["moved"] == []
    assert chatting["predicted"] == {LOL: 0.5, CHATTING: 0.5, FORTNITE: 0.0}
    assert chatting["tv_distance"] == pytest.approx(0.5) and chatting["moved"] == ["histogram"]
    assert fortnite["confidence_change"] == pytest.approx(-0.25) and fortnite["moved"] == ["confidence"]
    assert unknown["checks"] == 3 and unknown["reference"] is None and unknown["moved"] == []
    assert "not one of the model's classes" in unknown["note"]
    assert report["moved"] == sorted([CHATTING, FORTNITE])
    assert report["thresholds"] == {"tv_distance": TV_THRESHOLD, "confidence_drop": CONFIDENCE_DROP,
                                    "min_checks": MIN_CHECKS}


def test_fewer_checks_than_the_minimum_name_nothing(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'tw.db'}")
    store.upgrade()
    model_id = _register(tmp_path, REFERENCE)
    for n in range(MIN_CHECKS - 1):  # every one of them far from the reference
        _record(store, n, CHATTING, _scores(FORTNITE, 0.4), model_id, outcome="mismatch")
    [chatting] = drift_report(store, ModelRegistry(tmp_path)).to_json()["categories"]
    assert chatting["tv_distance"] == pytest.approx(1.0) and chatting["moved"] == []
    assert "too few checks" in chatting["note"]
    _record(store, 99, CHATTING, _scores(FORTNITE, 0.4), model_id, outcome="mismatch")
    assert drift_report(store, ModelRegistry(tmp_path)).moved() == [CHATTING]
    store.dispose()


def test_the_drift_command_prints_json_and_says_when_the_model_card_has_no_reference(tmp_path):
    db = f"sqlite:///{tmp_path / 'tw.db'}"
    store = Store(db)
    store.upgrade()
    old = _register(tmp_path / "data", reference=None)  # a model from before the card had a reference
    _day_of_checks(store, old)
    store.dispose()
    cfg = write_config(tmp_path / "tw.toml", {"storage": {"database_url": db, "data_dir": str(tmp_path / "data")}})
    done = run_cli("drift", "--json", "--hours", "24", "--config", str(cfg), timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["model_id"] == old and report["reference"] is False and report["moved"] == []
    assert "has no drift reference" in report["note"]
    assert {c["category"]: c["checks"] for c in report["categories"]} == {LOL: 12, CHATTING: 12, FORTNITE: 12,
                                                                           UNKNOWN: 3}
    assert all(c["reference"] is None and c["tv_distance"] is None for c in report["categories"])
    text = run_cli("drift", "--hours", "0", "--config", str(cfg), timeout=300)
    assert text.returncode == 2 and "--hours must be positive" in text.stderr


def test_each_cycle_exports_the_drift_figures_as_gauges_with_bounded_labels(tmp_path):
    db = f"sqlite:///{tmp_path / 'tw.db'}"
    Store(db).upgrade()
    cfg = load_config(environ={}, overrides={
        "storage": {"database_url": db, "data_dir": str(tmp_path / "data")},
        "categories": {"watch": CLASSES, "chatting": CHATTING}})
    model_id = _register(tmp_path / "data", REFERENCE)
    rt = Runtime(cfg, Metrics())
    try:
        _day_of_checks(rt.store, model_id)
        refresh_drift(rt)
        sample = rt.metrics.registry.get_sample_value
        assert sample("twitchwatch_drift_predicted_share", {"category": CHATTING, "predicted": LOL}) == 0.5
        assert sample("twitchwatch_drift_reference_share", {"category": CHATTING, "predicted": CHATTING}) == 1.0
        assert sample("twitchwatch_drift_tv_distance", {"category": CHATTING}) == pytest.approx(0.5)
        assert sample("twitchwatch_drift_mean_confidence", {"category": FORTNITE}) == pytest.approx(0.6)
        assert sample("twitchwatch_drift_reference_confidence", {"category": FORTNITE}) == pytest.approx(0.85)
        assert sample("twitchwatch_drift_checks", {"category": LOL}) == 12
        assert [sample("twitchwatch_drift_moved", {"category": c}) for c in CLASSES] == [0, 1, 1]
        # Bounded: the unknown category is not watched, and only the model's classes are predicted labels.
        labels = {(s.name, tuple(sorted(s.labels.items()))) for f in rt.metrics.registry.collect()
                  if f.name.startswith("twitchwatch_drift") for s in f.samples}
        assert all(dict(ls).get("category") in CLASSES and dict(ls).get("predicted", LOL) in CLASSES
                   for _, ls in labels)

        # A model without a reference, with no checks yet: the old series go, none linger.
        _register(tmp_path / "data", reference=None)
        refresh_drift(rt)
        assert sample("twitchwatch_drift_predicted_share", {"category": CHATTING, "predicted": LOL}) is None
        assert sample("twitchwatch_drift_tv_distance", {"category": CHATTING}) is None
    finally:
        rt.close()
