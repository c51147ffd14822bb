"""The retrain's Prometheus textfile: what it holds after a success and after a failure, and that it is valid.

`promtool check metrics` (Debian's prometheus package; .ci/run installs it)
validates each file written here; without it those checks are skipped with
the reason, and under CI (CI=true) they fail instead.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_retrain import SURE_FIRST, constant_model
from toydata import toy_config, write_toy_dataset

from monitor.model_registry import ModelRegistry
from trainer.retrain_textfile import PREFIX, read_values, record_failure, record_success

NEEDS = "needs promtool on PATH (Debian's prometheus package; .ci/run installs it)"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail(NEEDS + ": under CI this check must run")
    pytest.skip(NEEDS)


def check_metrics(promtool: str, path: Path) -> None:
    """Fail unless `promtool check metrics` accepts the file without a lint finding."""
    with path.open("rb") as f:
        result = subprocess.run([promtool, "check", "metrics"], stdin=f, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), (
        f"promtool check metrics: {result.stdout}{result.stderr}")


def gauges(path: Path) -> dict[str, tuple[str, float]]:
    """Return {name without prefix: (type, value)} from a textfile, parsed as node_exporter would."""
    out = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            out[sample.name.removeprefix(PREFIX)] = (family.type, sample.value)
    return out


def test_a_finished_retrain_writes_its_figures_readable_by_node_exporter(tmp_path):
    path = tmp_path / "twitchwatch_retrain.prom"
    record_success(path, started=1000.0, finished=1042.5, test_accuracy=0.75, champion_accuracy=0.5, promoted=True)
    assert gauges(path) == {
        "last_success_timestamp_seconds": ("gauge", 1042.5),
        "duration_seconds": ("gauge", 42.5),
        "test_accuracy": ("gauge", 0.75),
        "champion_test_accuracy": ("gauge", 0.5),
        "promoted": ("gauge", 1.0),
        "last_attempt_timestamp_seconds": ("gauge", 1042.5),
        "last_attempt_failed": ("gauge", 0.0),
    }
    # node_exporter runs as another user: the file must be world-readable whatever the umask.
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left beside it


def test_a_first_retrain_without_a_champion_leaves_the_champion_gauge_out(tmp_path):
    path = tmp_path / "r.prom"
    record_success(path, started=10.0, finished=20.0, test_accuracy=0.5, champion_accuracy=None, promoted=True)
    assert "champion_test_accuracy" not in gauges(path)


def test_a_failed_retrain_keeps_the_last_success_and_sets_the_failure_gauge(tmp_path):
    path = tmp_path / "r.prom"
    record_success(path, started=1000.0, finished=1100.0, test_accuracy=0.75, champion_accuracy=0.8, promoted=False)
    record_failure(path, attempted=5000.0)
    values = {name: value for name, (_, value) in gauges(path).items()}
    assert values == {"last_success_timestamp_seconds": 1100.0, "duration_seconds": 100.0, "test_accuracy": 0.75,
                      "champion_test_accuracy": 0.8, "promoted": 0.0,
                      "last_attempt_timestamp_seconds": 5000.0, "last_attempt_failed": 1.0}
    record_success(path, started=6000.0, finished=6010.0, test_accuracy=0.9, champion_accuracy=0.75, promoted=True)
    assert read_values(path)["last_attempt_failed"] == 0.0  # the next success clears it


def test_a_failure_before_any_success_says_none_has_finished(tmp_path):
    path = tmp_path / "r.prom"
    record_failure(path, attempted=5000.0)
    assert read_values(path) == {"last_success_timestamp_seconds": 0.0, "last_attempt_timestamp_seconds": 5000.0,
                                 "last_attempt_failed": 1.0}


def test_a_garbled_old_file_is_replaced_and_the_failure_still_recorded(tmp_path, caplog):
    path = tmp_path / "r.prom"
    path.write_text("this is { not the text format\n")
    with caplog.at_level(logging.WARNING):
        record_failure(path, attempted=7.0)
    assert read_values(path)["last_attempt_failed"] == 1.0
    assert "unreadable" in caplog.text


def test_an_unwritable_textfile_is_logged_and_does_not_raise(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        record_success(tmp_path / "missing-dir" / "r.prom", started=0.0, finished=1.0, test_accuracy=1.0,
                       champion_accuracy=None, promoted=True)
    assert "could not write the retrain textfile" in caplog.text and "retrain.textfile" in caplog.text


def test_retrain_that_fails_records_the_failure_in_the_textfile(tmp_path, cli):
    # A champion from another test set: retrain refuses before training (exit 1), a failure to alert on.
    data_dir = tmp_path / "data"
    write_toy_dataset(data_dir)
    champion = constant_model(data_dir, SURE_FIRST, test_hash="0" * 64)
    ModelRegistry(data_dir).activate(champion)
    path = tmp_path / "twitchwatch_retrain.prom"
    record_success(path, started=100.0, finished=200.0, test_accuracy=0.6, champion_accuracy=0.5, promoted=True)
    code, out, err = cli("retrain", "--json", "--config", str(toy_config(tmp_path / "c.toml", data_dir)),
                         env={"TWITCHWATCH_RETRAIN__TEXTFILE": str(path)})
    assert (code, out) == (1, "") and "refusing to compare" in err
    values = read_values(path)
    assert values["last_success_timestamp_seconds"] == 200.0 and values["promoted"] == 1.0
    assert values["last_attempt_failed"] == 1.0 and values["last_attempt_timestamp_seconds"] > 200.0


def test_a_textfile_node_exporter_would_not_read_is_a_config_error(tmp_path, cli):
    code, _, err = cli("config", "show", env={"TWITCHWATCH_RETRAIN__TEXTFILE": str(tmp_path / "retrain.txt")})
    assert code == 2
    assert "retrain.textfile" in err and "*.prom" in err


WRITES = {
    "a success": lambda p: record_success(p, started=1.0, finished=2.0, test_accuracy=0.7, champion_accuracy=0.6,
                                          promoted=False),
    "a first success": lambda p: record_success(p, started=1.0, finished=2.0, test_accuracy=0.7,
                                                champion_accuracy=None, promoted=True),
    "a failure after a success": lambda p: (WRITES["a success"](p), record_failure(p, attempted=9.0)),
    "a failure before any success": lambda p: record_failure(p, attempted=9.0),
}


@pytest.mark.parametrize("case", list(WRITES))
def test_promtool_accepts_every_file_the_retrain_writes(tmp_path, promtool, case):
    path = tmp_path / "twitchwatch_retrain.prom"
    WRITES[case](path)
    check_metrics(promtool, path)
