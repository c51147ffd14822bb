"""One check and whole cycles end to end through real parts, and the demo.

The demo (small scenario) runs once for this module: it proves the whole loop
and leaves a trained model that the other tests reuse against a fresh
database and a fresh stand-in.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from cli_helpers import run_cli, write_config

from monitor.sim import small_scenario

pytestmark = pytest.mark.slow

FLAG_KEYS = {"user_login", "user_id", "declared_game_id", "declared_game_name", "predicted_game_id",
             "predicted_game_name", "confidence", "first_seen", "last_seen", "checks", "status"}
CHECK_KEYS = {"user_login", "declared_game_id", "predicted_game_id", "predicted_game_name", "confidence",
              "mismatch", "scores"}
CYCLE_KEYS = {"checks", "completed", "verdicts", "flags_opened", "flags_closed", "wall_seconds", "cpu_seconds",
              "bytes_downloaded"}


def _logins(predicate) -> list[str]:
    scenario = small_scenario()
    return [ch.login for ch in scenario.channels if predicate(scenario.truth(ch.login))]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    work = tmp_path_factory.mktemp("demo")
    # Nothing else runs beside the demo here: let torch use both cores.
    result = run_cli("demo", "--scenario", "small", "--workdir", str(work), timeout=1500,
                     env={"OMP_NUM_THREADS": "2"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return work, result


@pytest.fixture
def config_for(demo, tmp_path):
    work, _ = demo

    def make(sim, **monitor):
        scenario = small_scenario()
        return write_config(tmp_path / "twitchwatch.toml", {
            "twitch": sim.twitch_config(),
            "categories": {"watch": [c.id for c in scenario.categories], "chatting": "509658"},
            "monitor": {"capture_seconds": 8, "segments": 4, "frames_per_segment": 2, **monitor},
            "storage": {"database_url": f"sqlite:///{tmp_path / 'tw.db'}", "data_dir": str(work / "data")},
            "model": {"pretrained": "none"},
        })

    return make


def test_demo_finds_the_mislabeled_stream(demo):
    _, result = demo
    out = result.stdout
    for login in _logins(lambda t: t.mislabeled):
        line = next(line for line in out.splitlines() if login in line and ("caught" in line or "MISSED" in line))
        assert "caught" in line, out[-3000:]
    assert "FALSE FLAG" not in out, out[-3000:]
    assert "step 3/3" in out


def test_demo_leaves_a_config_and_prints_the_command_that_shows_its_flags(demo):
    work, result = demo
    line = next(line for line in result.stdout.splitlines() if "see the flags again with:" in line)
    command = shlex.split(line.split("see the flags again with:", 1)[1])
    assert command[:2] == ["twitchwatch", "flags"] and command[2] == "--config"
    assert Path(command[3]) == work / "twitchwatch.toml"
    shown = run_cli(*command[1:], "--json")
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert set(_logins(lambda t: t.mislabeled)) <= {f["user_login"] for f in json.loads(shown.stdout)}


def test_two_cycles_flag_the_mislabeled_channel_and_not_the_honest(standin, config_for):
    cfg = config_for(standin)
    assert run_cli("db", "upgrade", "--config", str(cfg)).returncode == 0
    first = run_cli("run", "--once", "--json", "--config", str(cfg))
    assert first.returncode == 0, first.stderr[-2000:]
    summary = json.loads(first.stdout)
    assert CYCLE_KEYS <= summary.keys()
    assert summary["checks"] == len(small_scenario().channels)
    assert summary["flags_opened"] == 0  # one mismatch is not enough
    assert summary["bytes_downloaded"] > 0

    second = json.loads(run_cli("run", "--once", "--json", "--config", str(cfg)).stdout)
    assert second["flags_opened"] >= 1

    flags = json.loads(run_cli("flags", "--json", "--config", str(cfg)).stdout)
    by_login = {f["user_login"]: f for f in flags}
    mislabeled = _logins(lambda t: t.mislabeled)
    honest = _logins(lambda t: not t.mislabeled)
    assert set(mislabeled) <= set(by_login)
    assert not set(honest) & set(by_login)
    for flag in flags:
        assert FLAG_KEYS <= flag.keys()
        assert flag["status"] == "open" and flag["checks"] >= 2
        assert flag["declared_game_id"] == "509658"
        assert 0 <= flag["confidence"] <= 1
        assert flag["first_seen"].endswith(("Z", "+00:00"))


def test_check_prints_the_verdict_as_json(small_standin, config_for):
    cfg = config_for(small_standin)
    assert run_cli("db", "upgrade", "--config", str(cfg)).returncode == 0
    login = _logins(lambda t: t.mislabeled)[0]
    result = run_cli("check", login, "--json", "--config", str(cfg))
    assert result.returncode == 0, result.stderr[-2000:]
    verdict = json.loads(result.stdout)
    assert CHECK_KEYS <= verdict.keys()
    assert verdict["mismatch"] is True
    assert verdict["declared_game_id"] == "509658"
    assert abs(sum(verdict["scores"].values()) - 1) < 0.01


def test_check_of_a_login_that_does_not_exist_is_clear(small_standin, config_for):
    cfg = config_for(small_standin)
    assert run_cli("db", "upgrade", "--config", str(cfg)).returncode == 0
    result = run_cli("check", "no_such_channel_here", "--config", str(cfg))
    assert result.returncode == 1
    assert "no Twitch channel named 'no_such_channel_here'" in result.stderr
    assert "Traceback" not in result.stderr


def test_offline_channel_gives_no_verdict_and_no_flag(standin, config_for):
    cfg = config_for(standin)
    assert run_cli("db", "upgrade", "--config", str(cfg)).returncode == 0
    login = _logins(lambda t: t.mislabeled)[0]
    standin.set_offline(login, True)
    result = run_cli("check", login, "--json", "--config", str(cfg))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["outcome"] == "offline"
    for _ in range(2):
        assert run_cli("run", "--once", "--config", str(cfg)).returncode == 0
    flags = json.loads(run_cli("flags", "--json", "--all", "--config", str(cfg)).stdout)
    assert login not in {f["user_login"] for f in flags}
