"""Append-only JSON-lines files that survive a crash mid-write.

    append_jsonl(path, [{"clip_id": "a"}])
    rows = read_jsonl(path)

Used for the dataset's manifest and clip index and for retained live clips:
a line is the commit marker of the files it names.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from monitor.atomic_file import write_atomic

log = logging.getLogger(__name__)


def read_jsonl(path: Path) -> list[dict]:
    """Read a jsonl file, skipping a line cut short by a crash mid-append."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            log.warning("skipping a damaged line in %s", path)
    return rows


def append_jsonl(path: Path, rows: Iterable[Mapping]) -> None:
    """Append lines and make them durable."""
    line = "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+b") as fh:
        # After a crash mid-append the file ends inside a line: end it, or this line would join it.
        if fh.seek(0, os.SEEK_END) > 0:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                line = b"\n" + line
        fh.write(line)  # append mode: written at the end whatever the read position
        fh.flush()
        os.fsync(fh.fileno())


def rewrite_jsonl(path: Path, rows: Sequence[Mapping]) -> None:
    """Replace a jsonl file's content atomically (monitor.atomic_file.write_atomic)."""
    write_atomic(path, "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows).encode())
