"""The command line's contract: exit codes, one clear line, --config anywhere."""

from __future__ import annotations

from cli_helpers import run_cli, write_config


def test_unknown_config_key_exits_2_naming_the_key(tmp_path):
    cfg = write_config(tmp_path / "bad.toml", {"monitor": {"segmnets": 3}})
    result = run_cli("flags", "--json", "--config", str(cfg))
    assert result.returncode == 2
    assert "monitor.segmnets" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_config_option_works_before_the_subcommand(tmp_path):
    cfg = write_config(tmp_path / "bad.toml", {"monitr": {"segments": 3}})
    result = run_cli("--config", str(cfg), "flags")
    assert result.returncode == 2 and "monitr" in result.stderr


def test_bad_usage_exits_2():
    result = run_cli("flags", "--no-such-option")
    assert result.returncode == 2
    assert "--no-such-option" in result.stderr


def test_flags_on_a_database_never_migrated_says_what_to_run(tmp_path):
    cfg = write_config(tmp_path / "c.toml", {"storage": {"database_url": f"sqlite:///{tmp_path / 'x.db'}"}})
    result = run_cli("flags", "--config", str(cfg))
    assert result.returncode == 1
    assert "twitchwatch db upgrade" in result.stderr


def test_db_upgrade_then_flags_json_is_an_empty_array(tmp_path):
    cfg = write_config(tmp_path / "c.toml", {"storage": {"database_url": f"sqlite:///{tmp_path / 'x.db'}"}})
    assert run_cli("db", "upgrade", "--config", str(cfg)).returncode == 0
    result = run_cli("flags", "--json", "--config", str(cfg))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_unreachable_helix_exits_1_with_one_clear_line(tmp_path):
    cfg = write_config(tmp_path / "c.toml", {
        "twitch": {"client_id": "id", "client_secret": "topsecret", "helix_url": "http://127.0.0.1:9/helix",
                   "auth_url": "http://127.0.0.1:9/oauth2", "request_timeout_seconds": 2.0},
        "storage": {"database_url": f"sqlite:///{tmp_path / 'x.db'}", "data_dir": str(tmp_path / "data")},
    })
    assert run_cli("db", "upgrade", "--config", str(cfg)).returncode == 0
    result = run_cli("check", "somebody", "--config", str(cfg))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "cannot reach Twitch at http://127.0.0.1:9" in lines[0]
    assert "topsecret" not in result.stderr
    assert "Traceback" not in result.stderr


def test_flags_with_no_config_and_no_database_says_so_and_creates_nothing(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("flags")
    assert code == 1 and out == ""
    assert f"no database at {tmp_path / 'twitchwatch.db'}: create it with `twitchwatch db upgrade`" in err
    assert list(tmp_path.iterdir()) == []
