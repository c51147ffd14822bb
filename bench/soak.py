"""Soak the daemon: `twitchwatch run` against the stand-in while faults are injected at random.

    .venv/bin/python bench/soak.py [--minutes 10] [--seed 0] [--database-url URL]

The daemon runs as its own process (interval 2 s, short captures) on a small
world; this process hosts the stand-in and, every 0.5 to 3 s, switches on one
fault at random (see FAULTS) and undoes it a few seconds later. At the end the
faults stop, the cycles run on for a while, every channel goes off the air (no
new checks: the counts stop moving), and the figures are read: cycles
and checks from the daemon's /metrics, observations from the database, and the
daemon's resident memory, threads and open file descriptors from /proc, as
seen after its first cycle and at the end. Prints one JSON object.
tests/test_soak.py runs the same for 4 s.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from cli_helpers import write_config  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

from monitor.sim import StandIn, small_scenario  # noqa: E402


def _fault_list(sim: StandIn, kill_backends) -> dict:
    """Return {name: fault()} where fault() switches a fault on and returns how to undo it (or None)."""
    logins = [ch.login for ch in sim.scenario.channels]

    def channel(setter, on, off):
        def fault():
            login = random.choice(logins)
            setter(login, on)
            return lambda: setter(login, off)
        return fault

    def helix(kind, endpoint="streams", times=1):
        def fault():
            sim.set_helix_fault(kind, endpoint, times=times)
            return lambda: sim.set_helix_fault("", endpoint)
        return fault

    def pagination(kind):
        def fault():
            sim.set_pagination_fault(kind)
            return lambda: sim.set_pagination_fault("")
        return fault

    def token_down():
        sim.set_token_endpoint_down(True)
        return lambda: sim.set_token_endpoint_down(False)

    faults = {
        "token expiry": lambda: sim.expire_tokens(),
        "token revoked": lambda: sim.revoke_tokens(),
        "token endpoint down": token_down,
        "rate limit 429": lambda: sim.drain_bucket(reset_in=2.0),
        "helix 503": helix("503", times=2),
        "connection reset": helix("reset"),
        "50 MB body": helix("huge"),
        "not json": helix("not_json"),
        "wrong types": helix("wrong_types"),
        "hostile login": helix("hostile_login"),
        "page repeated": pagination("repeat"),
        "empty page": pagination("empty"),
        "cursor loop": pagination("loop"),
        "offline": channel(sim.set_offline, True, False),
        "corrupt video": channel(sim.set_corrupt, 0.5, 0.0),
        "ad break": lambda: sim.set_ad_break(random.choice(logins), 6.0),
        "truncated segments": channel(sim.set_segment_fault, "truncated", ""),
        "empty segments": channel(sim.set_segment_fault, "empty", ""),
        "long segments": channel(sim.set_segment_fault, "long", ""),
        "only best": channel(sim.set_single_variant, True, False),
    }
    if kill_backends is not None:
        faults["database restart"] = kill_backends
    return faults


def soak(seconds: float, *, seed: int = 0, database_url: str | None = None, workdir: Path | None = None,
         cache_dir: Path | None = None, settle_cycles: int = 2) -> dict:
    """Run the daemon for `seconds` under random faults, then `settle_cycles` without; return the figures.

    The end figures are taken with every channel offline (cycles list, no check runs)."""
    random.seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(workdir or tmp)
        with StandIn(small_scenario(), cache_dir=cache_dir) as sim:
            return _soak(sim, root, seconds, database_url or f"sqlite:///{root / 'soak.db'}", settle_cycles)


def _soak(sim: StandIn, root: Path, seconds: float, database_url: str, settle_cycles: int) -> dict:
    from monitor.classify import build_model
    from monitor.model_registry import ModelRegistry
    from monitor.store import Store
    from trainer.registry import save_model

    classes = [c.id for c in sim.scenario.categories]
    data = root / "data"
    Store(database_url).upgrade()
    model_id = save_model(data, build_model("squeezenet1_1", len(classes), "none"),
                          {"classes": classes, "arch": "squeezenet1_1", "segments": 2, "frames_per_segment": 1})
    ModelRegistry(data).activate(model_id)
    port = _free_port()
    config = write_config(root / "soak.toml", {
        "twitch": {**sim.twitch_config(), "request_timeout_seconds": 5.0},
        "categories": {"watch": classes, "chatting": "509658"},
        "storage": {"database_url": database_url, "data_dir": str(data)},
        "model": {"pretrained": "none"},
        "monitor": {"interval_seconds": 2, "capture_seconds": 2, "capture_timeout_seconds": 6.0, "segments": 2,
                    "frames_per_segment": 1, "metrics_port": port, "stop_timeout_seconds": 15.0},
    })
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWITCHWATCH_", "TWITCH_"))}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    log_path = root / "daemon.log"
    engine = create_engine(database_url, poolclass=NullPool)
    kill_backends = None
    if engine.dialect.name == "postgresql":
        def kill_backends():
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
                conn.commit()
    faults = _fault_list(sim, kill_backends)
    injected: Counter[str] = Counter()
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "monitor", "run", "--config", str(config)],
                                stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=str(root))
    try:
        _wait(lambda: _metric(port, "twitchwatch_cycles_total") >= 1, 120, proc, log_path)
        figures = functools.partial(_process_figures, database_file=_sqlite_file(engine))
        start = _idle_figures(figures, proc.pid)
        started = time.monotonic()
        undo: list[tuple[float, object]] = []
        rss_samples = [start["rss_mib"]]
        next_sample = started + 30
        while time.monotonic() - started < seconds:
            if time.monotonic() >= next_sample:
                rss_samples.append(figures(proc.pid)["rss_mib"])
                next_sample += 30
            if proc.poll() is not None:
                raise RuntimeError(f"the daemon exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}")
            now = time.monotonic()
            for item in [u for u in undo if u[0] <= now]:
                item[1]()  # type: ignore[operator]
                undo.remove(item)
            name = random.choice(sorted(faults))
            back = faults[name]()
            injected[name] += 1
            if callable(back):
                undo.append((now + random.uniform(1.0, 5.0), back))
            time.sleep(random.uniform(0.5, 3.0))
        for _, back in undo:
            back()  # type: ignore[operator]
        cycles_at_end = _metric(port, "twitchwatch_cycles_total")
        _wait(lambda: _metric(port, "twitchwatch_cycles_total") >= cycles_at_end + settle_cycles, 120, proc, log_path)
        # Every channel off the air: cycles go on listing but start no check, so after two more cycles
        # every check begun has been committed and counted, and the counts can be compared.
        for login in sim.scenario.channels:
            sim.set_offline(login.login, True)
        cycles_quiet = _metric(port, "twitchwatch_cycles_total")
        _wait(lambda: _metric(port, "twitchwatch_cycles_total") >= cycles_quiet + 2, 120, proc, log_path)
        end = _idle_figures(figures, proc.pid)
        checks, observations = _settled_counts(port, engine)
        cycles = _metric(port, "twitchwatch_cycles_total")
        mints = _metric(port, "twitchwatch_helix_tokens_minted_total")
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        engine.dispose()
    return {
        "seconds": round(seconds), "faults": sum(injected.values()), "fault_kinds": len(injected),
        "faults_by_kind": dict(sorted(injected.items())), "cycles": int(cycles), "checks": int(checks),
        "observations": observations, "tokens_minted": int(mints), "exit_code": code,
        "start": start, "end": end, "rss_mib_every_30s": rss_samples,
    }


def _settled_counts(port: int, engine) -> tuple[float, int]:
    """Return (checks counted by the daemon, observations in the database), once neither moves."""
    for _ in range(100):
        before = _metric(port, "twitchwatch_checks_total")
        with engine.connect() as conn:
            observations = int(conn.execute(text("SELECT count(*) FROM observations")).scalar_one())
        time.sleep(0.5)
        with engine.connect() as conn:
            again = int(conn.execute(text("SELECT count(*) FROM observations")).scalar_one())
        if _metric(port, "twitchwatch_checks_total") == before and again == observations:
            return before, observations
    raise RuntimeError("checks never settled")


def _idle_figures(figures, pid: int, seconds: float = 3.0) -> dict:
    """Return the figures of the quietest moment in `seconds` (1.5 intervals): the fewest threads, so that a
    cycle's check threads running at one moment and not at another are not taken for growth."""
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        samples.append(figures(pid))
        time.sleep(0.05)
    return min(samples, key=lambda f: (f["threads"], f["fds"]))


def _process_figures(pid: int, database_file: str | None = None) -> dict:
    """Resident memory, threads and open descriptors of `pid`.

    Descriptors on the SQLite file are counted apart, as the connections the engine's pool keeps open
    (each holds the file and its -wal): a pool warming up to its size is not a leak, anything else is."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    targets = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            targets.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:  # closed between the listing and the read
            continue
    database = [t for t in targets if database_file and t.startswith(database_file)]
    return {"rss_mib": round(rss / 1024, 1), "threads": len(os.listdir(f"/proc/{pid}/task")),
            "fds": len(targets), "database_connections": sum(t == database_file for t in database),
            "other_fds": len(targets) - len(database)}


def _sqlite_file(engine) -> str | None:
    if engine.dialect.name != "sqlite" or not engine.url.database:
        return None
    return os.path.realpath(engine.url.database)


def _metric(port: int, name: str) -> float:
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return -1.0
    return sum(s.value for f in text_string_to_metric_families(body) for s in f.samples if s.name == name)


def _wait(predicate, timeout: float, proc: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the daemon exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}")
        if predicate():
            return
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for the daemon:\n{log_path.read_text()[-3000:]}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--database-url", default=None, help="default: a SQLite file in a temporary directory")
    args = parser.parse_args(argv)
    result = soak(args.minutes * 60, seed=args.seed, database_url=args.database_url)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "soak"
    sys.exit(main())
