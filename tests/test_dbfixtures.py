"""The PostgreSQL fixtures skip without a server, saying how to run the tests, and fail under CI."""

from __future__ import annotations

from pathlib import Path

import pytest
from dbfixtures import POSTGRES_ENV, _unreachable
from sqlalchemy.engine import make_url

URL = make_url("postgresql+psycopg://postgres:secret@127.0.0.1:1/test")


def test_without_a_server_the_postgresql_tests_skip_and_say_how_to_run_them(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        _unreachable(URL, ConnectionError("refused"))
    message = str(skipped.value)
    assert f"set {POSTGRES_ENV}=postgresql+psycopg://" in message and "127.0.0.1:1" in message
    assert "secret" not in message


def test_under_ci_an_unreachable_server_fails_the_test(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="PostgreSQL not reachable"):
        _unreachable(URL, ConnectionError("refused"))


def test_the_ci_script_runs_the_suite_with_ci_set():
    script = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    export = script.index('export CI="${CI:-true}"')
    assert export < script.index(".venv/bin/python -m pytest")
