"""python -m monitor.sim prints, and with --write-config writes, the config lines that point twitchwatch at it."""

from __future__ import annotations

import subprocess
import sys
import time
import tomllib
from pathlib import Path

from monitor.config import load_config
from monitor.helix import HelixClient
from monitor.sim import small_scenario

ROOT = Path(__file__).resolve().parents[2]


def test_the_printed_lines_are_a_config_that_mints_a_token(tmp_path):
    written = tmp_path / "standin.toml"
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor.sim", "--port", "0", "--scenario", "small", "--cache-dir", str(tmp_path),
         "--write-config", str(written)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert proc.stdout.readline().startswith("# twitchwatch config for this stand-in: paste these lines")
        printed = []
        while not printed or not printed[-1].startswith("chatting = "):
            printed.append(proc.stdout.readline())
            assert printed[-1], "the stand-in stopped printing before its [categories] lines"
        deadline = time.monotonic() + 30
        while not written.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert written.read_text() == "".join(printed)

        lines = tomllib.loads("".join(printed))
        assert lines["twitch"]["helix_url"] == f"{url}/helix"
        assert lines["categories"]["watch"] == [c.id for c in small_scenario().categories]
        cfg = load_config(written, environ={})
        assert HelixClient(cfg.twitch).token()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
