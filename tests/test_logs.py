"""Log lines for a terminal, for journald (syslog priorities, no timestamp) and for log shippers (JSON)."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import run_cli
from toydata import toy_config, write_toy_dataset

from monitor.logs import JournalFormatter, JsonFormatter, formatter_for, syslog_priority, writes_to_journal

ROOT = Path(__file__).resolve().parents[1]


def record(level: int, message: str, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc else None
    return logging.LogRecord("monitor.cycle", level, __file__, 1, message, None, exc_info)


def raised() -> BaseException:
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        return exc


@pytest.mark.parametrize(("level", "priority"), [
    (logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6), (logging.DEBUG, 7),
])
def test_journal_lines_carry_the_syslog_priority_and_no_timestamp(level, priority):
    assert syslog_priority(level) == priority
    assert JournalFormatter().format(record(level, "listing failed")) == f"<{priority}>monitor.cycle: listing failed"


def test_every_line_of_a_traceback_carries_the_priority_for_journald():
    lines = JournalFormatter().format(record(logging.ERROR, "check failed", raised())).splitlines()
    assert len(lines) > 3 and lines[0] == "<3>monitor.cycle: check failed"
    assert all(line.startswith("<3>") for line in lines)
    assert lines[-1] == "<3>RuntimeError: boom"


def test_text_lines_keep_todays_timestamped_format():
    line = formatter_for("text").format(record(logging.WARNING, "slow"))
    # streamlink, once imported, renames the levels in lower case: either is today's format.
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (WARNING|warning) monitor\.cycle: slow", line), line


def test_json_lines_are_one_object_each_with_the_exception():
    entry = json.loads(JsonFormatter().format(record(logging.ERROR, "check failed", raised())))
    assert entry["level"] == "error" and entry["priority"] == 3 and entry["logger"] == "monitor.cycle"
    assert entry["message"] == "check failed" and entry["exception"].endswith("RuntimeError: boom")
    assert entry["time"].endswith("+00:00")
    assert "\n" not in JsonFormatter().format(record(logging.ERROR, "two\nlines"))


def test_auto_is_journal_only_on_the_stream_systemd_named(tmp_path):
    with open(tmp_path / "journal", "w") as journal, open(tmp_path / "other", "w") as other:
        st = os.fstat(journal.fileno())
        named = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        assert writes_to_journal(journal, named)
        assert isinstance(formatter_for("auto", journal, named), JournalFormatter)
        # A child of the service whose stderr went elsewhere inherits the variable, not the stream.
        assert not writes_to_journal(other, named)
        assert not isinstance(formatter_for("auto", other, named), JournalFormatter)
        assert not writes_to_journal(journal, {})
        assert not writes_to_journal(journal, {"JOURNAL_STREAM": "garbage"})


def journal_env(stderr_file) -> dict[str, str]:
    st = os.fstat(stderr_file.fileno())
    return {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}


def test_the_cli_under_systemd_writes_priorities_journalctl_can_filter(tmp_path):
    # --debug logs the failure with its traceback: an error, every line of it at priority 3.
    with open(tmp_path / "stderr", "w+") as err:
        done = subprocess.run([sys.executable, "-m", "monitor", "flags", "--debug", "--config",
                               str(tmp_path / "missing.toml")], cwd=ROOT, stderr=err, stdout=subprocess.PIPE,
                              env={**os.environ, **journal_env(err)}, timeout=120)
        err.seek(0)
        lines = err.read().splitlines()
    assert done.returncode == 2
    assert lines[0] == "<3>twitchwatch: failed"
    assert all(line.startswith("<3>") for line in lines), lines
    assert not any(re.match(r"<\d>\d{4}-", line) for line in lines)
    # The CLI's own one-line error is written, not logged: it carries the priority too.
    assert lines[-1].startswith("<3>twitchwatch: error: cannot read config file")


def test_log_format_json_overrides_the_journal(tmp_path):
    with open(tmp_path / "stderr", "w+") as err:
        subprocess.run([sys.executable, "-m", "monitor", "flags", "--debug", "--log-format", "json", "--config",
                        str(tmp_path / "missing.toml")], cwd=ROOT, stderr=err, stdout=subprocess.PIPE,
                       env={**os.environ, **journal_env(err)}, timeout=120)
        err.seek(0)
        lines = err.read().splitlines()
    entry = json.loads(lines[0])
    assert lines[-1].startswith("twitchwatch: error: cannot read config file")  # the contract's one line
    assert entry["logger"] == "twitchwatch" and entry["level"] == "error" and "ConfigError" in entry["exception"]


def test_bad_log_format_is_a_usage_error():
    result = run_cli("flags", "--log-format", "xml")
    assert result.returncode == 2 and "--log-format" in result.stderr


@pytest.mark.slow
def test_retrain_json_logs_its_progress_to_stderr_and_prints_only_json(tmp_path):
    data_dir = tmp_path / "data"
    write_toy_dataset(data_dir)
    cfg = toy_config(tmp_path / "c.toml", data_dir)
    result = run_cli("retrain", "--json", "--epochs", "1", "--log-format", "journal", "--config", str(cfg))
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["promoted"] is True  # no model yet: the challenger wins
    progress = [line for line in result.stderr.splitlines() if line.startswith("<6>trainer.retrain: ")]
    assert any("training squeezenet1_1 on" in line for line in progress), result.stderr[-2000:]
