from __future__ import annotations

import pytest

from monitor.config import load_config, replace
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
    assert (cfg.twitch.client_id, cfg.twitch.client_secret.get_secret_value()) == ("cid", "s3cret")
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


def test_an_unknown_section_or_key_in_the_environment_names_the_variable():
    with pytest.raises(ConfigError, match=r"\[monitr\].*TWITCHWATCH_MONITR__SEGMENTS"):
        load_config(environ={"TWITCHWATCH_MONITR__SEGMENTS": "3"})
    with pytest.raises(ConfigError, match=r"monitor\.segmnets.*TWITCHWATCH_MONITOR__SEGMNETS"):
        load_config(environ={"TWITCHWATCH_MONITOR__SEGMNETS": "3"})


def test_environment_strings_are_typed_by_the_key():
    cfg = load_config(environ={"TWITCHWATCH_CATEGORIES__WATCH": "1, 2", "TWITCHWATCH_RETAIN__ENABLED": "off",
                               "TWITCHWATCH_MONITOR__MIN_CONFIDENCE": "0.75"})
    assert (cfg.categories.watch, cfg.retain.enabled, cfg.monitor.min_confidence) == (("1", "2"), False, 0.75)
    assert load_config(environ={"TWITCHWATCH_CATEGORIES__WATCH": "['3', '4']"}).categories.watch == ("3", "4")
    with pytest.raises(ConfigError, match="TWITCHWATCH_MONITOR__MIN_CONFIDENCE"):
        load_config(environ={"TWITCHWATCH_MONITOR__MIN_CONFIDENCE": "1.5"})


@pytest.mark.parametrize("text", ["[monitor]\nsegments = true\n", '[monitor]\nsegments = "6"\n',
                                  "[monitor]\ncapture_seconds = 12.5\n"])
def test_a_file_value_of_another_type_is_not_converted(tmp_path, text):
    with pytest.raises(ConfigError, match=r"monitor\.(segments|capture_seconds)"):
        load_config(write(tmp_path, text), environ={})


def test_code_overrides_win_over_the_environment_which_wins_over_the_file(tmp_path):
    path = write(tmp_path, '[monitor]\nsegments = 2\ncapture_seconds = 5\n[storage]\ndata_dir = "file"\n')
    cfg = load_config(path, environ={"TWITCHWATCH_MONITOR__SEGMENTS": "3", "TWITCHWATCH_STORAGE__DATA_DIR": "env"},
                      overrides={"storage": {"data_dir": "code"}})
    assert (cfg.monitor.segments, cfg.monitor.capture_seconds, cfg.storage.data_dir) == (3, 5, "code")
    assert cfg.source == str(path)


def test_no_secret_is_shown_by_the_config_repr():
    cfg = load_config(environ={"TWITCH_CLIENT_SECRET": "s3cret", "TWITCHWATCH_NOTIFY__WEBHOOK_URL": "https://h/tok123",
                               "TWITCHWATCH_STORAGE__DATABASE_URL": "postgresql+psycopg://u:hunter2@db/tw"})
    shown = repr(cfg)
    assert not [secret for secret in ("s3cret", "tok123", "hunter2") if secret in shown]
    assert cfg.notify.webhook_url.get_secret_value() == "https://h/tok123"
    assert cfg.storage.database_url == "postgresql+psycopg://u:hunter2@db/tw"


def test_replace_validates_what_it_changes():
    cfg = load_config(environ={})
    assert replace(cfg, monitor={"segments": 4}).monitor.segments == 4
    with pytest.raises(ConfigError, match=r"monitor\.segments"):
        replace(cfg, monitor={"segments": 0})
    with pytest.raises(ConfigError, match=r"monitor\.segmnets"):
        replace(cfg, monitor={"segmnets": 4})
