"""Scale-out for real: one scheduler, a standby scheduler and three workers, as processes, on PostgreSQL.

Against the stand-in's small scenario (10 live channels), on a database of
the test's own:

- every channel is checked exactly once per cycle;
- a worker killed with SIGKILL in the middle of a check (its capture held up
  by an ad break) has that check finished by another worker;
- a worker stopped with SIGTERM in the middle of a check exits 0 after the
  stop timeout and puts the check back in the queue, for another worker;
- the standby waits while the active scheduler lives, and takes over, on
  the dead one's schedule, when it is killed (two cycles: one each);
- no transaction stays open across a capture (no lock held across I/O);
- each process serves its own metrics (its own Prometheus `instance`).
"""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path

import psycopg
import pytest
from cli_helpers import write_config
from proc_helpers import (
    NotifySocket,
    activate_untrained_model,
    counter,
    free_port,
    scrape,
    scrape_or_empty,
    start_process,
    stop_process,
    wait_for,
)

from monitor.checkqueue import conninfo
from monitor.sim import small_scenario
from monitor.store import Store

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

INTERVAL = 40
SLOW_LOGIN = "jc_plays_fortnite"


def scale_config(sim, tmp_path: Path, url: str, watch: list[str] | None = None, **monitor) -> Path:
    return write_config(tmp_path / "twitchwatch.toml", {
        "twitch": {**sim.twitch_config(), "request_timeout_seconds": 5.0},
        "categories": {"watch": watch or [c.id for c in small_scenario().categories], "chatting": "509658"},
        # 22 s of video is more than a live playlist lists (20 s): a capture waits for new segments, and
        # during an ad break until its 8 s cap.
        "monitor": {"interval_seconds": INTERVAL, "capture_seconds": 22, "capture_timeout_seconds": 8.0,
                    "segments": 2, "frames_per_segment": 2, "capture_workers": 2, "stop_timeout_seconds": 2.0,
                    **monitor},
        "storage": {"database_url": url, "data_dir": str(tmp_path / "data")},
        "model": {"pretrained": "none"},
        # 6 s of silence before a check is taken over: a heartbeat starved on a busy machine is not a death.
        "queue": {"heartbeat_seconds": 1.0, "stalled_seconds": 6.0, "failover_seconds": 1.0},
    })


class Fleet:
    """The processes of the test, each with its log and metrics port."""

    def __init__(self, tmp_path: Path, cfg: Path):
        self.tmp_path, self.cfg = tmp_path, cfg
        self.procs: dict[str, tuple] = {}

    def start(self, name: str, role: str, *args: str, **env: str) -> None:
        port = free_port()
        proc, log = start_process(["-m", "monitor", "run", "--role", role, *args, "--config", str(self.cfg)],
                                  self.tmp_path, self.tmp_path / f"{name}.log",
                                  TWITCHWATCH_MONITOR__METRICS_PORT=str(port), **env)
        self.procs[name] = (proc, log, port)

    def log(self, name: str) -> str:
        return self.procs[name][1].read_text(errors="replace")

    def port(self, name: str) -> int:
        return self.procs[name][2]

    def kill(self, name: str) -> None:
        proc = self.procs[name][0]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def alive(self, name: str) -> bool:
        return self.procs[name][0].poll() is None

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{self.log(name)[-2500:]}" for name in self.procs)

    def stop_all(self) -> None:
        for proc, _, _ in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _, _ in self.procs.values():
            try:
                proc.wait(20)
            except Exception:
                stop_process(proc)


def cycles(conn) -> dict[float, list[tuple]]:
    """Return {listed_at: [(user_id, status, attempts), ...]} of the queued checks, by cycle."""
    out: dict[float, list[tuple]] = {}
    for args, status, attempts in conn.execute(
            "SELECT args, status::text, attempts FROM procrastinate_jobs ORDER BY id").fetchall():
        out.setdefault(args["listed_at"], []).append((args["stream"]["user_id"], status, attempts))
    return out


def long_transactions(conn) -> list[tuple]:
    """Return the sessions of the other processes whose transaction is older than 4 s."""
    return conn.execute(
        "SELECT pid, state, left(query, 80) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND xact_start < now() - interval '4 seconds'").fetchall()


def test_one_scheduler_three_workers_sigkill_and_failover(standin, tmp_path, postgres_database_url):
    channels = {ch.user_id: ch.login for ch in small_scenario().channels}
    Store(postgres_database_url).upgrade()
    activate_untrained_model(tmp_path / "data", [c.id for c in small_scenario().categories])
    fleet = Fleet(tmp_path, scale_config(standin, tmp_path, postgres_database_url))
    conn = psycopg.connect(conninfo(postgres_database_url), autocommit=True)
    held_open: list[tuple] = []

    def watching(predicate):
        """A predicate that also samples the open transactions each time it is asked."""
        def check() -> bool:
            held_open.extend(long_transactions(conn))
            return predicate()
        return check

    notify = {n: NotifySocket(str(tmp_path / f"notify-{n}.sock")) for n in (1, 2, 3)}
    try:
        # An ad break holds up the slow channel's capture (until its 8 s cap) in every cycle.
        standin.set_ad_break(SLOW_LOGIN, 600)
        # Everything starts at once: whichever scheduler takes the lock first is the active one.
        for n in (1, 2, 3):
            fleet.start(f"worker-{n}", "worker", NOTIFY_SOCKET=str(tmp_path / f"notify-{n}.sock"),
                        WATCHDOG_USEC="2000000")
        for n in (1, 2):
            fleet.start(f"scheduler-{n}", "scheduler")

        def slow_starts() -> dict[str, int]:
            return {f"worker-{n}": len(re.findall(rf"job \d+: checking {SLOW_LOGIN}", fleet.log(f"worker-{n}")))
                    for n in (1, 2, 3)}

        def slow_worker(before: dict[str, int] | None = None) -> str | None:
            """Return the worker that started the slow check since `before` (counts of slow_starts)."""
            return next((name for name, n in slow_starts().items() if n > (before or {}).get(name, 0)), None)

        # The slow check starts on some worker: kill that worker in the middle of it.
        wait_for(watching(lambda: slow_worker() is not None or not all(fleet.alive(n) for n in fleet.procs)),
                 timeout=120, what="the slow check to start")
        victim = slow_worker()
        assert victim is not None, fleet.logs()
        fleet.kill(victim)
        killed_at = time.monotonic()
        # The checks it held (the slow one, maybe another): running in its name until the recovery.
        worker_id = int(re.search(r"worker (\d+) ready", fleet.log(victim)).group(1))
        killed_mid_check = {login for (login,) in conn.execute(
            "SELECT args->'stream'->>'user_login' FROM procrastinate_jobs WHERE status = 'doing' "
            "AND worker_id = %s", (worker_id,)).fetchall()}
        assert SLOW_LOGIN in killed_mid_check

        # One scheduler took the lock and queued the cycle; the other stands by.
        active = next((f"scheduler-{n}" for n in (1, 2) if "now the active one" in fleet.log(f"scheduler-{n}")),
                      None)
        assert active is not None, fleet.logs()
        standby = "scheduler-2" if active == "scheduler-1" else "scheduler-1"
        wait_for(lambda: "standby: another scheduler holds the lock" in fleet.log(standby)
                 or not fleet.alive(standby), timeout=120, what="the other scheduler to stand by")
        wait_for(lambda: all(" ready: " in fleet.log(f"worker-{n}") or not fleet.alive(f"worker-{n}")
                             for n in (1, 2, 3) if f"worker-{n}" != victim), timeout=120, what="the workers ready")
        assert all(fleet.alive(name) for name in fleet.procs if name != victim), fleet.logs()
        assert all(any(m.startswith("READY=1") for m in notify[n].texts()) for n in (1, 2, 3))

        # Another worker finishes it, once the scheduler saw the dead worker fall silent.
        first = min(cycles(conn))
        wait_for(watching(lambda: [s for _, s, _ in cycles(conn)[first]] == ["succeeded"] * len(channels)),
                 timeout=90, what="the first cycle to be checked, the killed worker's check too")
        assert time.monotonic() - killed_at < 30
        rescuers = [n for n in (1, 2, 3) if f"worker-{n}" != victim
                    and re.search(rf"job \d+: {SLOW_LOGIN} \w+", fleet.log(f"worker-{n}"))]
        assert len(rescuers) == 1, fleet.logs()
        assert "back in the queue" in fleet.log(active), fleet.logs()

        # The standby waits; each process serves metrics of its own.
        assert "now the active one" not in fleet.log(standby)
        worker = f"worker-{rescuers[0]}"
        assert counter(scrape(fleet.port(worker)), "twitchwatch_checks_total") > 0
        assert counter(scrape(fleet.port(worker)), "twitchwatch_scheduler_active") == 0
        assert counter(scrape(fleet.port(active)), "twitchwatch_scheduler_active") == 1
        assert counter(scrape(fleet.port(standby)), "twitchwatch_scheduler_active") == 0
        assert len(cycles(conn)) == 1

        # The active scheduler dies: the standby takes over, on the dead one's schedule.
        fleet.kill(active)
        wait_for(lambda: "now the active one" in fleet.log(standby), timeout=30, what="the takeover")
        wait_for(lambda: counter(scrape_or_empty(fleet.port(standby)), "twitchwatch_scheduler_active") == 1,
                 timeout=10, what="the standby's metrics to say it is active")
        wait_for(watching(lambda: len(cycles(conn)) >= 2), timeout=INTERVAL + 30, what="the standby's cycle")

        # SIGTERM a worker in the middle of the slow check: after the 2 s stop timeout it gives the check back.
        before = slow_starts()
        wait_for(watching(lambda: slow_worker(before) is not None), timeout=60, what="the slow check again")
        stopped = slow_worker(before)
        n_stopped = int(stopped.rsplit("-", 1)[1])
        stopped_at = time.monotonic()
        fleet.procs[stopped][0].send_signal(signal.SIGTERM)
        assert fleet.procs[stopped][0].wait(2.0 + 10) == 0, fleet.logs()
        assert time.monotonic() - stopped_at < 2.0 + 5
        abandoned = re.search(r"abandoned (.*) \(back in the queue\)", fleet.log(stopped))
        assert abandoned and SLOW_LOGIN in abandoned.group(1).split(", "), fleet.logs()
        assert "STOPPING=1" in notify[n_stopped].texts() and notify[n_stopped].pings()
        wait_for(watching(lambda: all(s == "succeeded" for jobs in cycles(conn).values() for _, s, _ in jobs)),
                 timeout=90, what="every queued check to be done")
    finally:
        fleet.stop_all()
        for sock in notify.values():
            sock.close()
        conn.close()

    by_cycle = cycles(psycopg.connect(conninfo(postgres_database_url), autocommit=True))
    listed = sorted(by_cycle)
    assert len(listed) == 2, json.dumps({str(k): v for k, v in by_cycle.items()})
    assert listed[1] - listed[0] == pytest.approx(INTERVAL, abs=3)  # the takeover kept the schedule
    for at in listed:
        # Every channel exactly once per cycle.
        assert sorted(uid for uid, _, _ in by_cycle[at]) == sorted(channels)
    # A second attempt: the checks the killed worker was running, then those the stopped worker gave back.
    retried = [{channels[uid]: n for uid, _, n in by_cycle[at] if n != 1} for at in listed]
    assert retried == [{login: 2 for login in killed_mid_check},
                       {login: 2 for login in abandoned.group(1).split(", ")}]
    with Store(postgres_database_url) as store, store.engine.connect() as db:
        per_channel = dict(db.exec_driver_sql(
            "SELECT channel_id, count(*) FROM observations GROUP BY channel_id").fetchall())
    assert per_channel == {uid: 2 for uid in channels}
    assert held_open == [], held_open
    logs = fleet.logs()
    assert "Traceback" not in logs, logs

