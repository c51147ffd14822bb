"""monitor.memory: the arena cap and the trim work on this glibc, and resident memory is measured."""

from __future__ import annotations

import subprocess
import sys

from monitor.memory import rss_bytes


def test_freed_heap_goes_back_to_the_system_after_release_memory():
    # A fresh interpreter: the cap must come before other threads allocate.
    code = """
import threading
from monitor.memory import cap_malloc_arenas, release_memory, rss_bytes
assert cap_malloc_arenas()
kept = []
def churn():
    blocks = [bytearray(100_000) for _ in range(1000)]
    kept.extend(blocks[::2])  # every other block stays: the freed ones are holes between live ones
threads = [threading.Thread(target=churn) for _ in range(4)]
[t.start() for t in threads]; [t.join() for t in threads]
before = rss_bytes()
release_memory()
print((before - rss_bytes()) // 2**20)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    # Of the 200 MB freed in holes, a collect alone hands back nothing (measured: 0 MB) and a
    # trim 90-150 MB, varying with how the threads' blocks interleave (CI once saw 91): a
    # quarter is the line between "trim works" and "it does not".
    assert int(out.stdout) > 50


def test_rss_is_measured():
    assert rss_bytes() > 10 * 2**20
