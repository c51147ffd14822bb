"""python -m monitor.sim: prints its URL, serves, stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from monitor.sim import load_scenario

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("scenario", ["small", "world-b"])
def test_module_prints_its_url_serves_and_stops_on_sigterm(tmp_path, scenario):
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor.sim", "--port", "0", "--scenario", scenario, "--cache-dir", str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        answer = requests.get(f"{url}/helix/streams", timeout=10)
        assert answer.status_code == 401 and "Ratelimit-Limit" in answer.headers
        login = load_scenario(scenario).channels[-1].login
        assert requests.get(f"{url}/previews/live_user_{login}-80x45.jpg", timeout=30).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_module_rejects_a_missing_scenario_file(tmp_path):
    done = subprocess.run([sys.executable, "-m", "monitor.sim", "--scenario", str(tmp_path / "none.json")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "cannot load scenario" in done.stderr
