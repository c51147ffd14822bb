"""`config init` and `config show`: the documented file comes from the model, and deploy/ holds it."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest
from pydantic import Field

from monitor.config import SECTIONS, MonitorConfig, load_config
from monitor.config_doc import example, undocumented

EXAMPLE = Path(__file__).resolve().parents[1] / "deploy" / "twitchwatch.toml.example"
COMMENTED_KEY = re.compile(r"^# (\w+) = (.*)$")


def test_the_deploy_example_is_what_config_init_writes():
    assert EXAMPLE.read_text() == example(), (
        "deploy/twitchwatch.toml.example is out of date: run "
        "`twitchwatch config init deploy/twitchwatch.toml.example --force`")


def test_every_section_and_key_has_a_description():
    assert undocumented() == []


def test_a_key_added_without_a_description_is_caught():
    class Grown(MonitorConfig):
        """The daemon, with one key more."""

        documented: int = Field(1, description="A key with its description.")
        forgotten: int = 1

    grown = {**SECTIONS, "monitor": Grown}
    assert undocumented(grown) == ["monitor.forgotten"]
    with pytest.raises(ValueError, match="monitor.forgotten"):
        example(sections=grown)


def test_every_key_is_in_the_example_with_its_default(tmp_path):
    text = example()
    keys = {}
    section = None
    for line in text.splitlines():
        if m := re.match(r"^\[(\w+)\]$", line):
            section = m.group(1)
        elif m := COMMENTED_KEY.match(line):
            keys.setdefault(section, set()).add(m.group(1))
    assert keys == {name: set(model.model_fields) for name, model in SECTIONS.items()}
    # Commented out, the file sets nothing; uncommented, every default it shows is the built-in one.
    assert load_config(EXAMPLE, environ={}).model_dump() == load_config(environ={}).model_dump()
    uncommented = tmp_path / "all.toml"
    uncommented.write_text("\n".join(COMMENTED_KEY.sub(r"\1 = \2", line) for line in text.splitlines()))
    assert load_config(uncommented, environ={}).model_dump() == load_config(environ={}).model_dump()


def test_config_init_sets_the_keys_from_a_file_and_from_set_and_keeps_the_secret_private(cli, tmp_path):
    given = tmp_path / "standin.toml"
    given.write_text('[twitch]\nclient_id = "abc"\nclient_secret = "s3cret"\nhelix_url = "http://127.0.0.1:1/helix"\n'
                     '[categories]\nwatch = ["509658", 21779]\n')
    out = tmp_path / "twitchwatch.toml"
    code, stdout, err = cli("config", "init", str(out), "--from", str(given), "--set", "model.pretrained=none",
                            "--set", "monitor.metrics_port=9500")
    assert code == 0, err
    assert "6 keys set" in stdout
    cfg = load_config(out, environ={})
    assert cfg.twitch.client_id == "abc" and cfg.twitch.client_secret.get_secret_value() == "s3cret"
    assert cfg.categories.watch == ("509658", "21779")
    assert (cfg.model.pretrained, cfg.monitor.metrics_port) == ("none", 9500)
    assert cfg.monitor.interval_seconds == MonitorConfig().interval_seconds
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert "# interval_seconds = 300" in out.read_text()

    before = out.read_text()
    code, _, err = cli("config", "init", str(out))
    assert code == 2 and "--force" in err and out.read_text() == before
    code, _, err = cli("config", "init", str(out), "--force")
    assert code == 0, err
    assert load_config(out, environ={}).model_dump() == load_config(environ={}).model_dump()
    assert stat.S_IMODE(out.stat().st_mode) & 0o044  # no secret in it: readable as any config file


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "monitor.metrics_port=abc"], "monitor.metrics_port must be an integer"),
    (["--set", "model.weights=x"], "unknown config key model.weights"),
    (["--set", "modle.arch=x"], "unknown config section [modle]"),
    (["--set", "monitor"], "expected SECTION.KEY=VALUE"),
])
def test_config_init_refuses_a_bad_value_and_writes_nothing(cli, tmp_path, args, message):
    out = tmp_path / "twitchwatch.toml"
    code, _, err = cli("config", "init", str(out), *args)
    assert code == 2 and message in err, err
    assert not out.exists()


def test_config_init_refuses_a_bad_from_file(cli, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[monitor]\nsegmnets = 3\n")
    code, _, err = cli("config", "init", str(tmp_path / "out.toml"), "--from", str(bad))
    assert code == 2 and "monitor.segmnets" in err


def test_config_init_writes_the_file_twitchwatch_config_names_before_it_exists(cli, tmp_path):
    target = tmp_path / "new.toml"
    code, _, err = cli("config", "init", str(target), env={"TWITCHWATCH_CONFIG": str(target)})
    assert code == 0, err
    assert target.read_text() == example()


def test_config_init_without_a_path_prints_the_file(cli):
    code, out, _ = cli("config", "init")
    assert code == 0 and out == example()


def test_config_show_masks_secrets_and_says_where_each_value_came_from(cli, tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[storage]\ndatabase_url = "postgresql+psycopg://tw:dbpassword@db.example/tw"\n'
                    '[monitor]\nsegments = 4\n')
    env = {"TWITCH_CLIENT_SECRET": "topsecret", "TWITCHWATCH_MONITOR__CONFIRMATIONS": "3",
           "TWITCHWATCH_NOTIFY__WEBHOOK_URL": "https://hooks.example.org/T000/tokenpart"}
    code, out, err = cli("config", "show", "--config", str(path), env=env)
    assert code == 0, err
    for secret in ("topsecret", "dbpassword", "tokenpart"):
        assert secret not in out
    assert 'client_secret = "********"  # from $TWITCH_CLIENT_SECRET' in out
    assert f"segments = 4  # from {path}" in out
    assert "confirmations = 3  # from $TWITCHWATCH_MONITOR__CONFIRMATIONS" in out
    assert 'webhook_url = "https://hooks.example.org/********"' in out
    assert 'client_id = ""\n' in out  # an unset secret's neighbour: shown as it is

    code, out, _ = cli("config", "show", "--json", "--config", str(path), env=env)
    shown = json.loads(out)
    assert shown["storage"]["database_url"] == "postgresql+psycopg://tw:***@db.example/tw"
    assert shown["monitor"]["segments"] == 4 and shown["monitor"]["confirmations"] == 3
    assert shown["twitch"]["client_secret"] == "********"
    assert shown.keys() == SECTIONS.keys()
