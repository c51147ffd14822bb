"""The README's first-hour block, which .ci/new-user runs in a fresh clone, stays runnable as written."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

from monitor.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- .ci/new-user"


def first_hour_block() -> list[str]:
    """Return the lines of the ```sh block after the marker, as .ci/new-user's awk finds them."""
    text = (ROOT / "README.md").read_text()
    assert MARKER in text, "README.md lost the .ci/new-user marker"
    after = text.split(MARKER, 1)[1]
    match = re.search(r"^```sh\n(.*?)^```$", after, re.MULTILINE | re.DOTALL)
    assert match, "no ```sh block after the .ci/new-user marker"
    return match.group(1).splitlines()


def test_ci_runs_the_first_hour_block_in_a_fresh_clone():
    script = ROOT / ".ci" / "new-user"
    assert script.stat().st_mode & 0o111
    assert "bash .ci/new-user" in (ROOT / ".ci" / "run").read_text()
    assert r"<!-- \.ci\/new-user" in script.read_text()  # the awk pattern that finds the block
    assert "git clone" in script.read_text()


def test_every_twitchwatch_command_of_the_block_parses_and_it_ends_with_the_doctor():
    commands = [shlex.split(line.split("#", 1)[0].replace("$PWD", "/clone"))
                for line in first_hour_block() if line.startswith(".venv/bin/twitchwatch ")]
    assert [c[1] for c in commands] == ["config", "db", "dataset", "train", "doctor"]
    parser = build_parser()
    for command in commands:
        parser.parse_args(command[1:])  # a UsageError here is a typo the README would hand a new user
    assert first_hour_block()[-1] == ".venv/bin/twitchwatch doctor"


def test_the_block_installs_as_the_readme_says_and_writes_the_config_config_init_reads():
    lines = [line for line in first_hour_block() if not line.startswith("#")]
    assert lines[0] == "python3 -m venv .venv && .venv/bin/pip install ."
    standin = next(line for line in lines if "monitor.sim" in line)
    written = shlex.split(standin)[shlex.split(standin).index("--write-config") + 1]
    init = next(line for line in lines if "config init" in line)
    assert f"--from {written}" in init
    assert any(os.path.basename(line.split("=", 1)[1]) == "twitchwatch.toml"
               for line in lines if line.startswith("export TWITCHWATCH_CONFIG="))
