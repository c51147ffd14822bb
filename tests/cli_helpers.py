"""Run the real `twitchwatch` command in a subprocess and write configs for it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_cli(*args: str, env: dict | None = None, timeout: float = 600, cwd: Path | None = None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("TWITCHWATCH_", "TWITCH_"))}
    full_env.update(env or {})
    # The suite runs a stand-in in its own process beside the CLI: one torch thread
    # each avoids OpenMP spinning against the other on 2 cores.
    full_env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd,
    )


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(path: Path, sections: dict[str, dict]) -> Path:
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path
