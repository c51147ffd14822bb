"""Checks per minute with 1, 2 and 4 worker processes on this machine, against the stand-in, on PostgreSQL.

    python bench/bench_scale.py [--workers 1 2 4] [--scenario default] [--capture-seconds 12] [--json out.json]

For each worker count: a fresh database, an untrained model (weights do not
change the cost) at the default K=6, n=3, one cycle queued by
`twitchwatch run --role scheduler --once` (the default scenario: 85 live
channels), then that many `twitchwatch run --role worker --once` processes
(monitor.capture_workers = 4 checks at once each) started together. Checks
per minute count from the first check's start to the last one's end (from
the queue's own events), so process start-up (importing torch) is left out;
the wall time from start to the last exit is printed beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.checkqueue import conninfo  # noqa: E402
from monitor.sim import StandIn, load_scenario  # noqa: E402
from monitor.store import Store  # noqa: E402

ADMIN = os.environ.get("TWITCHWATCH_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1/postgres")
DB = "twitchwatch_bench_scale"


def database_url() -> str:
    from sqlalchemy.engine import make_url

    return make_url(ADMIN).set(database=DB).render_as_string(hide_password=False)


def fresh_database() -> None:
    with psycopg.connect(conninfo(ADMIN), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    with Store(database_url()) as store:
        store.upgrade()


def write_config(path: Path, sim: StandIn, scenario, data_dir: Path, capture_seconds: int) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from cli_helpers import write_config as write

    write(path, {
        "twitch": sim.twitch_config(),
        "categories": {"watch": [c.id for c in scenario.categories], "chatting": "509658"},
        "monitor": {"capture_seconds": capture_seconds, "metrics_port": 0},
        "storage": {"database_url": database_url(), "data_dir": str(data_dir)},
        "model": {"pretrained": "none"},
    })


def activate_model(data_dir: Path, classes: list[str]) -> None:
    from monitor.classify import build_model
    from monitor.model_registry import ModelRegistry
    from trainer.registry import save_model

    model_id = save_model(data_dir, build_model("squeezenet1_1", len(classes), "none"),
                          {"classes": classes, "arch": "squeezenet1_1"})
    ModelRegistry(data_dir).activate(model_id)


def twitchwatch(*args: str, config: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWITCHWATCH_", "TWITCH_"))}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "monitor", *args, "--config", str(config)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def processing_window() -> tuple[int, float]:
    """Return (checks done, seconds from the first check's start to the last one's end), from the queue."""
    with psycopg.connect(conninfo(database_url()), autocommit=True) as conn:
        done, first, last = conn.execute(
            "SELECT count(DISTINCT e.job_id) FILTER (WHERE e.type = 'succeeded'), "
            "min(e.at) FILTER (WHERE e.type = 'started'), max(e.at) FILTER (WHERE e.type = 'succeeded') "
            "FROM procrastinate_events e").fetchone()
    return done, (last - first).total_seconds()


def run(workers: int, sim: StandIn, scenario, capture_seconds: int) -> dict:
    fresh_database()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "twitchwatch.toml"
        write_config(config, sim, scenario, Path(tmp) / "data", capture_seconds)
        activate_model(Path(tmp) / "data", [c.id for c in scenario.categories])
        queued = json.loads(twitchwatch("run", "--role", "scheduler", "--once", "--json",
                                        config=config).communicate(timeout=300)[0])
        started = time.monotonic()
        procs = [twitchwatch("run", "--role", "worker", "--once", "--json", config=config) for _ in range(workers)]
        summaries = [json.loads(p.communicate(timeout=3600)[0]) for p in procs]
        wall = time.monotonic() - started
    done, window = processing_window()
    checks = sum(s["checks"] for s in summaries)
    return {"workers": workers, "queued": queued["queued"], "checks": checks, "done": done,
            "failed": sum(s["failed"] for s in summaries), "processing_seconds": round(window, 1),
            "wall_seconds": round(wall, 1), "checks_per_minute": round(60 * done / window, 1),
            "verdicts": {k: sum(s["verdicts"][k] for s in summaries) for k in summaries[0]["verdicts"]}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--scenario", default="default")
    parser.add_argument("--capture-seconds", type=int, default=12)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    scenario = load_scenario(args.scenario)
    results = []
    with StandIn(scenario) as sim:
        for n in args.workers:
            result = run(n, sim, scenario, args.capture_seconds)
            results.append(result)
            print(f"{n} worker(s): {result['checks_per_minute']:6.1f} checks/min ({result['done']} checks in "
                  f"{result['processing_seconds']} s; {result['wall_seconds']} s with start-up; "
                  f"{result['failed']} failed; {os.cpu_count()} cores)", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"scenario": args.scenario, "capture_seconds": args.capture_seconds,
                                         "cores": os.cpu_count(), "results": results}, indent=2) + "\n")
    with psycopg.connect(conninfo(ADMIN), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


if __name__ == "__main__":
    main()
