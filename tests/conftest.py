"""Fixtures shared by the whole suite: one torch thread, the Twitch stand-in, the CLI run in-process, a database."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dbfixtures import postgres_database_url  # noqa: F401  (a whole PostgreSQL database for one test)

# The suite shares 2 cores with itself; torch's default of one thread per core
# only adds contention in tests.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Run torch with one thread during each test, whatever OMP_NUM_THREADS said; restore it after.

    Only where torch is already loaded: importing it here would cost every
    torch-free test file seconds, and a torch loaded later starts from
    OMP_NUM_THREADS, set to 1 above.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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


@pytest.fixture
def clean_environ(monkeypatch) -> None:
    """Remove the TWITCHWATCH_* and TWITCH_* variables for one test: the developer's settings must not leak in."""
    for var in list(os.environ):
        if var.startswith(("TWITCHWATCH_", "TWITCH_")):
            monkeypatch.delenv(var)


@pytest.fixture
def cli(clean_environ, monkeypatch, capsys) -> Callable[..., tuple[int, str, str]]:
    """Run `twitchwatch ARGS...` in this process (monitor.cli.main): returns (exit code, stdout, stderr).

    In-process because each fresh interpreter spends seconds importing torch;
    the parser, the entry-point lookup (the project must be installed, as
    `pip install -e .` does, for the trainer's subcommands) and the
    error-to-exit-code mapping are the real ones. The environment is cleaned
    as cli_helpers.run_cli does.
    """
    from monitor.cli import main

    def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        with monkeypatch.context() as m:
            for key, value in (env or {}).items():
                m.setenv(key, value)
            capsys.readouterr()
            code = main(list(args))
            out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(scope="session")
def command_world(tmp_path_factory, standin_cache):
    """Every twitchwatch command run once on a tiny world with secrets and hostile Helix data (fault_helpers)."""
    from dbfixtures import throwaway_database
    from fault_helpers import build_command_world

    with throwaway_database("tw_commands") as url:
        yield build_command_world(tmp_path_factory.mktemp("command-world"), standin_cache, url)
