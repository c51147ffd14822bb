"""Load the one typed configuration object that every stage is handed.

    cfg = load_config(Path("twitchwatch.toml"))   # or None: $TWITCHWATCH_CONFIG, then defaults
    cfg.monitor.capture_seconds                   # 12
    cfg.twitch.client_secret.get_secret_value()   # a SecretStr: never shown in a repr or a message

Sources, later wins: built-in defaults, the TOML file, environment variables
(`TWITCH_CLIENT_ID`, `TWITCH_CLIENT_SECRET`, `TWITCHWATCH_<SECTION>__<KEY>`),
then `overrides` given in code. `Config` is a pydantic-settings BaseSettings
whose sources are exactly these (`Config.settings_customise_sources`): the
file through pydantic-settings' `TomlConfigSettingsSource`, the environment
through `EnvironmentSource` below, which reads the mapping `load_config` is
given and types each string by its section's model. Every section is a
frozen, strict pydantic model: its `Field` constraints and validators are
the range checks, `extra="forbid"` rejects unknown keys. Every key documents
itself: its Field's `description` (and its section's docstring) is what
`twitchwatch config init` writes beside it (monitor/config_doc.py); a key
without one fails tests/test_config_doc.py.

Unknown sections or keys, wrong types and malformed files raise ConfigError
naming the key (and the variable, for a value from the environment), never
echoing a secret's value.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from monitor.errors import ConfigError

CONFIG_ENV = "TWITCHWATCH_CONFIG"
ENV_PREFIX = "TWITCHWATCH_"
ENV_NESTED_DELIMITER = "__"
# Twitch's own names for the app credentials, read besides TWITCHWATCH_TWITCH__CLIENT_ID/SECRET.
CLIENT_VARS = (("TWITCH_CLIENT_ID", "client_id"), ("TWITCH_CLIENT_SECRET", "client_secret"))
# Values never shown in a message: the SecretStr fields, and a database URL, which may hold a password.
SECRET_KEYS = {("twitch", "client_secret"), ("notify", "webhook_url"), ("storage", "database_url")}

REPORT_CATEGORIES = ("21779", "509658", "33214", "512710", "18122", "32982", "27471", "512804")
# TSN sampling, K segments of n frames: the report's best setting (75% test accuracy at K=6, n=3).
# The one place it is set: the config's default for training, and the K and n of a model card
# that does not record its own.
DEFAULT_SEGMENTS = 6
DEFAULT_FRAMES_PER_SEGMENT = 3

Positive = Annotated[int, Field(gt=0)]
PositiveSeconds = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]
Bytes = Annotated[int, Field(ge=0)]


class Section(BaseModel):
    """One [section] of the file: frozen, strict (no "6" for 6, no true for 1), no unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class TwitchConfig(Section):
    """Twitch app credentials (client-credentials flow) and where Helix, OAuth and the video are."""

    client_id: str = Field("", description="Client id of your Twitch app (dev.twitch.tv console).")
    client_secret: SecretStr = Field(SecretStr(""), description=(
        "Client secret of that app. Prefer the TWITCH_CLIENT_SECRET environment variable."))
    helix_url: str = Field("https://api.twitch.tv/helix", description="Base URL of the Helix API.")
    auth_url: str = Field("https://id.twitch.tv/oauth2", description="Base URL of OAuth's /token and /validate.")
    stream_url: str = Field("https://www.twitch.tv/{user_login}", description=(
        "URL handed to streamlink for a live channel; {user_login} is replaced by the channel's login."))
    request_timeout_seconds: float = Field(10.0, description="Timeout of one Helix or OAuth request, in seconds.")
    max_pages: Positive = Field(10, description=(
        "Most pages followed in one Helix listing (listings shift while paged; this bounds the walk)."))

    @field_validator("stream_url")
    @classmethod
    def _names_the_login(cls, value: str) -> str:
        if "{user_login}" not in value:
            raise ValueError("must contain {user_login}")
        return value


class CategoriesConfig(Section):
    """The Twitch categories (game ids) to watch."""

    watch: tuple[str, ...] = Field(REPORT_CATEGORIES, min_length=1, description=(
        "Category ids whose top live streams are checked, and the classes a new model learns "
        "(default: the report's 8)."))
    chatting: str = Field("509658", description=(
        'The non-game category ("Just Chatting"): a stream declaring it but showing a game is flagged.'))

    @field_validator("watch", mode="before")
    @classmethod
    def _list_of_ids(cls, value: Any) -> Any:
        """Accept a TOML list (ids as strings or integers) or, from the environment, "1, 2" or "['1', '2']"."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    value = tomllib.loads(f"v = {text}")["v"]
                except tomllib.TOMLDecodeError:
                    raise ValueError("must be a list of category ids") from None
            else:
                value = [part.strip() for part in text.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            return tuple(str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value)
        return value

    @field_validator("watch")
    @classmethod
    def _each_once(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("lists a category twice")
        return value


class MonitorConfig(Section):
    """The daemon: how often and how much it checks, when it flags, where its metrics are served."""

    interval_seconds: Positive = Field(300, description="Seconds between the starts of two poll cycles.")
    streams_per_category: Positive = Field(20, description="Top-N live streams checked per category per cycle.")
    capture_seconds: Positive = Field(12, description="Seconds of live video captured per check.")
    segments: Positive = Field(DEFAULT_SEGMENTS, description=(
        "K: temporal segments per clip (TSN) a new model is trained and tested at; a registered model "
        "is always served at the K of its own card."))
    frames_per_segment: Positive = Field(DEFAULT_FRAMES_PER_SEGMENT, description=(
        "n: frames sampled from each segment, for a new model (a registered one uses its card's n)."))
    confirmations: Positive = Field(2, description="Consecutive mismatching checks before a flag opens.")
    metrics_addr: str = Field("127.0.0.1", description="Address the Prometheus metrics are served on.")
    metrics_port: int = Field(9464, ge=0, le=65535, description=(
        "Port of the metrics (GET /metrics); 0 picks a free one."))
    min_confidence: Fraction = Field(0.0, description=(
        'A class named below this probability is "unsure": it neither opens nor closes a flag. 0: the '
        "active model's own threshold, chosen on validation and kept in its card (0.6 for a card without one)."))
    min_frame_fraction: Fraction = Field(0.5, description=(
        "Fewer decodable frames than this fraction of K*n gives no verdict."))
    capture_workers: Positive = Field(4, description=(
        "Captures run at once (they wait on the network; decoding and inference are bounded to the cores)."))
    capture_timeout_seconds: PositiveSeconds = Field(45.0, description=(
        "Hard wall-clock cap on one capture, in seconds: streamlink reads block during ads."))
    thumbnail_prescreen: bool = Field(False, description=(
        "Score each stream's Helix thumbnail (a few kB) first and capture video only when the thumbnail "
        "does not agree with the declared category at thumbnail_min_confidence: mismatches always go to video."))
    thumbnail_min_confidence: Fraction = Field(0.9, description=(
        "Probability the thumbnail's agreement needs to settle a check without video (thumbnail_prescreen)."))
    stop_timeout_seconds: float = Field(60.0, description=(
        "On SIGTERM, seconds the running cycle gets to finish; keep it below the unit's TimeoutStopSec=."))


class StorageConfig(Section):
    """Where observations, flags, the dataset, captures and models are kept."""

    # A str, not a SecretStr: every store takes the URL itself; its password is kept out of
    # reprs (repr=False) and messages (SECRET_KEYS), and Store logs it masked.
    database_url: str = Field("sqlite:///twitchwatch.db", repr=False, description=(
        "sqlite:///PATH (relative to the working directory) or postgresql+psycopg://USER:PASSWORD@HOST/DB; "
        "put a URL with a password in TWITCHWATCH_STORAGE__DATABASE_URL."))
    data_dir: str = Field("twitchwatch-data", description=(
        "Directory of the dataset, retained frames and registered models (relative to the working directory)."))

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.split(":", 1)[0].startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:// or postgresql+psycopg:// URL")
        return value


class ModelConfig(Section):
    """The classifier a new model is built as."""

    arch: Literal["squeezenet1_0", "squeezenet1_1"] = Field("squeezenet1_1", description=(
        "SqueezeNet variant (1.0 is the report's; 1.1 is as accurate with less computation)."))
    pretrained: str = Field("imagenet", description=(
        "Starting weights of a new model: \"imagenet\" (torchvision's ImageNet weights, downloaded once "
        "into the torch cache), \"none\" (random), or a path to a weights file."))
    inference: Literal["int8", "fp32"] = Field("int8", description=(
        "How the daemon scores frames: \"int8\" serves the model's int8 copy (made and measured on the "
        "test clips when it is trained) if it kept clip accuracy within 0.5 points, else fp32; \"fp32\" always "
        "serves the trained weights."))


class DatasetConfig(Section):
    """`twitchwatch dataset build`: the report's step 1, clips of the top channels per category."""

    streamers_per_category: Positive = Field(10, description="Top live channels per category whose clips are taken.")
    clips_per_channel: Positive = Field(2, description="Clips taken per channel.")
    clip_window_days: int = Field(30, description="Clips created in the last this many days.")
    test_fraction: float = Field(0.25, gt=0, lt=1, description=(
        "Share of each category's channels frozen into the test set at the first build (by channel, never by clip)."))
    seed: int = Field(20200220, description="Seed of the train/test split.")
    other_games: int = Field(4, ge=0, le=100, description=(
        "How many of Twitch's most watched game categories outside categories.watch to take clips of "
        "(streamers_per_category channels each), as examples of games the model does not know: they train "
        "as \"gameplay\", never as a class, so a game outside the watched set is called gameplay rather "
        "than a known game. Categories without an IGDB id (Just Chatting, Music, Art) are no games and are "
        "passed over. 0 turns it off."))


class TrainConfig(Section):
    """`twitchwatch train` and `retrain`: the report's step 2 (docs/training-notes.md has the measurements)."""

    epochs: Positive = Field(30, description="Most training epochs (the best validation epoch is kept).")
    batch_size: Positive = Field(24, description=(
        "Frames per optimiser step, in whole clips (at least one clip of K x train.frames_per_segment "
        "frames); several clips a step, or two classes can stay merged."))
    frames_per_segment: Positive = Field(1, description=(
        "Frames taken from each of the K segments of a training clip per step (TSN trains on one "
        "snippet per segment; inference still takes the model's n)."))
    erase_probability: Fraction = Field(0.5, description=(
        "Share of training frames with one random box painted over, as a channel's overlay would; "
        "hurts on tiny datasets."))
    layout_probability: Fraction = Field(0.8, description=(
        "Share of training clips laid out anew as a stream (game scaled and moved, webcam, chat panel, "
        "tickers; posters and reaction windows in Just Chatting)."))
    clips_per_epoch: int = Field(1152, ge=0, description=(
        "Clips drawn per epoch, class-balanced, each freshly sampled, laid out and augmented; 0: one pass "
        "over the training clips. A fixed count keeps what --epochs N costs whatever the dataset's size; "
        "1152 makes 8 epochs at 128 px about as much training as the 8-minute budget holds."))
    learning_rate: float = Field(0.0003, description=(
        "Peak AdamW learning rate (warm-up, then cosine decay); higher rates kill the units feeding "
        "the head from random init."))
    seed: int = Field(0, description="Seed of weight init, augmentation and batch order.")
    max_minutes: float = Field(8.0, ge=0, description=(
        "Wall-time budget of the epochs (0: none). Once the first epochs show that train.epochs cannot "
        "all fit, the run plans fewer and its learning rate decays to zero by the last that fits; "
        "`train --max-minutes` overrides it."))
    precision: Literal["auto", "bf16", "fp32"] = Field("auto", description=(
        "Arithmetic of the training forward pass: bf16 (about 2x faster where the CPU has native bf16, "
        "bench/train_step.py), fp32, or auto (bf16 only where native). Weights, gradients, validation and "
        "serving stay fp32."))
    input_size: int = Field(128, ge=64, le=448, description=(
        "Side in pixels of the square picture the model is trained on and served at (its card records "
        "it). Frames are stored at 224; a side s costs a training step and a check about (s/224)^2 of "
        "the CPU at 224. 128 trains 3x faster and, on the held-out worlds, generalizes better "
        "(docs/training-notes.md)."))


class RetrainConfig(Section):
    """`twitchwatch retrain`: the gate a challenger must pass to replace the active model, and its metrics file."""

    max_recall_drop: Fraction = Field(0.05, description=(
        "Most a class's recall on the frozen test clips may fall from the champion's to the challenger's "
        "(0.05: five points). On test sets of 4-10 clips per class one clip is 10-25 points, so this "
        "default refuses a challenger that loses any clip net in any class; raise it to tolerate one."))
    significance: float = Field(0.05, gt=0, lt=1, description=(
        "A challenger that McNemar's exact one-sided test finds worse than the champion at this level "
        "(p below it) is not promoted."))
    textfile: str = Field("", description=(
        "Prometheus textfile the retrain writes its result to, for node_exporter's textfile collector "
        "(e.g. /var/lib/node_exporter/textfile_collector/twitchwatch_retrain.prom); empty: none. Written "
        "atomically, mode 0644; a failed retrain keeps the last success and sets the failure gauge."))

    @field_validator("textfile")
    @classmethod
    def _a_prom_file(cls, value: str) -> str:
        if value and not value.endswith(".prom"):
            raise ValueError("must end in .prom: node_exporter's textfile collector reads only *.prom files")
        return value


class RetainConfig(Section):
    """Frames of agreeing checks grow the training set; mismatches go to a review queue, never to training."""

    enabled: bool = Field(True, description="Keep checked frames at all.")
    max_bytes: Bytes = Field(400_000_000, description=(
        "Cap on data_dir/live/ (training frames); the oldest go first. Retraining holds them in memory "
        "(~150 kB a frame): 400 MB of PNGs is about 3 GB of frames."))
    review_max_bytes: Bytes = Field(200_000_000, description="Cap on data_dir/review/ (mismatches awaiting a human).")
    min_confidence: Fraction = Field(0.0, description=(
        "Keep only checks at least this confident, on top of the verdict's own threshold."))
    category_share: float = Field(0.25, gt=0, le=1, description=(
        "Share of retain.max_bytes one declared category's training frames may take; over it that "
        "category's oldest go first, so one busy category cannot swamp the rest (1: no per-category cap; "
        "keep it at least 1 / the number of watched categories)."))


class NotifyConfig(Section):
    """Optional webhook on flag open and close."""

    webhook_url: SecretStr = Field(SecretStr(""), description=(
        "URL POSTed a JSON body when a flag opens or closes; empty: none. Its path often carries a token: "
        "prefer TWITCHWATCH_NOTIFY__WEBHOOK_URL."))


class QueueConfig(Section):
    """The check queue of `run --role scheduler|worker` (PostgreSQL, procrastinate)."""

    heartbeat_seconds: PositiveSeconds = Field(10.0, description="A worker records that it is alive this often.")
    stalled_seconds: PositiveSeconds = Field(60.0, description=(
        "A check whose worker has not recorded it is alive for this long (killed, frozen, cut off) goes back "
        "to the queue for another worker; at least twice queue.heartbeat_seconds."))
    failover_seconds: PositiveSeconds = Field(5.0, description=(
        "A standby scheduler tries to take over this often; the active one hands stalled checks out."))

    @field_validator("stalled_seconds")
    @classmethod
    def _stalled_after_two_heartbeats(cls, value: float, info: ValidationInfo) -> float:
        heartbeat = info.data.get("heartbeat_seconds")
        if heartbeat is not None and value < 2 * heartbeat:
            raise ValueError(f"must be at least twice queue.heartbeat_seconds ({heartbeat})")
        return value


@dataclass(frozen=True)
class _Inputs:
    """What one load_config call reads besides the defaults."""

    toml_file: Path | None
    environ: Mapping[str, str]


# Set by load_config for the duration of one Config(...): pydantic-settings builds sources per class.
_INPUTS: ContextVar[_Inputs | None] = ContextVar("twitchwatch_config_inputs", default=None)


class Config(BaseSettings):
    """The whole configuration: one frozen section per [section] of the file."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True, strict=True, env_prefix=ENV_PREFIX,
                                      env_nested_delimiter=ENV_NESTED_DELIMITER)

    twitch: TwitchConfig = TwitchConfig()
    categories: CategoriesConfig = CategoriesConfig()
    monitor: MonitorConfig = MonitorConfig()
    storage: StorageConfig = StorageConfig()
    model: ModelConfig = ModelConfig()
    dataset: DatasetConfig = DatasetConfig()
    train: TrainConfig = TrainConfig()
    retrain: RetrainConfig = RetrainConfig()
    retain: RetainConfig = RetainConfig()
    notify: NotifyConfig = NotifyConfig()
    queue: QueueConfig = QueueConfig()
    _source: str = PrivateAttr("defaults")  # where the file part came from, for messages

    @property
    def source(self) -> str:
        return self._source

    @property
    def data_path(self) -> Path:
        return Path(self.storage.data_dir)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Return the sources, first wins: code's overrides, the environment, the TOML file."""
        inputs = _INPUTS.get() or _Inputs(None, os.environ)
        return (
            init_settings,
            EnvironmentSource(settings_cls, inputs.environ),
            TomlConfigSettingsSource(settings_cls, toml_file=inputs.toml_file),
        )


SECTIONS: dict[str, type[Section]] = {name: field.annotation for name, field in Config.model_fields.items()}


class EnvironmentSource(PydanticBaseSettingsSource):
    """Read TWITCH_CLIENT_ID, TWITCH_CLIENT_SECRET and TWITCHWATCH_<SECTION>__<KEY> from a mapping.

    Each value is typed by its section's model from the string
    (`model_validate_strings`: "8", "true", "0.5"); a variable naming an
    unknown section or key, or holding a value of the wrong type, is a
    ConfigError naming the variable.
    """

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]):
        super().__init__(settings_cls)
        self.environ = environ

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        # Unused: __call__ reads every variable at once, so unknown ones are seen too.
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        strings, variables = self._strings()
        typed: dict[str, Any] = {}
        for section, values in strings.items():
            model = SECTIONS.get(section)
            if model is None:
                var = next(iter(variables[section].values()))
                raise ConfigError(f"unknown config section [{section}] (environment variable {var})")
            try:
                parsed = model.model_validate_strings(values)
            except ValidationError as exc:
                error = exc.errors()[0]
                key = str(error["loc"][0]) if error["loc"] else next(iter(values))
                var = variables[section].get(key, next(iter(variables[section].values())))
                if error["type"] == "extra_forbidden":
                    raise ConfigError(f"unknown config key {section}.{key} (environment variable {var})") from None
                raise ConfigError(f"environment variable {var} (config key {section}.{key}) {_reason(error)}") from None
            typed[section] = {key: getattr(parsed, key) for key in values}
        return typed

    def variables(self) -> dict[tuple[str, str], str]:
        """Return {(section, key): variable} of the keys the environment sets."""
        _, variables = self._strings()
        return {(section, key): var for section, keys in variables.items() for key, var in keys.items()}

    def _strings(self) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
        """Return {section: {key: text}} and {section: {key: variable}}; later variables win."""
        strings: dict[str, dict[str, str]] = {}
        variables: dict[str, dict[str, str]] = {}

        def put(section: str, key: str, text: str, var: str) -> None:
            strings.setdefault(section, {})[key] = text
            variables.setdefault(section, {})[key] = var

        for var, key in CLIENT_VARS:
            if self.environ.get(var):
                put("twitch", key, self.environ[var], var)
        prefix, delimiter = self.config["env_prefix"], self.config["env_nested_delimiter"]
        for var, text in self.environ.items():
            if not var.startswith(prefix) or var == CONFIG_ENV or delimiter not in var:
                continue
            section, _, key = var[len(prefix):].lower().partition(delimiter)
            put(section, key, text, var)
        return strings, variables


def load_config(
    path: Path | str | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Config:
    """Build the Config from defaults, a TOML file, the environment and overrides."""
    environ = os.environ if environ is None else environ
    if path is None and environ.get(CONFIG_ENV):
        path = environ[CONFIG_ENV]
    toml_file = Path(path) if path is not None else None
    source = str(toml_file) if toml_file is not None else "defaults"
    if toml_file is not None:
        _check_readable(toml_file)
    with _reading(_Inputs(toml_file, environ)):
        try:
            cfg = Config(**{name: dict(values) for name, values in (overrides or {}).items()})
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {toml_file} is not valid TOML: {exc}") from None
        except ValidationError as exc:
            raise _config_error(exc, source) from None
    cfg._source = source
    return cfg


def replace(cfg: Config, **sections: Mapping[str, Any]) -> Config:
    """Return a copy of cfg with some keys of some sections changed (validated)."""
    changed = {}
    for name, values in sections.items():
        if name not in SECTIONS:
            raise ConfigError(f"unknown config section [{name}]")
        try:
            changed[name] = SECTIONS[name].model_validate({**getattr(cfg, name).model_dump(), **values})
        except ValidationError as exc:
            raise _config_error(exc, cfg.source, section=name) from None
    return cfg.model_copy(update=changed)


@contextmanager
def _reading(inputs: _Inputs) -> Iterator[None]:
    token = _INPUTS.set(inputs)
    try:
        yield
    finally:
        _INPUTS.reset(token)


def _check_readable(path: Path) -> None:
    # TomlConfigSettingsSource reads a missing file as an empty one: a named file must exist.
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None


def _config_error(exc: ValidationError, source: str, section: str | None = None) -> ConfigError:
    """Turn pydantic's first error into one line naming the key, without a secret's value."""
    error = exc.errors()[0]
    loc = tuple(str(part) for part in error["loc"])
    if section is not None:
        loc = (section, *loc)
    if len(loc) == 1:
        if error["type"] == "extra_forbidden" and isinstance(error.get("input"), dict):
            return ConfigError(f"unknown config section [{loc[0]}] in {source}")
        return ConfigError(f"config key {loc[0]!r} in {source} must be a [section], not a bare value")
    key = ".".join(loc[:2])
    if error["type"] == "extra_forbidden":
        return ConfigError(f"unknown config key {key}")
    shown = "" if tuple(loc[:2]) in SECRET_KEYS else f", got {error.get('input')!r}"
    return ConfigError(f"config key {key} {_reason(error)}{shown}")


# pydantic's error types, said as what the key must be.
_MUST = {
    "int_type": "must be an integer", "int_parsing": "must be an integer", "int_from_float": "must be an integer",
    "float_type": "must be a number", "float_parsing": "must be a number",
    "bool_type": "must be true or false", "bool_parsing": "must be true or false",
    "string_type": "must be a string", "tuple_type": "must be a list of strings",
}
_BOUNDS = {"greater_than": ("gt", "above"), "greater_than_equal": ("ge", "at least"),
           "less_than": ("lt", "below"), "less_than_equal": ("le", "at most")}


def _reason(error: Mapping[str, Any]) -> str:
    """Return what the key must be, e.g. "must be positive", from one pydantic error."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "greater_than" and ctx.get("gt") == 0:
        return "must be positive"
    if kind in _BOUNDS:
        name, words = _BOUNDS[kind]
        return f"must be {words} {ctx[name]}"
    if kind == "literal_error":
        return f"must be {ctx['expected']}"
    if kind == "too_short":
        return f"must hold at least {ctx['min_length']} item"
    if kind in _MUST:
        return _MUST[kind]
    return str(error["msg"]).removeprefix("Value error, ")
