"""Helpers for tests that run twitchwatch processes: ports, waiting, scraping, a model, starting and stopping.

    from proc_helpers import free_port, start_process, wait_for   # tests/ is on sys.path under pytest
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def scrape(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def scrape_or_empty(port: int) -> str:
    try:
        return scrape(port)
    except OSError:
        return ""


def counter(body: str, name: str, **labels: str) -> float:
    """Sum the samples of `name` whose labels include `labels`."""
    total = 0.0
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def activate_untrained_model(data_dir, classes) -> str:
    """Register and activate an untrained SqueezeNet: these tests pin the lifecycle, not accuracy."""
    import torch

    from monitor.classify import build_model
    from monitor.model_registry import ModelRegistry
    from trainer.registry import save_model

    torch.set_num_threads(1)
    model_id = save_model(data_dir, build_model("squeezenet1_1", len(classes), "none"),
                          {"classes": list(classes), "arch": "squeezenet1_1", "segments": 2, "frames_per_segment": 2})
    ModelRegistry(data_dir).activate(model_id)
    return model_id


def start_process(argv: list[str], cwd: Path, log_path: Path, **env: str) -> tuple[subprocess.Popen, Path]:
    """Start `python ARGV...` with this checkout first on PYTHONPATH, stdout and stderr into log_path.

    TWITCHWATCH_*, TWITCH_* and WATCHDOG_* of the developer's environment are left out; `env` is added.
    """
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("TWITCHWATCH_", "TWITCH_", "WATCHDOG_"))}
    full_env.update({"OMP_NUM_THREADS": "1", **env,
                     "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))})
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen([sys.executable, *argv], stdout=log_file, stderr=subprocess.STDOUT, env=full_env,
                                cwd=str(cwd))
    return proc, log_path


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


class NotifySocket:
    """A fake systemd notification socket: every datagram with its monotonic time."""

    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        while not self._done.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data.decode()))

    def texts(self) -> list[str]:
        return [m for _, m in self.messages]

    def pings(self) -> list[float]:
        return [t for t, m in self.messages if m == "WATCHDOG=1"]

    def close(self):
        self._done.set()
        self._thread.join(2)
        self.sock.close()
