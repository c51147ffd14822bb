"""Set up logging for a terminal, for journald, or for a log shipper.

    setup_logging(debug=False, log_format="auto")   # what `twitchwatch --log-format auto` does

Formats, all on stderr:
- "text": `2024-05-01 12:00:00,123 WARNING monitor.cycle: message`, for a terminal or a file.
- "journal": `<4>monitor.cycle: message`. journald stamps each line itself and reads the
  `<N>` prefix as the syslog priority (sd-daemon(3)), so `journalctl -p warning` shows the
  warnings and errors only. Every line of a multi-line record (a traceback) carries it, as
  journald stores each line as its own entry.
- "json": one JSON object per line (`time`, `level`, `priority`, `logger`, `message`, and
  `exception` when there is one), for log shippers.
- "auto" (the default): "journal" when stderr is the stream systemd named in
  `$JOURNAL_STREAM` (a child whose stderr was redirected elsewhere keeps "text"), else "text".

Lines the CLI writes itself rather than logs (its one-line error, the doctor's
findings) take the same prefix through `journal_prefix`, so that
`journalctl -p err` shows why a command, an `ExecStartPre=` say, failed.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Any

FORMATS = ("auto", "text", "journal", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Libraries that are chatty at INFO; their failures reach twitchwatch as exceptions.
QUIET_LOGGERS = ("streamlink", "urllib3", "apscheduler.executors", "alembic", "matplotlib", "procrastinate")


def syslog_priority(levelno: int) -> int:
    """Return the syslog priority of a logging level: 3 error, 4 warning, 6 info, 7 debug."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


class JournalFormatter(logging.Formatter):
    """Format records for journald: no timestamp, `<priority>` before every line."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines() or [""])


class JsonFormatter(logging.Formatter):
    """Format each record as one line of JSON."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "priority": syslog_priority(record.levelno),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


def resolve_format(log_format: str, stream: IO[str] | None = None, environ: Mapping[str, str] | None = None) -> str:
    """Return "text", "journal" or "json": "auto" resolved against `stream` (stderr) and `environ`."""
    if log_format not in FORMATS:
        raise ValueError(f"unknown log format {log_format!r}: expected one of {', '.join(FORMATS)}")
    if log_format == "auto":
        return "journal" if writes_to_journal(stream or sys.stderr, environ) else "text"
    return log_format


def journal_prefix(levelno: int, log_format: str, stream: IO[str] | None = None) -> str:
    """Return "<N>" for a line written straight to `stream` (not logged) when it goes to journald, else ""."""
    return f"<{syslog_priority(levelno)}>" if resolve_format(log_format, stream) == "journal" else ""


def formatter_for(log_format: str, stream: IO[str] | None = None,
                  environ: Mapping[str, str] | None = None) -> logging.Formatter:
    """Return the formatter of a format name, "auto" resolved against `stream` and `environ`."""
    log_format = resolve_format(log_format, stream, environ)
    if log_format == "journal":
        return JournalFormatter()
    if log_format == "json":
        return JsonFormatter()
    return logging.Formatter(TEXT_FORMAT)


def writes_to_journal(stream: IO[str], environ: Mapping[str, str] | None = None) -> bool:
    """Return whether `stream` is the journal stream systemd announced in $JOURNAL_STREAM ("DEV:INODE")."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    device, sep, inode = value.partition(":")
    if not sep:
        return False
    try:
        st = os.fstat(stream.fileno())
        return (st.st_dev, st.st_ino) == (int(device), int(inode))
    except (AttributeError, OSError, ValueError):  # no file descriptor (a test's capture), or a bad value
        return False


class _Handler(logging.StreamHandler):
    """The handler setup_logging installs; found again and replaced by the next call."""


def setup_logging(debug: bool = False, log_format: str = "auto", stream: IO[str] | None = None,
                  environ: Mapping[str, str] | None = None) -> None:
    """Log to stderr in `log_format` at INFO (DEBUG with `debug`), libraries' chatter kept out.

    Like logging.basicConfig, it adds no handler when the root logger already
    has one of someone else's (a test's capture): those keep their records.
    """
    stream = stream or sys.stderr
    formatter = formatter_for(log_format, stream, environ)
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(handler)
    if not root.handlers:
        handler = _Handler(stream)
        handler.setFormatter(formatter)
        root.addHandler(handler)
        root.setLevel(logging.DEBUG if debug else logging.INFO)
    if not debug:
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
