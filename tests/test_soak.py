"""The soak's CI version: the daemon under random faults for a few seconds (bench/soak.py runs it for 10 min)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parents[1] / "bench" / "soak.py"


@pytest.mark.slow
def test_the_daemon_under_random_faults_keeps_checking_and_commits_every_check_once(tmp_path, standin_cache):
    spec = importlib.util.spec_from_file_location("soak", SOAK)
    soak = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(soak)
    result = soak.soak(4, seed=1, workdir=tmp_path, cache_dir=standin_cache, settle_cycles=0)
    assert result["faults"] >= 2 and result["fault_kinds"] >= 2
    assert result["cycles"] >= 3  # it kept checking through the faults
    assert result["checks"] > 0
    assert result["observations"] == result["checks"]  # every check committed, once
    assert result["exit_code"] == 0  # SIGTERM at the end: a clean stop
    start, end = result["start"], result["end"]
    assert end["threads"] <= start["threads"]
    # The pool keeps up to 5 idle SQLite connections (SQLAlchemy's QueuePool default); it may warm up to
    # them during the faults. Every other descriptor (log, sockets, files) must be back where it started, give or take
    # a keep-alive connection to Helix that a fault closed and the next request reopened.
    assert end["database_connections"] <= 5
    assert end["other_fds"] <= start["other_fds"] + 1
    assert end["rss_mib"] <= start["rss_mib"] * 1.25
