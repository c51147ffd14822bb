"""Load the one typed configuration object that every stage is handed.

    cfg = load_config(Path("twitchwatch.toml"))   # or None: env var, then defaults
    cfg.monitor.capture_seconds                   # 12

Sources, later wins: built-in defaults, the TOML file, environment variables
(`TWITCH_CLIENT_ID`, `TWITCH_CLIENT_SECRET`, `TWITCHWATCH_<SECTION>__<KEY>`).
Unknown sections or keys, wrong types and malformed files raise ConfigError
naming the key, never echoing a secret's value.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.errors import ConfigError

CONFIG_ENV = "TWITCHWATCH_CONFIG"
SECRET_KEYS = {("twitch", "client_secret")}

REPORT_CATEGORIES = ("21779", "509658", "33214", "512710", "18122", "32982", "27471", "512804")
# TSN sampling, K segments of n frames: the report's best setting (75% test accuracy at K=6, n=3).
# The one place it is set: the config's default for training, and the K and n of a model card
# that does not record its own.
DEFAULT_SEGMENTS = 6
DEFAULT_FRAMES_PER_SEGMENT = 3


@dataclass(frozen=True)
class TwitchConfig:
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    helix_url: str = "https://api.twitch.tv/helix"
    auth_url: str = "https://id.twitch.tv/oauth2"
    stream_url: str = "https://www.twitch.tv/{user_login}"
    request_timeout_seconds: float = 10.0
    max_pages: int = 10


@dataclass(frozen=True)
class CategoriesConfig:
    watch: tuple[str, ...] = REPORT_CATEGORIES
    chatting: str = "509658"


@dataclass(frozen=True)
class MonitorConfig:
    interval_seconds: int = 300
    streams_per_category: int = 20
    capture_seconds: int = 12
    # K and n a new model is trained, tested and then served at; a registered model is always
    # served at its own card's K and n, whatever these say.
    segments: int = DEFAULT_SEGMENTS
    frames_per_segment: int = DEFAULT_FRAMES_PER_SEGMENT
    confirmations: int = 2
    metrics_addr: str = "127.0.0.1"
    metrics_port: int = 9464
    # A class named below this probability is "unsure": it neither opens nor closes a flag.
    # 0: the active model's own threshold, chosen on validation and kept in its card
    # (monitor.verdict.Thresholds; a card without one gets the documented default 0.6).
    min_confidence: float = 0.0
    # Fewer decodable frames than this fraction of K*n gives no verdict.
    min_frame_fraction: float = 0.5
    # Captures are I/O bound: several run at once; decode+inference are bounded to the cores.
    capture_workers: int = 4
    # Hard wall-clock cap on one capture; streamlink reads block during ads.
    capture_timeout_seconds: float = 45.0
    stop_timeout_seconds: float = 60.0


@dataclass(frozen=True)
class StorageConfig:
    database_url: str = "sqlite:///twitchwatch.db"
    data_dir: str = "twitchwatch-data"


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "squeezenet1_1"
    pretrained: str = "imagenet"


@dataclass(frozen=True)
class DatasetConfig:
    streamers_per_category: int = 10
    clips_per_channel: int = 2
    clip_window_days: int = 30
    test_fraction: float = 0.25
    seed: int = 20200220


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    # Frames per optimiser step (whole clips: at least one clip of K x train.frames_per_segment
    # frames). Several clips per step: with one (K=6 at 8 frames) two classes stayed merged
    # for all 30 epochs (87.5% test clip accuracy, twice), with 4 (24 frames) 100%.
    batch_size: int = 24
    # Frames taken from each of the K segments of a training clip per step. TSN trains on one
    # snippet per segment (inference still takes monitor.frames_per_segment): a third of the
    # cost of an epoch at n = 3, so more epochs in the same time (see trainer/train.py).
    frames_per_segment: int = 1
    # Share of training frames with one random box painted over, as a channel's overlay would
    # (trainer/augment.py). Off for tiny datasets: with 2 channels per class it hurt.
    erase_probability: float = 0.5
    # Share of training clips laid out anew as a stream (game scaled and moved, webcam, chat
    # panel, tickers; posters and reaction windows in Just Chatting): trainer/layouts.py.
    layout_probability: float = 0.8
    # 1e-3 kills the units feeding the head from random init (measured).
    learning_rate: float = 0.0003
    seed: int = 0


@dataclass(frozen=True)
class RetainConfig:
    # Frames of agreeing checks grow the training set; mismatches go to a review queue.
    enabled: bool = True
    # The loader holds retained frames in memory for retraining (~150 kB a frame):
    # 400 MB of PNGs is about 3 GB of frames.
    max_bytes: int = 400_000_000
    review_max_bytes: int = 200_000_000
    min_confidence: float = 0.0


@dataclass(frozen=True)
class NotifyConfig:
    webhook_url: str = ""


@dataclass(frozen=True)
class QueueConfig:
    """The check queue of `run --role scheduler|worker` (PostgreSQL, procrastinate)."""

    # A worker records that it is alive this often.
    heartbeat_seconds: float = 10.0
    # A check whose worker has not recorded it is alive for this long (killed, frozen, cut off)
    # goes back to the queue for another worker. At least twice heartbeat_seconds.
    stalled_seconds: float = 60.0
    # A standby scheduler tries to take over this often; the active one hands stalled checks out.
    failover_seconds: float = 5.0


@dataclass(frozen=True)
class Config:
    twitch: TwitchConfig = field(default_factory=TwitchConfig)
    categories: CategoriesConfig = field(default_factory=CategoriesConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    retain: RetainConfig = field(default_factory=RetainConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    source: str = "defaults"  # where the file part came from, for messages

    @property
    def data_path(self) -> Path:
        return Path(self.storage.data_dir)


SECTIONS: dict[str, type] = {
    name: hint for name, hint in typing.get_type_hints(Config).items() if name != "source"
}


def load_config(
    path: Path | str | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Config:
    """Build the Config from defaults, a TOML file, the environment and overrides."""
    environ = os.environ if environ is None else environ
    if path is None and environ.get(CONFIG_ENV):
        path = environ[CONFIG_ENV]
    raw: dict[str, dict[str, Any]] = {}
    source = "defaults"
    if path is not None:
        raw = _read_toml(Path(path))
        source = str(path)
    _merge(raw, _env_values(environ))
    if overrides:
        _merge(raw, {s: dict(v) for s, v in overrides.items()})
    sections = {name: _build_section(name, SECTIONS[name], raw.pop(name, {})) for name in SECTIONS}
    if raw:
        raise ConfigError(f"unknown config section [{sorted(raw)[0]}] in {source}")
    cfg = Config(**sections, source=source)
    validate(cfg)
    return cfg


def replace(cfg: Config, **sections: Mapping[str, Any]) -> Config:
    """Return a copy of cfg with some keys of some sections changed (validated)."""
    changed = {
        name: _build_section(name, SECTIONS[name], {**dataclasses.asdict(getattr(cfg, name)), **values})
        for name, values in sections.items()
    }
    new = dataclasses.replace(cfg, **changed)
    validate(new)
    return new


def validate(cfg: Config) -> None:
    """Check the values that types alone cannot, naming the key on failure."""
    m = cfg.monitor
    positive = {
        "monitor.interval_seconds": m.interval_seconds,
        "monitor.streams_per_category": m.streams_per_category,
        "monitor.capture_seconds": m.capture_seconds,
        "monitor.segments": m.segments,
        "monitor.frames_per_segment": m.frames_per_segment,
        "monitor.confirmations": m.confirmations,
        "monitor.capture_workers": m.capture_workers,
        "monitor.capture_timeout_seconds": m.capture_timeout_seconds,
        "twitch.max_pages": cfg.twitch.max_pages,
        "dataset.streamers_per_category": cfg.dataset.streamers_per_category,
        "dataset.clips_per_channel": cfg.dataset.clips_per_channel,
        "train.epochs": cfg.train.epochs,
        "train.batch_size": cfg.train.batch_size,
        "train.frames_per_segment": cfg.train.frames_per_segment,
        "queue.heartbeat_seconds": cfg.queue.heartbeat_seconds,
        "queue.stalled_seconds": cfg.queue.stalled_seconds,
        "queue.failover_seconds": cfg.queue.failover_seconds,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"config key {key} must be positive, got {value}")
    if cfg.queue.stalled_seconds < 2 * cfg.queue.heartbeat_seconds:
        raise ConfigError("config key queue.stalled_seconds must be at least twice queue.heartbeat_seconds, "
                          f"got {cfg.queue.stalled_seconds} and {cfg.queue.heartbeat_seconds}")
    if not 0 <= m.metrics_port <= 65535:
        raise ConfigError(f"config key monitor.metrics_port must be a TCP port, got {m.metrics_port}")
    for key, value in {"monitor.min_confidence": m.min_confidence,
                       "monitor.min_frame_fraction": m.min_frame_fraction}.items():
        if not 0 <= value <= 1:
            raise ConfigError(f"config key {key} must be between 0 and 1, got {value}")
    if cfg.retain.max_bytes < 0 or cfg.retain.review_max_bytes < 0:
        raise ConfigError("config keys retain.max_bytes and retain.review_max_bytes must not be negative")
    if not 0 <= cfg.retain.min_confidence <= 1:
        raise ConfigError("config key retain.min_confidence must be between 0 and 1")
    for key, value in {"train.erase_probability": cfg.train.erase_probability,
                       "train.layout_probability": cfg.train.layout_probability}.items():
        if not 0 <= value <= 1:
            raise ConfigError(f"config key {key} must be between 0 and 1")
    if not 0 < cfg.dataset.test_fraction < 1:
        raise ConfigError("config key dataset.test_fraction must be between 0 and 1")
    if cfg.model.arch not in ("squeezenet1_0", "squeezenet1_1"):
        raise ConfigError(f"config key model.arch must be squeezenet1_0 or squeezenet1_1, got {cfg.model.arch!r}")
    if not cfg.categories.watch:
        raise ConfigError("config key categories.watch must list at least one category id")
    if len(set(cfg.categories.watch)) != len(cfg.categories.watch):
        raise ConfigError("config key categories.watch lists a category twice")
    if "{user_login}" not in cfg.twitch.stream_url:
        raise ConfigError("config key twitch.stream_url must contain {user_login}")
    if not cfg.storage.database_url.split(":", 1)[0].startswith(("sqlite", "postgresql")):
        raise ConfigError("config key storage.database_url must be a sqlite:// or postgresql+psycopg:// URL")


def _read_toml(path: Path) -> dict[str, dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    for name, value in data.items():
        if not isinstance(value, dict):
            raise ConfigError(f"config key {name!r} in {path} must be a [section], not a bare value")
    return data


def _env_values(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for var, key in (("TWITCH_CLIENT_ID", "client_id"), ("TWITCH_CLIENT_SECRET", "client_secret")):
        if environ.get(var):
            out.setdefault("twitch", {})[key] = environ[var]
    prefix = "TWITCHWATCH_"
    for var, value in environ.items():
        if not var.startswith(prefix) or var == CONFIG_ENV or "__" not in var:
            continue
        section, _, key = var[len(prefix):].lower().partition("__")
        out.setdefault(section, {})[key] = _EnvString(value, var)
    return out


class _EnvString(str):
    """A string from the environment, converted to the field's type on build."""

    def __new__(cls, value: str, var: str) -> _EnvString:
        obj = super().__new__(cls, value)
        obj.var = var  # type: ignore[attr-defined]
        return obj


def _merge(into: dict[str, dict[str, Any]], more: Mapping[str, Mapping[str, Any]]) -> None:
    for section, values in more.items():
        into.setdefault(section, {}).update(values)


def _build_section(name: str, cls: type, values: Mapping[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in hints:
            raise ConfigError(f"unknown config key {name}.{key}")
        kwargs[key] = _coerce(f"{name}.{key}", hints[key], value)
    return cls(**kwargs)


def _coerce(key: str, hint: Any, value: Any) -> Any:
    secret = tuple(key.split(".")) in SECRET_KEYS
    if isinstance(value, _EnvString):
        value = _parse_env(key, hint, str(value), value.var)  # type: ignore[attr-defined]
    shown = "<hidden>" if secret else repr(value)
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, (str, int)) for v in value):
            raise ConfigError(f"config key {key} must be a list of strings, got {shown}")
        return tuple(str(v) for v in value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key {key} must be a number, got {shown}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key {key} must be an integer, got {shown}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key {key} must be true or false, got {shown}")
        return value
    if not isinstance(value, str):
        raise ConfigError(f"config key {key} must be a string, got {shown}")
    return value


def _parse_env(key: str, hint: Any, text: str, var: str) -> Any:
    try:
        if typing.get_origin(hint) is tuple:
            if text.strip().startswith("["):
                return tomllib.loads(f"v = {text}")["v"]
            return [part.strip() for part in text.split(",") if part.strip()]
        if hint is int:
            return int(text)
        if hint is float:
            return float(text)
        if hint is bool:
            lowered = text.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
    except (ValueError, tomllib.TOMLDecodeError):
        raise ConfigError(f"environment variable {var} (config key {key}) has the wrong type") from None
    return text
