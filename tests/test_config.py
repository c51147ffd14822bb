from __future__ import annotations

import pytest

from monitor.config import load_config
from monitor.errors import ConfigError


def write(tmp_path, text: str):
    path = tmp_path / "twitchwatch.toml"
    path.write_text(text)
    return path


def test_defaults_match_the_interface():
    cfg = load_config(environ={})
    assert cfg.monitor.interval_seconds == 300
    assert cfg.monitor.capture_seconds == 12
    assert (cfg.monitor.segments, cfg.monitor.frames_per_segment, cfg.monitor.confirmations) == (6, 3, 2)
    assert cfg.categories.chatting == "509658"
    assert len(cfg.categories.watch) == 8
    assert cfg.storage.database_url == "sqlite:///twitchwatch.db"
    assert cfg.model.arch == "squeezenet1_1" and cfg.model.pretrained == "imagenet"
    assert cfg.monitor.metrics_addr == "127.0.0.1" and cfg.monitor.metrics_port == 9464


def test_file_sets_only_what_differs(tmp_path):
    cfg = load_config(write(tmp_path, '[monitor]\nsegments = 3\n[categories]\nwatch = ["1", "2"]\n'), environ={})
    assert cfg.monitor.segments == 3
    assert cfg.monitor.frames_per_segment == 3
    assert cfg.categories.watch == ("1", "2")


def test_environment_overrides_the_file(tmp_path):
    path = write(tmp_path, '[storage]\ndatabase_url = "sqlite:///a.db"\n')
    env = {
        "TWITCHWATCH_STORAGE__DATABASE_URL": "sqlite:///b.db",
        "TWITCHWATCH_MONITOR__CAPTURE_SECONDS": "8",
        "TWITCH_CLIENT_ID": "cid",
        "TWITCH_CLIENT_SECRET": "s3cret",
    }
    cfg = load_config(path, environ=env)
    assert cfg.storage.database_url == "sqlite:///b.db"
    assert cfg.monitor.capture_seconds == 8
    assert (cfg.twitch.client_id, cfg.twitch.client_secret) == ("cid", "s3cret")
    assert "s3cret" not in repr(cfg)


def test_config_file_named_by_environment_variable(tmp_path):
    path = write(tmp_path, "[monitor]\nconfirmations = 3\n")
    assert load_config(environ={"TWITCHWATCH_CONFIG": str(path)}).monitor.confirmations == 3


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[monitor]\nsegmnets = 3\n", "monitor.segmnets"),
        ("[monitr]\nsegments = 3\n", "monitr"),
        ('[monitor]\nsegments = "six"\n', "monitor.segments"),
        ("[monitor]\nsegments = 0\n", "monitor.segments"),
        ("[monitor]\nmin_confidence = 2.0\n", "monitor.min_confidence"),
        ('[model]\narch = "resnet50"\n', "model.arch"),
        ("[monitor\nsegments = 3\n", "not valid TOML"),
        ('[twitch]\nstream_url = "https://x/"\n', "twitch.stream_url"),
    ],
)
def test_bad_files_name_the_key(tmp_path, text, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.").replace("[", r"\[")):
        load_config(write(tmp_path, text), environ={})


def test_wrong_type_never_echoes_a_secret(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, "[twitch]\nclient_secret = 12345678\n"), environ={})
    assert "12345678" not in str(err.value)
    assert "twitch.client_secret" in str(err.value)


def test_bad_environment_value_names_the_variable():
    with pytest.raises(ConfigError, match="TWITCHWATCH_MONITOR__SEGMENTS"):
        load_config(environ={"TWITCHWATCH_MONITOR__SEGMENTS": "many"})


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "nope.toml", environ={})
