"""No secret (client secret, tokens, database password, webhook URL) in anything a command shows:
outputs, logs at DEBUG, --debug tracebacks, metrics, model cards, flags."""

from __future__ import annotations

import pytest


def test_every_command_ran(command_world):
    codes = {command: code for command, (code, _) in command_world.outputs.items()}
    failed = {c: code for c, code in codes.items()
              if code != 0 and c not in ("check hostile", "check --debug failing", "doctor")}
    assert not failed, {c: command_world.outputs[c][1][-2000:] for c in failed}
    assert codes["check --debug failing"] != 0  # it did fail, and showed its traceback
    assert "Traceback" in command_world.outputs["check --debug failing"][1] \
        or "Traceback" in command_world.logs
    assert "twitchwatch_helix_tokens_minted_total" in command_world.outputs["metrics"][1]


@pytest.mark.parametrize("what", ["client secret", "database password", "webhook token", "tokens"])
def test_no_secret_shows_in_any_output_log_traceback_metric_or_file(command_world, what):
    index = {"client secret": [0], "database password": [1], "webhook token": [2]}
    secrets = command_world.secrets
    wanted = [secrets[i] for i in index[what]] if what in index else secrets[3:]
    assert wanted and all(len(s) >= 8 for s in wanted)
    if what == "tokens":
        assert len(wanted) >= 5  # a token per command: they were really minted and used
    text = command_world.text()
    assert len(text) > 10_000
    leaked = [s for s in wanted if s in text]
    assert not leaked, [text[max(0, text.index(s) - 200): text.index(s) + 50] for s in leaked]
