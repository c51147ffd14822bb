"""The daemon's unit runs `twitchwatch doctor` before starting, with check names the doctor knows."""

from __future__ import annotations

import shlex
from pathlib import Path

from monitor.cli import build_parser
from monitor.doctor import CHECKS

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "systemd" / "twitchwatch.service"


def test_the_unit_runs_the_doctor_after_the_schema_upgrade_and_its_arguments_parse():
    pre = [line.split("=", 1)[1] for line in UNIT.read_text().splitlines() if line.startswith("ExecStartPre=")]
    assert [shlex.split(cmd)[1:3] for cmd in pre] == [["db", "upgrade"], ["doctor", "--skip"]]
    args = build_parser().parse_args(shlex.split(pre[1])[1:])
    assert set(args.skip) == {"streamlink", "weights"} and set(args.skip) < CHECKS.keys()
