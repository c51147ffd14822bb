"""The daemon's lifecycle: in-process with a fake cycle, then as a real process.

The in-process tests drive run_daemon from the main thread (signals only
reach it there) and send it real signals from a helper thread. The process
tests at the end start `python -m monitor run` against the Twitch stand-in.
Both read what the daemon tells systemd from a NOTIFY_SOCKET they bind.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
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
from prometheus_client import generate_latest

from monitor.config import load_config
from monitor.daemon import Progress, run_daemon, stall_bound
from monitor.errors import TwitchwatchError


def config(**monitor):
    return load_config(environ={}, overrides={"monitor": {
        "interval_seconds": 1, "metrics_port": free_port(), "stop_timeout_seconds": 3.0, **monitor}})


class FakeRuntime:
    """Stands in for monitor.cycle.Runtime; records what the daemon does with it."""

    def __init__(self, cfg, metrics):
        self.cfg = cfg
        self.metrics = metrics
        self.closed = False

    def close(self):
        self.closed = True


@pytest.fixture
def runtimes():
    made: list[FakeRuntime] = []

    def factory(cfg, metrics):
        rt = FakeRuntime(cfg, metrics)
        made.append(rt)
        return rt

    factory.made = made
    return factory


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    path = str(tmp_path / "notify.sock")
    sock = NotifySocket(path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield sock
    sock.close()


@pytest.fixture(autouse=True)
def _safe_signals(monkeypatch):
    """Make a stray SIGTERM/SIGHUP harmless to pytest; run_daemon installs and restores its own."""
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    previous = {s: signal.signal(s, lambda *a: None) for s in (signal.SIGTERM, signal.SIGHUP)}
    yield
    for s, handler in previous.items():
        signal.signal(s, handler)


def drive(cfg, script: Callable[[], None], *, config_path=None, **kwargs) -> int:
    """Run the daemon in this thread while `script` runs beside it; SIGTERM it when the script ends.

    The daemon's hard exit (os._exit) would end pytest itself: it is replaced
    by a recorder, and a hard exit the test did not ask for fails it.
    """
    errors: list[BaseException] = []
    hard_exits: list[int] = []
    kwargs.setdefault("hard_exit", hard_exits.append)

    def runner():
        try:
            script()
        except BaseException as exc:
            errors.append(exc)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=runner, daemon=True)
    thread.start()
    code = run_daemon(cfg, config_path, **kwargs)
    thread.join(10)
    if errors:
        raise errors[0]
    assert hard_exits == [], "the daemon abandoned a cycle at the stop timeout"
    return code


def test_cycles_repeat_metrics_are_served_and_sigterm_exits_0(runtimes, notify_socket):
    cfg = config()
    port = cfg.monitor.metrics_port
    calls: list[float] = []
    seen_before_ready: list[list[str]] = []

    def factory(cfg, metrics):
        # The metrics port is bound, and nothing told systemd READY, before the runtime exists.
        assert "twitchwatch_build_info" in scrape(port)
        seen_before_ready.append(notify_socket.texts())
        return runtimes(cfg, metrics)

    def cycle(rt, stop):
        calls.append(time.monotonic())
        rt.metrics.cycle_done(0.01, ok=True)

    def script():
        wait_for(lambda: len(calls) >= 2, what="two cycles")
        assert 'twitchwatch_cycles_total{result="ok"}' in scrape(port)

    code = drive(cfg, script, cycle_fn=cycle, runtime_factory=factory)
    assert code == 0
    assert seen_before_ready == [[]]
    assert len(runtimes.made) == 1 and runtimes.made[0].closed
    texts = notify_socket.texts()
    assert texts[0].startswith("READY=1\nSTATUS=")
    assert texts[-1] == "STOPPING=1"
    assert any(t.startswith("STATUS=") and "cycles run" in t for t in texts[1:-1])
    # The first cycle runs at start, the next one an interval (plus jitter) later.
    assert 0.9 <= calls[1] - calls[0] <= 3.0
    with pytest.raises(OSError):
        scrape(port)  # the exporter is gone


def test_sigterm_lets_the_running_cycle_finish_before_exit(runtimes):
    events: list[str] = []
    started = threading.Event()

    def cycle(rt, stop):
        started.set()
        assert stop.wait(10), "the daemon never set the stop event"
        events.append("cycle committed and returned")

    class Closing(FakeRuntime):
        def close(self):
            events.append("runtime closed")

    t0 = time.monotonic()
    code = drive(config(stop_timeout_seconds=5.0), lambda: started.wait(10), cycle_fn=cycle,
                 runtime_factory=Closing)
    assert code == 0
    assert events == ["cycle committed and returned", "runtime closed"]
    assert time.monotonic() - t0 < 5.0


def test_a_cycle_that_ignores_the_stop_is_abandoned_at_the_stop_timeout(runtimes, caplog):
    release = threading.Event()
    started = threading.Event()
    exits: list[int] = []

    def cycle(rt, stop):
        started.set()
        release.wait(20)  # a hung check: it never looks at `stop`

    t0 = time.monotonic()
    try:
        code = drive(config(stop_timeout_seconds=0.5), lambda: started.wait(10), cycle_fn=cycle,
                     runtime_factory=runtimes, hard_exit=exits.append)
        waited = time.monotonic() - t0
    finally:
        release.set()
    assert code == 0 and exits == [0]
    assert 0.5 <= waited < 5
    assert "did not stop within 0.5s" in caplog.text


def test_a_job_that_raises_is_counted_logged_and_the_next_cycle_runs(runtimes, caplog):
    calls: list[int] = []

    def cycle(rt, stop):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom: the database went away")

    caplog.set_level(logging.INFO)
    code = drive(config(), lambda: wait_for(lambda: len(calls) >= 2, what="a second cycle"),
                 cycle_fn=cycle, runtime_factory=runtimes)
    assert code == 0
    body = generate_latest(runtimes.made[0].metrics.registry).decode()
    assert "twitchwatch_job_errors_total 1.0" in body
    failures = [r for r in caplog.records if r.getMessage().startswith("cycle failed")]
    assert [r.getMessage() for r in failures] == ["cycle failed: RuntimeError: boom: the database went away"]


def test_cycles_never_overlap_when_one_outlasts_the_interval(runtimes):
    running, overlaps, calls = [0], [], []
    lock = threading.Lock()

    def cycle(rt, stop):
        with lock:
            running[0] += 1
            overlaps.append(running[0])
        calls.append(1)
        time.sleep(1.3)  # longer than the 1 s interval
        with lock:
            running[0] -= 1

    drive(config(), lambda: wait_for(lambda: len(calls) >= 2, what="two long cycles"),
          cycle_fn=cycle, runtime_factory=runtimes)
    assert max(overlaps) == 1


def test_sighup_with_a_broken_config_keeps_the_old_and_a_good_one_rebuilds(tmp_path, runtimes, caplog, clean_environ):
    port = free_port()
    path = tmp_path / "twitchwatch.toml"

    def write(streams: int) -> None:
        path.write_text(f"[monitor]\ninterval_seconds = 1\nmetrics_port = {port}\n"
                        f"streams_per_category = {streams}\n")

    write(7)
    seen: list[int] = []

    def cycle(rt, stop):
        seen.append(rt.cfg.monitor.streams_per_category)

    def script():
        wait_for(lambda: len(seen) >= 1, what="the first cycle")
        path.write_text("[monitor\ninterval_seconds = 1\n")  # not TOML
        os.kill(os.getpid(), signal.SIGHUP)
        n = len(seen)
        wait_for(lambda: len(seen) >= n + 2, what="two cycles after the bad reload")
        path.write_text(path.read_text().replace("[monitor\n", "[monitor]\n") + "streams_per_category = 0\n")
        os.kill(os.getpid(), signal.SIGHUP)  # valid TOML, invalid value
        n = len(seen)
        wait_for(lambda: len(seen) >= n + 1, what="a cycle after the second bad reload")
        write(9)
        os.kill(os.getpid(), signal.SIGHUP)
        wait_for(lambda: seen[-1] == 9, what="a cycle with the reloaded config")

    caplog.set_level(logging.INFO)
    code = drive(load_config(path, environ={}), script, config_path=str(path), cycle_fn=cycle,
                 runtime_factory=runtimes)
    assert code == 0
    assert set(seen[:-1]) <= {7} and seen[-1] == 9
    assert [rt.cfg.monitor.streams_per_category for rt in runtimes.made] == [7, 9]
    assert runtimes.made[0].closed and runtimes.made[1].closed
    kept = [r.getMessage() for r in caplog.records if "keeping the current configuration" in r.getMessage()]
    assert len(kept) == 2
    assert "not valid TOML" in kept[0] and "monitor.streams_per_category must be positive" in kept[1]


def test_a_failing_rebuild_after_sighup_keeps_the_running_runtime(tmp_path, runtimes, caplog, clean_environ):
    port = free_port()
    path = tmp_path / "twitchwatch.toml"
    path.write_text(f"[monitor]\ninterval_seconds = 1\nmetrics_port = {port}\n")
    seen: list[FakeRuntime] = []

    def factory(cfg, metrics):
        if cfg.storage.database_url.endswith("unreachable.db"):
            raise TwitchwatchError("database unreachable")
        return runtimes(cfg, metrics)

    def script():
        wait_for(lambda: len(seen) >= 1, what="the first cycle")
        path.write_text(path.read_text() + '[storage]\ndatabase_url = "sqlite:///unreachable.db"\n')
        os.kill(os.getpid(), signal.SIGHUP)
        n = len(seen)
        wait_for(lambda: len(seen) >= n + 2, what="cycles after the reload")

    code = drive(load_config(path, environ={}), script, config_path=str(path),
                 cycle_fn=lambda rt, stop: seen.append(rt), runtime_factory=factory)
    assert code == 0
    assert len(runtimes.made) == 1 and set(seen) == {runtimes.made[0]}
    assert "keeping the previous one" in caplog.text


def test_watchdog_pings_stop_while_a_cycle_hangs_and_resume_after(runtimes, notify_socket, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    calls: list[float] = []
    release = threading.Event()
    marks: dict[str, float] = {}

    def cycle(rt, stop):
        calls.append(time.monotonic())
        if len(calls) == 2:
            release.wait(20)  # hangs, touching nothing

    def script():
        wait_for(lambda: len(calls) >= 2, what="the hanging cycle")
        marks["hang"] = calls[1]
        time.sleep(2.0)
        marks["release"] = time.monotonic()
        release.set()
        wait_for(lambda: any(t > marks["release"] for t in notify_socket.pings()), what="pings after the hang")

    try:
        drive(config(), script, cycle_fn=cycle, runtime_factory=runtimes, stall_seconds=0.6)
    finally:
        release.set()
    pings = notify_socket.pings()
    hang, freed = marks["hang"], marks["release"]
    assert [t for t in pings if t < hang], "no pings before the hang"
    assert [t for t in pings if hang <= t < hang + 0.4], "a cycle younger than the stall bound is progress"
    # Stall bound 0.6 s + half the watchdog period: nothing after that until the cycle ends.
    assert [t for t in pings if hang + 0.9 <= t < freed] == []


def test_a_slow_cycle_that_keeps_checking_keeps_the_watchdog_fed(runtimes, notify_socket, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    marks: dict[str, float] = {}

    def cycle(rt, stop):
        if "start" in marks:
            return
        marks["start"] = time.monotonic()
        for _ in range(10):  # 2 s in all, over three times the stall bound
            time.sleep(0.2)
            rt.metrics.check_done("509658", "agree")
        marks["end"] = time.monotonic()

    drive(config(), lambda: wait_for(lambda: "end" in marks, what="the slow cycle"),
          cycle_fn=cycle, runtime_factory=runtimes, stall_seconds=0.6)
    pings = notify_socket.pings()
    inside = [t for t in pings if marks["start"] <= t <= marks["end"]]
    gaps = [b - a for a, b in zip(inside, inside[1:], strict=False)]
    assert len(inside) >= 5 and max(gaps) < 0.6


def test_no_watchdog_pings_without_watchdog_usec(runtimes, notify_socket):
    calls: list[int] = []
    drive(config(), lambda: wait_for(lambda: len(calls) >= 1, what="a cycle") or time.sleep(0.5),
          cycle_fn=lambda rt, stop: calls.append(1), runtime_factory=runtimes)
    assert notify_socket.pings() == []
    assert notify_socket.texts()[0].startswith("READY=1")


def test_a_taken_metrics_port_is_a_clear_error_before_anything_starts(runtimes):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        cfg = config(metrics_port=taken.getsockname()[1])
        with pytest.raises(TwitchwatchError, match=r"cannot serve metrics on 127\.0\.0\.1:\d+"):
            run_daemon(cfg, None, cycle_fn=lambda rt, stop: None, runtime_factory=runtimes,
                       hard_exit=pytest.fail)
    assert runtimes.made == []


def test_a_runtime_that_cannot_start_releases_the_metrics_port():
    cfg = config()

    def factory(cfg, metrics):
        raise TwitchwatchError("database is not migrated: run `twitchwatch db upgrade`")

    with pytest.raises(TwitchwatchError, match="not migrated"):
        run_daemon(cfg, None, cycle_fn=lambda rt, stop: None, runtime_factory=factory, hard_exit=pytest.fail)
    with socket.socket() as again:
        again.bind(("127.0.0.1", cfg.monitor.metrics_port))


# -- the progress rule on its own -------------------------------------------


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_progress_between_cycles_allows_the_interval_plus_jitter_and_stall():
    clock = Clock()
    p = Progress(interval=300, stall=100, clock=clock)
    clock.now += 300 + 30 + 100
    assert p.healthy(last_activity=0)
    clock.now += 1
    assert not p.healthy(last_activity=clock.now)  # activity outside a cycle does not count


def test_progress_in_a_cycle_needs_activity_within_the_stall_bound():
    clock = Clock()
    p = Progress(interval=300, stall=100, clock=clock)
    p.cycle_started()
    clock.now += 100
    assert p.healthy(last_activity=0)
    clock.now += 1
    assert not p.healthy(last_activity=0)
    assert p.healthy(last_activity=clock.now - 50)  # a check finished 50 s ago
    p.cycle_ended()
    assert p.healthy(last_activity=0) and p.cycles == 1 and p.idle.is_set()


def test_stall_bound_grows_with_the_capture_timeout():
    short = load_config(environ={}, overrides={"monitor": {"capture_timeout_seconds": 10.0}})
    long = load_config(environ={}, overrides={"monitor": {"capture_timeout_seconds": 100.0}})
    assert stall_bound(long) - stall_bound(short) == 90
    assert stall_bound(load_config(environ={})) > load_config(environ={}).monitor.capture_timeout_seconds


# -- the real daemon as a process, against the Twitch stand-in ------------------

try:
    import monitor.cycle  # noqa: F401
    import trainer.registry  # noqa: F401
    from monitor.sim import small_scenario

    _PROCESS_SKIP = ""
except ImportError as exc:  # the cycle, stand-in or registry are not in this tree yet
    _PROCESS_SKIP = f"the real cycle cannot run yet: {exc}"

needs_cycle = pytest.mark.skipif(bool(_PROCESS_SKIP), reason=_PROCESS_SKIP or "-")


def daemon_config(sim, tmp_path, database_url: str, **monitor) -> tuple:
    from cli_helpers import write_config

    port = free_port()
    sections = {
        "twitch": {**sim.twitch_config(), "request_timeout_seconds": 5.0},
        # The chatting category only: 4 channels, one of them mislabeled.
        "categories": {"watch": ["509658"], "chatting": "509658"},
        "monitor": {"interval_seconds": 1, "capture_seconds": 2, "segments": 2, "frames_per_segment": 2,
                    "capture_workers": 4, "capture_timeout_seconds": 15.0, "metrics_port": port,
                    "stop_timeout_seconds": 20.0, **monitor},
        "storage": {"database_url": database_url, "data_dir": str(tmp_path / "data")},
        "model": {"pretrained": "none"},
    }
    return write_config(tmp_path / "twitchwatch.toml", sections), port


def start(argv: list[str], tmp_path, notify_path: str, **env) -> tuple[subprocess.Popen, Path]:
    return start_process(argv, tmp_path, tmp_path / "daemon.log", NOTIFY_SOCKET=notify_path, **env)


@needs_cycle
@pytest.mark.slow
def test_daemon_process_cycles_counts_a_failing_job_keeps_config_on_bad_sighup_and_stops_on_sigterm(
        standin, tmp_path):
    from monitor.store import Store

    db_url = f"sqlite:///{tmp_path / 'tw.db'}"
    Store(db_url).upgrade()
    cfg_path, port = daemon_config(standin, tmp_path, db_url)
    notify = NotifySocket(str(tmp_path / "notify.sock"))
    # No active model yet: the first cycles raise ModelError, as on a host set up before its first training.
    proc, log_path = start(["-m", "monitor", "run", "--config", str(cfg_path)], tmp_path, notify.sock.getsockname())
    try:
        wait_for(lambda: any(m.startswith("READY=1") for m in notify.texts()) or proc.poll() is not None,
                 timeout=90, what="READY=1")
        assert proc.poll() is None, log_path.read_text()[-3000:]

        wait_for(lambda: counter(scrape_or_empty(port), "twitchwatch_job_errors_total") >= 1, timeout=60,
                 what="a failed cycle to be counted")
        assert "cycle failed: ModelError: no active model" in log_path.read_text()
        activate_untrained_model(tmp_path / "data", [c.id for c in small_scenario().categories])

        # Cycles now succeed, and the counters move between two scrapes.
        wait_for(lambda: counter(scrape_or_empty(port), "twitchwatch_cycles_total", result="ok") >= 1,
                 timeout=120, what="a successful cycle")
        first = scrape(port)
        wait_for(lambda: counter(scrape_or_empty(port), "twitchwatch_cycles_total", result="ok")
                 >= counter(first, "twitchwatch_cycles_total", result="ok") + 1, timeout=120, what="another cycle")
        second = scrape(port)
        assert counter(second, "twitchwatch_checks_total") > counter(first, "twitchwatch_checks_total") > 0
        assert counter(second, "twitchwatch_capture_duration_seconds_count") > 0
        assert counter(second, "twitchwatch_helix_requests_total", endpoint="streams", status="200") > 0
        assert counter(second, "twitchwatch_downloaded_bytes_total", kind="video") > 0
        assert counter(second, "twitchwatch_last_successful_cycle_timestamp_seconds") > 1.6e9

        # A broken config file on SIGHUP: logged, the old config goes on polling.
        good = cfg_path.read_text()
        cfg_path.write_text(good.replace("[monitor]", "[monitor"))
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "keeping the current configuration" in log_path.read_text(), timeout=30, what="the reload")
        ok_before = counter(scrape(port), "twitchwatch_cycles_total", result="ok")
        wait_for(lambda: counter(scrape_or_empty(port), "twitchwatch_cycles_total", result="ok") > ok_before,
                 timeout=120, what="a cycle after the bad reload")

        # SIGTERM, most likely mid-cycle: exit 0 within the stop timeout.
        proc.send_signal(signal.SIGTERM)
        proc.wait(20.0 + 10)
        log = log_path.read_text()
        assert proc.returncode == 0, log[-3000:]
    finally:
        stop_process(proc)
        notify.close()
    assert notify.texts()[-1] == "STOPPING=1"
    # Every check the daemon counted as finished is in the database, and nothing else.
    recorded = int(re.search(r"stopped after \d+ cycles; (\d+) checks recorded", log).group(1))
    with Store(db_url) as store:
        with store.engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT count(*) FROM observations").scalar_one()
    assert rows == recorded >= counter(second, "twitchwatch_checks_total")
    assert "Traceback" not in log


HANG_SCRIPT = """
import logging, sys
from monitor.config import load_config
from monitor.daemon import run_daemon
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
for name in ("streamlink", "alembic", "urllib3"):
    logging.getLogger(name).setLevel(logging.WARNING)
sys.exit(run_daemon(load_config(sys.argv[1]), sys.argv[1], stall_seconds=float(sys.argv[2])))
"""


@needs_cycle
@pytest.mark.slow
@pytest.mark.postgres
def test_daemon_process_stops_the_watchdog_on_a_database_hang_and_abandons_it_on_sigterm(
        standin, tmp_path, postgres_database_url):
    """A lock held on the observations table hangs every check in its commit, for real."""
    import psycopg
    from sqlalchemy.engine import make_url

    from monitor.store import Store

    Store(postgres_database_url).upgrade()
    activate_untrained_model(tmp_path / "data", [c.id for c in small_scenario().categories])
    cfg_path, port = daemon_config(standin, tmp_path, postgres_database_url, stop_timeout_seconds=3.0)
    script = tmp_path / "hang_daemon.py"
    script.write_text(HANG_SCRIPT)
    notify = NotifySocket(str(tmp_path / "notify.sock"))
    # The stall bound is lowered from its production value (minutes) so the test takes seconds.
    proc, log_path = start([str(script), str(cfg_path), "3"], tmp_path, notify.sock.getsockname(),
                           WATCHDOG_USEC="400000")
    dsn = make_url(postgres_database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    locker = psycopg.connect(dsn)
    try:
        wait_for(lambda: counter(scrape_or_empty(port), "twitchwatch_cycles_total", result="ok") >= 1
                 or proc.poll() is not None, timeout=120, what="a successful cycle")
        assert proc.poll() is None, log_path.read_text()[-3000:]
        assert notify.pings(), "no watchdog pings while cycles progress"
        committed = counter(scrape(port), "twitchwatch_checks_total")

        locker.execute("LOCK TABLE observations IN ACCESS EXCLUSIVE MODE")
        locked_at = time.monotonic()
        wait_for(lambda: "no longer pinging the systemd watchdog" in log_path.read_text(), timeout=60,
                 what="the watchdog to stop")
        silent_from = time.monotonic()
        time.sleep(1.5)
        assert [t for t in notify.pings() if t >= silent_from] == [], "pinged while every check hangs"
        assert [t for t in notify.pings() if t >= locked_at], "a cycle that just started is still progress"

        # SIGTERM with checks stuck in the database: abandoned after the 3 s stop timeout, exit 0.
        proc.send_signal(signal.SIGTERM)
        proc.wait(3.0 + 15)
        assert proc.returncode == 0, log_path.read_text()[-3000:]
        assert "abandoning its checks in flight" in log_path.read_text()
    finally:
        locker.rollback()
        locker.close()
        stop_process(proc)
        notify.close()
    with Store(postgres_database_url) as store:
        with store.engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT count(*) FROM observations").scalar_one()
    # What was committed before the hang stays; the abandoned checks left nothing half-written.
    assert rows >= committed
    assert notify.texts()[-1] == "STOPPING=1"
