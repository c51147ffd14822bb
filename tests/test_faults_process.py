"""Process faults made to happen: a corrupt model made active by mistake, SIGKILL mid-cycle and a restart."""

from __future__ import annotations

import logging
import signal
import sqlite3
import time

import pytest
from cli_helpers import write_config
from fault_helpers import fault_runtime
from proc_helpers import start_process, stop_process

from monitor.check import check_stream
from monitor.cycle import run_cycle
from monitor.model_registry import ACTIVE_FILE, CARD_FILE, WEIGHTS_FILE, ModelRegistry

LOGIN = "mellowraven_live"


@pytest.mark.parametrize("damage", ["truncated weights", "garbage card"])
def test_a_corrupt_model_made_active_keeps_the_last_good_one_and_says_so_once(standin, tmp_path, caplog, damage):
    rt = fault_runtime(standin, tmp_path)
    try:
        good = rt.classifier()
        registry = ModelRegistry(rt.cfg.data_path)
        # A second model, damaged after it was written, made active past `models activate`'s own check.
        from monitor.classify import build_model
        from trainer.registry import save_model

        bad_id = save_model(rt.cfg.data_path, build_model("squeezenet1_1", 3, "none"),
                            {"classes": list(good.classes), "arch": "squeezenet1_1"})
        bad_dir = registry.model_dir(bad_id)
        if damage == "truncated weights":
            weights = bad_dir / WEIGHTS_FILE
            weights.write_bytes(weights.read_bytes()[:5000])
        else:
            (bad_dir / CARD_FILE).write_text("{not json")
        (registry.root / ACTIVE_FILE).write_text(bad_id + "\n")
        caplog.set_level(logging.ERROR, "monitor.cycle")
        for _ in range(3):
            assert rt.classifier() is good
        result = check_stream(rt.check_context, rt.helix.stream_of(LOGIN), rt.classifier())
        assert result.record.model_id == good.model_id
        assert result.outcome in ("agree", "mismatch", "unsure")
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 1 and f"model {bad_id} cannot be loaded, keeping model {good.model_id}" in lines[0]
        assert rt.metrics.registry.get_sample_value("twitchwatch_model_load_errors_total") == 1
        # Rolled back to the good one: nothing more to say.
        registry.activate(good.model_id)
        assert rt.classifier() is good
    finally:
        rt.close()


def test_sigkill_mid_cycle_then_restart_leaves_no_half_open_flag_and_the_next_cycle_carries_on(standin, tmp_path):
    rt = fault_runtime(standin, tmp_path, capture_timeout_seconds=6.0, confirmations=1)
    cfg = rt.cfg
    rt.close()
    config = write_config(tmp_path / "tw.toml", {
        "twitch": standin.twitch_config(),
        "categories": {"watch": list(cfg.categories.watch), "chatting": "509658"},
        "monitor": {"capture_seconds": 4, "capture_timeout_seconds": 6.0, "segments": 2, "frames_per_segment": 1,
                    "confirmations": 1, "metrics_port": 0},
        "storage": {"database_url": cfg.storage.database_url, "data_dir": str(cfg.data_path)},
        "model": {"pretrained": "none"},
    })
    stalled = [ch.login for ch in standin.scenario.channels if ch.declared_game_id == "33214"]
    for login in stalled:
        standin.set_ad_break(login, 120)  # their captures hang until the cap: the kill comes mid-capture
    db = cfg.storage.database_url.removeprefix("sqlite:///")
    proc, log_path = start_process(["-m", "monitor", "run", "--once", "--config", str(config)], tmp_path,
                                   tmp_path / "run.log")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            with sqlite3.connect(db) as conn:
                if conn.execute("SELECT count(*) FROM observations").fetchone()[0] >= 2:
                    break
            time.sleep(0.1)
        assert proc.poll() is None, log_path.read_text()[-3000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        stop_process(proc)
    with sqlite3.connect(db) as conn:
        before = conn.execute("SELECT count(*) FROM observations").fetchone()[0]
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert 2 <= before < 10  # killed part-way through the cycle
    rt = fault_runtime(standin, tmp_path, capture_timeout_seconds=6.0, confirmations=1)
    try:
        summary = run_cycle(rt)
        assert summary.checks == 10
        rows = rt.store.observations(limit=1000)
        assert len(rows) == before + 10  # what was committed stays, once; the new cycle adds its own
        # Each open flag rests on a committed mismatch of its channel: none opened by a check that died.
        mismatched = {r["user_login"] for r in rows if r["outcome"] == "mismatch"}
        flags = rt.store.flags()
        assert {f["user_login"] for f in flags} <= mismatched
        assert len({f["user_login"] for f in flags}) == len(flags)
    finally:
        rt.close()
