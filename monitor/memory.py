"""Keep a long-running process's resident memory flat: fewer malloc arenas, freed pages handed back.

    cap_malloc_arenas()      # once, before the check threads start
    release_memory()         # after each cycle
    rss_bytes()              # resident set size now

glibc gives each thread that allocates concurrently an arena of its own (up to
8 per core) and rarely returns their free pages to the system: with capture
threads decoding megabytes of video each cycle, resident memory creeps up
cycle after cycle although nothing leaks. Two arenas and a malloc_trim after
each cycle keep it flat (bench/cycle.py measures it). Elsewhere than glibc
these are no-ops; MALLOC_ARENA_MAX in the environment wins over the cap.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc's mallopt parameter number
ARENAS = 2


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


def cap_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas (unless MALLOC_ARENA_MAX is set); return whether a cap is in force."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return True
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_ARENA_MAX, arenas))


def release_memory() -> None:
    """Collect cycles and hand free heap pages back to the system."""
    gc.collect()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def rss_bytes() -> int:
    """Return this process's resident set size in bytes (0 where /proc is absent)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
