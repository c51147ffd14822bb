"""Fixtures shared by the whole suite: the Twitch stand-in and configs pointed at it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The suite shares 2 cores with itself; torch's default of one thread per core
# only adds contention in tests.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def standin_cache(tmp_path_factory) -> Path:
    """The stand-in's encoded-video cache: the user cache when present, so reruns are fast."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    path = Path(base) / "twitchwatch" / "standin"
    try:
        path.mkdir(parents=True, exist_ok=True)
        return path
    except OSError:
        return tmp_path_factory.mktemp("standin-cache")


@pytest.fixture(scope="session")
def small_standin(standin_cache):
    """One stand-in for the session, small scenario; tests must undo the faults they set."""
    from monitor.sim import StandIn, small_scenario

    with StandIn(small_scenario(), cache_dir=standin_cache) as sim:
        yield sim


@pytest.fixture
def standin(standin_cache):
    """A fresh stand-in per test, for tests that set faults or count requests."""
    from monitor.sim import StandIn, small_scenario

    with StandIn(small_scenario(), cache_dir=standin_cache) as sim:
        yield sim
