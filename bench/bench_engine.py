"""Measure the two task engines the scale-out could use: procrastinate (PostgreSQL) and Celery (RabbitMQ).

    python bench/bench_engine.py [--tasks 300] [--json out.json]
    # needs PostgreSQL (TWITCHWATCH_BENCH_POSTGRES_URL, default postgresql+psycopg://postgres@127.0.0.1/postgres)
    # and RabbitMQ (TWITCHWATCH_BENCH_AMQP_URL, default amqp://guest:guest@127.0.0.1:5672//);
    # Celery is not a twitchwatch dependency: pip install 'celery>=5.5' to measure it too.

What the scale-out needs from an engine, measured on the same no-op check
(it writes one row to PostgreSQL, as a check's commit does), one worker
process with 4 threads. procrastinate runs through twitchwatch's own queue
code (monitor.checkqueue: enqueue with its locks, the worker's task, the
stalled-check recovery); Celery as it would be used (acks_late, prefetch 1):

- throughput: tasks per second through enqueue, dispatch and completion;
- latency: enqueue-to-done of one task on an idle worker (median of 20);
- takeover: a worker SIGKILLed while running a task; seconds until another
  worker has run it (procrastinate: heartbeat 1 s, stalled after 3 s, the
  recovery twitchwatch's scheduler runs every second; Celery: acks_late,
  RabbitMQ redelivers when the dead worker's connection closes);
- duplicates: one channel's check offered twice while the first waits: how
  many run (procrastinate's queueing lock; Celery has none).

A check costs seconds (capture, decode, inference): the engine's share of it
is what these numbers are compared against in the README.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PG_ADMIN = os.environ.get("TWITCHWATCH_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1/postgres")
AMQP = os.environ.get("TWITCHWATCH_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
DB = "twitchwatch_bench_engine"
CONCURRENCY = 4


def dsn(database: str = DB) -> str:
    from sqlalchemy.engine import make_url

    return make_url(PG_ADMIN).set(drivername="postgresql", database=database).render_as_string(hide_password=False)


def record_run(key: str, sleep: float = 0.0) -> None:
    """The task body of both engines: optionally sleep, then write one row (as a check commits)."""
    if sleep:
        time.sleep(sleep)
    with psycopg.connect(dsn(), autocommit=True) as conn:
        conn.execute("INSERT INTO bench_runs (key, pid) VALUES (%s, %s)", (key, os.getpid()))


def runs(key_prefix: str) -> list[tuple]:
    with psycopg.connect(dsn(), autocommit=True) as conn:
        return conn.execute("SELECT key, pid, at FROM bench_runs WHERE key LIKE %s", (key_prefix + "%",)).fetchall()


def wait_runs(prefix: str, count: int, timeout: float = 300) -> float:
    deadline = time.monotonic() + timeout
    while len(runs(prefix)) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out: {len(runs(prefix))}/{count} runs of {prefix}")
        time.sleep(0.005)
    return time.monotonic()


def fresh_database() -> None:
    from monitor.store import Store

    with psycopg.connect(dsn("postgres"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    with Store(f"postgresql+psycopg://{dsn().split('://', 1)[1]}") as store:
        store.upgrade()  # the queue's tables, as twitchwatch creates them
    with psycopg.connect(dsn(), autocommit=True) as conn:
        conn.execute("CREATE TABLE bench_runs (key text, pid int, at timestamptz DEFAULT clock_timestamp())")


def spawn(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "bench"), str(ROOT)])}
    return subprocess.Popen([sys.executable, *args], cwd=ROOT / "bench", env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def kill_all(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


# -- procrastinate, through twitchwatch's own queue code ----------------------------------


def stream(login: str):
    from monitor.helix import Stream

    return Stream(id=login, user_id=login, user_login=login, user_name=login, game_id="509658",
                  game_name="Just Chatting", viewer_count=1, thumbnail_url="", started_at="")


def sleep_of(login: str) -> float:
    return 5.0 if login.startswith("slow-") else 2.0 if login.startswith("busy-") else 0.0


def procrastinate_worker() -> None:
    """A worker as monitor.worker runs one (monitor.checkqueue's app and task), whose check records a row."""
    import asyncio

    from procrastinate.worker import Worker

    from monitor.checkqueue import QUEUE, RUNNER, worker_app

    def runner(s, listed_at: float, job_id: int) -> str:
        record_run(s.user_login, sleep_of(s.user_login))
        return "agree"

    async def main() -> None:
        app = worker_app(dsn(), pool_size=CONCURRENCY + 2)
        async with app.open_async():
            await Worker(app, queues=[QUEUE], concurrency=CONCURRENCY, additional_context={RUNNER: runner},
                         update_heartbeat_interval=1.0, stalled_worker_timeout=3.0,
                         fetch_job_polling_interval=1.0).run()

    asyncio.run(main())


def measure_procrastinate(tasks: int) -> dict:
    from monitor.checkqueue import CheckQueue

    queue = CheckQueue(dsn()).open()
    out: dict = {}
    procs = [spawn("bench_engine.py", "_procrastinate_worker")]
    try:
        queue.enqueue([stream("warmup")], listed_at=time.time())
        wait_runs("warmup", 1, timeout=60)

        started = time.monotonic()
        queue.enqueue([stream(f"tp-{i}") for i in range(tasks)], listed_at=time.time())  # one cycle's enqueue
        out["throughput_per_second"] = tasks / (wait_runs("tp-", tasks) - started)

        latencies = []
        for i in range(20):
            t0 = time.monotonic()
            queue.enqueue([stream(f"lat-{i}")], listed_at=time.time())
            latencies.append(wait_runs(f"lat-{i}", 1) - t0)
        out["latency_ms"] = 1000 * statistics.median(latencies)

        # Duplicates: one channel offered twice while its first check waits (the worker is busy).
        queue.enqueue([stream(f"busy-{i}") for i in range(CONCURRENCY)], listed_at=time.time())
        queue.enqueue([stream("dup-")], listed_at=time.time())
        queue.enqueue([stream("dup-")], listed_at=time.time())
        wait_runs("busy-", CONCURRENCY)
        time.sleep(1.5)
        out["duplicates_run"] = len(runs("dup-"))

        # Takeover: a worker killed mid-check; the recovery the active scheduler runs every second requeues it.
        queue.enqueue([stream("slow-")], listed_at=time.time())
        deadline = time.monotonic() + 30
        while queue.counts()["doing"] == 0:
            if time.monotonic() > deadline:
                raise SystemExit("the slow task never started")
            time.sleep(0.01)
        procs[0].kill()
        killed = time.monotonic()
        procs.append(spawn("bench_engine.py", "_procrastinate_worker"))
        while not runs("slow-"):
            queue.recover_stalled(3.0)
            time.sleep(1.0)
        out["takeover_seconds"] = time.monotonic() - killed  # includes the second worker's 5 s task
        out["takeover_seconds_net"] = out["takeover_seconds"] - 5.0
    finally:
        kill_all(procs)
        queue.close()
    return out


# -- Celery -----------------------------------------------------------------------------

try:
    from celery import Celery

    celery_app = Celery("bench_engine", broker=AMQP, backend=None)
    celery_app.conf.update(task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
                           task_default_queue="twitchwatch-bench", broker_connection_retry_on_startup=True)

    @celery_app.task(name="bench.record")
    def celery_record(key: str) -> None:
        record_run(key, sleep_of(key))
except ImportError:
    celery_app = None


def celery_worker_args() -> list[str]:
    return ["-m", "celery", "-A", "bench_engine", "worker", "--pool", "threads", "-c", str(CONCURRENCY),
            "--without-heartbeat", "--without-gossip", "--without-mingle", "-Q", "twitchwatch-bench",
            "--loglevel", "WARNING"]


def measure_celery(tasks: int) -> dict:
    out: dict = {}
    celery_app.control.purge()
    procs = [spawn(*celery_worker_args())]
    try:
        celery_record.delay("warmup-c")
        wait_runs("warmup-c", 1, timeout=60)

        started = time.monotonic()
        for i in range(tasks):
            celery_record.delay(f"ctp-{i}")
        out["throughput_per_second"] = tasks / (wait_runs("ctp-", tasks) - started)

        latencies = []
        for i in range(20):
            t0 = time.monotonic()
            celery_record.delay(f"clat-{i}")
            latencies.append(wait_runs(f"clat-{i}", 1) - t0)
        out["latency_ms"] = 1000 * statistics.median(latencies)

        for i in range(CONCURRENCY):
            celery_record.delay(f"busy-c{i}")
        celery_record.delay("cdup-")  # the same channel offered twice: nothing stops the second
        celery_record.delay("cdup-")
        wait_runs("busy-c", CONCURRENCY)
        time.sleep(1.5)
        out["duplicates_run"] = len(runs("cdup-"))

        celery_record.delay("slow-c")
        time.sleep(1.0)  # let the worker take it
        procs[0].kill()
        killed = time.monotonic()
        procs.append(spawn(*celery_worker_args()))
        wait_runs("slow-c", 1, timeout=120)
        out["takeover_seconds"] = time.monotonic() - killed
        out["takeover_seconds_net"] = out["takeover_seconds"] - 5.0
    finally:
        kill_all(procs)
        celery_app.control.purge()
    return out


def main() -> None:
    if sys.argv[1:2] == ["_procrastinate_worker"]:
        procrastinate_worker()
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    fresh_database()
    results = {"procrastinate": measure_procrastinate(args.tasks)}
    if celery_app is not None:
        results["celery"] = measure_celery(args.tasks)
    else:
        print("celery is not installed (pip install 'celery>=5.5'): measuring procrastinate only", file=sys.stderr)
    for engine, r in results.items():
        print(f"{engine:13s} throughput {r['throughput_per_second']:7.1f} tasks/s  latency {r['latency_ms']:6.1f} ms  "
              f"takeover {r['takeover_seconds_net']:5.1f} s (+5 s task)  duplicates run {r['duplicates_run']} of 2")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    with psycopg.connect(dsn("postgres"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


if __name__ == "__main__":
    main()
