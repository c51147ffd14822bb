"""`twitchwatch doctor`: each check passes on a host that can run twitchwatch and says what to do when not."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading

import pytest
from cli_helpers import write_config
from test_daemon import activate_untrained_model, free_port

from monitor.config import load_config
from monitor.doctor import CHECKS, FAIL, OK, SKIP, run_checks
from monitor.metrics import Metrics
from monitor.sim import small_scenario
from monitor.store import Store


@pytest.fixture
def healthy(small_standin, tmp_path):
    """Return sections for a host that passes every check: the stand-in, a migrated database, a model."""
    db_url = f"sqlite:///{tmp_path / 'tw.db'}"
    Store(db_url).upgrade()
    activate_untrained_model(tmp_path / "data", [c.id for c in small_scenario().categories])
    return {
        "twitch": {**small_standin.twitch_config(), "request_timeout_seconds": 10.0},
        "categories": {"watch": [c.id for c in small_scenario().categories], "chatting": "509658"},
        "monitor": {"metrics_port": free_port()},
        "storage": {"database_url": db_url, "data_dir": str(tmp_path / "data")},
        "model": {"pretrained": "none"},
    }


def findings(sections: dict, **kwargs) -> dict[str, tuple[str, str]]:
    cfg = load_config(environ={}, overrides=sections)
    return {f.name: (f.status, f.detail) for f in run_checks(cfg, **kwargs)}


def test_every_check_passes_on_a_host_that_can_run(healthy):
    found = findings(healthy)
    assert list(found) == list(CHECKS)
    assert {name: status for name, (status, _) in found.items()} == dict.fromkeys(CHECKS, OK), found
    assert "a token was minted" in found["credentials"][1]
    assert "scored a frame" in found["model"][1]
    assert "streamlink resolved http://127.0.0.1:" in found["streamlink"][1]


def test_the_cli_prints_one_line_per_check_and_exits_0(healthy, tmp_path, cli):
    cfg = write_config(tmp_path / "twitchwatch.toml", healthy)
    code, out, err = cli("doctor", "--config", str(cfg))
    assert code == 0, out + err
    lines = out.splitlines()
    assert [line.split()[:2] for line in lines] == [[OK, name] for name in CHECKS]
    code, out, _ = cli("doctor", "--json", "--skip", "streamlink", "--config", str(cfg))
    assert code == 0 and {f["check"]: f["status"] for f in json.loads(out)}["streamlink"] == "skip"


def test_a_failing_check_exits_1_with_one_line_naming_it(healthy, tmp_path, cli):
    healthy["storage"]["database_url"] = f"sqlite:///{tmp_path / 'none.db'}"
    cfg = write_config(tmp_path / "twitchwatch.toml", healthy)
    code, out, err = cli("doctor", "--config", str(cfg))
    assert code == 1
    assert err.strip().splitlines() == ["twitchwatch: error: doctor: 1 of 7 checks failed: schema"]
    assert f"FAIL  schema        no database at {tmp_path / 'none.db'}" in out
    assert not (tmp_path / "none.db").exists()


def test_without_credentials_the_token_fails_and_streamlink_is_skipped(healthy):
    healthy["twitch"].update(client_id="", client_secret="")
    found = findings(healthy)
    assert found["credentials"][0] == FAIL and "no Twitch app credentials" in found["credentials"][1]
    assert found["streamlink"] == (SKIP, "needs the credentials check to pass")


def test_wrong_credentials_say_so(healthy):
    healthy["twitch"]["client_secret"] = "wrong"
    status, detail = findings(healthy)["credentials"]
    assert status == FAIL and "refused the app credentials" in detail and "wrong" not in detail


def test_no_active_model_says_what_to_run(healthy, tmp_path):
    healthy["storage"]["data_dir"] = str(tmp_path / "empty")
    status, detail = findings(healthy, skip=["streamlink", "credentials"])["model"]
    assert status == FAIL and "run `twitchwatch train`" in detail


def port_finding(sections: dict, port: int) -> tuple[str, str]:
    sections["monitor"]["metrics_port"] = port
    return findings(sections, skip=["credentials", "streamlink", "model"])["metrics-port"]


def test_the_metrics_port_taken_by_another_program_fails_and_by_twitchwatch_passes(healthy):
    other = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)  # answers 501
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        status, detail = port_finding(healthy, other.server_port)
    finally:
        other.shutdown()
        other.server_close()
    assert status == FAIL and "in use by another program" in detail
    twitchwatch = Metrics().serve("127.0.0.1", 0)
    try:
        assert port_finding(healthy, twitchwatch.port) == (OK, f"127.0.0.1:{twitchwatch.port} is served by a "
                                                               "running twitchwatch")
    finally:
        twitchwatch.shutdown()


def test_free_space_is_weighed_against_the_retain_budget(healthy):
    skip = ["credentials", "streamlink", "model"]
    healthy["retain"] = {"max_bytes": 10**18}
    status, detail = findings(healthy, skip=skip)["disk"]
    assert status == FAIL and "lower the budget" in detail
    healthy["retain"]["enabled"] = False
    assert findings(healthy, skip=skip)["disk"][0] == OK


def test_imagenet_weights_must_be_cached_unless_pretrained_says_otherwise(healthy, tmp_path, monkeypatch):
    import torch
    from torchvision import models

    skip = ["credentials", "streamlink", "model"]
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    healthy["model"]["pretrained"] = "imagenet"
    status, detail = findings(healthy, skip=skip)["weights"]
    assert status == FAIL and "not cached at" in detail and 'model.pretrained to "none"' in detail

    # A file at the cache path, in the shape torchvision's download has: the check loads it, no network.
    url = models.SqueezeNet1_1_Weights.IMAGENET1K_V1.url
    cached = tmp_path / "torch" / "hub" / "checkpoints" / url.rsplit("/", 1)[1]
    cached.parent.mkdir(parents=True)
    torch.save(models.squeezenet1_1(weights=None).state_dict(), cached)
    status, detail = findings(healthy, skip=skip)["weights"]
    assert status == OK and str(cached) in detail

    healthy["model"]["pretrained"] = str(tmp_path / "missing.pt")
    status, detail = findings(healthy, skip=skip)["weights"]
    assert status == FAIL and "does not exist" in detail


def test_an_unknown_check_name_is_a_usage_error(cli):
    code, _, err = cli("doctor", "--skip", "coffee")
    assert code == 2 and "coffee" in err


def test_under_systemd_failures_carry_priority_3_for_journalctl(tmp_path):
    """As the unit's ExecStartPre= runs it: `journalctl -p err` shows why the service did not start."""
    cfg = write_config(tmp_path / "c.toml", {"storage": {"database_url": f"sqlite:///{tmp_path / 'none.db'}",
                                                          "data_dir": str(tmp_path / "data")},
                                             "monitor": {"metrics_port": 0}, "model": {"pretrained": "none"}})
    with open(tmp_path / "journal", "w+") as journal:
        st = os.fstat(journal.fileno())
        done = subprocess.run([sys.executable, "-m", "monitor", "doctor", "--skip", "credentials", "--skip", "model",
                               "--config", str(cfg)], stdout=journal, stderr=journal, timeout=120,
                              env={**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        journal.seek(0)
        lines = journal.read().splitlines()
    assert done.returncode == 1
    assert [line[:3] for line in lines] == ["<6>", "<3>", "<6>", "<6>", "<6>", "<6>", "<6>", "<3>"], lines
    assert lines[1].startswith("<3>FAIL  schema") and lines[-1] == (
        "<3>twitchwatch: error: doctor: 1 of 7 checks failed: schema")
