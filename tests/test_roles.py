"""`run --role`: the roles' usage errors and their config keys, without any server."""

from __future__ import annotations

import pytest
from cli_helpers import write_config

from monitor.config import load_config
from monitor.errors import ConfigError


@pytest.mark.parametrize("role", ["scheduler", "worker"])
@pytest.mark.parametrize("once", [False, True])
def test_scheduler_and_worker_refuse_sqlite_with_exit_2_naming_the_key(cli, tmp_path, role, once):
    cfg = write_config(tmp_path / "c.toml", {"storage": {"database_url": f"sqlite:///{tmp_path / 'x.db'}"}})
    code, out, err = cli("run", "--role", role, *(["--once"] if once else []), "--config", str(cfg))
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert "storage.database_url" in err and "PostgreSQL only" in err and "--role all" in err
    assert not (tmp_path / "x.db").exists()  # refused before anything was opened


def test_an_unknown_role_is_a_usage_error(cli):
    code, _, err = cli("run", "--role", "boss")
    assert code == 2 and "invalid choice: 'boss'" in err


def test_json_without_once_is_a_usage_error_in_every_role(cli):
    for role in ("all", "scheduler", "worker"):
        code, _, err = cli("run", "--role", role, "--json")
        assert code == 2 and "--json goes with --once" in err


def test_the_queue_keys_have_defaults_and_are_checked():
    q = load_config(environ={}).queue
    assert (q.heartbeat_seconds, q.stalled_seconds, q.failover_seconds) == (10.0, 60.0, 5.0)
    with pytest.raises(ConfigError, match=r"queue\.stalled_seconds must be at least twice queue\.heartbeat_seconds"):
        load_config(environ={}, overrides={"queue": {"heartbeat_seconds": 10, "stalled_seconds": 15}})
    with pytest.raises(ConfigError, match=r"queue\.failover_seconds must be positive"):
        load_config(environ={}, overrides={"queue": {"failover_seconds": 0}})
    with pytest.raises(ConfigError, match=r"unknown config key queue\.lease"):
        load_config(environ={}, overrides={"queue": {"lease": 1}})
    assert load_config(environ={"TWITCHWATCH_QUEUE__STALLED_SECONDS": "90"}).queue.stalled_seconds == 90.0
