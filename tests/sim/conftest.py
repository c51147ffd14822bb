"""Fixtures for the stand-in's own tests: a shared segment cache, a clock tests can move."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from monitor.sim import StandIn, small_scenario


class FakeClock:
    """A wall clock that only moves when a test says so."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="session")
def sim_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One cache for the session: each segment is encoded once per run, not once per test.
    return tmp_path_factory.mktemp("standin-cache")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(sim_cache: Path, clock: FakeClock) -> Iterator[StandIn]:
    """A small-scenario stand-in on a fake clock, with a small, slow-refilling bucket."""
    with StandIn(small_scenario(), cache_dir=sim_cache, token_ttl_seconds=600.0, bucket_size=20,
                 bucket_refill_per_second=2.0, clock=clock) as standin:
        yield standin


@pytest.fixture
def live_sim(sim_cache: Path) -> Iterator[StandIn]:
    """A stand-in on the real clock, for readers (streamlink) that wait on wall time."""
    with StandIn(small_scenario(), cache_dir=sim_cache) as standin:
        yield standin


@pytest.fixture
def token(sim: StandIn) -> str:
    answer = requests.post(f"{sim.auth_url}/token", params={
        "client_id": sim.client_id, "client_secret": sim.client_secret, "grant_type": "client_credentials"})
    answer.raise_for_status()
    return answer.json()["access_token"]


@pytest.fixture
def helix(sim: StandIn, token: str) -> Callable[..., requests.Response]:
    """GET a Helix path with valid credentials: helix("/streams", {"first": 2})."""
    session = requests.Session()
    session.headers.update({"Client-Id": sim.client_id, "Authorization": f"Bearer {token}"})

    def get(path: str, params: object = None, **kwargs: object) -> requests.Response:
        return session.get(sim.helix_url + path, params=params, timeout=30, **kwargs)

    return get
