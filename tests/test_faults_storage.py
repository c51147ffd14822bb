"""Storage faults made to happen: PostgreSQL connections cut mid-cycle, SQLite locked by another process,
the disk full while frames are written."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from fault_helpers import fault_runtime
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from monitor.cycle import run_cycle


def _observations(rt) -> list[dict]:
    return rt.store.observations(limit=10_000)


def test_postgres_backends_killed_mid_cycle_lose_and_double_no_committed_check(standin, tmp_path,
                                                                                postgres_database_url):
    rt = fault_runtime(standin, tmp_path, database_url=postgres_database_url)
    killer = create_engine(postgres_database_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    stop = threading.Event()
    kills: list[int] = []

    def kill_backends() -> None:
        # What a server restart does to the clients: every connection but ours ends, again and again.
        while not stop.wait(0.4):
            with killer.connect() as conn:
                kills.append(len(conn.execute(text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()")).all()))

    thread = threading.Thread(target=kill_backends)
    try:
        rt.category_names()
        thread.start()
        summary = run_cycle(rt)
    finally:
        stop.set()
        thread.join()
        killer.dispose()
    assert sum(kills) >= 1  # connections really were cut during the cycle
    rows = _observations(rt)
    # A check whose commit failed twice (killed again on the retry) says so; every other one is stored once.
    failed = [r for r in summary.results if (r.record.error or "").startswith("StoreError")]
    assert summary.checks == len(summary.results) == 10
    assert len(rows) == summary.checks - len(failed) >= 5
    assert sorted(r["user_login"] for r in rows) == sorted(
        r.stream.user_login for r in summary.results if r not in failed)
    # The store reconnects: a cycle after the cuts commits every check.
    assert run_cycle(rt).checks == 10 and len(_observations(rt)) == len(rows) + 10
    rt.close()


def test_sqlite_locked_by_another_process_waits_for_the_lock_and_commits(standin, tmp_path):
    rt = fault_runtime(standin, tmp_path)
    db = tmp_path / "tw.db"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, sys, time\n"
        f"c = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
        "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(2.5); c.execute('COMMIT')\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        stream = rt.helix.stream_of("mellowraven_live")
        from monitor.check import check_stream

        result = check_stream(rt.check_context, stream, rt.classifier())
        assert time.monotonic() - started >= 1.0  # it waited for the other process's lock
    finally:
        holder.wait(10)
    assert [r["outcome"] for r in _observations(rt)] == [result.outcome]
    rt.close()


@pytest.fixture
def small_disk(tmp_path):
    """A 12 MB tmpfs: room for the model, then filled so frames run out of space."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mount)], capture_output=True)
    assert done.returncode == 0, f"this test makes a full disk with a tmpfs and needs mount: {done.stderr!r}"
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_while_frames_are_written_keeps_the_check_and_a_consistent_dataset(standin, tmp_path, small_disk):
    rt = fault_runtime(standin, tmp_path, data_dir=small_disk / "data")
    try:
        rt.classifier()
        filler = small_disk / "filler"
        with open(filler, "wb") as out:  # fill the disk to the last few kB
            try:
                while True:
                    out.write(b"\0" * 65536)
                    out.flush()
            except OSError:
                pass
        with open(filler, "r+b") as out:
            out.truncate(max(0, filler.stat().st_size - 40_000))
        summary = run_cycle(rt)
        assert summary.checks == 10 and summary.completed == summary.checks
        assert len(_observations(rt)) == 10  # every check committed although its frames were not kept
        failed = sum(rt.metrics.registry.get_sample_value("twitchwatch_retention_errors_total", {"area": area})
                     for area in ("live", "review"))
        assert failed >= 1  # the disk really was full when frames were written
        # What the retainer lists is exactly what is on disk: no line without frames, no frames without a line.
        from monitor.retain import read_clips

        data = small_disk / "data"
        for area in ("live", "review"):
            root = data / area
            listed = {r["dir"] for r in read_clips(data, area)}
            on_disk = {f"{c.parent.name}/{c.name}" for c in root.glob("*/*")
                       if c.is_dir() and c.parent.name != ".tmp"}
            assert listed == on_disk
            assert not list((root / ".tmp").glob("*"))  # no half-written clip left behind
        filler.unlink()  # space again: the next cycle keeps frames
        run_cycle(rt)
        assert len(_observations(rt)) == 20
    finally:
        rt.close()
