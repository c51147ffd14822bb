"""Write the documented config file and show the effective config, both from the Config model itself.

    text = example()                                   # `twitchwatch config init`: every key commented out
    text = example(chosen)                             # chosen keys set, the rest commented out
    print(effective_toml(cfg, os.environ))             # `twitchwatch config show`: secrets masked

Every key's description, default and allowed values come from the pydantic
fields of monitor.config (`Field(description=...)`, the section's
docstring), so the file cannot drift from the code; a key without a
description is an error here (`undocumented()`), which the example's test
turns into a failure. deploy/twitchwatch.toml.example is `example()`.
"""

from __future__ import annotations

import json
import os
import textwrap
import tomllib
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin
from urllib.parse import urlsplit, urlunsplit

from annotated_types import Ge, Gt, Le, Lt, MinLen
from pydantic import BaseModel, SecretStr, ValidationError
from pydantic.fields import FieldInfo

from monitor.atomic_file import write_atomic
from monitor.config import (
    CLIENT_VARS,
    ENV_NESTED_DELIMITER,
    ENV_PREFIX,
    SECRET_KEYS,
    SECTIONS,
    Config,
    EnvironmentSource,
    _config_error,
    load_config,
)
from monitor.errors import ConfigError, TwitchwatchError, UsageError

WIDTH = 100
MASK = "********"
HEADER = """\
twitchwatch configuration: every key, its default and what it does.

A key left commented out keeps its built-in default (which a later release may improve);
uncomment a key to set it. Environment variables override this file: TWITCH_CLIENT_ID,
TWITCH_CLIENT_SECRET and TWITCHWATCH_<SECTION>__<KEY> (e.g. TWITCHWATCH_STORAGE__DATABASE_URL).
An unknown section or key is an error. Keep secrets (twitch.client_secret, notify.webhook_url,
a database password) in the environment, not here (deploy/README.md: /etc/twitchwatch/env).
Written by `twitchwatch config init`; `twitchwatch config show` prints what is in effect."""

Chosen = Mapping[str, Mapping[str, Any]]


def undocumented(sections: Mapping[str, type[BaseModel]] = SECTIONS) -> list[str]:
    """Return the sections and keys (`section`, `section.key`) that have no description."""
    missing = [name for name, model in sections.items() if not _doc(model)]
    for name, model in sections.items():
        missing += [f"{name}.{key}" for key, field in model.model_fields.items()
                    if not (field.description or "").strip()]
    return missing


def example(chosen: Chosen | None = None, sections: Mapping[str, type[BaseModel]] = SECTIONS) -> str:
    """Return the commented TOML file: every key, its default and what it does; `chosen` keys set.

    `chosen` maps section -> key -> an already validated value; those keys are
    written uncommented, every other key as a comment holding its default.
    """
    missing = undocumented(sections)
    if missing:
        raise ValueError(f"config keys without a description: {', '.join(missing)} "
                         "(give each Field a description in monitor/config.py)")
    chosen = chosen or {}
    out = [_comment(HEADER), ""]
    for name, model in sections.items():
        out.append(f"[{name}]")
        out.append(_comment(_doc(model)))
        out.append(_comment(_environment_line(name)))
        for key, field in model.model_fields.items():
            out.append("")
            out.append(_comment(_describe(field)))
            if key in chosen.get(name, {}):
                out.append(f"{key} = {toml_value(chosen[name][key])}")
            else:
                out.append(f"# {key} = {toml_value(field.default)}")
        out.append("")
    return "\n".join(out)


def chosen_values(from_file: Path | None, assignments: list[str]) -> Chosen:
    """Return the keys a user chose for `config init`: a TOML file's keys, then SECTION.KEY=VALUE's.

    Each value is validated as the config would be (a file's by the model, an
    assignment's from its text as an environment variable is); the first bad
    one is a ConfigError naming it.
    """
    chosen: dict[str, dict[str, Any]] = {}
    if from_file is not None:
        cfg = load_config(from_file, environ={})
        for name, keys in _toml_keys(from_file).items():
            section = getattr(cfg, name)
            chosen.setdefault(name, {}).update({key: getattr(section, key) for key in keys})
    for assignment in assignments:
        name, key, value = _parse_assignment(assignment)
        try:
            typed = SECTIONS[name].model_validate_strings({key: value})
        except ValidationError as exc:
            raise ConfigError(f"--set: {_config_error(exc, '--set', section=name)}") from None
        chosen.setdefault(name, {})[key] = getattr(typed, key)
    return chosen


def holds_secret(chosen: Chosen) -> bool:
    """Return whether any chosen value is a secret (the file it goes to is then made private)."""
    return any((name, key) in SECRET_KEYS and _plain(value) for name, keys in chosen.items()
               for key, value in keys.items())


def effective(cfg: Config) -> dict[str, dict[str, Any]]:
    """Return the config as plain data, secrets masked: {section: {key: value}}."""
    out: dict[str, dict[str, Any]] = {}
    for name in SECTIONS:
        section = getattr(cfg, name)
        out[name] = {key: _masked(name, key, getattr(section, key)) for key in type(section).model_fields}
    return out


def effective_toml(cfg: Config, environ: Mapping[str, str]) -> str:
    """Return the effective config as TOML, secrets masked, each key not at its default saying where it came from."""
    from_env = EnvironmentSource(Config, environ).variables()
    from_file = _toml_keys(Path(cfg.source)) if cfg.source != "defaults" else {}
    where = "no config file" if cfg.source == "defaults" else cfg.source
    lines = [f"# Effective configuration: built-in defaults, then {where}, then the environment. Secrets are masked."]
    for name, values in effective(cfg).items():
        lines += ["", f"[{name}]"]
        for key, value in values.items():
            line = f"{key} = {toml_value(value)}"
            if (name, key) in from_env:
                line += f"  # from ${from_env[name, key]}"
            elif key in from_file.get(name, ()):
                line += f"  # from {cfg.source}"
            lines.append(line)
    return "\n".join(lines) + "\n"


def effective_json(cfg: Config) -> str:
    """Return the effective config as one JSON object, secrets masked."""
    return json.dumps(effective(cfg), indent=2) + "\n"


def write_file(path: Path, text: str, *, private: bool, force: bool) -> None:
    """Write a config file atomically: refuse to replace one unless `force`; 0600 when it holds a secret."""
    if path.exists() and not force:
        raise UsageError(f"{path} exists: pass --force to replace it (--from {path} keeps the keys it sets)")
    if not path.parent.is_dir():
        raise UsageError(f"cannot write {path}: directory {path.parent} does not exist")
    try:
        write_atomic(path, text.encode("utf-8"))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(path, 0o600 if private else 0o666 & ~umask)
    except OSError as exc:
        raise TwitchwatchError(f"cannot write {path}: {exc.strerror or exc}") from None


def toml_value(value: Any) -> str:
    """Return a TOML literal for a config value (strings, numbers, booleans, lists)."""
    value = _plain(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        # 400_000_000 reads as bytes at a glance; a seed like 20200220 stays as written.
        return f"{value:_}" if abs(value) >= 100_000 and value % 1000 == 0 else str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}")


# -- pieces ----------------------------------------------------------------------


def _doc(model: type[BaseModel]) -> str:
    # Its own docstring only: one inherited from Section says nothing about this section.
    return " ".join((vars(model).get("__doc__") or "").split())


def _comment(text: str) -> str:
    lines = []
    for paragraph in text.split("\n"):
        wrapped = textwrap.wrap(paragraph, WIDTH - 2, break_long_words=False, break_on_hyphens=False)
        lines += [f"# {line}" for line in wrapped] or ["#"]
    return "\n".join(lines)


def _environment_line(name: str) -> str:
    line = f"Environment: {ENV_PREFIX}{name.upper()}{ENV_NESTED_DELIMITER}<KEY>"
    if name == "twitch":
        line += ", and " + " and ".join(var for var, _ in CLIENT_VARS)
    return line + "."


def _describe(field: FieldInfo) -> str:
    text = " ".join((field.description or "").split())
    allowed = _allowed(field)
    return f"{text} ({allowed})" if allowed else text


def _allowed(field: FieldInfo) -> str:
    """Return the kind of value a field takes, with its bounds: "integer > 0", "number, 0 to 1"."""
    annotation = field.annotation
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(json.dumps(v) for v in get_args(annotation))
    kind = {bool: "true or false", int: "integer", float: "number", str: "string", SecretStr: "string, secret"}
    if get_origin(annotation) is tuple or isinstance(annotation, types.GenericAlias):
        words = "list of strings"
    else:
        words = kind.get(annotation, "")
    bounds = {type(m): m for m in field.metadata}
    low = bounds.get(Gt) or bounds.get(Ge)
    high = bounds.get(Lt) or bounds.get(Le)
    if isinstance(low, Ge) and isinstance(high, Le):
        return f"{words}, {low.ge:g} to {high.le:g}"
    parts = []
    if isinstance(low, Gt):
        parts.append(f"> {low.gt:g}")
    elif isinstance(low, Ge):
        parts.append(f">= {low.ge:g}")
    if isinstance(high, Lt):
        parts.append(f"< {high.lt:g}")
    elif isinstance(high, Le):
        parts.append(f"<= {high.le:g}")
    text = " ".join([words, " and ".join(parts)]).strip()
    if MinLen in bounds:
        text += f", at least {bounds[MinLen].min_length}"
    return text


def _plain(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _masked(section: str, key: str, value: Any) -> Any:
    value = _plain(value)
    if (section, key) not in SECRET_KEYS or not value:
        return list(value) if isinstance(value, tuple) else value
    if key == "database_url":
        from monitor.store.engine import safe_url

        return safe_url(value)
    if key == "webhook_url":
        parts = urlsplit(value)
        if parts.scheme and parts.netloc:
            # The host says where flags go; the path and query often carry the token.
            return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], "/" + MASK, "", ""))
    return MASK


def _toml_keys(path: Path) -> dict[str, list[str]]:
    """Return {section: [key, ...]} as written in a TOML file (already validated by load_config)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    return {name: list(values) for name, values in data.items() if isinstance(values, dict)}


def _parse_assignment(text: str) -> tuple[str, str, str]:
    target, sep, value = text.partition("=")
    name, dot, key = target.strip().partition(".")
    if not sep or not dot or not name or not key:
        raise ConfigError(f"--set {text!r}: expected SECTION.KEY=VALUE, e.g. model.pretrained=none")
    if name not in SECTIONS:
        raise ConfigError(f"--set {text!r}: unknown config section [{name}]")
    return name, key, value.strip()
