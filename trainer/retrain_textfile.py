"""Write the retrain's outcome as a Prometheus textfile for node_exporter's textfile collector.

    record_success(path, started=t0, finished=t1, test_accuracy=0.81, champion_accuracy=0.78, promoted=True)
    record_failure(path, attempted=t1)      # keeps the last success's figures, sets the failure gauge

`twitchwatch retrain` is a oneshot: nothing stays up to be scraped, so its
figures go into a file node_exporter serves (`retrain.textfile`). The file
is replaced atomically (monitor.atomic_file, mode 0644 so node_exporter's
user can read it): a scrape never sees half of it. A failed retrain cannot
know the last success's figures but from the file itself, so it reads them
back and keeps them; the alert on `..._last_success_timestamp_seconds` then
measures from the last retrain that finished.
"""

from __future__ import annotations

import logging
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor.atomic_file import write_atomic

log = logging.getLogger(__name__)

PREFIX = "twitchwatch_retrain_"
# name -> help; the first five describe the last retrain that finished, the last two the last attempt.
SUCCESS_GAUGES = {
    "last_success_timestamp_seconds": "When the last retrain that finished (promoted or not) ended, Unix time; "
                                      "0: none has finished yet.",
    "duration_seconds": "Wall time of the last retrain that finished.",
    "test_accuracy": "Clip accuracy of the last finished retrain's challenger on the frozen test clips.",
    "champion_test_accuracy": "Clip accuracy of the model it was compared with (absent: there was none).",
    "promoted": "1 if the last finished retrain promoted its challenger, else 0.",
}
ATTEMPT_GAUGES = {
    "last_attempt_timestamp_seconds": "When the last retrain, finished or failed, ended, Unix time.",
    "last_attempt_failed": "1 if the last retrain failed (raised before comparing), else 0.",
}


def record_success(path: str | Path, *, started: float, finished: float, test_accuracy: float | None,
                   champion_accuracy: float | None, promoted: bool) -> None:
    """Write the figures of a retrain that finished (whether or not it promoted)."""
    values = {
        "last_success_timestamp_seconds": finished,
        "duration_seconds": finished - started,
        "test_accuracy": test_accuracy,
        "champion_test_accuracy": champion_accuracy,
        "promoted": float(promoted),
        "last_attempt_timestamp_seconds": finished,
        "last_attempt_failed": 0.0,
    }
    _write(Path(path), values)


def record_failure(path: str | Path, *, attempted: float) -> None:
    """Write a failed attempt, keeping the last success's figures found in the file."""
    previous = read_values(path)
    values: dict[str, float | None] = {name: previous.get(name) for name in SUCCESS_GAUGES}
    if values["last_success_timestamp_seconds"] is None:
        values["last_success_timestamp_seconds"] = 0.0  # never finished: an alert on its age fires
    values.update(last_attempt_timestamp_seconds=attempted, last_attempt_failed=1.0)
    _write(Path(path), values)


def read_values(path: str | Path) -> dict[str, float]:
    """Return {gauge name without the prefix: value} from a textfile; {} when it is missing or unreadable."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        families = list(text_string_to_metric_families(text))
    except (OSError, ValueError) as exc:
        if not isinstance(exc, FileNotFoundError):
            log.warning("retrain textfile %s is unreadable (%s): its last success is lost", path, exc)
        return {}
    return {s.name.removeprefix(PREFIX): s.value for f in families for s in f.samples if s.name.startswith(PREFIX)}


def render(values: dict[str, float | None]) -> bytes:
    """Return the Prometheus text exposition of the gauges that have a value."""
    registry = CollectorRegistry()
    for name, help_text in {**SUCCESS_GAUGES, **ATTEMPT_GAUGES}.items():
        value = values.get(name)
        if value is not None:
            Gauge(PREFIX + name, help_text, registry=registry).set(value)
    return generate_latest(registry)


def _write(path: Path, values: dict[str, float | None]) -> None:
    # A metrics file must never fail the retrain it reports: the journal says what went wrong, and
    # the age alert fires when the file stops moving.
    try:
        write_atomic(path, render(values), mode=0o644)
    except OSError as exc:
        log.warning("could not write the retrain textfile %s (%s): check retrain.textfile and that the "
                    "directory is writable by this service", path, exc)
