"""Replace a file's content so that readers see the old file or the new one, never half of one.

    write_atomic(path, data)     # temp file beside path, fsync, rename over path, fsync the directory
    write_atomic(path, data, mode=0o644)   # readable by another user (a node_exporter textfile)

The one way twitchwatch rewrites a file in place: the model registry's
ACTIVE pointer and model files, the retained clips' index when the oldest
are evicted, the dataset's split, the retrain's Prometheus textfile.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Write bytes to path so readers see the old file or the new one, never half of one.

    The file is private (0600, mkstemp's) unless `mode` says otherwise; the
    process umask does not apply to it.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Persist a rename across a power cut (best effort: not every filesystem allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
