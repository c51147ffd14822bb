"""The experiment: the report's three settings, paired tests between them, and the command end to end."""

from __future__ import annotations

import json

import pytest
from toydata import toy_config, write_toy_dataset

from monitor.model_registry import ModelRegistry
from trainer.experiment import REPORT_SETTINGS, ExperimentReport, paired_tests, wilson_interval

TABLE_FIELDS = {"setting", "segments", "frames_per_segment", "model_id", "train_frame_accuracy", "train_accuracy",
                "test_frame_accuracy", "test_accuracy", "report_test_accuracy", "report_train_accuracy",
                "test_accuracy_ci95", "epochs_run"}


def test_the_settings_are_the_reports():
    assert [(s.segments, s.frames_per_segment, s.report_test_accuracy) for s in REPORT_SETTINGS] == [
        (3, 3, 0.63), (6, 3, 0.75), (12, 5, 0.68)]
    assert [s.label for s in REPORT_SETTINGS] == ["K=3/n=3", "K=6/n=3", "K=12/n=5"]


def test_paired_tests_cover_every_pair_on_per_clip_correctness():
    correctness = {
        "A": {"c1": True, "c2": True, "c3": True, "c4": False},
        "B": {"c1": False, "c2": False, "c3": True, "c4": False},
        "C": {"c1": True, "c2": True, "c3": True, "c4": True},
    }
    pairs = paired_tests(correctness)
    assert [(p["a"], p["b"], p["a_only"], p["b_only"]) for p in pairs] == [
        ("A", "B", 2, 0), ("A", "C", 0, 1), ("B", "C", 0, 3)]
    assert pairs[0]["p_value"] == pytest.approx(0.5)  # 2 * (1/2)^2
    assert pairs[2]["p_value"] == pytest.approx(0.25)  # 2 * (1/2)^3


@pytest.mark.parametrize(("k", "n", "lo", "hi"), [(8, 10, 0.4902, 0.9433), (0, 10, 0.0, 0.2775),
                                                  (80, 80, 0.9542, 1.0)])
def test_wilson_interval_on_known_values(k, n, lo, hi):
    assert wilson_interval(k, n) == pytest.approx((lo, hi), abs=1e-4)


def test_wilson_interval_shows_the_noise_of_80_test_clips():
    lo, hi = wilson_interval(60, 80)  # 75%, the report's best
    assert 0.18 < hi - lo < 0.20  # about +/- 10 points, as the issue says


def test_table_puts_the_reports_numbers_beside_ours():
    rows = [{"setting": s.label, "model_id": f"m{i}", "train_frame_accuracy": 0.9, "train_accuracy": 1.0,
             "test_frame_accuracy": 0.6, "test_accuracy": 0.7, "test_accuracy_ci95": [0.5, 0.85],
             "report_test_accuracy": s.report_test_accuracy, "report_train_accuracy": 0.99, "epochs_run": 3,
             "train_seconds": 12.0} for i, s in enumerate(REPORT_SETTINGS)]
    pairs = paired_tests({s.label: {"c1": i > 0, "c2": True} for i, s in enumerate(REPORT_SETTINGS)})
    table = ExperimentReport(rows=rows, pairs=pairs, test_clips=2, test_hash="ab" * 32).table()
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["setting", "train", "frame"]
    assert "63%" in lines[1] and "75%" in lines[2] and "68%" in lines[3] and "~99%" in lines[3]
    assert "K=3/n=3 vs K=6/n=3: 0 clips right only with K=3/n=3, 1 only with K=6/n=3, p = 1" in table
    assert "not significant" in table and "abababababab" in table


@pytest.mark.slow
def test_experiment_runs_the_three_settings_without_activating_them(tmp_path, cli):
    data_dir = tmp_path / "data"
    # two classes, one train and one test channel each: the point is the plumbing, not the numbers
    write_toy_dataset(data_dir, classes=("21779", "33214"), channels=2, frames=4)
    cfg = str(toy_config(tmp_path / "c.toml", data_dir))
    code, out, err = cli("experiment", "--json", "--epochs", "3", "--max-minutes-per-setting", "0.0001",
                         "--config", cfg)
    assert code == 0, err[-2000:]
    result = json.loads(out)
    rows = result["settings"]
    assert [r["setting"] for r in rows] == ["K=3/n=3", "K=6/n=3", "K=12/n=5"]
    for row in rows:
        assert TABLE_FIELDS <= row.keys()
        for key in ("train_frame_accuracy", "train_accuracy", "test_frame_accuracy", "test_accuracy"):
            assert 0 <= row[key] <= 1, key
        assert row["test_clips"] == 2 and row["report_train_accuracy"] == 0.99
        assert row["epochs_run"] == 1  # the time budget stopped training inside the first of 3 epochs
    assert [r["report_test_accuracy"] for r in rows] == [0.63, 0.75, 0.68]
    assert [(p["a"], p["b"]) for p in result["mcnemar"]] == [
        ("K=3/n=3", "K=6/n=3"), ("K=3/n=3", "K=12/n=5"), ("K=6/n=3", "K=12/n=5")]
    assert all(0 <= p["p_value"] <= 1 and p["a_only"] + p["b_only"] <= 2 for p in result["mcnemar"])
    assert result["test_clips"] == 2 and len(result["test_hash"]) == 64

    registry = ModelRegistry(data_dir)
    assert registry.active_id() is None  # saved, never activated
    cards = {c["model_id"]: c for c in registry.list()}
    assert set(cards) == {r["model_id"] for r in rows}
    assert sorted((c["segments"], c["frames_per_segment"]) for c in cards.values()) == [(3, 3), (6, 3), (12, 5)]


def test_experiment_refuses_a_nonpositive_time_budget(tmp_path, cli):
    code, _, err = cli("experiment", "--max-minutes-per-setting", "0",
                       "--config", str(toy_config(tmp_path / "c.toml", tmp_path / "data")))
    assert code == 2 and "--max-minutes-per-setting must be positive" in err
